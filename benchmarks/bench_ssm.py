"""Selective scan on CPU, two suites measured side by side in one run each (one subprocess per measurement).

    python benchmarks/bench_ssm.py                   # both suites, one record each in benchmarks/results/ssm/
    python benchmarks/bench_ssm.py --suite kernel    # the kernel suite only
    python benchmarks/bench_ssm.py --suite training  # the training suite only
    python benchmarks/bench_ssm.py --suite training --length 256 --channels 8 --repeats 1 --results-dir /tmp/x

Suite "kernel": the package's numba kernel vs the algorithm of mamba-ssm's ``selective_scan_ref``, at
(batch 1, d_inner 128, d_state 16, L 32768) and (batch 2, d_inner 512, d_state 16, L 4096), with Mamba's
arguments (D, z, delta_bias, delta_softplus=True), every method called ``--kernel-repeats`` times:
- kernel:    ``nnunet_stroke.networks.ssm.selective_scan`` (numba forward/backward kernels)
- torch_loop: the package's PyTorch token loop (backend torch_loop)
- reference: ``reference_scan`` below -- materialises exp(delta A) and delta B u as (B, D, L, N) tensors and
             loops over L, as ``selective_scan_ref`` does; (a) under no_grad, (b) with autograd. Per-token
             slices come from ``unbind``: ``selective_scan_ref``'s indexing makes autograd allocate a full
             (B, D, L, N) gradient per token.

Suite "training" (forward + backward at batch 1, d_inner 128, d_state 16, L 16384 by default; the same
number of repeats for every method): the scan backends ``torch_chunked`` (chunked parallel scan in
PyTorch ops), ``torch_loop`` (token loop) and ``numba``, each through ``selective_scan`` with
NNUNET_STROKE_SCAN set, and mambapy's ``pscan`` (Blelloch scan over the whole sequence in PyTorch ops,
used as in mambapy's ``MambaBlock.selective_scan`` plus the same bias, softplus, skip and gate). mambapy
is not a dependency: install it for the benchmark with ``pip install mambapy`` (its row is skipped, with
that message, when it is missing). Every method's output and input gradients are first checked against
the float64 numba scan at a small size (max error in the table).

Peak memory (both suites): peak resident set size during the first measured call minus the resident size
just before it (``/proc/self/clear_refs`` reset, ``VmHWM``; Linux), one subprocess per measurement, glibc's
mmap threshold fixed at 128 kB so freed blocks leave the resident set. It counts every CPU allocation of
torch (tracemalloc would not); inputs excluded; outputs, gradients and what autograd keeps included. Time:
wall clock, fastest of the repeated calls, and their process CPU time (summed over threads; steadier
under other load). Both suites sample the 1-minute load average during the run; the training suite sets
OMP_WAIT_POLICY=PASSIVE for every method: with OpenMP's default spinning, many multi-threaded PyTorch
operations (chunked scan, pscan) stall at every barrier when other processes share the cores.
"""

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import RESULTS, Measurement, latest, load_summary, not_recorded, provenance, write_record

SIZES = [(1, 128, 16, 32768), (2, 512, 16, 4096)]
METHODS = ("kernel", "torch_loop", "reference")
MODES = ("inference", "forward+backward")
RECORD_NAME = "ssm"
TRAINING_METHODS = ("torch_chunked", "torch_loop", "mambapy_pscan", "numba")
MAMBAPY_MISSING = "mambapy is not installed; `pip install mambapy` to add this row (benchmark only, not a dependency)"


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
    if name == "mambapy_pscan":
        return _mambapy_scan()
    if name == "reference":
        return lambda i: reference_scan(**i)
    return _backend_scan("numba" if name == "kernel" else name)


def _backend_scan(backend):
    from nnunet_stroke.networks.ssm import selective_scan

    def scan(inputs):
        os.environ["NNUNET_STROKE_SCAN"] = backend
        return selective_scan(**inputs, delta_softplus=True)

    return scan


def _mambapy_scan():
    """mambapy's ``MambaBlock.selective_scan`` (pscan over (B, L, D, N)) with Mamba's bias, softplus, skip
    and gate; mambapy works time-major, so the inputs are handed over in that layout (``_prepared``)."""
    import torch
    import torch.nn.functional as F
    from mambapy.pscan import pscan

    def scan(i):
        delta = F.softplus(i["delta_t"] + i["delta_bias"])  # (B, L, D)
        delta_A = torch.exp(delta.unsqueeze(-1) * i["A"])
        BX = delta.unsqueeze(-1) * i["B_t"].unsqueeze(2) * i["u_t"].unsqueeze(-1)
        hs = pscan(delta_A, BX)
        y = (hs @ i["C_t"].unsqueeze(-1)).squeeze(3) + i["D"] * i["u_t"]
        return y * F.silu(i["z_t"])

    return scan


def _run_once(function, inputs, train):
    import torch

    if not train:
        with torch.no_grad():
            return function(inputs)
    out = function(inputs)
    out.backward(torch.ones_like(out))
    return out


