"""PMSAN-S/M/L/XL against nnU-Net's planned 3D U-Net on the phantom, on CPU: parameters (classifier =
encoder + detection head, decoder), FLOPs, sliding-window prediction time per volume and peak memory.

    python benchmarks/bench_pmsan.py [--repeats 2] [--threads 2] [--cases 4]

Plan: an ISLES'22 phantom (default 40x64x64 at 2 mm, DWI + ADC) is converted and planned with the stock
``nnUNetv2_plan_and_preprocess --no_pp`` (3d_fullres); every network is built for that plan's patch and
pooling. Time: ``predict_logits_from_preprocessed_data`` of nnU-Net's predictor (``DetectionPredictor``
for PMSAN, which also computes the detection probability) on a volume of the plan's median preprocessed
size: Gaussian-weighted sliding window, step 0.5, no test-time mirroring, one model; the median of
``--repeats`` runs after one warm-up run. Every network runs in its own spawned process; peak memory is
that process's peak resident set (imports, network, prediction), with the resident set just before
prediction beside it. FLOPs: torch.utils.flop_counter (convolutions, linear layers, matmuls; 2 FLOPs
per multiply-add) for one tile, times the number of tiles. Writes a record in benchmarks/results/pmsan/.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "pmsan"
DATASET_ID = 987
NETWORKS = {"PMSAN-S": "pmsan_s", "PMSAN-M": "pmsan_m", "PMSAN-L": "pmsan_l", "PMSAN-XL": "pmsan_xl",
            "nnU-Net planned 3D U-Net": None}
REFERENCE_STRIDES = [(1, 1, 1)] + [(1, 2, 2)] * 5  # the counting rule of docs/pmsan.md


def plan_phantom(root: Path, cases: int) -> dict:
    """Phantom -> ISLES'22 converter -> stock planner; returns the plans."""
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[variable] = str(root / variable)
        (root / variable).mkdir(parents=True, exist_ok=True)
    from nnunet_stroke.dataset_conversion import isles22
    from nnunet_stroke.phantom import write_phantom

    raw = isles22.convert(write_phantom(root / "source", "isles22", cases=cases, seed=0), DATASET_ID, num_processes=1)
    subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "--no_pp", "-npfp", "1"],
                   check=True, capture_output=True, env={**os.environ, "nnUNet_n_proc_DA": "1"})
    plans = json.loads((root / "nnUNet_preprocessed" / raw.name / "nnUNetPlans.json").read_text(encoding="utf-8"))
    return {"plans": plans, "dataset_json": json.loads((raw / "dataset.json").read_text(encoding="utf-8"))}


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _measure(label: str, preset: str | None, planned: dict, repeats: int, threads: list[int], queue) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from torch.utils.flop_counter import FlopCounterMode

    from nnunet_stroke.inference.detection_predictor import DetectionPredictor
    from nnunet_stroke.networks.registry import build_network

    plans_manager = PlansManager(planned["plans"])
    configuration = plans_manager.get_configuration("3d_fullres")
    channels, classes = len(planned["dataset_json"]["channel_names"]), len(planned["dataset_json"]["labels"])
    patch = tuple(configuration.patch_size)
    if preset is None:
        network = get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                         configuration.network_arch_init_kwargs_req_import, channels, classes,
                                         deep_supervision=False)
        # dynamic-network-architectures' decoder holds a reference to the encoder: count it apart
        classifier, decoder = _parameters(network.encoder), _parameters(network) - _parameters(network.encoder)
        predictor_class = nnUNetPredictor
    else:
        network = build_network(preset, input_channels=channels, num_classes=classes, patch_size=patch,
                                strides=configuration.pool_op_kernel_sizes)
        classifier = _parameters(network.encoder) + _parameters(network.detection_head)
        decoder, predictor_class = _parameters(network.decoder), DetectionPredictor
    network.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        network(torch.zeros(1, channels, *patch))
    volume_shape = tuple(int(n) for n in configuration.median_image_size_in_voxels)
    tiles = 1
    for steps in compute_steps_for_sliding_window(tuple(max(v, p) for v, p in zip(volume_shape, patch)), patch, 0.5):
        tiles *= len(steps)
    predictor = predictor_class(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration, [network.state_dict()],
                                    planned["dataset_json"], label, None)
    volume = torch.randn(channels, *volume_shape)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = {}
    for thread_count in threads:
        torch.set_num_threads(thread_count)
        times = []
        for run in range(repeats + 1):
            start = time.perf_counter()
            predictor.predict_logits_from_preprocessed_data(volume)
            if run:  # the first run warms up (allocations, oneDNN primitives)
                times.append(time.perf_counter() - start)
        seconds[thread_count] = statistics.median(times)
    queue.put(dict(label=label, total=_parameters(network), classifier=classifier, decoder=decoder,
                   tile_gflops=counter.get_total_flops() / 1e9, tiles=tiles, volume=volume_shape, patch=patch,
                   seconds=seconds, rss_before_mb=rss_before,
                   peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   detection=getattr(predictor, "case_probabilities", [None])[-1]))


