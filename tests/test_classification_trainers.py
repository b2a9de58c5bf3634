"""Classification trainers: labels from cases.csv, balanced sampling, whole-image batches, loss falls on a
fixed batch, the stock nnUNetv2_train round trip of a tiny classifier."""
from __future__ import annotations

import pytest

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.case_labels import case_labels

HEADER = "case,lesion_volume_ml,lesion_count,site,class\n"


def write_csv(tmp_path, rows: str):
    path = tmp_path / "cases.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def test_presence_from_volume_for_mri_sets(tmp_path):
    path = write_csv(tmp_path, "a,0.0000,0,,no_lesion\nb,2.5000,1,,lesion\nc,0.0010,1,,lesion\n")
    names, labels = case_labels(path, "presence")
    assert names == ["no_stroke", "stroke"]
    assert labels == {"a": 0, "b": 1, "c": 1}


def test_presence_from_class_for_ct_slices(tmp_path):
    path = write_csv(tmp_path, "Normal_1,,0,,normal\nBleeding_2,,1,,hemorrhagic\nIschemia_3,,2,,ischemic\n")
    names, labels = case_labels(path, "presence")
    assert names == ["no_stroke", "stroke"]
    assert labels == {"Normal_1": 0, "Bleeding_2": 1, "Ischemia_3": 1}


def test_subtype_uses_the_converters_class_order(tmp_path):
    path = write_csv(tmp_path, "h,,1,,hemorrhagic\nn,,0,,normal\ni,,2,,ischemic\ni2,,1,,ischemic\n")
    names, labels = case_labels(path, "subtype")
    assert names == ["normal", "ischemic", "hemorrhagic"]
    assert labels == {"h": 2, "n": 0, "i": 1, "i2": 1}


def test_unlabelled_rows_and_bad_volumes_name_the_file_and_case(tmp_path):
    with pytest.raises(UserError, match=r"cases\.csv.*case b"):
        case_labels(write_csv(tmp_path, "a,,0,,normal\nb,,0,,\n"), "presence")
    with pytest.raises(UserError, match="case a.*'-1'"):
        case_labels(write_csv(tmp_path, "a,-1,0,,\n"), "presence")
    with pytest.raises(UserError, match="does not exist"):
        case_labels(tmp_path / "missing.csv", "presence")
    with pytest.raises(ValueError):
        case_labels(write_csv(tmp_path, "a,1,1,,lesion\n"), "severity")
