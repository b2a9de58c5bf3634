"""`nnunet-stroke report`: report.md with the paper tables and the PNG figures, from tiny evaluations."""
import matplotlib.image
import pytest

from nnunet_stroke.cli import main
from nnunet_stroke.evaluation import evaluate_folders, write_metrics
from nnunet_stroke.evaluation.reports import model_name
from test_evaluation_folders import make_dataset


@pytest.fixture
def two_models(tmp_path):
    make_dataset(tmp_path)
    paths = []
    for index, protocol in enumerate(("isles22", "lbmnet")):
        with pytest.warns(UserWarning):
            metrics = evaluate_folders(tmp_path / "labelsTr", tmp_path / "pred", protocol=protocol,
                                       images_dir=tmp_path / "imagesTr", probabilities_dir=tmp_path / "pred",
                                       num_processes=1, progress=False)
        paths.append(tmp_path / f"model{index}" / "metrics.json")
        write_metrics(metrics, paths[-1])
    return tmp_path, paths


def test_report_writes_tables_and_readable_pngs(two_models):
    root, paths = two_models
    out = root / "report"
    assert main(["report", *map(str, paths), "--names", "A", "B", "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    for title in ("Segmentation (LBMNet Tables 1 and 4)", "By reference lesion size", "Patient-level detection",
                  "Bland–Altman", "Calibration"):
        assert f"## {title}" in text
    # mean Dice over the 3 cases = (0.75 + 0 + 0) / 3 = 25.00 %, std over cases 43.30 %
    assert "| A | isles22 | 3 | 1 | 25.00 ± 43.30 |" in text
    pngs = {"bland_altman.png", "dice_by_stratum.png", "roc.png", "reliability.png", "overlays_1.png",
            "overlays_2.png"}
    assert pngs <= {p.name for p in out.iterdir()}
    for name in pngs:
        assert f"]({name})" in text
        assert matplotlib.image.imread(out / name).shape[0] > 100
    assert not [p for p in root.iterdir() if p.name.startswith(".report")]  # staging folder moved away
    assert main(["report", str(paths[0]), "--out", str(out)]) == 0  # a previous report is replaced
    assert not (out / "overlays_2.png").exists()
    assert main(["report", str(paths[0]), "--out", str(root / "labelsTr")]) == 2  # never replaces other folders
    assert (root / "labelsTr" / "case_a.nii.gz").is_file()


def test_model_names_come_from_nnunet_results_paths(tmp_path):
    path = tmp_path / "nnUNetTrainerLBMNet__nnUNetPlans__3d_fullres" / "fold_5" / "heldout_test" / "metrics.json"
    assert model_name(path) == "nnUNetTrainerLBMNet (fold_5)"
    assert model_name(tmp_path / "run1" / "metrics.json") == "run1"
