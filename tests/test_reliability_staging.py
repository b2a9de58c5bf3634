"""Staged writers (nnunet_stroke/staging.py): stale staging folders of killed runs are removed by the next
run and only those; files and folders get the user's normal permissions (umask), not mkstemp's 0600."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nnunet_stroke import staging
from nnunet_stroke.dataset_conversion.common import staged_dataset
from nnunet_stroke.evaluation import write_metrics

TAG = "converting_Dataset501"


def folder_of(parent, pid, started, host=staging._HOST, tag=TAG):
    folder = parent / f".{tag}.{host}.{pid}.{started:.3f}.abc123"
    folder.mkdir()
    return folder


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_stale_staging_folders_of_the_same_tag_are_removed(tmp_path):
    now = time.time()
    dead = folder_of(tmp_path, finished_pid(), now - 5)
    running = folder_of(tmp_path, os.getppid(), now)  # a live process that started before its folder
    reused = folder_of(tmp_path, os.getppid(), 1.0)  # pid now held by a process started after the folder
    foreign_recent = folder_of(tmp_path, 1, now - 60, host="otherhost")
    foreign_old = folder_of(tmp_path, 1, now - staging.FOREIGN_STALE_SECONDS - 60, host="otherhost")
    other_dataset = folder_of(tmp_path, finished_pid(), now - 5, tag="converting_Dataset502")
    removed = staging.remove_stale(tmp_path, TAG)
    assert sorted(removed) == sorted([dead, reused, foreign_old])
    assert running.is_dir() and foreign_recent.is_dir() and other_dataset.is_dir()


def test_a_conversion_killed_by_sigkill_is_cleaned_by_the_next_one(raw):
    script = ("import os, signal\nfrom nnunet_stroke.dataset_conversion.common import staged_dataset\n"
              "with staged_dataset(501, 'Killed', overwrite=False) as staging:\n"
              "    (staging / 'imagesTr').mkdir()\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    process = subprocess.run([sys.executable, "-c", script], env={**os.environ, "nnUNet_raw": str(raw)})
    assert process.returncode == -signal.SIGKILL
    leftovers = [p.name for p in raw.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{TAG}.")
    with staged_dataset(501, "Again", overwrite=False) as folder:
        (folder / "dataset.json").write_text("{}", encoding="utf-8")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset501_Again"]


def test_sigterm_removes_the_staging_folder_on_the_way_out(raw):
    script = ("import os, signal\nfrom nnunet_stroke.cli import main\n"
              "from nnunet_stroke import dataset_conversion\n"
              "from nnunet_stroke.dataset_conversion import isles22\n"
              "def convert(*args, **kwargs):\n"
              "    from nnunet_stroke.dataset_conversion.common import staged_dataset\n"
              "    with staged_dataset(501, 'Term', overwrite=False):\n"
              "        os.kill(os.getpid(), signal.SIGTERM)\n"
              "isles22.convert = convert\n"
              "raise SystemExit(main(['convert', 'isles22', '.', '--dataset-id', '501']))\n")
    process = subprocess.run([sys.executable, "-c", script], env={**os.environ, "nnUNet_raw": str(raw)})
    assert process.returncode == 128 + signal.SIGTERM
    assert list(raw.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_and_folders_follow_the_umask(tmp_path, raw, umask):
    previous = os.umask(umask)
    try:
        write_metrics({"protocol": "x", "cases": [], "aggregate": {}}, tmp_path / "metrics.json")
        with staging.staged_folder(tmp_path / "report") as folder:
            staging.atomic_write_text(folder / "report.md", "# report\n")
        with staged_dataset(501, "Modes", overwrite=False) as folder:
            (folder / "labelsTr").mkdir()
    finally:
        os.umask(previous)
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["protocol"] == "x"
    for path, mode in ((tmp_path / "metrics.json", 0o666), (tmp_path / "report", 0o777),
                       (tmp_path / "report" / "report.md", 0o666), (raw / "Dataset501_Modes", 0o777)):
        assert path.stat().st_mode & 0o777 == mode & ~umask, path
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_staged_folder_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staging.staged_folder(tmp_path / "out"):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