def reference_counts() -> list[tuple[str, float, int, int]]:
    """(preset, paper M, classifier, decoder) under the counting rule: 1 input channel, six in-plane levels."""
    from nnunet_stroke.networks.pmsan_scaling import PAPER_SIZES
    from nnunet_stroke.networks.registry import build_network

    rows = []
    for size, (phi, paper) in PAPER_SIZES.items():
        net = build_network(f"pmsan_{size}", input_channels=1, num_classes=2, patch_size=(8, 128, 128),
                            strides=REFERENCE_STRIDES)
        rows.append((f"PMSAN-{size.upper()} (phi {phi})", paper / 1e6,
                     _parameters(net.encoder) + _parameters(net.detection_head), _parameters(net.decoder)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time")
    parser.add_argument("--cases", type=int, default=4, help="phantom cases to plan from")
    args = parser.parse_args()
    with Measurement() as measured:
        with tempfile.TemporaryDirectory(prefix="bench_pmsan_") as tmp:
            planned = plan_phantom(Path(tmp), args.cases)
        context = mp.get_context("spawn")
        rows = []
        for label, preset in NETWORKS.items():
            queue = context.Queue()
            process = context.Process(target=_measure, args=(label, preset, planned, args.repeats, args.threads, queue))
            process.start()
            rows.append(queue.get())
            process.join()
            print(rows[-1], flush=True)
    configuration = planned["plans"]["configurations"]["3d_fullres"]
    figures = {"settings": vars(args), "patch_size": configuration["patch_size"],
               "strides": configuration["architecture"]["arch_kwargs"]["strides"], "rows": rows,
               "reference": reference_counts()}
    print(f"wrote {write_record(RECORD_NAME, json.loads(json.dumps(figures)), measurement=measured)}")
    return 0


TITLE = "PMSAN S/M/L/XL vs nnU-Net's planned 3D U-Net (CPU)"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, "python benchmarks/bench_pmsan.py")
    record = records[-1]
    f = record["figures"]
    threads = [str(t) for t in f["settings"]["threads"]]
    rows = f["rows"]
    unet = rows[-1]
    lines = [
        f"## {TITLE}", "", provenance(record) + " With other jobs running, several torch threads contend with "
        "them and networks made of many small operations (PMSAN's per-slice recurrence) suffer most.", "",
        f"Plan (stock planner on the ISLES'22 phantom, {f['settings']['cases']} cases, DWI + ADC): 3d_fullres patch "
        f"{f['patch_size']}, strides {f['strides']}; volume = median preprocessed size {unet['volume']}, "
        f"{unet['tiles']} sliding-window tiles (step 0.5), no mirroring, one model.", "",
        "| network | params total (M) | classifier: encoder + detection head (M) | decoder (M) | GFLOPs per tile "
        "| GFLOPs per volume | " + " | ".join(f"s per volume, {t} thread(s)" for t in threads)
        + " | peak RSS (MB) | RSS before prediction (MB) |",
        "|---|---|---|---|---|---|" + "---|" * len(threads) + "---|---|",
    ]
    for r in rows:
        classifier = f"{r['classifier'] / 1e6:.2f}" + (" (encoder; no head)" if r is unet else "")
        times = " | ".join(f"{r['seconds'][t]:.2f}" for t in threads)
        lines.append(f"| {r['label']} | {r['total'] / 1e6:.2f} | {classifier} | {r['decoder'] / 1e6:.2f} | "
                     f"{r['tile_gflops']:.1f} | {r['tile_gflops'] * r['tiles']:.1f} | {times} | "
                     f"{r['peak_mb']:.0f} | {r['rss_before_mb']:.0f} |")
    s = rows[0]
    ratios = ", ".join(f"{s['seconds'][t] / unet['seconds'][t]:.2f}x with {t} thread(s) ({s['seconds'][t]:.2f} s vs "
                       f"{unet['seconds'][t]:.2f} s)" for t in threads)
    lines += ["", f"PMSAN-S / nnU-Net's planned 3D U-Net, time per volume: {ratios}; FLOPs "
              f"{s['tile_gflops'] / unet['tile_gflops']:.2f}x. PMSAN's time includes its detection probability.", "",
              "Parameter counts under the rule of docs/pmsan.md (classifier = encoder + detection head, 1 input "
              "channel, six in-plane levels; the plan above has fewer levels and 2 channels):", "",
              "| preset | paper (M) | classifier (M) | difference | decoder (M) |", "|---|---|---|---|---|"]
    for name, paper, classifier, decoder in f["reference"]:
        lines.append(f"| {name} | {paper:.1f} | {classifier / 1e6:.2f} | {classifier / 1e6 / paper - 1:+.1%} | "
                     f"{decoder / 1e6:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
