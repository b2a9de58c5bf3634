"""Splits: 5-fold CV + five 8:1:1 repeats; disjoint, covering, deterministic, stratified and grouped."""
import json

import numpy as np
import pytest

from nnunet_stroke.errors import UserError
from nnunet_stroke.splits import make_splits, volume_bin

CASES = [f"case{i:03d}" for i in range(50)]


def test_cv_folds_partition_the_cases():
    splits, _ = make_splits(CASES, seed=3)
    vals = [set(s["val"]) for s in splits[:5]]
    assert set().union(*vals) == set(CASES)
    assert sum(len(v) for v in vals) == len(CASES)  # each case validated exactly once
    for split, val in zip(splits[:5], vals):
        assert set(split["train"]) == set(CASES) - val
        assert abs(len(val) - 10) <= 1


def test_repeats_are_8_1_1_with_heldout_test_in_neither_list():
    splits, heldout = make_splits(CASES, seed=3)
    assert sorted(heldout) == ["5", "6", "7", "8", "9"]
    for fold in range(5, 10):
        train, val, test = set(splits[fold]["train"]), set(splits[fold]["val"]), set(heldout[str(fold)])
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(CASES)
        assert (len(train), len(val), len(test)) == (40, 5, 5)
    assert len({tuple(heldout[str(f)]) for f in range(5, 10)}) == 5  # the repeats differ


def test_deterministic_by_seed():
    assert make_splits(CASES, seed=1) == make_splits(CASES, seed=1)
    assert make_splits(CASES, seed=1) != make_splits(CASES, seed=2)


def test_volume_bins():
    assert [volume_bin(v) for v in (None, 0.0, 0.5, 4.99, 5.0, 9.9, 10.0, 49.0, 50.0, 300.0)] == \
        [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_stratified_repeats_give_each_part_its_share_of_each_volume_bin():
    volumes = [0.0] * 10 + [2.0] * 10 + [7.0] * 10 + [20.0] * 10 + [80.0] * 10
    table = {c: {"case": c, "lesion_volume_ml": str(v), "site": ""} for c, v in zip(CASES, volumes)}
    splits, heldout = make_splits(CASES, seed=0, table=table, stratify=True)
    bin_of = {c: volume_bin(float(table[c]["lesion_volume_ml"])) for c in CASES}
    for fold in range(5, 10):
        assert sorted(bin_of[c] for c in heldout[str(fold)]) == [0, 1, 2, 3, 4]
        assert sorted(bin_of[c] for c in splits[fold]["val"]) == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert sorted(bin_of[c] for c in splits[fold]["val"]) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_never_straddle_a_split(seed):
    rng = np.random.default_rng(seed)
    sites = {c: f"site{rng.integers(0, 12)}" for c in CASES}
    table = {c: {"case": c, "lesion_volume_ml": "1.0", "site": sites[c]} for c in CASES}
    splits, heldout = make_splits(CASES, seed=seed, table=table, group_column="site")
    for fold, split in enumerate(splits):
        parts = [split["train"], split["val"]] + ([heldout[str(fold)]] if fold >= 5 else [])
        for site in set(sites.values()):
            members = {c for c in CASES if sites[c] == site}
            assert sum(bool(members & set(p)) for p in parts) <= 1, (fold, site)


def test_too_few_cases_is_a_user_error():
    with pytest.raises(UserError, match="at least 10"):
        make_splits(CASES[:9])


def test_splits_command_writes_nnunet_files(planned_phantom):
    from nnunet_stroke.cli import main

    # --force: other tests may have trained folds of the shared phantom (the guard is tested in test_splits_guard.py)
    assert main(["splits", str(planned_phantom.dataset_id), "--seed", "4", "--force"]) == 0
    splits = json.loads((planned_phantom.preprocessed / "splits_final.json").read_text(encoding="utf-8"))
    heldout = json.loads((planned_phantom.preprocessed / "heldout_test.json").read_text(encoding="utf-8"))
    cases = sorted(p.name[:-7] for p in (planned_phantom.raw / "labelsTr").glob("*.nii.gz"))
    assert len(splits) == 10 and sorted(heldout) == ["5", "6", "7", "8", "9"]
    assert sorted(splits[0]["train"] + splits[0]["val"]) == cases
    assert main(["splits", str(planned_phantom.dataset_id), "--seed", "0", "--force"]) == 0  # restore the fixture's splits


def test_stratification_uses_class_when_volumes_are_unknown():
    classes = ["normal"] * 30 + ["ischemic"] * 10 + ["hemorrhagic"] * 10
    table = {c: {"case": c, "lesion_volume_ml": "", "site": "", "class": k} for c, k in zip(CASES, classes)}
    splits, heldout = make_splits(CASES, seed=0, table=table, stratify=True)
    class_of = dict(zip(CASES, classes))
    for fold in range(5, 10):
        assert sorted(class_of[c] for c in heldout[str(fold)]) == ["hemorrhagic", "ischemic", "normal", "normal", "normal"]
