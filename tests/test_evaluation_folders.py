"""`evaluate_folders` and `nnunet-stroke evaluate` on tiny NIfTI and PNG folders in nnU-Net naming:
per-case values against hand-computed ones, calibration, detection sources, 2D multi-class labels,
and the errors for bad input (each naming the case)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_stroke.cli import main
from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation import evaluate_folders

SPACING_ZYX = (3.0, 1.0, 0.5)
SHAPE = (6, 10, 12)


def write_nifti(path, array, spacing_zyx=SPACING_ZYX):
    image = sitk.GetImageFromArray(np.asarray(array))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def block(z, y, x):
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[z, y, x] = 1
    return mask


def make_dataset(root, n_empty_ref=1):
    """Three cases: a lesion predicted with offset, a missed lesion, and an empty reference with a false
    positive; images all nonzero, saved probabilities and detection.json."""
    cases = {
        "case_a": (block(slice(1, 3), slice(2, 6), slice(2, 6)), block(slice(1, 3), slice(3, 7), slice(2, 6))),
        "case_b": (block(slice(3, 5), slice(1, 3), slice(1, 3)), np.zeros(SHAPE, np.uint8)),
        "case_c": (np.zeros(SHAPE, np.uint8), block(slice(0, 1), slice(0, 1), slice(0, 2))),
    }
    for case, (reference, prediction) in cases.items():
        write_nifti(root / "labelsTr" / f"{case}.nii.gz", reference)
        write_nifti(root / "pred" / f"{case}.nii.gz", prediction)
        write_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", np.ones(SHAPE, np.float32))
        lesion = np.where(prediction > 0, 0.7, 0.1).astype(np.float32)
        np.savez_compressed(root / "pred" / f"{case}.npz", probabilities=np.stack([1 - lesion, lesion]))
    (root / "detection.json").write_text(json.dumps({"case_a": 0.9, "case_b": 0.6, "case_c": 0.2}), encoding="utf-8")
    return cases


@pytest.fixture
def dataset(tmp_path):
    return tmp_path, make_dataset(tmp_path)


def evaluate(root, **kwargs):
    kwargs.setdefault("num_processes", 1)
    kwargs.setdefault("progress", False)
    with pytest.warns(UserWarning):  # 2 positive / 1 negative case: the small-class warning
        return evaluate_folders(root / "labelsTr", root / "pred", **kwargs)


def test_per_case_values_match_hand_computation(dataset):
    root, _ = dataset
    metrics = evaluate(root)
    case_a, case_b, case_c = metrics["cases"]
    # case_a: 2x4x4 = 32 voxels each, shifted one row: overlap 2x3x4 = 24
    assert case_a["dice"] == pytest.approx(2 * 24 / 64)
    voxel_ml = 3.0 * 1.0 * 0.5 / 1000
    assert case_a["ref_volume_ml"] == pytest.approx(32 * voxel_ml)
    assert case_a["hd95_mm"] == pytest.approx(1.0)  # one row along y = 1 mm
    assert case_b["dice"] == 0.0 and case_b["lesion_f1"] == 0.0 and case_b["precision"] is None
    assert case_c["dice"] == 0.0 and case_c["recall"] is None and case_c["hd95_mm"] is None
    assert metrics["aggregate"]["dice"] == {"mean": pytest.approx(0.75 / 3), "std": pytest.approx(
        np.std([0.75, 0.0, 0.0], ddof=1)), "n": 3}
    assert metrics["aggregate"]["hd95_mm"]["n"] == 1
    assert [s["n"] for s in metrics["strata"]["strata"]] == [2, 2, 0, 0]


def test_detection_from_segmentation_and_from_detection_json(dataset):
    root, _ = dataset
    from_segmentation = evaluate(root)["detection"]
    assert from_segmentation["source"] == "segmentation"
    # decisions by predicted volume > 0: case_a TP, case_b FN, case_c FP
    assert from_segmentation["sensitivity"]["value"] == pytest.approx(0.5)
    assert from_segmentation["specificity"]["value"] == pytest.approx(0.0)
    assert from_segmentation["sensitivity_by_stratum"]["<5"] == {"n": 2, "detected": 1, "sensitivity": 0.5}
    from_json = evaluate(root, detection_json=root / "detection.json")["detection"]
    # probabilities 0.9 / 0.6 / 0.2 at threshold 0.5: both lesions found, the empty case negative
    assert (from_json["sensitivity"]["value"], from_json["specificity"]["value"]) == (1.0, 1.0)
    assert from_json["auc"]["value"] == pytest.approx(1.0)
    assert "2 positive and 1 negative" in from_json["warnings"][0]


def test_voxel_calibration_inside_the_brain_roi(dataset):
    root, cases = dataset
    metrics = evaluate(root, images_dir=root / "imagesTr", probabilities_dir=root / "pred")
    # images are nonzero everywhere: the ROI is the whole volume. P = 0.7 on predicted voxels, else 0.1.
    reference = np.concatenate([r.ravel() for r, _ in cases.values()]).astype(bool)
    predicted = np.concatenate([p.ravel() for _, p in cases.values()]).astype(bool)
    n = reference.size
    low_fraction = reference[~predicted].mean()
    high_fraction = reference[predicted].mean()
    expected = (~predicted).sum() / n * abs(0.1 - low_fraction) + predicted.sum() / n * abs(0.7 - high_fraction)
    assert metrics["calibration"]["voxel"]["ece"] == pytest.approx(expected)
    assert metrics["calibration"]["voxel"]["n"] == n
    assert metrics["cases"][0]["max_lesion_probability"] == pytest.approx(0.7)
    assert "nonzero image region" in metrics["calibration"]["roi"]


def test_parallel_workers_give_the_serial_result(dataset):
    root, _ = dataset
    serial = evaluate(root)
    parallel = evaluate(root, num_processes=2)
    assert parallel["cases"] == serial["cases"]


def test_atlas_protocol_counts_6_connected_lesions(tmp_path):
    reference = np.zeros(SHAPE, np.uint8)
    reference[1, 1, 1] = reference[2, 2, 2] = 1  # corner-touching
    write_nifti(tmp_path / "labelsTr" / "c1.nii.gz", reference)
    write_nifti(tmp_path / "pred" / "c1.nii.gz", reference)
    with pytest.warns(UserWarning):
        atlas = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", protocol="atlas2", num_processes=1,
                                 progress=False)
        isles = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", protocol="isles22", num_processes=1,
                                 progress=False)
    assert atlas["cases"][0]["ref_lesion_count"] == 2 and isles["cases"][0]["ref_lesion_count"] == 1
    assert atlas["protocol_metrics"] == ["dice", "abs_volume_diff_vox", "abs_lesion_count_diff", "lesion_f1"]


def test_2d_png_multiclass_any_foreground_and_per_class(tmp_path):
    from skimage import io

    reference = np.zeros((8, 8), np.uint8)
    reference[1:3, 1:3] = 1  # ischemic, 4 pixels
    reference[5:7, 5:7] = 2  # hemorrhagic, 4 pixels
    prediction = np.zeros((8, 8), np.uint8)
    prediction[1:3, 1:3] = 2  # right place, wrong class
    prediction[5:7, 5:7] = 2
    for folder, array in (("labelsTr", reference), ("pred", prediction)):
        (tmp_path / folder).mkdir()
        io.imsave(tmp_path / folder / "slice1.png", array, check_contrast=False)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "ischemic": 1,
                                                                  "hemorrhagic": 2}, "file_ending": ".png"}), encoding="utf-8")
    with pytest.warns(UserWarning):
        metrics = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", file_ending=None, per_class=True,
                                   num_processes=1, progress=False)
    case = metrics["cases"][0]
    assert metrics["spatial_dims"] == 2 and metrics["labels"] == [1, 2] and metrics["connectivity"] == 8
    assert case["dice"] == 1.0  # lesion = any foreground
    assert case["dice_label1"] == 0.0 and case["recall_label1"] == 0.0
    assert case["dice_label2"] == pytest.approx(2 * 4 / (4 + 8))
    assert case["ref_volume_ml"] is None and case["ref_volume_vox"] == 8
    assert case["hd95_mm"] == 0.0  # PNG spacing (1, 1)
    assert metrics["strata"] is None and metrics["bland_altman"]["unit"] == "vox"
    with pytest.warns(UserWarning):
        ischemic = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", file_ending=".png", lesion_labels=[1],
                                    num_processes=1, progress=False)
    assert ischemic["cases"][0]["dice"] == 0.0 and ischemic["cases"][0]["ref_volume_vox"] == 4
    with pytest.raises(UserError, match="--lesion-labels"):
        evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", file_ending=".png", lesion_labels=[3])


def test_missing_prediction_is_an_error_naming_the_case_or_counted_empty(dataset):
    root, _ = dataset
    (root / "pred" / "case_b.nii.gz").unlink()
    with pytest.raises(UserError, match="case_b.*--allow-missing"):
        evaluate_folders(root / "labelsTr", root / "pred", num_processes=1, progress=False)
    metrics = evaluate(root, allow_missing=True)
    assert metrics["missing_predictions"] == ["case_b"]
    case_b = metrics["cases"][1]
    assert case_b["prediction_missing"] is True and case_b["pred_volume_vox"] == 0
    assert any("no prediction" in w for w in metrics["warnings"])


@pytest.mark.parametrize("problem, message", [
    ("shape", r"case_a: prediction .* not on the reference grid \(shape"),
    ("spacing", r"case_a: prediction .* not on the reference grid \(spacing"),
    ("labels", r"case_a: .* holds labels \[2\]"),
    ("probabilities", "case_a: .*case_a.npz has shape"),
])
def test_bad_input_is_a_clear_error_naming_the_case(dataset, problem, message):
    root, cases = dataset
    reference, prediction = cases["case_a"]
    target = root / "pred" / "case_a.nii.gz"
    if problem == "shape":
        write_nifti(target, prediction[:, :, :-1])
    elif problem == "spacing":
        write_nifti(target, prediction, spacing_zyx=(1.0, 1.0, 1.0))
    elif problem == "labels":
        write_nifti(target, prediction * 2)
    else:
        np.savez_compressed(root / "pred" / "case_a.npz", probabilities=np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(UserError, match=message):
        evaluate_folders(root / "labelsTr", root / "pred", probabilities_dir=root / "pred", num_processes=1,
                         progress=False)


def test_detection_json_must_cover_every_case(dataset):
    root, _ = dataset
    (root / "detection.json").write_text(json.dumps({"case_a": 0.9}), encoding="utf-8")
    with pytest.raises(UserError, match="no probability for case case_b"):
        evaluate_folders(root / "labelsTr", root / "pred", detection_json=root / "detection.json",
                         num_processes=1, progress=False)


def test_cli_writes_metrics_and_exits_2_on_user_errors(dataset, capsys):
    root, _ = dataset
    out = root / "out" / "metrics.json"
    assert main(["evaluate", "--ref", str(root / "labelsTr"), "--pred", str(root / "pred"), "--protocol", "lbmnet",
                 "-np", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["protocol"] == "lbmnet"
    assert "warning: only 2 positive and 1 negative" in capsys.readouterr().err
    assert main(["evaluate", "--ref", str(root / "labelsTr"), "--pred", str(root / "nowhere"),
                 "--out", str(root / "x.json")]) == 2
    assert "nowhere is not a folder" in capsys.readouterr().err
    assert not (root / "x.json").exists()


def test_missing_image_names_the_case(dataset):
    root, _ = dataset
    (root / "imagesTr" / "case_c_0000.nii.gz").unlink()
    with pytest.raises(UserError, match="case case_c: no image case_c_0000.nii.gz"):
        evaluate_folders(root / "labelsTr", root / "pred", images_dir=root / "imagesTr", num_processes=1,
                         progress=False)
