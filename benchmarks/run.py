"""Render benchmarks/RESULTS.md from the JSON records in benchmarks/results/ and nothing else.

    python benchmarks/run.py                               # render only
    python benchmarks/run.py --run ssm -- --suite kernel   # run bench_ssm.py --suite kernel, then render

Every ``benchmarks/bench_<name>.py`` has ``render(records) -> markdown``, which builds its section from
the records of ``benchmarks/results/<name>/`` (see records.py); a bench without records renders as "not
yet recorded" with the command that makes one.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from records import RESULTS, load_records  # noqa: E402

HEADER = """# Benchmarks

Written by `python benchmarks/run.py` from the JSON records in `benchmarks/results/<bench>/` (one file per
run: command, git commit, seed, wall time, the 1-minute load average sampled during the run, machine,
figures); no figure here is typed by hand. Each section names the command that produced it.
"""


def bench_names() -> list[str]:
    return sorted(path.stem[len("bench_"):] for path in HERE.glob("bench_*.py"))


def section(name: str, results: Path = RESULTS) -> str:
    module = importlib.import_module(f"bench_{name}")
    render = getattr(module, "render", None)
    if render is None:
        return f"## bench_{name}.py\n\nThis script has no `render(records)`; its results are not shown.\n"
    return render(load_records(getattr(module, "RECORD_NAME", name), results)).strip() + "\n"


def render_results(results: Path = RESULTS, output: Path = HERE / "RESULTS.md") -> Path:
    text = HEADER + "".join("\n" + section(name, results) for name in bench_names())
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", metavar="NAME", choices=bench_names(), help="run bench_NAME.py first")
    parser.add_argument("arguments", nargs="*", help="arguments for bench_NAME.py (after --)")
    args = parser.parse_args(argv)
    if args.run:
        subprocess.run([sys.executable, str(HERE / f"bench_{args.run}.py"), *args.arguments], check=True)
    elif args.arguments:
        parser.error("arguments are passed to a bench only with --run NAME")
    print(f"wrote {render_results()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
