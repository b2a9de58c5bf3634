"""Every network of the project side by side at one patch size -> a record in benchmarks/results/networks/.

    python benchmarks/bench_networks.py            # all presets, one process each
    python benchmarks/bench_networks.py unetr lbmnet   # only these presets (for a quick look; not recorded)

Rows: every paper-scale preset in network_configs/ (baselines, LBMNet and its ablations, PMSAN) and
nnU-Net's own planned 3D U-Net (PlainConvUNet, widths 32-320). Each row runs in its own process (peak
memory is per process) at a 32^3 patch with nnU-Net's isotropic pooling (four stages), 2 input
channels (DWI, ADC), 2 classes:
- parameters;
- FLOPs of one forward pass (batch 1) as counted by ``torch.utils.flop_counter.FlopCounterMode``:
  one multiply-add = 2 FLOPs; convolutions, matrix products and attention are counted, element-wise
  operations, normalisation and the selective-scan kernel are not (GMACs = GFLOPs / 2, the unit
  fvcore/thop print as "GFLOPs");
- CPU forward time (batch 1, no_grad, after a warm-up pass) and the growth of the process's peak
  resident memory during the first forward pass;
- CPU train-step time of the preset's tiny variant (the trainer's ``tiny_preset``): batch 2, forward +
  backward + SGD step with deep supervision where the network has it, mean of 2 after one warm-up.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "networks"
PATCH = (32, 32, 32)
STRIDES = [(1, 1, 1)] + [(2, 2, 2)] * 3
INPUT_CHANNELS, NUM_CLASSES = 2, 2
NNUNET_ROW = "nnunet_planned_unet"  # nnU-Net's PlainConvUNet as its default plans build it
WORKER_TIMEOUT_S = 900


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def build(preset: str, deep_supervision: bool):
    if preset in (NNUNET_ROW, NNUNET_ROW + "_tiny"):
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        from torch import nn

        widths = [32, 64, 128, 256] if preset == NNUNET_ROW else [8, 16, 32, 64]
        return PlainConvUNet(INPUT_CHANNELS, len(STRIDES), widths, nn.Conv3d, 3, STRIDES, 2, NUM_CLASSES, 2,
                             conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                             nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision)
    from nnunet_stroke.networks.registry import build_network

    try:
        return build_network(preset, input_channels=INPUT_CHANNELS, num_classes=NUM_CLASSES, patch_size=PATCH,
                             strides=STRIDES, deep_supervision=deep_supervision)
    except ValueError as error:
        if deep_supervision and "deep supervision" in str(error):
            return build(preset, False)
        raise


def tensors(output):
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in tensors(item)]
    return [output]


def measure(preset: str, tiny: str | None) -> dict:
    """One row, in this process: paper-scale forward, FLOPs, then the tiny variant's train step."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    network = build(preset, False).eval()
    row = {"params_m": sum(p.numel() for p in network.parameters()) / 1e6, "load": os.getloadavg()[0]}
    x = torch.randn(1, INPUT_CHANNELS, *PATCH)
    with torch.no_grad():
        before = rss_mib()
        with FlopCounterMode(display=False) as counter:  # also the warm-up (lazy initialisation)
            network(x)
        row["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
        row["gflops"] = counter.get_total_flops() / 1e9
        start = time.perf_counter()
        network(x)
        row["forward_s"] = time.perf_counter() - start
    del network
    if tiny:
        network = build(tiny, True).train()
        optimizer = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
        batch = torch.randn(2, INPUT_CHANNELS, *PATCH)
        steps = []
        for _ in range(3):
            start = time.perf_counter()
            optimizer.zero_grad()
            loss = sum(t.float().mean() for t in tensors(network(batch)))  # timing only
            loss.backward()
            optimizer.step()
            steps.append(time.perf_counter() - start)
        row["tiny_params_m"] = sum(p.numel() for p in network.parameters()) / 1e6
        row["tiny_step_s"] = statistics.median(steps[1:])
    return row


def rows_to_measure(only: list[str]) -> list[tuple[str, str | None, str]]:
    """(preset, tiny preset or None, paper) for every paper-scale preset, nnU-Net's U-Net first."""
    from nnunet_stroke.networks.registry import load_preset, preset_names
    from nnunet_stroke.trainers import TRAINERS

    tiny_of = {t.network_preset: t.tiny_preset for t in TRAINERS.values()
               if getattr(t, "network_preset", None) and getattr(t, "tiny_preset", None)}
    names = set(preset_names())
    rows = [(NNUNET_ROW, NNUNET_ROW + "_tiny", "Isensee et al., nnU-Net, Nat. Methods 2021")]
    for name in sorted(names, key=lambda n: ("_abl_" in n, n)):  # ablation variants last
        if name.endswith("_tiny") or "_tiny_" in name:
            continue
        tiny = tiny_of.get(name) or (f"{name}_tiny" if f"{name}_tiny" in names else None)
        rows.append((name, tiny, load_preset(name).get("paper", "")))
    return [r for r in rows if not only or r[0] in only]


def run_worker(preset: str, tiny: str | None) -> dict:
    command = [sys.executable, __file__, "--worker", preset] + ([tiny] if tiny else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"failed: timed out after {WORKER_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": "failed: " + last[:160]}
    return json.loads(lines[-1])


def fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = ["| network (preset) | paper | params (M) | GFLOPs (fwd, 32^3) | CPU forward (s) | peak RSS growth, "
             "forward (MiB) | tiny preset | tiny params (M) | tiny CPU train step (s) | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        preset, tiny, paper = row["preset"], row["tiny"], row["paper"]
        if "error" in row:
            lines.append(f"| {preset} | {paper} | {row['error']} | | | | {tiny or '-'} | | | |")
            continue
        lines.append(f"| {preset} | {paper} | {fmt(row['params_m'], 2)} | {fmt(row['gflops'], 1)} | "
                     f"{fmt(row['forward_s'], 2)} | {fmt(row['peak_mib'], 0)} | {tiny or '-'} | "
                     f"{fmt(row.get('tiny_params_m'), 3)} | {fmt(row.get('tiny_step_s'), 2)} | {fmt(row.get('load'), 1)} |")
    return "\n".join(lines)


TITLE = "Networks side by side (parameters, FLOPs, CPU time and memory)"
COMMAND = "python benchmarks/bench_networks.py"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, COMMAND)
    record = records[-1]
    return f"""## {TITLE}

{provenance(record)} One process per network. Input: batch 1 x {INPUT_CHANNELS} channels x {PATCH[0]}^3, nnU-Net
isotropic pooling with {len(STRIDES)} stages, {NUM_CLASSES} classes; paper-scale widths (SwinUNETR pads the patch
to 32 x 32 x 64, see docs/baselines.md). Networks with one level per planned stage (nnU-Net's U-Net, UNet++,
Attention U-Net, TransUNet, U-Mamba, LBMNet, PMSAN) have fewer parameters here than under a deeper plan (a
128^3 patch plans six stages); UNETR, SwinUNETR and STU-Net have fixed depths; SegMamba's downsampling kernels
equal the planned strides, so its fourth (stride 1 here) is smaller than the paper network's. FLOPs:
`torch.utils.flop_counter` (multiply-add = 2 FLOPs; convolutions, matrix products, attention; the selective
scan, normalisation and element-wise operations not counted), so GMACs = GFLOPs / 2. Forward: no_grad, after
a warm-up pass. Peak RSS growth: the process's peak resident set during the first forward minus its resident
set before it. Tiny train step: the trainer's tiny preset at the same input, batch 2, forward + backward + SGD
step, median of 2 after a warm-up; networks without deep supervision (UNETR, SwinUNETR, Attention U-Net,
SegMamba) train with one output. Last column: the 1-minute load average when the row started. A row that
could not run says why.

{table(record["figures"]["rows"])}
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(measure(argv[1], argv[2] if len(argv) > 2 else None)))
        return 0
    rows = []
    with Measurement() as measured:
        for preset, tiny, paper in rows_to_measure(argv):
            print(f"{preset} ...", flush=True)
            rows.append({"preset": preset, "tiny": tiny, "paper": paper, **run_worker(preset, tiny)})
            print(f"  {rows[-1]}", flush=True)
    if argv:  # named presets: a quick look, printed and not recorded
        print(table(rows))
        return 0
    print(f"wrote {write_record(RECORD_NAME, {'rows': rows}, measurement=measured)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
