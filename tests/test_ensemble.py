"""``nnunet-stroke ensemble``: soft voting equals the argmax of the members' mean probabilities (nnU-Net's
way), majority voting equals the per-voxel vote of the members' masks (DeepISLES' way), and
``nnunet-stroke evaluate`` reads the output like any prediction folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from toolchain_fixtures import CV_TRAINERS, cross_validated  # noqa: F401 (session fixture)


def _inputs(planned, folder: Path, count: int = 2) -> list[str]:
    folder.mkdir()
    cases = sorted(planned.heldout["6"])[:count]
    for case in cases:
        for image in (planned.raw / "imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, folder / image.name)
    return cases


def _member(model_folder: Path, folds: tuple, inputs: Path, output: Path) -> Path:
    """One member predicted on its own by nnU-Net's predictor (probabilities saved)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_folder), folds, "checkpoint_final.pth")
    output.mkdir()
    predictor.predict_from_files_sequential(str(inputs), str(output), save_probabilities=True, overwrite=True,
                                            folder_with_segs_from_prev_stage=None)
    return output


def _mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_soft_and_majority_votes_match_their_definitions(cross_validated, tmp_path):  # noqa: F811
    from nnunet_stroke.cli import main

    planned = cross_validated.planned
    cases = _inputs(planned, tmp_path / "in")
    first, second = (cross_validated.model_folder(trainer) for trainer in CV_TRAINERS)
    members = [(first, (0, 1)), (second, (0,)), (first, (2,))]
    outputs = [_member(folder, folds, tmp_path / "in", tmp_path / f"member_{i}") for i, (folder, folds) in
               enumerate(members)]
    models = [f"{folder}:{','.join(map(str, folds))}" for folder, folds in members]
    common = ["-i", str(tmp_path / "in"), "-device", "cpu", "--disable_tta"]
    assert main(["ensemble", "--models", *models[:2], "-o", str(tmp_path / "soft"), "--vote", "soft", *common]) == 0
    assert main(["ensemble", "--models", *models, "-o", str(tmp_path / "majority"), "--vote", "majority", *common]) == 0
    for vote in ("soft", "majority"):
        assert sorted(p.name for p in (tmp_path / vote).iterdir()) == sorted(f"{c}.nii.gz" for c in cases)
    for case in cases:
        mean = np.mean([np.load(o / f"{case}.npz")["probabilities"] for o in outputs[:2]], axis=0)
        np.testing.assert_array_equal(_mask(tmp_path / "soft" / f"{case}.nii.gz"), np.argmax(mean, axis=0))
        votes = sum((_mask(o / f"{case}.nii.gz") == 1).astype(int) for o in outputs)
        np.testing.assert_array_equal(_mask(tmp_path / "majority" / f"{case}.nii.gz"), (votes >= 2).astype(np.uint8))
        reference = sitk.ReadImage(str(planned.raw / "imagesTr" / f"{case}_0000.nii.gz"))
        written = sitk.ReadImage(str(tmp_path / "majority" / f"{case}.nii.gz"))
        assert written.GetSpacing() == reference.GetSpacing() and written.GetDirection() == reference.GetDirection()

    references = tmp_path / "ref"
    references.mkdir()
    for case in cases:
        shutil.copy(planned.raw / "labelsTr" / f"{case}.nii.gz", references / f"{case}.nii.gz")
    assert main(["evaluate", "--ref", str(references), "--pred", str(tmp_path / "majority"), "--out",
                 str(tmp_path / "metrics.json")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(c["case"] for c in metrics["cases"]) == cases


def test_majority_vote_ties_go_to_the_lower_label():
    from nnunet_stroke.workflows.ensemble import majority_vote

    a, b = np.array([[0, 1, 1, 2]]), np.array([[1, 1, 0, 1]])
    np.testing.assert_array_equal(majority_vote([a, b]), [[0, 1, 0, 1]])
    np.testing.assert_array_equal(majority_vote([a, b, np.array([[1, 0, 1, 2]])]), [[1, 1, 1, 2]])


def test_bad_model_arguments_are_user_errors(tmp_path, capsys):
    from nnunet_stroke.cli import main

    assert main(["ensemble", "--models", str(tmp_path), str(tmp_path), "-i", str(tmp_path), "-o",
                 str(tmp_path / "out")]) == 2
    assert "is not a trained nnU-Net model folder" in capsys.readouterr().err
    assert main(["ensemble", "--models", f"{tmp_path}:x", str(tmp_path), "-i", str(tmp_path), "-o",
                 str(tmp_path / "out")]) == 2
    assert "folds must be comma-separated" in capsys.readouterr().err
