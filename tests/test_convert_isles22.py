"""ISLES 2022 converter on phantom trees of both release layouts: nnU-Net's own integrity check,
cases.csv against an independent count (scipy 26-connectivity), FLAIR resampling against a hand-made
trilinear sampler, every error case leaving nothing behind, and id clashes."""
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
from nnunet_stroke.dataset_conversion import isles22
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom import write_phantom
from nnunet_stroke.phantom.isles22 import case_paths

TINY = (20, 28, 28)
CASES = 5  # index 2: 2x2x4 mm, index 4: rotated direction


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("isles_trees")
    return {layout: write_phantom(base / layout, layout, cases=CASES, seed=11, shape=TINY)
            for layout in ("isles22", "isles22-github")}


@pytest.fixture()
def bids_copy(trees, tmp_path) -> Path:
    return Path(shutil.copytree(trees["isles22"], tmp_path / "ISLES-2022"))


def verify_with_nnunet(folder: Path, monkeypatch) -> None:
    """nnU-Net's own ``verify_dataset_integrity`` on ``folder``, its spawn pool swapped for a thread pool:
    the same checks without starting interpreters that import nnU-Net (~10 s per call here)."""
    import multiprocessing.dummy
    from types import SimpleNamespace

    from nnunetv2.experiment_planning import verify_dataset_integrity as module

    monkeypatch.setattr(module, "multiprocessing", SimpleNamespace(get_context=lambda method: multiprocessing.dummy))
    module.verify_dataset_integrity(str(folder), num_processes=1)


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.parametrize("layout", ["isles22", "isles22-github"])
def test_both_layouts_convert_and_pass_nnunet_integrity_check(trees, raw, layout, monkeypatch):
    out = isles22.convert(trees[layout], 990, num_processes=1)
    assert out == raw / "Dataset990_ISLES22" and sorted(p.name for p in raw.iterdir()) == [out.name]
    verify_with_nnunet(out, monkeypatch)
    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["channel_names"] == {"0": "DWI", "1": "ADC"}
    assert dataset["labels"] == {"background": 0, "lesion": 1} and dataset["numTraining"] == CASES
    rows = list(csv.DictReader(open(out / "cases.csv", encoding="utf-8")))
    assert list(rows[0]) == ["case", "lesion_volume_ml", "lesion_count", "site", "class"]
    for index, row in enumerate(rows):
        case = f"sub-strokecase{index + 1:04d}"
        source = case_paths(trees[layout], case, github_layout=layout.endswith("github"))
        mask = read(source["mask"])
        spacing = sitk.ReadImage(str(source["dwi"])).GetSpacing()
        assert row["case"] == case and row["site"] == ""
        assert float(row["lesion_volume_ml"]) == pytest.approx(mask.sum() * np.prod(spacing) / 1000.0, abs=1e-3)
        assert int(row["lesion_count"]) == ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]
        assert row["class"] == ("lesion" if mask.any() else "no_lesion")
        np.testing.assert_array_equal(read(out / "imagesTr" / f"{case}_0000.nii.gz"), read(source["dwi"]))
        np.testing.assert_array_equal(read(out / "imagesTr" / f"{case}_0001.nii.gz"), read(source["adc"]))
        np.testing.assert_array_equal(read(out / "labelsTr" / f"{case}.nii.gz"), mask)


def test_with_flair_resamples_onto_dwi_grid(trees, raw, monkeypatch):
    out = isles22.convert(trees["isles22"], 991, with_flair=True, num_processes=1)
    verify_with_nnunet(out, monkeypatch)
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8"))["channel_names"]["2"] == "FLAIR"
    for case in ("sub-strokecase0001", "sub-strokecase0005"):  # identity and rotated direction
        source = case_paths(trees["isles22"], case, github_layout=False)
        dwi, flair = sitk.ReadImage(str(source["dwi"])), sitk.ReadImage(str(source["flair"]))
        converted = sitk.ReadImage(str(out / "imagesTr" / f"{case}_0002.nii.gz"))
        assert (converted.GetSize(), converted.GetSpacing()) == (dwi.GetSize(), dwi.GetSpacing())
        # reference: trilinear sampling of FLAIR at every DWI voxel's physical position (numpy affine maths)
        zyx = np.indices(sitk.GetArrayViewFromImage(dwi).shape).reshape(3, -1)
        physical = (np.reshape(dwi.GetDirection(), (3, 3)) @ (zyx[::-1].T * dwi.GetSpacing()).T).T + dwi.GetOrigin()
        index = (np.linalg.inv(np.reshape(flair.GetDirection(), (3, 3))) @ (physical - flair.GetOrigin()).T).T \
            / flair.GetSpacing()
        expected = ndimage.map_coordinates(sitk.GetArrayFromImage(flair).astype(np.float64), index[:, ::-1].T,
                                           order=1, mode="constant", cval=0.0)
        inside = np.all((index > 0) & (index < np.array(flair.GetSize()) - 1), axis=1)
        np.testing.assert_allclose(sitk.GetArrayFromImage(converted).ravel()[inside], expected[inside],
                                   rtol=1e-4, atol=1e-2)


