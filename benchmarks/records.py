"""Benchmark records: one JSON file per run, the only source of benchmarks/RESULTS.md.

    with Measurement() as measured:          # wall time and the load average sampled around the work
        figures = do_the_measured_work()
    write_record("demo", figures, seed=0, measurement=measured)

A record is ``benchmarks/results/<name>/<UTC start, microseconds>.json`` with the command line, the git commit (and
whether the working tree had uncommitted changes to tracked files), the seed, the wall time measured
around the measured work, the 1-minute load average sampled every few seconds during it (mean, max and
the number of samples), the machine (cores, platform, Python, torch) and the figures. Each bench script
has ``render(records) -> markdown`` that builds its section from its own records only, and
``benchmarks/run.py`` puts the sections together. A section without records says so and names the
command that makes one (:func:`not_recorded`).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LOAD_INTERVAL_S = 5.0


class Measurement:
    """Context manager: wall time (``time.monotonic``) of the block and the 1-minute load average,
    sampled at entry, every ``interval`` seconds in a background thread and at exit."""

    def __init__(self, interval: float = LOAD_INTERVAL_S):
        self.interval = interval
        self.samples: list[float] = []
        self.started_utc: str | None = None
        self.wall_seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "Measurement":
        self.started = time.time()
        self.started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        self.samples.append(os.getloadavg()[0])
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_seconds = time.monotonic() - self._start
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def load_average(self) -> dict:
        return {"mean": round(statistics.fmean(self.samples), 2), "max": round(max(self.samples), 2),
                "samples": len(self.samples), "interval_s": self.interval}


def git_state() -> tuple[str, bool]:
    """(HEAD commit, whether tracked files have uncommitted changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, encoding="utf-8").stdout.strip()

    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def machine() -> dict:
    info = {"cores": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
            "python": platform.python_version()}
    try:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    except ImportError:
        pass
    return info


def write_record(name: str, figures: dict, seed: int | None = None, measurement: Measurement | None = None,
                 command: str | None = None, results: Path = RESULTS) -> Path:
    """Write one record of bench ``name``; returns its path. ``figures`` must be JSON-serialisable."""
    commit, dirty = git_state()
    started = measurement.started if measurement else time.time()
    record = {
        "name": name,
        "command": command or " ".join(["python", *sys.argv]),
        "git_commit": commit, "git_dirty": dirty, "seed": seed,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": None if measurement is None else round(measurement.wall_seconds, 2),
        "load_average_1min": None if measurement is None else measurement.load_average(),
        "machine": machine(),
        "figures": figures,
    }
    folder = results / name
    folder.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(started)) + f".{int(started % 1 * 1e6):06d}Z"
    path = folder / f"{stem}.json"
    while path.exists():  # two records in the same microsecond
        started += 1e-6
        stem = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(started)) + f".{int(started % 1 * 1e6):06d}Z"
        path = folder / f"{stem}.json"
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=1) + "\n")
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
    return path


def load_records(name: str, results: Path = RESULTS) -> list[dict]:
    """Every record of bench ``name``, oldest first (by file name: the UTC start)."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted((results / name).glob("*.json"))]


def not_recorded(title: str, command: str) -> str:
    return f"## {title}\n\nNot yet recorded since the record format; run: `{command}`\n"


def provenance(record: dict) -> str:
    """One sentence: command, commit, start, wall time, load average sampled during the run, machine."""
    load = record.get("load_average_1min")
    machine_info = record.get("machine") or {}
    machine_text = machine_info if isinstance(machine_info, str) else ", ".join(
        f"{key} {value}" for key, value in machine_info.items())
    parts = [f"Command: `{record['command']}`",
             f"commit {str(record.get('git_commit'))[:10]}" + (" with uncommitted changes" if record.get("git_dirty") else ""),
             f"started {record.get('started_utc') or 'not recorded'}"]
    if record.get("wall_seconds") is not None:
        parts.append(f"wall time {record['wall_seconds']:.0f} s")
    if load:
        parts.append(f"1-minute load average during the run: {load_summary(load)} ({load['samples']} samples)")
    else:
        parts.append("load average not sampled")
    parts.append(f"machine: {machine_text}")
    return "; ".join(parts) + "."


def load_summary(load: dict | None) -> str:
    """"mean 1.20, max 1.50" (records converted from the earlier format kept the median instead of the mean)."""
    if not load:
        return "not sampled"
    centre = f"mean {load['mean']:.2f}" if load.get("mean") is not None else f"median {load['median']:.2f}"
    return f"{centre}, max {load['max']:.2f}"


def latest(records: list[dict], **match) -> dict | None:
    """The newest record whose figures hold every ``key: value`` of ``match``."""
    chosen = [r for r in records if all(r["figures"].get(k) == v for k, v in match.items())]
    return chosen[-1] if chosen else None
