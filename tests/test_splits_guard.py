"""`nnunet-stroke splits` never silently replaces splits under trained folds, and refuses a malformed
cases.csv, unset nnU-Net folders and unknown datasets with user errors."""
import json

import pytest

from nnunet_stroke.cli import main
from nnunet_stroke.splits import make_splits

NAME = "Dataset951_Guard"
CASES = [f"case{i:02d}" for i in range(12)]


@pytest.fixture
def folders(tmp_path, monkeypatch):
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    raw = tmp_path / "nnUNet_raw" / NAME
    (raw / "labelsTr").mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}), encoding="utf-8")
    for case in CASES:
        (raw / "labelsTr" / f"{case}.nii.gz").touch()
    rows = ["case,lesion_volume_ml,lesion_count,site,class"] + [f"{c},{i}.5,1,,lesion" for i, c in enumerate(CASES)]
    (raw / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def train_fold(root, fold, trainer="nnUNetTrainerX__nnUNetPlans__3d_fullres"):
    folder = root / "nnUNet_results" / NAME / trainer / f"fold_{fold}"
    folder.mkdir(parents=True)
    (folder / "checkpoint_final.pth").touch()
    return folder


def splits_of(root):
    return json.loads((root / "nnUNet_preprocessed" / NAME / "splits_final.json").read_text(encoding="utf-8"))


def test_trained_folds_block_other_splits_unless_forced(folders, capsys):
    assert main(["splits", NAME, "--seed", "0"]) == 0
    first = splits_of(folders)
    trained = train_fold(folders, 7)
    train_fold(folders, 2, "nnUNetTrainerY__nnUNetLBMNetPlans__3d_fullres")
    assert main(["splits", NAME, "--seed", "0"]) == 0  # the same splits: nothing to protect
    assert main(["splits", NAME, "--seed", "1"]) == 2
    error = capsys.readouterr().err
    assert "folds 2, 7" in error and str(trained) in error and "--force" in error
    assert splits_of(folders) == first
    assert main(["splits", NAME, "--seed", "1", "--force"]) == 0
    assert "results of folds 2, 7 no longer match" in capsys.readouterr().err
    assert splits_of(folders) == make_splits(CASES, seed=1)[0]


@pytest.mark.parametrize("content, message", [
    ("name,lesion_volume_ml\ncase00,1\n", "no 'case' column"),
    ("case,lesion_volume_ml\ncase00,nan\n", "line 2: case case00 has lesion_volume_ml 'nan'"),
    ("case,lesion_volume_ml\ncase00,-1\ncase01,2\n", "line 2: case case00"),
    ("case,lesion_volume_ml\ncase00,1\ncase00,2\n", "line 3: repeated case 'case00'"),
    ("case,lesion_volume_ml\ncase00,big\n", "lesion_volume_ml 'big'"),
])
def test_malformed_cases_csv_is_a_user_error_naming_file_and_line(folders, capsys, content, message):
    (folders / "nnUNet_raw" / NAME / "cases.csv").write_text(content, encoding="utf-8")
    assert main(["splits", NAME, "--stratify", "volume"]) == 2
    error = capsys.readouterr().err
    assert "cases.csv" in error and message in error


def test_unset_folder_and_unknown_dataset_are_user_errors(folders, capsys, monkeypatch):
    assert main(["splits", "Dataset952_Missing"]) == 2
    assert "Dataset952_Missing/dataset.json is missing" in capsys.readouterr().err
    assert main(["splits", "not-a-dataset"]) == 2
    assert "unknown dataset 'not-a-dataset'" in capsys.readouterr().err
    monkeypatch.delenv("nnUNet_preprocessed")
    assert main(["splits", NAME]) == 2
    assert "nnUNet_preprocessed is not set" in capsys.readouterr().err
