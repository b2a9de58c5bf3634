"""Channels-last convolution weights on the CPU, side by side with the default layout -> a record in
benchmarks/results/layout/.

    python benchmarks/bench_layout.py

Every trainer builds its network with ``networks.blocks.nd.channels_last_weights`` on a machine without
CUDA. This measures what that buys: for nnU-Net's tiny planned U-Net and every distinct tiny preset, one
train step (batch 2, forward + backward + SGD step, deep supervision where the network has it) and one
inference forward pass (batch 1, no_grad) at the demo's plan (patch 40x64x64, strides 1-2-2-2-(1,2,2),
2 channels, 2 classes), default layout and channels-last interleaved in one process; median of 5 after
a warm-up. Values are identical in both layouts (tests/test_trainers.py).
"""
from __future__ import annotations

import statistics
import sys
import time

import torch
from bench_networks import tensors  # every output tensor of a network (list, dict or tensor)
from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "layout"
PATCH = (40, 64, 64)
STRIDES = [(1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)]
PLANNED_TINY = "nnU-Net planned U-Net, widths 8-64"
PRESETS = [PLANNED_TINY, "lbmnet_tiny", "pmsan_tiny", "unetpp_tiny", "attention_unet_tiny", "unetr_tiny",
           "swin_unetr_tiny", "transunet_tiny", "umamba_bot_tiny", "umamba_enc_tiny", "segmamba_tiny",
           "stunet_tiny"]
REPEATS = 5


def build(preset: str) -> torch.nn.Module:
    if preset == PLANNED_TINY:
        from dynamic_network_architectures.architectures.unet import PlainConvUNet

        return PlainConvUNet(2, len(STRIDES), [8, 16, 32, 64, 64], torch.nn.Conv3d, 3, STRIDES, 2, 2, 2,
                             conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                             norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                             nonlin_kwargs={"inplace": True}, deep_supervision=True)
    from nnunet_stroke.networks.registry import build_network

    for deep_supervision in (True, False):
        try:
            return build_network(preset, input_channels=2, num_classes=2, patch_size=PATCH, strides=STRIDES,
                                 deep_supervision=deep_supervision)
        except ValueError as error:
            if "deep supervision" not in str(error):
                raise
    raise RuntimeError(f"cannot build {preset}")


def train_step(network, optimizer, x) -> float:
    started = time.perf_counter()
    loss = sum(o.float().mean() for o in tensors(network(x)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - started


def forward(network, x) -> float:
    started = time.perf_counter()
    with torch.no_grad():
        network(x)
    return time.perf_counter() - started


def measure(preset: str) -> dict:
    from nnunet_stroke.networks.blocks.nd import channels_last_weights

    torch.manual_seed(0)
    default = build(preset)
    channels_last = channels_last_weights(build(preset))
    channels_last.load_state_dict(default.state_dict())
    pairs = {name: (net, torch.optim.SGD(net.parameters(), lr=1e-3)) for name, net in
             (("default", default), ("channels_last", channels_last))}
    x_train, x_infer = torch.randn(2, 2, *PATCH), torch.randn(1, 2, *PATCH)
    times = {f"{kind}_{name}": [] for kind in ("train", "infer") for name in pairs}
    for repeat in range(REPEATS + 1):  # interleaved; the first round is the warm-up
        for name, (net, optimizer) in pairs.items():
            net.train()
            step = train_step(net, optimizer, x_train)
            net.eval()
            infer = forward(net, x_infer)
            if repeat:
                times[f"train_{name}"].append(step)
                times[f"infer_{name}"].append(infer)
    return {key: statistics.median(values) for key, values in times.items()}


TITLE = "Channels-last convolution weights on the CPU"
COMMAND = "python benchmarks/bench_layout.py"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    lines = [
        f"## {TITLE}",
        "",
        provenance(record) + f" Median of {record['figures']['repeats']} after a warm-up, both layouts "
        "interleaved in one process; train step = batch 2 forward + backward + SGD step, inference = batch 1 "
        "forward, patch 40x64x64 (the demo's plan). LBMNet converts its input channels-last itself, so its "
        "default row is already partly channels-last.",
        "",
        "| network | train s default | train s channels-last | speed-up | infer s default | infer s channels-last | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, t in record["figures"]["rows"]:
        lines.append(f"| {preset} | {t['train_default']:.3f} | {t['train_channels_last']:.3f} | "
                     f"{t['train_default'] / t['train_channels_last']:.2f}x | {t['infer_default']:.3f} | "
                     f"{t['infer_channels_last']:.3f} | {t['infer_default'] / t['infer_channels_last']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    rows = []
    with Measurement() as measured:
        for preset in PRESETS:
            print(f"--- {preset}", flush=True)
            rows.append((preset, measure(preset)))
            print(rows[-1][1], flush=True)
    print(f"wrote {write_record(RECORD_NAME, {'rows': rows, 'repeats': REPEATS}, measurement=measured)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
