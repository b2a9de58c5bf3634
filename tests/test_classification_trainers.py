"""Classification trainers: labels from cases.csv, balanced sampling, whole-image batches, the stock
nnUNetv2_train round trip of a tiny classifier (the loss-falls tests are in test_pmsan_classifier.py and
test_strokenext.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnunet_stroke.errors import UserError
from nnunet_stroke.evaluation.case_labels import case_labels
from nnunet_stroke.trainers.whole_image_data import balanced_choice, pad_to_common_shape

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


# ---- whole-image batches ---------------------------------------------------------------------------------
def test_balanced_sampling_draws_every_class_equally_often():
    identifiers = [f"n{i}" for i in range(18)] + ["s0", "s1"]
    labels = {i: int(i.startswith("s")) for i in identifiers}
    drawn = balanced_choice(identifiers, labels, 4000, np.random.default_rng(0))
    share = np.mean([labels[d] for d in drawn])
    assert 0.46 < share < 0.54  # 10% of the cases, half of the draws
    assert set(drawn) == set(identifiers)  # every case within its class is drawn


def test_batches_are_zero_padded_and_centred():
    a, b = np.ones((1, 2, 4), np.float32), 2 * np.ones((1, 4, 2), np.float32)
    batch = pad_to_common_shape([a, b])
    assert batch.shape == (2, 1, 4, 4)
    expected_a = np.zeros((1, 4, 4), np.float32)
    expected_a[:, 1:3, :] = 1
    expected_b = np.zeros((1, 4, 4), np.float32)
    expected_b[:, :, 1:3] = 2
    assert np.array_equal(batch[0], expected_a) and np.array_equal(batch[1], expected_b)


# ---- a tiny classifier on the phantom --------------------------------------------------------------------
def test_stock_nnunetv2_train_round_trip_of_a_tiny_classifier(planned_phantom):
    """nnUNetv2_train (one two-iteration epoch) then --val; the network rebuilt the way the predictor does
    (class hook, class count from the checkpoint) reproduces the validation probabilities."""
    from nnunet_helpers import CONFIGURATION, run_stock, stock_train
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.trainers import TRAINERS
    from nnunet_stroke.trainers.whole_image_data import load_whole_image

    name = "nnUNetTrainerPMSANClassifier_S_Tiny"
    stock_train(planned_phantom, name, "5")
    results = planned_phantom.preprocessed.parent.parent / "nnUNet_results" / planned_phantom.name
    fold = results / f"{name}__nnUNetPlans__{CONFIGURATION}" / "fold_5"
    validation = json.loads((fold / "validation" / "classification.json").read_text(encoding="utf-8"))
    splits = json.loads((planned_phantom.preprocessed / "splits_final.json").read_text(encoding="utf-8"))
    val_keys = splits[5]["val"]
    names, labels = case_labels(planned_phantom.raw / "cases.csv", "presence")
    assert sorted(validation) == sorted(val_keys) and (fold / "checkpoint_best.pth").is_file()
    for entry in validation.values():  # {case: {"probabilities": {class: p}, "label": predicted class}}
        assert set(entry["probabilities"]) == set(names)
        assert sum(entry["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert entry["label"] == max(entry["probabilities"], key=entry["probabilities"].get)
    summary = json.loads((fold / "validation" / "summary.json").read_text(encoding="utf-8"))
    assert summary["n"] == len(val_keys)
    assert summary["cases_per_class"] == {c: sum(labels[k] == i for k in val_keys) for i, c in enumerate(names)}
    run_stock(["nnUNetv2_train", str(planned_phantom.dataset_id), CONFIGURATION, "5", "-tr", name, "-device", "cpu",
               "--val"])  # validation only: must not crash, rewrites the same predictions
    assert json.loads((fold / "validation" / "classification.json").read_text(encoding="utf-8")) == validation
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    classes = checkpoint["classification_classes"]
    assert classes == ["no_stroke", "stroke"] and checkpoint["trainer_name"] == name
    manager = PlansManager(planned_phantom.plans)
    network = TRAINERS[name].build_network_architecture(
        manager, manager.get_configuration(CONFIGURATION), len(planned_phantom.dataset_json["channel_names"]),
        len(classes), enable_deep_supervision=False)
    network.load_state_dict(checkpoint["network_weights"])
    network.eval()
    folder = str(planned_phantom.preprocessed / manager.get_configuration(CONFIGURATION).data_identifier)
    dataset = infer_dataset_class(folder)(folder)
    for case, entry in validation.items():
        with torch.no_grad():
            logits = network(torch.from_numpy(load_whole_image(dataset, case, two_d=False))[None])
        assert logits.shape == (1, len(classes))
        probabilities = torch.softmax(logits, 1)[0].tolist()
        assert probabilities == pytest.approx([entry["probabilities"][c] for c in classes], abs=1e-5)
