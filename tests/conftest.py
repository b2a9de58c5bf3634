"""Shared test set-up.

nnU-Net's folders point at a fresh temporary directory for the whole session (set before nnunetv2 is
imported), trainers are found through the shim, worker pools are kept small, and ``planned_phantom``
provides a tiny ISLES-layout phantom converted to Dataset990, planned and preprocessed (3d_fullres)
with ``splits_final.json`` written, once per session.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="nnunet_stroke_tests_"))
for _variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ[_variable] = str(_SESSION_ROOT / _variable)
    (_SESSION_ROOT / _variable).mkdir()
os.environ["nnUNet_n_proc_DA"] = "0"  # single-threaded augmentation: no worker start-up in tests
os.environ["nnUNet_def_n_proc"] = "1"
os.environ.pop("nnUNet_compile", None)
os.environ.setdefault("MPLBACKEND", "Agg")

from nnunet_stroke.workflows.nnunet_env import with_ext_trainer  # noqa: E402

with_ext_trainer()

from nnunet_helpers import PHANTOM_DATASET_ID, PlannedDataset, plan_phantom  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture
def raw(tmp_path, monkeypatch) -> Path:
    """An empty ``$nnUNet_raw`` for one test (converter tests check what is, and is not, written there)."""
    folder = tmp_path / "nnUNet_raw"
    folder.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(folder))
    return folder


@pytest.fixture(scope="session")
def planned_phantom() -> PlannedDataset:
    """Tiny ISLES 2022 phantom (12 cases, 24x32x32 voxels), Dataset990, planned 3d_fullres, splits written."""
    return plan_phantom(_SESSION_ROOT / "phantom_source", PHANTOM_DATASET_ID)
