"""Regenerate benchmarks/RESULTS.md.

    python benchmarks/run.py              # run every benchmarks/bench_*.py, then assemble RESULTS.md
    python benchmarks/run.py ssm demo     # run only bench_ssm.py and bench_demo.py, then assemble
    python benchmarks/run.py --assemble   # only assemble RESULTS.md from benchmarks/results/*.md

Each bench script measures side by side in one run and writes its own section to
benchmarks/results/<name>.md (title, the command that produced it, the machine, tables).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = """# Benchmarks

Every figure below was produced on the project's reference machine (2 CPU cores, 24 GiB, no GPU) by the
command printed in its section; `python benchmarks/run.py` reruns them all and rewrites this file.
Ratios are taken side by side within one run.
"""


def assemble() -> Path:
    sections = sorted((HERE / "results").glob("*.md"))
    text = HEADER + "".join("\n" + s.read_text(encoding="utf-8").strip() + "\n" for s in sections)
    (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    return HERE / "RESULTS.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="bench names (bench_<name>.py); default: all")
    parser.add_argument("--assemble", action="store_true", help="only assemble RESULTS.md")
    args = parser.parse_args()
    if not args.assemble:
        scripts = [HERE / f"bench_{n}.py" for n in args.names] or sorted(HERE.glob("bench_*.py"))
        for script in scripts:
            print(f"=== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=True)
    print(f"wrote {assemble()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
