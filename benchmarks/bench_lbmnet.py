"""LBMNet (tiny and paper presets) against nnU-Net's planned 3D U-Net at the same patch, on CPU:
parameters, FLOPs, forward time and peak memory; train-step time for the tiny networks.

    python benchmarks/bench_lbmnet.py [--repeats 3] [--paper-repeats 1] [--threads 2]
    python benchmarks/bench_lbmnet.py --inference-ratio [--paper-repeats 3] [--volume-repeats 1]
    python benchmarks/bench_lbmnet.py --profile [--paper-repeats 1]

Plan: the 2 mm ISLES-like 3d_fullres plan, patch 80x112x112, strides [1,1,1] + 4 x [2,2,2] (five levels),
2 input channels (DWI, ADC), 2 classes, batch 1 for forward, batch 2 for train steps. Every network is
measured in its own spawned process (so the peak resident memory is its own). Every mode writes a record
in benchmarks/results/lbmnet/ (figures["suite"]: size, inference-ratio, profile).

FLOPs convention: torch.utils.flop_counter.FlopCounterMode counts convolutions, transposed convolutions,
linear layers and matmuls, 2 FLOPs per multiply-accumulate (GMACs = GFLOPs / 2, the figure thop/fvcore
print as "FLOPs"); it does not see element-wise ops, norms or the selective scan (a custom kernel), whose
cost is added analytically as 9 * L * D_inner * d_state FLOPs per scan direction (mamba-ssm's
selective_scan_flop_jit convention).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

from records import Measurement, latest, not_recorded, provenance, write_record

RECORD_NAME = "lbmnet"
PATCH = (80, 112, 112)
STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 4
INPUT_CHANNELS, NUM_CLASSES = 2, 2
# label -> (builder: preset name or "nnunet_plain_unet" for nnU-Net's planned U-Net, kwargs, train-step timed)
NETWORKS = {
    "LBMNet tiny (lbmnet_tiny)": ("lbmnet_tiny", {}, True),
    "nnU-Net 3D U-Net, tiny widths 8-64": ("nnunet_plain_unet", {"base_channels": 8, "max_channels": 64}, True),
    "LBMNet paper (lbmnet)": ("lbmnet", {}, False),
    "nnU-Net planned 3D U-Net (32-320)": ("nnunet_plain_unet", {}, False),
}


def _build(source: str, kwargs: dict, deep_supervision: bool):
    common = dict(input_channels=INPUT_CHANNELS, num_classes=NUM_CLASSES, patch_size=PATCH, strides=STRIDES,
                  deep_supervision=deep_supervision)
    if source == "nnunet_plain_unet":
        from nnunet_stroke.networks.plain_unet import build_plain_unet

        return build_plain_unet(**common, **kwargs)
    from nnunet_stroke.networks.registry import build_network

    return build_network(source, **common, **kwargs)


def _count_flops(network, x) -> tuple[int, int]:
    """(FlopCounterMode FLOPs, analytic scan FLOPs) of one forward pass; the scan costs
    9 * L * D_inner * d_state per direction for every DirectionalScan3d, from the tokens it sees."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnunet_stroke.networks.ssm import DirectionalScan3d

    scans = []

    def hook(module, inputs, output):
        tokens = inputs[0][0, 0].numel()
        mixer = module.mixers[0]
        scans.append(9 * tokens * mixer.d_inner * mixer.d_state * len(module.directions) * inputs[0].shape[0])

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, DirectionalScan3d)]
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        network(x)
    for handle in handles:
        handle.remove()
    return counter.get_total_flops(), sum(scans)


def _measure(source: str, kwargs: dict, train: bool, repeats: int, threads: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = _build(source, kwargs, deep_supervision=False).eval()
    row = {"params": sum(p.numel() for p in network.parameters())}
    x = torch.randn(1, INPUT_CHANNELS, *PATCH)
    # counted in train mode: the network as defined, not its inference-time fused form (networks.inference_fusion)
    row["flops"], row["scan_flops"] = _count_flops(network.train(), x)
    network.eval()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu_times = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            network(x)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    row["forward_s"], row["forward_cpu_s"] = statistics.median(times), statistics.median(cpu_times)
    row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB
    row["rss_before_forward_gb"] = rss_before / 1e6
    if train:
        network = _build(source, kwargs, deep_supervision=True).train()
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.99, nesterov=True)
        batch = torch.randn(2, INPUT_CHANNELS, *PATCH)
        steps, cpu_steps = [], []
        for _ in range(repeats + 1):  # the first step (allocations, kernel compilation) is not counted
            start, cpu_start = time.perf_counter(), time.process_time()
            optimizer.zero_grad()
            outputs = network(batch)
            loss = sum(torch.nn.functional.cross_entropy(o, torch.randint(0, NUM_CLASSES, (2, *o.shape[2:])))
                       for o in outputs)
            loss.backward()
            optimizer.step()
            steps.append(time.perf_counter() - start)
            cpu_steps.append(time.process_time() - cpu_start)
        row["train_step_s"], row["train_step_cpu_s"] = statistics.median(steps[1:]), statistics.median(cpu_steps[1:])
    queue.put(row)