def test_file_name_case_variants(bids_copy, raw):
    for path in list(bids_copy.rglob("*_adc.nii.gz"))[:2] + list(bids_copy.rglob("*_FLAIR.nii.gz"))[:2]:
        path.rename(path.with_name(path.name.replace("_adc", "_ADC").replace("_FLAIR", "_flair")))
    out = isles22.convert(bids_copy, 992, with_flair=True, num_processes=1)
    assert len(list((out / "imagesTr").glob("*_0001.nii.gz"))) == CASES
    assert len(list((out / "imagesTr").glob("*_0002.nii.gz"))) == CASES


def _replace_image(path: Path, array: np.ndarray, spacing=None) -> None:
    reference = sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), useCompression=True)


def _break(tree: Path, problem: str) -> tuple[str, str]:
    """Damage case 0004 of ``tree``; return (case, file name expected in the message)."""
    case = "sub-strokecase0004"
    paths = case_paths(tree, case, github_layout=False)
    if problem == "missing_adc":
        paths["adc"].unlink()
        return case, "ADC"
    if problem == "missing_dwi":
        paths["dwi"].unlink()
        return case, "DWI"
    if problem == "missing_mask":
        paths["mask"].unlink()
        return case, "lesion mask"
    if problem == "mask_grid":
        _replace_image(paths["mask"], read(paths["mask"]), spacing=(2.5, 2.0, 2.0))
        return case, paths["mask"].name
    if problem == "non_binary":
        mask = read(paths["mask"])
        mask[0, 0, 0] = 2
        _replace_image(paths["mask"], mask)
        return case, paths["mask"].name
    if problem == "nan":
        dwi = read(paths["dwi"])
        dwi[3, 4, 5] = np.nan
        _replace_image(paths["dwi"], dwi)
        return case, paths["dwi"].name
    if problem == "unreadable":
        paths["adc"].write_bytes(b"this is not a NIfTI file")
        return case, paths["adc"].name
    if problem == "truncated":  # readable header, broken voxel data
        paths["dwi"].write_bytes(paths["dwi"].read_bytes()[:4000])
        return case, paths["dwi"].name
    raise ValueError(problem)


@pytest.mark.parametrize("problem", ["missing_adc", "missing_dwi", "missing_mask", "mask_grid", "non_binary", "nan",
                                     "unreadable", "truncated"])
def test_bad_case_is_named_and_nothing_is_left(bids_copy, raw, problem):
    case, file_name = _break(bids_copy, problem)
    with pytest.raises(UserError) as error:
        isles22.convert(bids_copy, 993, num_processes=1)
    assert case in str(error.value) and file_name in str(error.value)
    assert list(raw.iterdir()) == []


def test_failure_in_a_worker_process_leaves_nothing(bids_copy, raw):
    case, file_name = _break(bids_copy, "nan")
    with pytest.raises(UserError, match=file_name):
        isles22.convert(bids_copy, 993, num_processes=2)
    assert list(raw.iterdir()) == []


def test_not_an_isles_tree(tmp_path, raw):
    (tmp_path / "empty").mkdir()
    for src in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(UserError, match="ISLES 2022"):
            isles22.convert(src, 994, num_processes=1)
    assert list(raw.iterdir()) == []


def test_existing_id_refused_unless_overwrite(trees, raw):
    first = isles22.convert(trees["isles22"], 995, name="First", num_processes=1)
    marker = first / "marker.txt"
    marker.write_text("kept", encoding="utf-8")
    with pytest.raises(UserError, match="--overwrite"):
        isles22.convert(trees["isles22"], 995, name="Second", num_processes=1)
    assert marker.exists() and sorted(p.name for p in raw.iterdir()) == ["Dataset995_First"]
    second = isles22.convert(trees["isles22"], 995, name="Second", overwrite=True, num_processes=1)
    assert sorted(p.name for p in raw.iterdir()) == [second.name] == ["Dataset995_Second"]


def test_nnunet_raw_must_be_set(trees, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(UserError, match="nnUNet_raw"):
        isles22.convert(trees["isles22"], 996, num_processes=1)


def test_cli_convert(trees, raw, capsys):
    args = ["convert", "isles22", str(trees["isles22-github"]), "--dataset-id", "997", "-np", "1"]
    assert cli_main(args) == 0
    assert (raw / "Dataset997_ISLES22" / "dataset.json").exists()
    assert cli_main(args) == 2
    assert "already taken" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite", "--name", "Again"]) == 0
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset997_Again"]
