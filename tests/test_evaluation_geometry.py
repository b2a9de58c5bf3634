"""`evaluate` compares masks in physical space and decodes every file completely: predictions with another
origin or direction, truncated or garbage files are errors naming the case; --resample-to-reference
puts a physically identical prediction stored in another orientation back onto the reference grid."""
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_stroke.cli import main
from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import evaluate_folders
from test_evaluation_folders import SPACING_ZYX, make_dataset, write_nifti


def run(root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the small-class warning of the 3-case set
        return evaluate_folders(root / "labelsTr", root / "pred", num_processes=1, progress=False, **kwargs)


def flipped_x(array):
    """The same voxels in physical space, stored with the x axis reversed (direction -1, origin at the far end)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array[:, :, ::-1]))
    image.SetSpacing(tuple(reversed(SPACING_ZYX)))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    image.SetOrigin(((array.shape[2] - 1) * SPACING_ZYX[2], 0.0, 0.0))
    return image


@pytest.mark.parametrize("what", ["origin", "direction"])
def test_another_origin_or_direction_is_an_error_naming_the_case(tmp_path, what):
    cases = make_dataset(tmp_path)
    target = tmp_path / "pred" / "case_b.nii.gz"
    image = sitk.GetImageFromArray(cases["case_b"][1])
    image.SetSpacing(tuple(reversed(SPACING_ZYX)))
    if what == "origin":
        image.SetOrigin((0.0, 4.0, 0.0))
    else:
        image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(target))
    with pytest.raises(UserError, match=rf"case_b: prediction .*case_b.nii.gz is not on the reference grid \({what}"):
        run(tmp_path)


def test_resample_to_reference_restores_a_reoriented_prediction(tmp_path):
    cases = make_dataset(tmp_path)
    expected = run(tmp_path)["cases"]
    sitk.WriteImage(flipped_x(cases["case_a"][1]), str(tmp_path / "pred" / "case_a.nii.gz"))
    with pytest.raises(UserError, match="case_a: .*direction"):
        run(tmp_path)
    resampled = run(tmp_path, resample_to_reference=True)
    assert resampled["cases"][0]["dice"] == pytest.approx(0.75)  # 2x3x4 of 2x4x4 voxels overlap, by hand
    assert [c["dice"] for c in resampled["cases"]] == [c["dice"] for c in expected]
    assert resampled["inputs"]["resampled_to_reference"] is True


@pytest.mark.parametrize("damage", ["truncated", "trailer", "garbage", "four_volumes"])
def test_unreadable_prediction_is_an_error_naming_case_and_file(tmp_path, damage):
    cases = make_dataset(tmp_path)
    target = tmp_path / "pred" / "case_a.nii.gz"
    data = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "trailer":
        target.write_bytes(data[:-4])  # voxels complete, gzip CRC/length trailer cut
    elif damage == "garbage":
        target.write_bytes(np.random.default_rng(0).bytes(500))
    else:
        import nibabel

        volume = cases["case_a"][1].transpose(2, 1, 0)
        nibabel.save(nibabel.Nifti1Image(np.stack([volume, volume], axis=-1), np.eye(4)), str(target))
    with pytest.raises(UserError, match=r"case case_a: .*case_a.nii.gz"):
        run(tmp_path)


def test_resource_forks_are_not_cases(tmp_path):
    make_dataset(tmp_path)
    expected = run(tmp_path)["n_cases"]
    (tmp_path / "labelsTr" / "._case_a.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / "pred" / "._case_a.nii.gz").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    assert run(tmp_path)["n_cases"] == expected


def test_unwritable_or_full_out_folder_is_refused_before_evaluating(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    make_dataset(tmp_path)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x", encoding="utf-8")
    arguments = ["evaluate", "--ref", str(tmp_path / "labelsTr"), "--pred", str(tmp_path / "pred"), "-np", "1"]
    assert main([*arguments, "--out", str(not_a_folder / "metrics.json")]) == 2
    assert f"cannot write into {not_a_folder}" in capsys.readouterr().err
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    assert main([*arguments, "--out", str(tmp_path / "out" / "metrics.json")]) == 2
    assert "has only 4 KiB free" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_corrupt_probabilities_and_detection_file_are_named_errors(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "pred" / "case_b.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match=r"case case_b: cannot read .*case_b.npz"):
        run(tmp_path, probabilities_dir=tmp_path / "pred")
    (tmp_path / "detection.json").write_text("[0.5]", encoding="utf-8")
    with pytest.raises(UserError, match="detection.json holds a list"):
        run(tmp_path, detection_json=tmp_path / "detection.json")
