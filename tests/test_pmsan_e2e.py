"""End to end on the phantom through nnU-Net's own commands: ``nnunet-stroke distill --tiny --smallest L``
runs the stock ``nnUNetv2_train`` for PMSAN-XL and then for one distillation step (L from XL, teacher
found by convention); the package's predict path then writes segmentations and detection.json."""
import json
import os
import re
import shutil
from pathlib import Path

import SimpleITK as sitk

STUDENT = "nnUNetTrainerPMSAN_L_Distill_Tiny"


def test_distillation_step_and_detection_through_stock_commands(planned_phantom, tmp_path, capfd, monkeypatch):
    from nnunet_stroke.cli import main
    from nnunet_stroke.workflows.prediction import run_predict

    monkeypatch.setenv("NNUNET_STROKE_TINY_EPOCHS", "1")
    monkeypatch.setenv("NNUNET_STROKE_TINY_ITERATIONS", "2")
    distill = ["distill", str(planned_phantom.dataset_id), "3d_fullres", "5", "--tiny", "--smallest", "L",
               "-device", "cpu"]
    assert main(distill) == 0
    results = Path(os.environ["nnUNet_results"]) / planned_phantom.name
    for trainer in ("nnUNetTrainerPMSAN_XL_Tiny", STUDENT):
        assert (results / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_5" / "checkpoint_final.pth").is_file()
    log = next((results / f"{STUDENT}__nnUNetPlans__3d_fullres" / "fold_5").glob("training_log_*.txt")).read_text(encoding="utf-8")
    assert "Teacher: nnUNetTrainerPMSAN_XL_Tiny" in log
    share = float(re.search(r"\(([\d.]+)%\) are slices of teacher tensors", log).group(1))
    assert share >= 50.0

    capfd.readouterr()
    assert main(distill) == 0  # finished models are kept, nothing retrained
    assert capfd.readouterr().out.count("exists, kept") == 2

    cases = planned_phantom.heldout["5"][:2]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in cases:
        for image in planned_phantom.raw.joinpath("imagesTr").glob(f"{case}_*.nii.gz"):
            shutil.copy(image, inputs / image.name)
    out = tmp_path / "out"
    assert run_predict(["-i", str(inputs), "-o", str(out), "-d", str(planned_phantom.dataset_id), "-c", "3d_fullres",
                        "-f", "5", "-tr", STUDENT, "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"]) == 0
    detection = json.loads((out / "detection.json").read_text(encoding="utf-8"))
    assert sorted(detection) == sorted(cases)
    assert all(0.0 <= p <= 1.0 for p in detection.values())
    for case in cases:
        prediction = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        reference = sitk.ReadImage(str(planned_phantom.raw / "labelsTr" / f"{case}.nii.gz"))
        assert prediction.GetSize() == reference.GetSize()
