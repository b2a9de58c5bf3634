"""AISD converter on a phantom tree of the unpacked release (tests/fixtures/aisd_paths.txt): nnU-Net's own
integrity check, labels and volumes against the phantom's mask stacks read independently, the lesion-label
selection, and every error case leaving nothing in nnUNet_raw."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from nnunet_stroke.dataset_conversion import aisd
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom.ct import write_aisd

FIXTURE = Path(__file__).parent / "fixtures" / "aisd_paths.txt"
SHAPE = (6, 48, 48)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_aisd(tmp_path_factory.mktemp("aisd_src"), cases=3, seed=5, shape=SHAPE)


def raw_mask_stack(release: Path, case: str) -> np.ndarray:
    files = sorted((release / "mask" / "mask" / case).iterdir(), key=lambda p: int(p.stem))
    return np.stack([np.asarray(Image.open(p)) for p in files])


def test_layout_of_phantom_matches_the_cited_release_paths(release):
    lines = [l.strip() for l in FIXTURE.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
    generic = {re.sub(r"dicom-\d", "dicom-0", re.sub(r"/\d{7}(/|$)", r"/<case_id>\1", str(p.relative_to(release))))
               for p in release.rglob("*") if p.is_dir() or p.name == "000.png"}
    expected = {l.rstrip("/") for l in lines}
    assert generic == expected


def test_converts_release_into_a_valid_3d_ct_dataset(release, raw):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    out = aisd.convert(release, 981, num_processes=1)
    verify_dataset_integrity(str(out), 1)
    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["channel_names"] == {"0": "CT"} and dataset["labels"] == {"background": 0, "ischemic_lesion": 1}
    with open(out / "cases.csv", newline="", encoding="utf-8") as handle:
        table = {row["case"]: row for row in csv.DictReader(handle)}
    cases = sorted(p.name for p in (release / "mask" / "mask").iterdir())
    assert sorted(table) == cases and dataset["numTraining"] == len(cases)
    for case in cases:
        label = sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz"))
        image = sitk.ReadImage(str(out / "imagesTr" / f"{case}_0000.nii.gz"))
        truth = raw_mask_stack(release, case) > 0
        assert np.array_equal(sitk.GetArrayFromImage(label), truth.astype(np.uint8))
        hu = sitk.GetArrayFromImage(image)
        assert hu.shape == SHAPE and hu.min() == -1000 and image.GetSpacing()[2] == pytest.approx(5.0)
        voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
        assert float(table[case]["lesion_volume_ml"]) == pytest.approx(truth.sum() * voxel_ml, abs=1e-4)
        assert table[case]["class"] == ("lesion" if truth.any() else "no_lesion")


def test_lesion_values_select_mask_labels(release, raw):
    out = aisd.convert(release, 982, num_processes=1, lesion_values=(1, 2, 3, 5))
    for case in (p.name for p in (release / "mask" / "mask").iterdir()):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / f"{case}.nii.gz")))
        assert np.array_equal(label, np.isin(raw_mask_stack(release, case), (1, 2, 3, 5)).astype(np.uint8))


def _first_case(root: Path) -> str:
    return sorted(p.name for p in (root / "mask" / "mask").iterdir())[0]


def _no_ct_series(root: Path) -> str:
    case = _first_case(root)
    shutil.rmtree(next(root.glob(f"dicom/dicom-*/{case}/CT")))
    return case


def _empty_ct_folder(root: Path) -> str:
    case = _first_case(root)
    for dicom in next(root.glob(f"dicom/dicom-*/{case}/CT")).iterdir():
        dicom.unlink()
    return case


def _missing_mask_slice(root: Path) -> str:
    case = _first_case(root)
    (root / "mask" / "mask" / case / "003.png").unlink()
    return case


def _out_of_range_value(root: Path) -> str:
    case = _first_case(root)
    path = root / "mask" / "mask" / case / "002.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[0, 0] = 7
    Image.fromarray(mask).save(path)
    return "002.png"


def _unreadable_mask(root: Path) -> str:
    case = _first_case(root)
    (root / "mask" / "mask" / case / "001.png").write_bytes(b"not a png")
    return "001.png"


def _unnumbered_mask(root: Path) -> str:
    case = _first_case(root)
    shutil.copyfile(root / "mask" / "mask" / case / "000.png", root / "mask" / "mask" / case / "copy.png")
    return "copy.png"


def _wrong_layout(root: Path) -> str:
    shutil.rmtree(root / "mask")
    return "not the AISD layout"


@pytest.mark.parametrize("damage, message", [
    (_no_ct_series, "no CT series"), (_empty_ct_folder, "no DICOM series"), (_missing_mask_slice, "slice for slice"),
    (_out_of_range_value, "outside the AISD mask labels"), (_unreadable_mask, "cannot read"),
    (_unnumbered_mask, "slice number"), (_wrong_layout, "mask")])
def test_errors_name_the_case_and_leave_nothing_behind(release, raw, tmp_path, damage, message):
    source = tmp_path / "src"
    shutil.copytree(release, source)
    culprit = damage(source)
    with pytest.raises(UserError, match=message) as error:
        aisd.convert(source, 983, num_processes=1)
    assert culprit in str(error.value)
    assert list(raw.iterdir()) == []


def test_nan_voxels_are_an_error(release, raw, monkeypatch):
    def series_with_nan(ct_dir, case):
        array = np.zeros(SHAPE, np.float32)
        array[0, 0, 0] = np.nan
        return sitk.GetImageFromArray(array)

    monkeypatch.setattr(aisd, "read_ct_series", series_with_nan)
    with pytest.raises(UserError, match="NaN"):
        aisd.convert(release, 984, num_processes=1)
    assert list(raw.iterdir()) == []


def test_refuses_a_taken_dataset_id_unless_overwrite(release, raw):
    first = aisd.convert(release, 985, num_processes=1)
    (first / "marker.txt").write_text("first", encoding="utf-8")
    with pytest.raises(UserError, match="already taken"):
        aisd.convert(release, 985, num_processes=1)
    assert (first / "marker.txt").exists()
    assert aisd.convert(release, 985, overwrite=True, num_processes=1) == first
    assert not (first / "marker.txt").exists()