def _prepared(method, inputs):
    """The inputs in the method's layout; mambapy's: u, delta, z as (B, L, D), B and C as (B, L, N)."""
    if method != "mambapy_pscan":
        return inputs
    return {k + ("_t" if v.dim() == 3 else ""): v.detach().transpose(1, 2).contiguous().requires_grad_(v.requires_grad)
            if v.dim() == 3 else v for k, v in inputs.items()}


def max_error(method, size=(1, 16, 16, 300)):
    """Largest error of the output and every input gradient against the float64 numba scan, relative to
    the largest magnitude of each."""
    import torch

    def output_and_grads(function, inputs, time_major):
        out = function(inputs)
        grads = torch.autograd.grad(out, list(inputs.values()), torch.ones_like(out))
        return [t.transpose(1, 2) if t.dim() == 3 and time_major else t for t in (out, *grads)]

    inputs = _inputs(*size, True)
    results = output_and_grads(_method(method), _prepared(method, inputs), method == "mambapy_pscan")
    expected = output_and_grads(_backend_scan("numba"), {k: v.detach().double().requires_grad_()
                                                         for k, v in inputs.items()}, False)
    return {"max_error": max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(results, expected))}


def measure(method, mode, size, repeats):
    """One measurement (in this process): dict with seconds, peak_mb."""
    train = mode == "forward+backward"
    function = _method(method)
    _run_once(function, _prepared(method, _inputs(*size[:3], 64, train)), train)  # warm-up: numba, allocator
    inputs = _prepared(method, _inputs(*size, train))
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


def _child(*args, threads=None, omp_wait_policy=None):
    # fixed glibc thresholds: large blocks are mmap-ed and returned when freed, so the resident size
    # tracks live memory (the dynamic threshold would keep freed temporaries resident and reuse them)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    env.update({"OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)} if threads else {},
               **({"OMP_WAIT_POLICY": omp_wait_policy} if omp_wait_policy else {}))
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


def kernel_suite(args):
    import numba

    with Measurement() as measured:
        with tempfile.TemporaryDirectory() as cache:
            cold, warm = _child("compile", cache), _child("compile", cache)
        results = []
        for size in SIZES:
            for mode in MODES:
                row = {m: _child("measure", m, mode, size, args.kernel_repeats) for m in METHODS}
                results.append({"size": list(size), "mode": mode, "methods": row})
                print(size, mode, row, flush=True)
    figures = {"suite": "kernel", "repeats": args.kernel_repeats, "numba": numba.__version__,
               "numba_threads": numba.config.NUMBA_NUM_THREADS, "dtype": "float32", "results": results,
               "compile_cold_s": cold["seconds"], "compile_warm_s": warm["seconds"]}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured, results=args.results_dir)}")


def render_kernel(record):
    f = record["figures"]
    results = {(tuple(r["size"]), r["mode"]): r["methods"] for r in f["results"]}
    return (
        "## Selective scan on CPU: numba kernel vs mamba-ssm's reference algorithm\n\n"
        f"{provenance(record)} numba {f['numba']} ({f['numba_threads']} threads); {f['dtype']}. Time: wall "
        f"clock, fastest of {f['repeats']} calls for every method; CPU: their process CPU time. Peak memory: growth "
        "of the resident set during the first call (the script's docstring says how); inputs excluded, outputs "
        "and gradients included.\n\n"
        + _table(results) + "\n\nTargets (kernel vs (a) for inference, vs (b) for forward+backward):\n"
        + _verdicts(results) + "\n\n"
        f"numba first call (float32 forward+backward, tiny size): {f['compile_cold_s']:.1f} s compiling "
        f"with an empty cache, {f['compile_warm_s']:.1f} s loading from the on-disk cache (`cache=True`).\n")


def training_suite(args):
    import numba

    size = (1, args.channels, 16, args.length)
    rows = {}
    with Measurement(interval=2.0) as measured:
        for method in TRAINING_METHODS:
            if method == "mambapy_pscan" and importlib.util.find_spec("mambapy") is None:
                rows[method] = {"skipped": MAMBAPY_MISSING}
            else:
                measured_row = _child("measure", method, "forward+backward", size, args.repeats,
                                      threads=args.threads, omp_wait_policy=args.omp_wait_policy)
                rows[method] = {**measured_row, **_child("error", method)}
            print(method, rows[method], flush=True)
    figures = {"suite": "training", "numba": numba.__version__, "threads": args.threads,
               "omp_wait_policy": args.omp_wait_policy,
               "size": {"batch": size[0], "d_inner": size[1], "d_state": size[2], "length": size[3]},
               "dtype": "float32", "mode": "forward+backward", "repeats": args.repeats, "methods": rows}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured, results=args.results_dir)}")


