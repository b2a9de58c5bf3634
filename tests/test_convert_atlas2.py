"""ATLAS v2.0 converter on a phantom tree of the release layout: nnU-Net's integrity check, Training ->
imagesTr/labelsTr and Testing -> imagesTs, cohort as site, 6-connected lesion counts against scipy's
default structure (the ATLAS scorer's), and every error case leaving nothing behind."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_stroke.cli import main as cli_main
from nnunet_stroke.dataset_conversion import atlas2
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom import write_phantom
from nnunet_stroke.phantom.atlas2 import case_paths, subject

from test_convert_isles22 import verify_with_nnunet  # noqa: E402  (tests/ is on sys.path under pytest)

TINY = (24, 32, 28)
CASES = 6


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_phantom(tmp_path_factory.mktemp("atlas"), "atlas2", cases=CASES, seed=5, shape=TINY)


@pytest.fixture()
def tree_copy(tree, tmp_path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / "ATLAS_2"))


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_training_and_testing_parts(tree, raw, monkeypatch):
    out = atlas2.convert(tree, 980, num_processes=1)
    verify_with_nnunet(out, monkeypatch)
    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["channel_names"] == {"0": "T1w"} and dataset["numTraining"] == CASES
    rows = list(csv.DictReader(open(out / "cases.csv", encoding="utf-8")))
    assert sorted(r["case"] for r in rows) == sorted(subject(i)[1] for i in range(CASES))
    for row in rows:
        index = next(i for i in range(CASES) if subject(i)[1] == row["case"])
        mask = read(case_paths(tree, "Training", index)["mask"])
        assert row["site"] == subject(index)[0] and row["class"] == "lesion"
        assert int(row["lesion_count"]) == ndimage.label(mask)[1]          # default structure: 6-connectivity
        assert float(row["lesion_volume_ml"]) == pytest.approx(mask.sum() / 1000.0, abs=1e-4)  # 1 mm voxels
        np.testing.assert_array_equal(read(out / "labelsTr" / f"{row['case']}.nii.gz"), mask)
    test_cases = sorted(p.name for p in (out / "imagesTs").iterdir())
    assert test_cases == sorted(f"{subject(i)[1]}_0000.nii.gz" for i in range(CASES, CASES + 3))
    test_rows = list(csv.DictReader(open(out / "cases_test.csv", encoding="utf-8")))
    assert [(r["case"], r["site"], r["lesion_volume_ml"]) for r in test_rows] == \
        [(subject(i)[1], subject(i)[0], "") for i in range(CASES, CASES + 3)]


def _write(path: Path, array: np.ndarray, like: Path, spacing=None) -> None:
    reference = sitk.ReadImage(str(like))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), useCompression=True)


@pytest.mark.parametrize("problem", ["missing_mask", "missing_t1w", "two_t1w", "mask_grid", "mask_255",
                                     "mask_negative", "nan", "unreadable"])
def test_bad_subject_is_named_and_nothing_is_left(tree_copy, raw, problem):
    paths = case_paths(tree_copy, "Training", 3)
    case = subject(3)[1]
    mask = read(paths["mask"])
    expected = {"missing_mask": "lesion mask", "missing_t1w": "T1w", "two_t1w": "T1w"}.get(problem, "")
    if problem == "missing_mask":
        paths["mask"].unlink()
    elif problem == "missing_t1w":
        paths["t1w"].unlink()
    elif problem == "two_t1w":
        shutil.copyfile(paths["t1w"], paths["t1w"].with_name(paths["t1w"].name.replace("MNI152NLin2009aSym", "orig")))
    elif problem == "mask_grid":
        _write(paths["mask"], mask, paths["mask"], spacing=(1.0, 1.0, 1.5))
        expected = "another voxel grid"
    elif problem in ("mask_255", "mask_negative"):
        mask = mask.astype(np.int16) * (255 if problem == "mask_255" else -1)
        _write(paths["mask"], mask, paths["mask"])
        expected = "255" if problem == "mask_255" else "-1"
    elif problem == "nan":
        t1 = read(paths["t1w"])
        t1[2, 3, 4] = np.nan
        _write(paths["t1w"], t1, paths["t1w"])
        expected = "NaN"
    elif problem == "unreadable":
        paths["mask"].write_bytes(b"\x1f\x8b broken")
        expected = "cannot read"
    with pytest.raises(UserError) as error:
        atlas2.convert(tree_copy, 981, num_processes=1)
    assert case in str(error.value) and expected in str(error.value)
    assert list(raw.iterdir()) == []


def test_not_an_atlas_tree(tmp_path, raw, tree):
    (tmp_path / "empty" / "Training").mkdir(parents=True)
    for src, message in ((tmp_path / "missing", "not a folder"), (tree.parent, "not an ATLAS v2.0 tree"),
                         (tmp_path / "empty", "no subjects")):
        with pytest.raises(UserError, match=message):
            atlas2.convert(src, 982, num_processes=1)
    assert list(raw.iterdir()) == []


def test_cli_and_overwrite(tree, raw, capsys):
    args = ["convert", "atlas2", str(tree), "--dataset-id", "983", "-np", "1"]
    assert cli_main(args) == 0 and cli_main(args) == 2
    assert "already taken" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite", "--with-flair"]) == 2      # an ISLES-only option
    assert "isles22 only" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset983_ATLAS2"]
