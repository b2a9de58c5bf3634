"""bfloat16 autocast on the CPU, side by side with float32 -> a record in benchmarks/results/cpu_precision/.

    python benchmarks/bench_cpu_precision.py

The trainers that train nnU-Net's planned network run its forward pass under ``torch.autocast("cpu",
bfloat16)`` on a CPU with native bfloat16 (``trainers.base``, "Mixed precision on the CPU"); the preset
networks keep float32. This measures the choice: one train step (batch 2, forward + backward + SGD step,
deep supervision, outputs cast to float32 before the loss as the trainers do) of nnU-Net's tiny planned
U-Net and of ``lbmnet_tiny``, channels-last as the trainers build them on a machine without CUDA, at the
demo's plan (patch 40x64x64, 2 channels, 2 classes), float32 and bfloat16 autocast interleaved in one
process; median of 5 after a warm-up.
"""
from __future__ import annotations

import contextlib
import sys

import torch
from bench_depthwise import interleaved  # median seconds of functions run in turn, after a warm-up round
from bench_layout import PATCH, PLANNED_TINY, build
from bench_networks import tensors  # every output tensor of a network (list, dict or tensor)
from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "cpu_precision"
NETWORKS = [PLANNED_TINY, "lbmnet_tiny"]
PRECISIONS = ("float32", "bfloat16")
REPEATS = 5
TITLE = "bfloat16 autocast vs float32 training steps on the CPU"
COMMAND = "python benchmarks/bench_cpu_precision.py"


def precision_context(precision: str):
    if precision == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(network, optimizer, x, precision: str) -> None:
    with precision_context(precision):
        outputs = [o.float() for o in tensors(network(x))]
    loss = sum(o.mean() for o in outputs)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(name: str) -> dict:
    from nnunet_stroke.networks.blocks.nd import channels_last_weights

    torch.manual_seed(0)
    network = channels_last_weights(build(name)).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4)
    x = torch.randn(2, 2, *PATCH)
    steps = {precision: (lambda precision=precision: train_step(network, optimizer, x, precision))
             for precision in PRECISIONS}
    return interleaved(steps, REPEATS)


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    figures = record["figures"]
    lines = [
        f"## {TITLE}",
        "",
        provenance(record) + f" CPU with native bfloat16: {figures['cpu_has_bf16']}. Median of "
        f"{figures['repeats']} train steps after a warm-up, both precisions interleaved in one process; "
        "train step = batch 2 forward + backward + SGD step at the demo's plan (patch 40x64x64), channels-last.",
        "",
        "| network | train s float32 | train s bfloat16 autocast | bfloat16 / float32 |",
        "|---|---|---|---|",
    ]
    for name, t in figures["rows"]:
        lines.append(f"| {name} | {t['float32']:.3f} | {t['bfloat16']:.3f} | {t['bfloat16'] / t['float32']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from nnunet_stroke.trainers.base import cpu_has_bf16

    rows = []
    with Measurement() as measured:
        for name in NETWORKS:
            print(f"--- {name}", flush=True)
            rows.append((name, measure(name)))
            print(rows[-1][1], flush=True)
    figures = {"rows": rows, "repeats": REPEATS, "cpu_has_bf16": cpu_has_bf16()}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