def render_training(record):
    """Markdown section of one training-suite record."""
    f = record["figures"]
    rows, size = f["methods"], f["size"]
    loop = rows["torch_loop"]
    threads = f"{f['threads']} threads for torch and numba" if f.get("threads") else "their default threads"
    lines = ["## Selective scan backends for training (forward + backward) on CPU", "",
             f"{provenance(record)} numba {f['numba']}, {threads}, OMP_WAIT_POLICY={f['omp_wait_policy']}; "
             f"{f['dtype']}; batch {size['batch']}, d_inner {size['d_inner']}, d_state {size['d_state']}, L "
             f"{size['length']}. Every method ran {f['repeats']} times: fastest wall-clock time, its process CPU time, "
             "growth of the resident set during the first call (see the script's docstring). Error: largest "
             "error of output and input gradients vs the float64 numba scan at (1, 16, 16, 300), relative.", "",
             "| method | time s | CPU s | peak extra memory MB | faster than token loop | less memory than token "
             "loop | error |", "|---" * 7 + "|"]
    for method, r in rows.items():
        lines.append(f"| {method} | skipped: {r['skipped']} | | | | | |" if "skipped" in r else
                     f"| {method} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {r['peak_mb']:.1f} | "
                     f"{loop['seconds'] / r['seconds']:.1f}x | {loop['peak_mb'] / max(r['peak_mb'], 1e-9):.1f}x | "
                     f"{r['max_error']:.1e} |")
    chunked, pscan = rows["torch_chunked"], rows["mambapy_pscan"]
    speedup = loop["seconds"] / chunked["seconds"]
    memory = loop["peak_mb"] / max(chunked["peak_mb"], 1e-9)
    lines += ["", "Targets for the chunked scan:",
              f"- >= 10x faster than the token loop: {speedup:.1f}x -> {'met' if speedup >= 10 else 'NOT met'}",
              f"- >= 10x less peak memory than the token loop: {memory:.1f}x -> {'met' if memory >= 10 else 'NOT met'}"]
    ratio = None if "skipped" in pscan else pscan["seconds"] / chunked["seconds"]
    lines.append("- faster than mambapy's pscan: " + ("not measured (mambapy missing)" if ratio is None else
                                                      f"{ratio:.2f}x -> {'met' if ratio > 1 else 'NOT met'}"))
    return "\n".join(lines) + "\n"


def render_training_runs(records):
    """Every training-suite run (``records`` oldest first): the chunked scan's ratios in each, the spread
    of the bars."""
    lines = ["", "Every run of this suite, oldest first (the table above is the latest):", "",
             "| started | commit | chunked s | token loop s | faster than token loop | less memory | "
             "faster than pscan | 1-minute load average |", "|---" * 8 + "|"]
    for record in records:
        rows = record["figures"]["methods"]
        chunked, loop, pscan = rows["torch_chunked"], rows["torch_loop"], rows["mambapy_pscan"]
        versus_pscan = "" if "skipped" in pscan else f"{pscan['seconds'] / chunked['seconds']:.2f}x"
        lines.append(f"| {record.get('started_utc') or 'not recorded'} | {str(record.get('git_commit'))[:10]} | "
                     f"{chunked['seconds']:.3f} | {loop['seconds']:.3f} | "
                     f"{loop['seconds'] / chunked['seconds']:.1f}x | "
                     f"{loop['peak_mb'] / max(chunked['peak_mb'], 1e-9):.1f}x | {versus_pscan} | "
                     f"{load_summary(record.get('load_average_1min'))} |")
    return "\n".join(lines) + "\n"


TITLE = "Selective scan on CPU"


def render(records):
    kernel, training = latest(records, suite="kernel"), latest(records, suite="training")
    return "\n".join([
        render_kernel(kernel) if kernel else not_recorded(f"{TITLE}: numba kernel vs mamba-ssm's reference algorithm",
                                                          "python benchmarks/bench_ssm.py --suite kernel"),
        render_training(training)
        + render_training_runs([r for r in records if r["figures"].get("suite") == "training"])
        if training else not_recorded(
            f"{TITLE}: scan backends for training", "python benchmarks/bench_ssm.py --suite training")])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("all", "kernel", "training"), default="all")
    parser.add_argument("--length", type=int, default=16384, help="training suite: sequence length")
    parser.add_argument("--channels", type=int, default=128, help="training suite: d_inner")
    parser.add_argument("--repeats", type=int, default=3, help="training suite: calls per method (all equal)")
    parser.add_argument("--kernel-repeats", type=int, default=2,
                        help="kernel suite: calls per method and size (all equal; the reference takes ~45 s a call)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where records go")
    parser.add_argument("--threads", type=int, help="training suite: torch and numba threads (default: theirs)")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE"),
                        help="training suite: idle OpenMP threads sleep or spin (the runtime's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        handler = {"compile": compile_seconds, "measure": measure, "error": max_error}[kind]
        print(json.dumps(handler(*rest)))
        return 0
    if args.suite in ("all", "kernel"):
        kernel_suite(args)
    if args.suite in ("all", "training"):
        training_suite(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
