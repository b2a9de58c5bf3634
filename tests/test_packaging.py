"""The wheel carries network_configs/ and dataset_conversion/ inside the package, and the CLI answers."""
import subprocess
import sys
import zipfile
from pathlib import Path

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
