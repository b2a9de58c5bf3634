"""End to end through nnU-Net's own commands: the fixture planned the phantom with
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity``; here ``nnUNetv2_train`` trains a tiny trainer
of ours for two iterations and ``nnUNetv2_predict`` predicts with it, both finding the trainer through
``nnUNet_extTrainer`` alone, then the held-out cases are predicted and evaluated."""
import subprocess

import SimpleITK as sitk

from nnunet_helpers import stock_env, stock_predict, stock_train

TRAINER = "nnUNetTrainerStrokeUNet_Tiny"


def test_stock_train_and_predict_find_our_trainer(planned_phantom, tmp_path):
    fold = "5"
    train = stock_train(planned_phantom, TRAINER, fold)
    assert "nnunet_stroke" in train.stdout + train.stderr  # the class came from our package

    cases = planned_phantom.heldout[fold][:1]
    out = stock_predict(planned_phantom, TRAINER, fold, cases, tmp_path)
    for case in cases:
        prediction = sitk.ReadImage(str(out / f"{case}.nii.gz"))
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
    env = stock_env()
    env.pop("nnUNet_extTrainer")
    train = subprocess.run(["nnUNetv2_train", str(planned_phantom.dataset_id), "3d_fullres", "5", "-tr", TRAINER,
                            "-device", "cpu"], env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert train.returncode != 0 and "Could not find requested nnunet trainer" in train.stdout + train.stderr
