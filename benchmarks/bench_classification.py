"""Image-level classifiers on the phantoms (CPU): held-out AUROC, accuracy, ECE and the validation
threshold of tiny trainers, and latency / throughput / peak memory per image of StrokeNeXt beside PMSAN-S.

    python benchmarks/bench_classification.py [--cases 160] [--minutes 4] [--epochs 40] [--fold 5]
                                              [--runs pmsan strokenext strokenext-presence] [--repeats 5]
    python benchmarks/bench_classification.py --check     # smallest settings, record in a temporary folder

Per run (a trainer on a phantom): ``nnunet-stroke phantom`` data -> the converter -> the stock
``nnUNetv2_plan_and_preprocess`` -> ``nnunet-stroke splits`` -> ``nnunet-stroke train ID CONFIG FOLD -tr T
-device cpu`` with ``NNUNET_STROKE_TINY_MINUTES`` / ``NNUNET_STROKE_TINY_EPOCHS`` (trainers/tiny.py: the
time budget cuts the epochs) -> ``nnunet-stroke predict-heldout ID -c CONFIG -f FOLD -tr T -device cpu``
(validation cases -> Youden threshold for binary classifiers -> held-out test cases -> metrics.json).

- pmsan: ``nnUNetTrainerPMSANClassifier_S_Tiny`` on the ISLES'22 phantom (3d_fullres, splits stratified
  by lesion volume), stroke presence;
- strokenext: ``nnUNetTrainerStrokeNeXt_Tiny`` on the TEKNOFEST phantom (2d, splits grouped by duplicate
  slices), subtype (three classes: argmax, no threshold);
- strokenext-presence: ``nnUNetTrainerStrokeNeXt_Presence_Tiny``, same data, stroke presence (threshold).

Latency: the paper-size networks (``nnUNetTrainerStrokeNeXt`` on the TEKNOFEST plan's median 2D image,
``nnUNetTrainerPMSANClassifier_S`` on the ISLES plan's median volume; their _Tiny networks beside them),
built through nnU-Net's hook, each in its own spawned process: forward time of one image (median of
``--repeats`` after a warm-up), throughput at batch ``--batch``, peak resident memory of the process
(imports + network + the batch-1 forward) and its growth during that forward.

Every run writes a record into benchmarks/results/classification/ (benchmarks/records.py: command, git
commit, wall time, the load average sampled every 5 s during the run, settings, metrics); ``--check``
writes it into a temporary folder instead.
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

from records import RESULTS, Measurement, not_recorded, provenance, write_record

RECORD_NAME = "classification"
RUNS = {  # name: (trainer, phantom layout, converter, dataset id, configuration, splits options)
    "pmsan": ("nnUNetTrainerPMSANClassifier_S_Tiny", "isles22", "isles22", 981, "3d_fullres", ["--stratify", "volume"]),
    "strokenext": ("nnUNetTrainerStrokeNeXt_Tiny", "teknofest", "teknofest", 982, "2d", ["--group", "duplicate"]),
    "strokenext-presence": ("nnUNetTrainerStrokeNeXt_Presence_Tiny", "teknofest", "teknofest", 982, "2d",
                            ["--group", "duplicate"]),
}
LATENCY_NETWORKS = [("nnUNetTrainerStrokeNeXt", 982, "2d"), ("nnUNetTrainerStrokeNeXt_Tiny", 982, "2d"),
                    ("nnUNetTrainerPMSANClassifier_S", 981, "3d_fullres"),
                    ("nnUNetTrainerPMSANClassifier_S_Tiny", 981, "3d_fullres")]


def run(command: list[str], env: dict) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def prepare_dataset(root: Path, layout: str, converter: str, dataset_id: int, configuration: str,
                    splits: list[str], cases: int, env: dict) -> Path:
    """Phantom -> converter -> stock planning/preprocessing -> splits; returns the raw dataset folder."""
    existing = sorted((root / "nnUNet_raw").glob(f"Dataset{dataset_id:03d}_*"))
    if existing and (root / "nnUNet_preprocessed" / existing[0].name / "heldout_test.json").is_file():
        return existing[0]  # a second trainer on the same phantom
    source = root / f"source_{layout}"
    run(["nnunet-stroke", "phantom", str(source), "--layout", layout, "--cases", str(cases), "--seed", "0"], env)
    dataset_root = next(p for p in source.iterdir() if p.is_dir())
    run(["nnunet-stroke", "convert", converter, str(dataset_root), "--dataset-id", str(dataset_id)], env)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", configuration, "-np", "2", "-npfp", "2"], env)
    run(["nnunet-stroke", "splits", str(dataset_id), *splits], env)
    return next((root / "nnUNet_raw").glob(f"Dataset{dataset_id:03d}_*"))


def train_and_evaluate(name: str, root: Path, args, env: dict) -> dict:
    trainer, layout, converter, dataset_id, configuration, splits = RUNS[name]
    raw = prepare_dataset(root, layout, converter, dataset_id, configuration, splits, args.cases, env)
    env = {**env, "NNUNET_STROKE_TINY_MINUTES": str(args.minutes), "NNUNET_STROKE_TINY_EPOCHS": str(args.epochs),
           **({"NNUNET_STROKE_TINY_ITERATIONS": str(args.iterations)} if args.iterations else {})}
    started = time.monotonic()
    run(["nnunet-stroke", "train", str(dataset_id), configuration, str(args.fold), "-tr", trainer, "-device", "cpu"],
        env)
    trained = time.monotonic() - started
    run(["nnunet-stroke", "predict-heldout", str(dataset_id), "-c", configuration, "-f", str(args.fold), "-tr",
         trainer, "-device", "cpu"], env)
    fold = root / "nnUNet_results" / raw.name / f"{trainer}__nnUNetPlans__{configuration}" / f"fold_{args.fold}"
    metrics = json.loads((fold / "heldout_test" / "metrics.json").read_text(encoding="utf-8"))
    log = sorted(fold.glob("training_log_*.txt"))[-1].read_text(encoding="utf-8")
    aggregate = metrics["aggregate"]
    return {"run": name, "trainer": trainer, "dataset": raw.name, "configuration": configuration, "fold": args.fold,
            "classes": metrics["classes"], "test_cases": metrics["n_cases"], "test_per_class": metrics["n_per_class"],
            "auroc": aggregate["auroc"], "accuracy": aggregate["accuracy"], "ece": aggregate["ece"],
            "balanced_accuracy": aggregate["balanced_accuracy"], "threshold": metrics["threshold"],
            "epochs_trained": log.count("Epoch time:"), "train_seconds": round(trained, 1)}


def _latency_worker(trainer: str, plans: dict, dataset_json: dict, configuration: str, repeats: int, batch: int,
                    threads: int, queue) -> None:
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.trainers import TRAINERS

    torch.set_num_threads(threads)
    manager = PlansManager(plans)
    configuration_manager = manager.get_configuration(configuration)
    channels = len(dataset_json["channel_names"])
    classes = 3 if "StrokeNeXt" in trainer and "Presence" not in trainer else 2
    network = TRAINERS[trainer].build_network_architecture(manager, configuration_manager, channels, classes,
                                                           enable_deep_supervision=False).eval()
    shape = [int(round(s)) for s in configuration_manager.median_image_size_in_voxels][-len(
        configuration_manager.patch_size):]

    def seconds(images: int) -> float:
        x = torch.randn(images, channels, *shape)
        with torch.inference_mode():
            started = time.perf_counter()
            network(x)
            return time.perf_counter() - started

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds(1)  # warm-up
    latency = statistics.median(seconds(1) for _ in range(repeats))
    rss_single = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    throughput = batch / statistics.median(seconds(batch) for _ in range(max(1, repeats // 2)))
    queue.put({"network": trainer, "input": [channels, *shape], "parameters_m": round(
        sum(p.numel() for p in network.parameters()) / 1e6, 3), "latency_ms": round(1000 * latency, 1),
        "throughput_images_per_s": round(throughput, 2), "batch": batch, "threads": threads,
        "peak_rss_mb": round(rss_single / 1024, 1), "forward_rss_growth_mb": round((rss_single - rss_before) / 1024, 1)})


def measure_latency(root: Path, args) -> list[dict]:
    rows = []
    context = mp.get_context("spawn")
    for trainer, dataset_id, configuration in LATENCY_NETWORKS:
        preprocessed = next((root / "nnUNet_preprocessed").glob(f"Dataset{dataset_id:03d}_*"), None)
        if preprocessed is None:
            continue  # its phantom was not planned in this invocation
        plans = json.loads((preprocessed / "nnUNetPlans.json").read_text(encoding="utf-8"))
        dataset_json = json.loads((preprocessed / "dataset.json").read_text(encoding="utf-8"))
        queue = context.Queue()
        process = context.Process(target=_latency_worker, args=(trainer, plans, dataset_json, configuration,
                                                                args.repeats, args.batch, args.threads, queue))
        process.start()
        rows.append(queue.get())
        process.join()
    return rows


def _cell(entry: dict) -> str:
    if entry["value"] is None:
        return "n/a"
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


TITLE = "Classification on the phantoms (CPU)"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, "python benchmarks/bench_classification.py")
    return markdown(records[-1])


def markdown(full_record: dict) -> str:
    record = full_record["figures"]
    lines = [f"## {TITLE}", "", provenance(full_record) + " "
             f"Tiny trainers with a budget "
             f"of {record['settings']['minutes']} min (at most {record['settings']['epochs']} epochs), "
             f"{record['settings']['cases']} phantom cases, fold {record['settings']['fold']} (8:1:1); threshold "
             "chosen on the fold's validation cases (Youden's J, binary only) and applied unchanged to the held-out "
             "test cases. Value [percentile-bootstrap 95% CI, 2000 resamples]; ECE: top-label, 15 bins.", "",
             "| trainer | dataset | classes | test cases | AUROC | accuracy | balanced acc. | ECE | threshold | "
             "epochs | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["runs"]:
        threshold = r["threshold"]["threshold"]
        lines.append(f"| {r['trainer']} | {r['dataset']} ({r['configuration']}) | {', '.join(r['classes'])} | "
                     f"{r['test_cases']} | {_cell(r['auroc'])} | {_cell(r['accuracy'])} | "
                     f"{_cell(r['balanced_accuracy'])} | {_cell(r['ece'])} | "
                     f"{'argmax' if threshold is None else f'{threshold:.3f}'} | {r['epochs_trained']} | "
                     f"{r['train_seconds']:.0f} |")
    if record["latency"]:
        lines += ["", "CPU inference per image (random input of the plan's median image size, network forward "
                  "only, no mirroring; each network in its own process; peak RSS = the process's peak resident "
                  "memory with imports, network and one single-image forward):", "",
                  "| network | input (C, size) | params (M) | latency (ms) | throughput (images/s) | batch | "
                  "threads | peak RSS (MB) | forward growth (MB) |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['network']} | {r['input']} | {r['parameters_m']} | {r['latency_ms']} | "
                  f"{r['throughput_images_per_s']} | {r['batch']} | {r['threads']} | {r['peak_rss_mb']} | "
                  f"{r['forward_rss_growth_mb']} |" for r in record["latency"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["pmsan", "strokenext", "strokenext-presence"])
    parser.add_argument("--cases", type=int, default=160,
                        help="phantom cases per dataset (default 160: one ISLES phantom case in 8 is lesion-free, "
                             "so the 16 test and 16 validation cases of a fold hold about two each)")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per trainer (default 4)")
    parser.add_argument("--epochs", type=int, default=40, help="at most this many tiny epochs (default 40)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per tiny epoch (default: tiny.py's)")
    parser.add_argument("--fold", type=int, default=5, help="an 8:1:1 fold, 5-9 (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per network (default 5)")
    parser.add_argument("--batch", type=int, default=4, help="batch of the throughput measurement (default 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--workdir", type=Path, help="keep the nnU-Net folders here (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help="smallest settings; nothing written to benchmarks/")
    args = parser.parse_args()
    if args.check:
        args.cases, args.minutes, args.epochs, args.iterations, args.repeats, args.batch = 12, 0.2, 1, 2, 1, 2
    with tempfile.TemporaryDirectory(prefix="bench_classification_") as temporary, Measurement() as measured:
        root = (args.workdir or Path(temporary)).resolve()
        env = dict(os.environ)
        for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (root / variable).mkdir(parents=True, exist_ok=True)
            env[variable] = os.environ[variable] = str(root / variable)
        env.setdefault("nnUNet_n_proc_DA", str(os.cpu_count() or 1))
        runs = [train_and_evaluate(name, root, args, env) for name in args.runs]
        latency = [] if args.no_latency else measure_latency(root, args)
    figures = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "runs": runs, "latency": latency}
    results = Path(tempfile.mkdtemp(prefix="bench_classification_check_")) if args.check else RESULTS
    path = write_record(RECORD_NAME, figures, measurement=measured, results=results)
    print(render([json.loads(path.read_text(encoding="utf-8"))]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
