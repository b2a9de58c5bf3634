"""The wheel carries network_configs/ and dataset_conversion/ inside the package, the CLI answers, and under
.ci/run the suite tests the installed wheel, not the source tree."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_configs_and_converters_inside_the_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path)], check=True)
    (wheel,) = tmp_path.glob("nnunet_stroke-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in (REPO / "network_configs").glob("*.json"):
        assert f"nnunet_stroke/network_configs/{preset.name}" in names
    for module in (REPO / "dataset_conversion").glob("*.py"):
        assert f"nnunet_stroke/dataset_conversion/{module.name}" in names
    assert "nnunet_stroke/nnunet_ext/nnunet_stroke_ext_trainers.py" in names
    assert not any(name.startswith(("network_configs/", "dataset_conversion/", "tests/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nnunet-stroke = nnunet_stroke.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_command_has_help():
    from nnunet_stroke.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    expected = {"phantom", "convert", "splits", "train", "predict", "predict-heldout", "evaluate",
                "evaluate-splits", "report", "trainers", "ext-trainer-dir", "demo", "distill"}
    assert expected <= set(commands)
    for name, sub in commands.items():
        assert sub.description or sub.format_help(), name


@pytest.mark.skipif("NNUNET_STROKE_EXPECT_SITE" not in os.environ,
                    reason="only under .ci/run, which names the site-packages folder the wheel went into")
def test_the_suite_imports_the_installed_wheel_and_its_console_scripts():
    import nnunet_stroke
    import nnunet_stroke.network_configs

    site = Path(os.environ["NNUNET_STROKE_EXPECT_SITE"]).resolve()
    for module in (nnunet_stroke, nnunet_stroke.network_configs):
        assert site in Path(list(module.__path__)[0]).resolve().parents, (module.__name__, module.__path__)
    scripts = Path(sys.executable).parent
    for command in ("nnunet-stroke", "nnUNetv2_train", "nnUNetv2_predict"):
        assert Path(shutil.which(command)).parent == scripts, command
