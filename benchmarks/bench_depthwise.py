"""Backward pass of depthwise 3-D convolutions on the CPU, PyTorch's own vs networks.blocks.depthwise ->
a record in benchmarks/results/depthwise/.

    python benchmarks/bench_depthwise.py                       # the recorded run
    python benchmarks/bench_depthwise.py --repeats 1 --spatial 8 16 16   # a quick check of the script

Per kernel size (3, 5, 7; batch 2, 8 channels, 40x64x64, channels-last float32, 'same' padding): the
forward pass, and the backward pass (input and weight gradient, forward done beforehand) of
``nn.Conv3d`` and of ``blocks.depthwise.Conv3d``. Per kernel size 5, 7, 9: the weight gradient alone,
PyTorch's vs the FFT cross-correlation, which is how ``depthwise.FFT_MIN_KERNEL`` is chosen. Then one
LBMNet_Tiny training step (batch 2, 2x40x64x64, forward + backward + SGD step, channels-last weights)
with the routing on and off. Every pair is timed interleaved in one process, median of ``--repeats``
after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "depthwise"
TITLE = "Depthwise 3-D convolution backward on the CPU"
COMMAND = "python benchmarks/bench_depthwise.py"
BATCH, CHANNELS, SPATIAL = 2, 8, (40, 64, 64)
BACKWARD_KERNELS = (3, 5, 7)
WEIGHT_GRADIENT_KERNELS = (5, 7, 9)
REPEATS = 5


def interleaved(functions: dict, repeats: int) -> dict:
    """Median seconds of each function, the functions run in turn, the first round a warm-up."""
    times = {name: [] for name in functions}
    for repeat in range(repeats + 1):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            if repeat:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def convolution_backward(kernel: int, spatial, repeats: int) -> dict:
    from nnunet_stroke.networks.blocks import depthwise

    torch.manual_seed(0)
    native = torch.nn.Conv3d(CHANNELS, CHANNELS, kernel, padding=kernel // 2, groups=CHANNELS)
    routed = depthwise.Conv3d(CHANNELS, CHANNELS, kernel, padding=kernel // 2, groups=CHANNELS)
    routed.load_state_dict(native.state_dict())
    x = torch.randn(BATCH, CHANNELS, *spatial).contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    grad_out = torch.randn_like(x)
    outputs = {"native": native(x), "new": routed(x)}

    def backward(name):
        conv = native if name == "native" else routed
        return lambda: torch.autograd.grad(outputs[name], (x, conv.weight), grad_out, retain_graph=True)

    times = interleaved({"forward": lambda: native(x), "native": backward("native"), "new": backward("new")},
                        repeats)
    return {"kernel": kernel, "forward_s": times["forward"], "backward_native_s": times["native"],
            "backward_new_s": times["new"]}


def weight_gradient(kernel: int, spatial, repeats: int) -> dict:
    from nnunet_stroke.networks.blocks.depthwise import weight_gradient_fft

    torch.manual_seed(0)
    x = torch.randn(BATCH, CHANNELS, *spatial).contiguous(memory_format=torch.channels_last_3d)
    grad_out = torch.randn_like(x)
    weight = torch.randn(CHANNELS, 1, kernel, kernel, kernel)
    pad = kernel // 2
    times = interleaved({
        "native": lambda: torch.ops.aten.convolution_backward(grad_out, x, weight, None, [1] * 3, [pad] * 3,
                                                              [1] * 3, False, [0] * 3, CHANNELS,
                                                              [False, True, False]),
        "fft": lambda: weight_gradient_fft(x, grad_out, kernel)}, repeats)
    return {"kernel": kernel, "native_s": times["native"], "fft_s": times["fft"]}


def lbmnet_train_step(spatial, repeats: int) -> dict:
    from bench_layout import build, train_step
    from nnunet_stroke.networks.blocks import depthwise
    from nnunet_stroke.networks.blocks.nd import channels_last_weights

    torch.manual_seed(0)
    network = channels_last_weights(build("lbmnet_tiny")).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 2, *spatial)

    def step(routing: bool):
        def run():
            depthwise.ROUTING = routing
            try:
                train_step(network, optimizer, x)
            finally:
                depthwise.ROUTING = True
        return run

    times = interleaved({"native": step(False), "new": step(True)}, repeats)
    return {"train_step_native_s": times["native"], "train_step_new_s": times["new"]}


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    f = record["figures"]
    lines = [
        f"## {TITLE}",
        "",
        provenance(record) + f" Median of {f['repeats']} after a warm-up, the compared variants interleaved in "
        f"one process; batch {BATCH}, {CHANNELS} channels, {'x'.join(map(str, f['spatial']))} voxels, "
        "channels-last float32, stride 1, 'same' padding. Backward = input and weight gradient "
        "(`torch.autograd.grad` after one forward); new = `networks.blocks.depthwise` (flipped-kernel "
        "convolution for the input gradient, FFT weight gradient from kernel "
        f"{f['fft_min_kernel']} on).",
        "",
        "| kernel | forward ms | backward ms, PyTorch | backward ms, new | speed-up |",
        "|---|---|---|---|---|",
    ]
    for row in f["backward"]:
        lines.append(f"| {row['kernel']} | {1e3 * row['forward_s']:.1f} | {1e3 * row['backward_native_s']:.1f} | "
                     f"{1e3 * row['backward_new_s']:.1f} | {row['backward_native_s'] / row['backward_new_s']:.2f}x |")
    lines += ["", "Weight gradient alone (chooses `FFT_MIN_KERNEL`):", "",
              "| kernel | PyTorch ms | FFT ms | PyTorch / FFT |", "|---|---|---|---|"]
    for row in f["weight_gradient"]:
        lines.append(f"| {row['kernel']} | {1e3 * row['native_s']:.1f} | {1e3 * row['fft_s']:.1f} | "
                     f"{row['native_s'] / row['fft_s']:.2f}x |")
    step = f["lbmnet_tiny"]
    lines += ["", f"LBMNet_Tiny training step (batch {BATCH}, 2 channels, {'x'.join(map(str, f['spatial']))}, "
              f"forward + backward + SGD step): {step['train_step_native_s']:.3f} s with PyTorch's backward, "
              f"{step['train_step_new_s']:.3f} s with the new one "
              f"({step['train_step_native_s'] / step['train_step_new_s']:.2f}x)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from nnunet_stroke.networks.blocks.depthwise import FFT_MIN_KERNEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--spatial", type=int, nargs=3, default=list(SPATIAL), metavar=("D", "H", "W"))
    args = parser.parse_args(argv)
    with Measurement() as measured:
        backward = [convolution_backward(k, args.spatial, args.repeats) for k in BACKWARD_KERNELS]
        print(backward, flush=True)
        weight = [weight_gradient(k, args.spatial, args.repeats) for k in WEIGHT_GRADIENT_KERNELS]
        print(weight, flush=True)
        step = lbmnet_train_step(args.spatial, args.repeats)
        print(step, flush=True)
    figures = {"backward": backward, "weight_gradient": weight, "lbmnet_tiny": step, "repeats": args.repeats,
               "spatial": args.spatial, "fft_min_kernel": FFT_MIN_KERNEL}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
