"""The fuzz table (tests/reliability_scenarios.py): every bad input or fault runs `nnunet-stroke` in a
subprocess on a fresh copy of tiny phantom data and must end as the table says; docs/reliability.md is
rendered from the same table (set NNUNET_STROKE_WRITE_DOCS=1 to rewrite it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_stroke.phantom import write_phantom
from reliability_scenarios import SCENARIOS, Workspace, render_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """Tiny phantoms of every layout and the clean ISLES conversion (Dataset501), made once."""
    from nnunet_stroke.dataset_conversion import isles22

    root = tmp_path_factory.mktemp("fuzz_base")
    data = {"isles22": write_phantom(root / "isles22", "isles22", cases=3, seed=1, shape=(16, 24, 24)),
            "atlas2": write_phantom(root / "atlas2", "atlas2", cases=3, seed=1, shape=(16, 24, 24)),
            "teknofest": write_phantom(root / "teknofest", "teknofest", cases=6, seed=1),
            "aisd": write_phantom(root / "aisd", "aisd", cases=2, seed=1, shape=(16, 32, 32))}
    previous = os.environ.get("nnUNet_raw")
    (root / "raw").mkdir()
    os.environ["nnUNet_raw"] = str(root / "raw")
    try:
        data["converted"] = isles22.convert(data["isles22"], 501, num_processes=1)
    finally:
        os.environ["nnUNet_raw"] = previous or ""
    data["ref"] = data["pred"] = data["converted"] / "labelsTr"
    return data


def snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def run(ws: Workspace, scenario) -> subprocess.CompletedProcess:
    env = {**os.environ, **ws.env}
    for key, value in scenario.environment.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = ws.fill(value)
    command = [sys.executable, "-m", "nnunet_stroke.cli", *(ws.fill(a) for a in scenario.argv)]
    if scenario.expect == "pipe":  # the reader of stdout is gone before the command writes
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                                   errors="replace")
        process.stdout.close()
        stderr = process.stderr.read()
        return subprocess.CompletedProcess(command, process.wait(timeout=120), "", stderr)
    return subprocess.run(command, env=env, capture_output=True, encoding="utf-8", errors="replace",
                          timeout=300)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario, base, tmp_path):
    ws = Workspace(tmp_path / "ws", base)
    if scenario.prepare is not None:
        scenario.prepare(ws)
    before = snapshot(ws.raw)
    result = run(ws, scenario)
    report = f"exit {result.returncode}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, report
    if scenario.expect == "error":
        assert result.returncode == 2, report
        for name in scenario.names:
            assert ws.fill(name) in result.stderr, f"{name!r} not named\n{report}"
        assert snapshot(ws.raw) == before, f"left in $nnUNet_raw: {set(snapshot(ws.raw)) - set(before)}"
    else:
        assert result.returncode in ((0, 141) if scenario.expect == "pipe" else (0,)), report
        scenario.check(ws, result)


def test_table_is_large_enough_and_names_are_unique():
    assert len(SCENARIOS) >= 30 and len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert all(s.names for s in SCENARIOS if s.expect == "error")
    assert all(s.check is not None and s.outcome for s in SCENARIOS if s.expect != "error")


def test_reliability_doc_is_generated_from_the_table():
    text = render_markdown()
    if os.environ.get("NNUNET_STROKE_WRITE_DOCS") == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == text, \
        "docs/reliability.md is stale: NNUNET_STROKE_WRITE_DOCS=1 python -m pytest tests/test_reliability_fuzz.py"
