"""Selective scan on CPU: the package's numba kernel vs the algorithm of mamba-ssm's ``selective_scan_ref``.

    python benchmarks/bench_ssm.py            # writes benchmarks/results/ssm.md

Compared side by side in one run, at (batch 1, d_inner 128, d_state 16, L 32768) and (batch 2, d_inner
512, d_state 16, L 4096), with Mamba's arguments (D, z, delta_bias, delta_softplus=True):
- kernel:    ``nnunet_stroke.networks.ssm.selective_scan`` (numba forward/backward kernels)
- fallback:  the package's PyTorch sequential scan (used where numba cannot run)
- reference: ``reference_scan`` below -- materialises exp(delta A) and delta B u as (B, D, L, N) tensors
             and loops over L, as ``selective_scan_ref`` does; (a) under no_grad, (b) with autograd.
             The per-token slices come from ``unbind``: ``selective_scan_ref``'s indexing
             ``deltaA[:, :, i]`` makes autograd allocate a full (B, D, L, N) gradient per token, i.e.
             quadratic in L (179 s forward+backward already at B1, D32, N16, L2048), which would make
             (b) unmeasurable at the sizes here.
Each measurement runs in its own subprocess. Peak memory: the kernel's peak resident set size is reset
(``/proc/self/clear_refs``) after the inputs exist and a small warm-up call has run, and the first
measured call's peak (``VmHWM``) minus the resident size before it is reported. Time is the fastest of
the repeated calls (wall clock), and their process CPU time.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(1, 128, 16, 32768), (2, 512, 16, 4096)]
METHODS = ("kernel", "fallback", "reference")
MODES = ("inference", "forward+backward")
REPEATS = {"kernel": 3, "fallback": 1, "reference": 1}
RESULT = Path(__file__).resolve().parent / "results" / "ssm.md"


def reference_scan(u, delta, A, B, C, D, z, delta_bias):
    """The algorithm of mamba-ssm's ``selective_scan_ref`` (delta_softplus=True)."""
    import torch
    import torch.nn.functional as F

    delta = F.softplus(delta + delta_bias[:, None])
    delta_A = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_B_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for decay, drive, C_t in zip(delta_A.unbind(2), delta_B_u.unbind(2), C.unbind(2)):
        state = decay * state + drive
        ys.append(torch.einsum("bdn,bn->bd", state, C_t))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


def _inputs(batch, channels, n_state, length, requires_grad):
    import math

    import torch

    gen = torch.Generator().manual_seed(0)
    dt = torch.exp(torch.rand(batch, channels, length, generator=gen) * math.log(100) + math.log(1e-3))
    bias = torch.randn(channels, generator=gen) * 0.1
    tensors = {"u": torch.randn(batch, channels, length, generator=gen),
               "delta": dt + torch.log(-torch.expm1(-dt)) - bias[:, None],
               "A": -torch.arange(1, n_state + 1, dtype=torch.float32).repeat(channels, 1),
               "B": torch.randn(batch, n_state, length, generator=gen),
               "C": torch.randn(batch, n_state, length, generator=gen),
               "D": torch.ones(channels), "z": torch.randn(batch, channels, length, generator=gen),
               "delta_bias": bias}
    return {k: v.requires_grad_(requires_grad) for k, v in tensors.items()}


def _method(name):
    from nnunet_stroke.networks.ssm import cpu_scan, selective_scan

    if name == "kernel":
        return lambda i: selective_scan(**i, delta_softplus=True)
    if name == "fallback":
        return lambda i: cpu_scan.scan_torch(i["u"], i["delta"], i["A"], i["B"].transpose(1, 2),
                                             i["C"].transpose(1, 2), i["D"], i["z"], i["delta_bias"],
                                             True)[0]
    return lambda i: reference_scan(**i)


def _run_once(function, inputs, train):
    import torch

    if not train:
        with torch.no_grad():
            return function(inputs)
    out = function(inputs)
    out.backward(torch.ones_like(out))
    return out


def measure(method, mode, size, repeats):
    """One measurement (in this process): dict with seconds, peak_mb."""
    import gc

    train = mode == "forward+backward"
    function = _method(method)
    _run_once(function, _inputs(*size[:3], 64, train), train)  # warm-up: numba load, allocator
    inputs = _inputs(*size, train)
    gc.collect()
    before = _reset_peak_rss()
    times, cpu_times = [], []
    for _ in range(repeats):
        for tensor in inputs.values():
            tensor.grad = None
        start, cpu_start = time.perf_counter(), time.process_time()
        _run_once(function, inputs, train)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if len(times) == 1:
            peak_kb = _status_kb("VmHWM") - before
    return {"seconds": min(times), "cpu_seconds": min(cpu_times), "peak_mb": peak_kb / 1024}