def measure(label: str, repeats: int, threads: int) -> dict:
    source, kwargs, train = NETWORKS[label]
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(source, kwargs, train, repeats, threads, queue))
    process.start()
    row = queue.get()
    process.join()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes / train steps per network")
    parser.add_argument("--paper-repeats", type=int, default=1,
                        help="timed forward passes of the paper-scale networks (minutes each on a CPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--inference-ratio", action="store_true",
                        help="instead: paper LBMNet vs nnU-Net's U-Net at CPU inference, one patch and one whole volume "
                             "through nnUNetPredictor, side by side (benchmarks/lbmnet_cpu_inference.py)")
    parser.add_argument("--volume-repeats", type=int, default=1, help="--inference-ratio: whole-volume predictions")
    parser.add_argument("--profile", action="store_true",
                        help="instead: self time per module kind of paper LBMNet's CPU forward -> results/lbmnet_profile.md")
    args = parser.parse_args()
    if args.inference_ratio or args.profile:
        import lbmnet_cpu_inference

        if args.profile:
            print(lbmnet_cpu_inference.run_profile(args.paper_repeats, args.threads), flush=True)
        if args.inference_ratio:
            print(lbmnet_cpu_inference.run_inference_ratio(args.paper_repeats, args.volume_repeats, args.threads,
                                                           lbmnet_cpu_inference.ISLES_VOLUME), flush=True)
        return
    rows = {}
    with Measurement() as measured:
        for label in NETWORKS:
            repeats = args.repeats if NETWORKS[label][2] else args.paper_repeats
            rows[label] = measure(label, repeats, args.threads)
            print(label, rows[label], flush=True)
    figures = {"suite": "size", "repeats": args.repeats, "paper_repeats": args.paper_repeats, "threads": args.threads,
               "rows": rows}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")


TITLE = "LBMNet vs nnU-Net's 3D U-Net: size, FLOPs, CPU speed and memory"


def render_size(record: dict) -> str:
    f = record["figures"]
    lines = [
        f"## {TITLE}", "", provenance(record), "",
        f"Patch {'x'.join(map(str, PATCH))} (2 mm ISLES-like plan, five levels, strides [1,1,1] + 4 x [2,2,2]), "
        f"{INPUT_CHANNELS} input channels, {NUM_CLASSES} classes, {f['threads']} torch threads. Forward: batch 1, "
        f"inference mode, no deep supervision, median of {f['repeats']} (tiny) / {f['paper_repeats']} (paper scale). "
        f"Train step: batch 2, deep supervision, CE on random labels, SGD, median of {f['repeats']} after one warm-up "
        "step. CPU = process CPU time over all threads (about threads x wall on an idle machine). GMACs = "
        "multiply-accumulates of convolutions/linear layers/matmuls (torch FlopCounterMode FLOPs / 2); the "
        "selective scan is listed separately (9 * L * D_inner * d_state FLOPs per direction). Peak RSS: whole "
        "measuring process (weights, libraries, activations).", "",
        "| network | params (M) | GMACs | scan GFLOPs | forward wall / CPU (s) | peak RSS (GB) | train step wall / CPU (s) |",
        "|---|---|---|---|---|---|---|"]
    for label, r in f["rows"].items():
        train = f"{r['train_step_s']:.2f} / {r['train_step_cpu_s']:.2f}" if "train_step_s" in r else "-"
        lines.append(f"| {label} | {r['params'] / 1e6:.2f} | {r['flops'] / 2e9:.1f} | {r['scan_flops'] / 1e9:.2f} | "
                     f"{r['forward_s']:.2f} / {r['forward_cpu_s']:.2f} | {r['peak_rss_gb']:.2f} | {train} |")
    lines += ["", "The paper reports 66.42 M parameters and 54.80 G FLOPs for LBMNet without naming the input "
              "size or the MAC/FLOP convention (section 5).", ""]
    return "\n".join(lines)


def render(records: list[dict]) -> str:
    from lbmnet_cpu_inference import render_inference_ratio, render_profile

    size = latest(records, suite="size")
    return "\n".join([
        render_size(size) if size else not_recorded(TITLE, "python benchmarks/bench_lbmnet.py"),
        render_inference_ratio([r for r in records if r["figures"].get("suite") == "inference-ratio"]),
        render_profile(latest(records, suite="profile"))])


if __name__ == "__main__":
    main()
