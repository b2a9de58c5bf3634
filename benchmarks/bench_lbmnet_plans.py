"""LBMNet on the plans its paper trained on: parameters and GMACs of the paper-scale preset at the patch
``nnunet-stroke plan ID --planner lbmnet`` chooses for an ATLAS-like and an ISLES-like dataset, and what
input size the paper's "54.80 G FLOPs" (section 5) could correspond to.

    python benchmarks/bench_lbmnet_plans.py [--cases 2] [--threads 2] [--quick]

Datasets (phantoms in the releases' layouts, converted with the package's converters, planned in a
temporary nnU-Net tree): ATLAS v2.0-like, one T1w channel at 1 mm, 189x233x197 voxels (the release's
grid); ISLES 2022-like, DWI + ADC at 2 x 2 x 2 mm, 72x112x112 voxels (the release's median DWI grid),
resampled to 1 mm by the plan. 2 classes. The planner's GPU budget is its default, 24 GB.

GMACs: torch.utils.flop_counter.FlopCounterMode over one forward pass of the network as defined (train
mode, so none of the package's inference-time fusions; batch 1, no deep supervision),
convolutions, transposed convolutions, linear layers and matmuls at 2 FLOPs per multiply-accumulate,
divided by 2 (the figure thop/fvcore print as "FLOPs"); the selective scans are listed apart
(9 * L * D_inner * d_state FLOPs per direction, mamba-ssm's convention; see bench_lbmnet.py).
Counted at the planned patch itself (minutes per network on a CPU; ``--quick`` skips it) and, for the
inverse question, as an affine function of the patch's voxels for the plan's pooling (two small patches
with the same strides: every convolution's work at a level scales with that level's voxels, which all
scale with the patch's voxels; the channel-attention MLPs on pooled vectors are the constant).
Writes a record in benchmarks/results/lbmnet_plans/.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import tempfile
from pathlib import Path

from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "lbmnet_plans"
PAPER_PARAMS, PAPER_FLOPS = 66.42e6, 54.80e9  # Kuang et al. 2026, section 5
NUM_CLASSES = 2
DATASETS = {  # label -> (phantom layout, dataset id, phantom shape z, y, x)
    "ATLAS v2.0-like (T1w, 1 mm)": ("atlas2", 601, (189, 233, 197)),
    "ISLES 2022-like (DWI + ADC, 2 mm -> 1 mm)": ("isles22", 602, (72, 112, 112)),
}


def plan_dataset(root: Path, layout: str, dataset_id: int, shape, cases: int) -> tuple[dict, int, float]:
    """Phantom -> converter -> LBMNet planner; returns (3d_fullres configuration, input channels, the
    planner's training-memory estimate at the planned patch in bytes)."""
    from nnunet_stroke.dataset_conversion import atlas2, isles22
    from nnunet_stroke.phantom import write_phantom
    from nnunet_stroke.workflows.lbmnet_planner import nnUNetPlannerLBMNet
    from nnunet_stroke.workflows.planning import plan

    source = write_phantom(root / layout, layout, cases=cases, seed=0, shape=shape)
    raw = (atlas2 if layout == "atlas2" else isles22).convert(source, dataset_id, num_processes=1)
    plans = json.loads(plan(dataset_id, "lbmnet", num_processes=1).read_text(encoding="utf-8"))
    channels = len(json.loads((raw / "dataset.json").read_text(encoding="utf-8"))["channel_names"])
    configuration = plans["configurations"]["3d_fullres"]
    memory = nnUNetPlannerLBMNet(dataset_id).static_estimate_VRAM_usage(
        configuration["patch_size"], channels, NUM_CLASSES, "", configuration["architecture"]["arch_kwargs"], ())
    return configuration, channels, memory


def _count(patch, strides, channels: int, threads: int, queue) -> None:
    import torch
    from bench_lbmnet import _count_flops

    from nnunet_stroke.networks.registry import build_network

    torch.set_num_threads(threads)
    # train mode: the network as defined and trained; in eval mode without autograd the package folds BN into
    # convolutions and merges LSC's 5^3 + 7^3 depthwise pair into one 7^3 (same function, fewer MACs)
    network = build_network("lbmnet", input_channels=channels, num_classes=NUM_CLASSES, patch_size=patch,
                            strides=strides, deep_supervision=False).train()
    flops, scan_flops = _count_flops(network, torch.zeros(1, channels, *patch))
    queue.put({"params": sum(p.numel() for p in network.parameters()), "macs": flops / 2, "scan_flops": scan_flops})


def count(patch, strides, channels: int, threads: int) -> dict:
    """Parameters, MACs and scan FLOPs of the paper preset at ``patch``, in a spawned process."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_count, args=(list(patch), strides, channels, threads, queue))
    process.start()
    row = queue.get()
    process.join()
    return row


def affine_macs(strides, channels: int, threads: int) -> tuple[float, float]:
    """(constant, MACs per input voxel) from counts at 2x and 4x the smallest patch of ``strides``."""
    smallest = [math.prod(s[axis] for s in strides) for axis in range(3)]
    small, large = ([f * s for s in smallest] for f in (2, 4))
    macs_small, macs_large = (count(p, strides, channels, threads)["macs"] for p in (small, large))
    per_voxel = (macs_large - macs_small) / (math.prod(large) - math.prod(small))
    return macs_small - per_voxel * math.prod(small), per_voxel


def cube_edge(voxels: float) -> float:
    return voxels ** (1 / 3)


def nearest_patch(row: dict, target_macs: float) -> tuple[tuple[int, int, int], float]:
    """The patch (edges multiples of the plan's total stride, up to 160, ascending) whose affine MAC count
    is nearest ``target_macs`` (longest edge at most twice the shortest), and that count."""
    step = max(math.prod(s[axis] for s in row["strides"]) for axis in range(3))
    edges = range(step, 161, step)
    patches = [(a, b, c) for a in edges for b in edges for c in edges if a <= b <= c <= 2 * a]
    best = min(patches, key=lambda p: abs(row["constant"] + row["per_voxel"] * math.prod(p) - target_macs))
    return best, row["constant"] + row["per_voxel"] * math.prod(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2, help="phantom cases per dataset (planning needs few)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="skip the count at the planned patch (minutes)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_lbmnet_plans_"))
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[variable] = str(root / variable)
        (root / variable).mkdir()
    os.environ.setdefault("nnUNet_n_proc_DA", str(args.threads))
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    from nnunet_stroke.workflows.lbmnet_planner import usable_gpu_bytes

    try:
        with Measurement() as measured:
            rows = [measure(root, label, args) for label in DATASETS]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {"settings": vars(args), "gpu_budget_bytes_24gb": usable_gpu_bytes(24), "rows": rows}
    print(f"wrote {write_record(RECORD_NAME, json.loads(json.dumps(figures, default=float)), measurement=measured)}")


def measure(root: Path, label: str, args) -> dict:
    """Plan one dataset and count the paper preset on its plan."""
    layout, dataset_id, shape = DATASETS[label]
    configuration, channels, memory = plan_dataset(root, layout, dataset_id, shape, args.cases)
    patch, strides = configuration["patch_size"], configuration["architecture"]["arch_kwargs"]["strides"]
    constant, per_voxel = affine_macs(strides, channels, args.threads)
    row = {"label": label, "channels": channels, "patch": patch, "strides": strides, "memory": memory,
           "median": configuration["median_image_size_in_voxels"], "constant": constant,
           "per_voxel": per_voxel, "affine_macs": constant + per_voxel * math.prod(patch)}
    row.update(count(patch, strides, channels, args.threads) if not args.quick else {})
    print(row, flush=True)
    return row


TITLE = "LBMNet on its paper's plans: parameters, GMACs, and the paper's 54.80 G FLOPs"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, "python benchmarks/bench_lbmnet_plans.py")
    record = records[-1]
    rows, budget = record["figures"]["rows"], record["figures"]["gpu_budget_bytes_24gb"]
    lines = [
        f"## {TITLE}",
        "",
        provenance(record) + " Plans: `nnunet-stroke plan ID --planner lbmnet` (1 mm, at most five levels, 24 GB) on phantoms with the "
        "releases' grids; paper-scale preset `lbmnet` as defined (train mode: no inference-time fusions), 2 "
        "classes, batch 1, no deep supervision. GMACs = "
        "FlopCounterMode FLOPs / 2 (convolutions, linear layers, matmuls); scan GFLOPs apart "
        "(9 * L * D_inner * d_state per direction). Counts, not timings: the machine's load does not change them.",
        "",
        f"Training memory: the planner's estimate at batch 2 under AMP (`workflows/lbmnet_planner.py`); its "
        f"budget for 24 GB is {budget / 2 ** 30:.1f} GiB.",
        "",
        "| dataset | channels | median shape at 1 mm | planned patch | strides | params (M) | GMACs at the patch "
        "| GMACs, affine fit | scan GFLOPs | training memory (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        counted = f"{r['macs'] / 1e9:.1f}" if "macs" in r else "-"
        scan = f"{r['scan_flops'] / 1e9:.1f}" if "scan_flops" in r else "-"
        params = f"{r['params'] / 1e6:.2f}" if "params" in r else "-"
        lines.append(f"| {r['label']} | {r['channels']} | {'x'.join(str(int(round(m))) for m in r['median'])} | "
                     f"{'x'.join(map(str, r['patch']))} | {r['strides']} | {params} | {counted} | "
                     f"{r['affine_macs'] / 1e9:.1f} | {scan} | {r['memory'] / 2 ** 30:.1f} |")
    lines += ["", f"The paper reports {PAPER_PARAMS / 1e6:.2f} M parameters and {PAPER_FLOPS / 1e9:.2f} G FLOPs "
              "(section 5) and names neither the input size nor the convention. Input sizes (same pooling as the "
              "plan) at which the preset's count equals 54.80 G:", "",
              "| dataset | MACs per input voxel | if 54.80 G = MACs: voxels (cube edge) | nearest patch, its GMACs "
              "| if 54.80 G = 2 x MACs: voxels (cube edge) | nearest patch, its GFLOPs |", "|---|---|---|---|---|---|"]
    for r in rows:
        as_macs = (PAPER_FLOPS - r["constant"]) / r["per_voxel"]
        as_flops = (PAPER_FLOPS / 2 - r["constant"]) / r["per_voxel"]
        (patch_macs, macs), (patch_flops, half_flops) = nearest_patch(r, PAPER_FLOPS), nearest_patch(r, PAPER_FLOPS / 2)
        lines.append(f"| {r['label']} | {r['per_voxel'] / 1e3:.1f} k | {as_macs:,.0f} ({cube_edge(as_macs):.1f}^3) | "
                     f"{'x'.join(map(str, patch_macs))}, {macs / 1e9:.1f} | "
                     f"{as_flops:,.0f} ({cube_edge(as_flops):.1f}^3) | "
                     f"{'x'.join(map(str, patch_flops))}, {2 * half_flops / 1e9:.1f} |")
    lines += ["", "Nearest patch: edges multiples of the plan's total stride (16), as nnU-Net's patches are, the "
              "longest at most twice the shortest.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