def _status_kb(field):
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (this benchmark needs Linux)")


def _reset_peak_rss():
    """Reset the peak resident set size to the current one (Linux >= 4.0); returns it in kB."""
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
    return _status_kb("VmRSS")


def compile_seconds(cache_dir):
    """First float32 forward+backward call at a tiny size (numba compile or cache load), seconds."""
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    inputs = _inputs(1, 4, 16, 64, True)
    start = time.perf_counter()
    _run_once(_method("kernel"), inputs, True)
    return {"seconds": time.perf_counter() - start}


def _child(*args):
    # fixed glibc thresholds: large blocks are mmap-ed and returned when freed, so the resident size
    # tracks live memory (the dynamic threshold would keep freed temporaries resident and reuse them)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], check=True,
                         capture_output=True, text=True, encoding="utf-8", errors="replace", env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(results):
    lines = ["| size (B, D, N, L) | mode | method | time s | CPU s | ns per (token, channel, state) | "
             "peak extra memory MB | speed-up vs reference (time / CPU) | memory vs reference |",
             "|---" * 9 + "|"]
    for (size, mode), row in results.items():
        ref = row["reference"]
        for method in METHODS:
            r = row[method]
            elements = size[0] * size[1] * size[2] * size[3]
            label = {"reference": "(a) reference" if mode == "inference" else "(b) autograd through (a)"}
            lines.append(f"| {size} | {mode} | {label.get(method, method)} | {r['seconds']:.3f} | "
                         f"{r['cpu_seconds']:.3f} | {r['seconds'] / elements * 1e9:.2f} | "
                         f"{r['peak_mb']:.0f} | {ref['seconds'] / r['seconds']:.1f}x / "
                         f"{ref['cpu_seconds'] / r['cpu_seconds']:.1f}x | "
                         f"{r['peak_mb'] / max(ref['peak_mb'], 1e-9):.2f} |")
    return "\n".join(lines)


def _verdicts(results):
    lines = []
    for (size, mode), row in results.items():
        speedup = row["reference"]["seconds"] / row["kernel"]["seconds"]
        memory_ok = row["kernel"]["peak_mb"] < row["reference"]["peak_mb"]
        target = f"{speedup:.1f}x {'>=' if speedup >= 10 else '<'} 10x"
        memory = "" if mode == "inference" else f"; memory {'below' if memory_ok else 'NOT below'} (b)"
        lines.append(f"- {size} {mode}: kernel {target} the reference -> "
                     f"{'met' if speedup >= 10 and (memory_ok or mode == 'inference') else 'NOT met'}{memory}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        print(json.dumps(compile_seconds(*rest) if kind == "compile" else measure(*rest)))
        return 0
    import numba
    import torch

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = _child("compile", cache), _child("compile", cache)
    results = {}
    for size in SIZES:
        for mode in MODES:
            results[(size, mode)] = {m: _child("measure", m, mode, size, REPEATS[m]) for m in METHODS}
            print(size, mode, results[(size, mode)], flush=True)
    load_after = os.getloadavg()[0]
    text = (
        "## Selective scan on CPU: numba kernel vs mamba-ssm's reference algorithm\n\n"
        f"Command: `python benchmarks/bench_ssm.py`; machine: {os.cpu_count()} cores, "
        f"{platform.machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads), numba "
        f"{numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads); float32; 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after (other work on the machine slows every "
        "method). Time: wall clock, fastest of 3 calls for the kernel, 1 call for the others; CPU: "
        "process CPU time of the same calls, summed over threads (less sensitive to other load). Peak memory: peak "
        "resident set size during the first call minus the resident size before it (`/proc/self/"
        "clear_refs` reset, `VmHWM`), one subprocess per measurement with glibc's mmap threshold fixed at "
        "128 kB so freed blocks leave the resident set; inputs excluded, outputs and gradients included.\n\n"
        + _table(results) + "\n\nTargets (kernel vs (a) for inference, vs (b) for forward+backward):\n"
        + _verdicts(results) + "\n\n"
        f"numba first call (float32 forward+backward, tiny size): {cold['seconds']:.1f} s compiling "
        f"with an empty cache, {warm['seconds']:.1f} s loading from the on-disk cache (`cache=True`).\n")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=RESULT.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, RESULT)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
