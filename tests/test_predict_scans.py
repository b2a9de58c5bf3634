"""``nnunet-stroke predict-scans``: unlabelled scans in the ISLES 2022 release layout -> one mask per case
on the source image's grid (the phantom has an anisotropic case, sub-strokecase0003, and an oblique,
mirrored one, sub-strokecase0005), volumes.csv, nothing else in OUT; an unreadable case is named and
skipped. A known mask pushed through the same path comes back in place."""
from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from nnunet_helpers import CONFIGURATION
from toolchain_fixtures import CV_TRAINERS, cross_validated  # noqa: F401 (session fixture)

CASES = [f"sub-strokecase{i:04d}" for i in range(1, 6)]  # 0003 anisotropic (4 mm slices), 0005 oblique


def _file(root: Path, case: str, suffix: str) -> Path:
    return next(p for p in (root / case).rglob(f"*{suffix}.nii.gz"))


def _unlabelled_scans(source: Path, target: Path, cases: list[str]) -> Path:
    """The phantom's cases in the Zenodo ISLES 2022 layout, without derivatives/ (no masks)."""
    target.mkdir()
    for case in cases:
        shutil.copytree(source / case, target / case)
    return target


def _geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def test_predict_scans_writes_one_mask_per_case_on_the_source_grid(cross_validated, tmp_path, capsys):  # noqa: F811
    from nnunet_stroke.cli import main

    source = cross_validated.planned.source
    scans = _unlabelled_scans(source, tmp_path / "scans", CASES + ["sub-strokecase0006"])
    broken = _file(scans, "sub-strokecase0006", "_dwi")
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # truncated download
    out = tmp_path / "out"
    code = main(["predict-scans", str(scans), str(out), "-d", str(cross_validated.planned.dataset_id), "-c",
                 CONFIGURATION, "-tr", CV_TRAINERS[0], "-f", "0", "1", "-device", "cpu", "--disable_tta"])
    assert code == 1  # one case failed
    assert "sub-strokecase0006" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{c}.nii.gz" for c in CASES] + ["volumes.csv"])
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind
    rows = {row["case"]: row for row in csv.DictReader(open(out / "volumes.csv", encoding="utf-8"))}
    assert sorted(rows) == CASES and list(next(iter(rows.values()))) == ["case", "lesion_volume_ml", "lesion_count"]
    for case in CASES:
        dwi = sitk.ReadImage(str(_file(scans, case, "_dwi")))
        mask = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        assert _geometry(mask) == _geometry(dwi)
        array = sitk.GetArrayFromImage(mask) > 0
        voxel_ml = float(np.prod(dwi.GetSpacing())) / 1000.0
        assert float(rows[case]["lesion_volume_ml"]) == pytest.approx(array.sum() * voxel_ml, abs=1e-4)
        assert int(rows[case]["lesion_count"]) == ndimage.label(array, structure=np.ones((3, 3, 3)))[1]
    anisotropic, oblique = (sitk.ReadImage(str(out / f"sub-strokecase{i:04d}.nii.gz")) for i in (3, 5))
    assert anisotropic.GetSpacing()[2] == 2 * anisotropic.GetSpacing()[0]
    assert not np.allclose(oblique.GetDirection(), np.eye(3).ravel())


def test_wrong_layout_and_existing_output_are_user_errors(cross_validated, tmp_path, capsys):  # noqa: F811
    from nnunet_stroke.cli import main

    scans = _unlabelled_scans(cross_validated.planned.source, tmp_path / "scans", CASES[:1])
    arguments = ["-d", str(cross_validated.planned.dataset_id), "-c", CONFIGURATION, "-tr", CV_TRAINERS[0], "-f",
                 "0", "-device", "cpu", "--disable_tta"]
    assert main(["predict-scans", str(scans), str(tmp_path / "out"), "--layout", "atlas2", *arguments]) == 2
    assert "2 input channels" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["predict-scans", str(scans), str(tmp_path / "taken"), *arguments]) == 2
    assert "already exists" in capsys.readouterr().err


class MaskAsLogits(torch.nn.Module):
    """Logits (background, lesion) = (0.5 - x, x - 0.5) of input channel 0: a 0/1 mask given as channel 0
    comes back as the segmentation, through nnU-Net's whole prediction path."""

    def forward(self, x):
        lesion = x[:, :1] - 0.5
        return torch.cat([-lesion, lesion], dim=1)


@pytest.mark.parametrize("processes", [0, 1])  # in this process; nnU-Net's preprocessing and export workers
def test_a_known_mask_comes_back_in_place(planned_phantom, tmp_path, processes):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.workflows.predict_scans import predict_scans

    source = planned_phantom.source
    scans = _unlabelled_scans(source, tmp_path / "scans", CASES)
    for case in CASES:  # DWI := the case's lesion mask, on the DWI's own grid
        dwi_path = _file(scans, case, "_dwi")
        mask = sitk.Cast(sitk.ReadImage(str(_file(source / "derivatives", case, "_msk"))), sitk.sitkFloat32)
        mask.CopyInformation(sitk.ReadImage(str(dwi_path)))
        sitk.WriteImage(mask, str(dwi_path), useCompression=True)
    plans = copy.deepcopy(planned_phantom.plans)
    plans["configurations"][CONFIGURATION]["normalization_schemes"] = ["NoNormalization", "NoNormalization"]
    plans_manager = PlansManager(plans)
    network = MaskAsLogits()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, plans_manager.get_configuration(CONFIGURATION),
                                    [network.state_dict()], planned_phantom.dataset_json, "MaskAsLogits", None)
    out = tmp_path / "out"
    report = predict_scans(scans, out, predictor, "segmentation", num_processes_preprocessing=processes,
                           num_processes_export=processes)
    assert report.predicted == CASES and not report.failed
    target_spacing = plans["configurations"][CONFIGURATION]["spacing"]
    for case in CASES:
        known = sitk.ReadImage(str(_file(source / "derivatives", case, "_msk")))
        predicted = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        assert _geometry(predicted) == _geometry(known)
        expected, got = sitk.GetArrayFromImage(known) > 0, sitk.GetArrayFromImage(predicted) > 0
        assert expected.any()
        if np.allclose(known.GetSpacing()[::-1], target_spacing):  # no resampling: voxel for voxel
            np.testing.assert_array_equal(got, expected)
        else:  # resampled to the plans' spacing and back (sub-strokecase0003)
            assert 2 * (got & expected).sum() / (got.sum() + expected.sum()) > 0.9
            np.testing.assert_allclose(ndimage.center_of_mass(got), ndimage.center_of_mass(expected), atol=0.5)

