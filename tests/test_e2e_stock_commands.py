"""End to end through nnU-Net's own commands: the fixture planned the phantom with
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity``; here ``nnUNetv2_train`` trains a tiny trainer
of ours for two iterations and ``nnUNetv2_predict`` predicts with it, both finding the trainer through
``nnUNet_extTrainer`` alone, then the held-out cases are predicted and evaluated."""
import os
import shutil
import subprocess

import SimpleITK as sitk

TRAINER = "nnUNetTrainerStrokeUNet_Tiny"


def stock_env() -> dict:
    env = dict(os.environ, NNUNET_STROKE_TINY_EPOCHS="1", NNUNET_STROKE_TINY_ITERATIONS="2")
    return env


def test_stock_train_and_predict_find_our_trainer(planned_phantom, tmp_path):
    env = stock_env()
    fold = "5"
    train = subprocess.run(["nnUNetv2_train", str(planned_phantom.dataset_id), "3d_fullres", fold, "-tr", TRAINER,
                            "-device", "cpu"], env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "nnunet_stroke" in train.stdout + train.stderr  # the class came from our package

    cases = planned_phantom.heldout[fold][:1]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in cases:
        for image in planned_phantom.raw.joinpath("imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, inputs / image.name)
    predict = subprocess.run(["nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d",
                              str(planned_phantom.dataset_id), "-c", "3d_fullres", "-f", fold, "-tr", TRAINER,
                              "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"],
                             env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert predict.returncode == 0, predict.stdout[-3000:] + predict.stderr[-3000:]
    for case in cases:
        prediction = sitk.ReadImage(str(tmp_path / "out" / f"{case}.nii.gz"))
        reference = sitk.ReadImage(str(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz"))
        assert prediction.GetSize() == reference.GetSize()
        assert prediction.GetSpacing() == reference.GetSpacing()

    from nnunet_stroke.cli import main

    assert main(["predict-heldout", str(planned_phantom.dataset_id), "-f", fold, "-tr", TRAINER, "--disable_tta",
                 "-device", "cpu"]) == 0
    fold_folder = next(planned_phantom.raw.parents[1].joinpath("nnUNet_results").rglob(f"{TRAINER}__*/fold_{fold}"))
    metrics = (fold_folder / "heldout_test" / "metrics.json").read_text(encoding="utf-8")
    for case in planned_phantom.heldout[fold]:
        assert f'"{case}"' in metrics


def test_stock_commands_fail_without_the_shim(planned_phantom):
    env = dict(stock_env())
    env.pop("nnUNet_extTrainer")
    train = subprocess.run(["nnUNetv2_train", str(planned_phantom.dataset_id), "3d_fullres", "5", "-tr", TRAINER,
                            "-device", "cpu"], env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert train.returncode != 0 and "Could not find requested nnunet trainer" in train.stdout + train.stderr
