"""TEKNOFEST converter on a phantom tree of the Kaggle layout (tests/fixtures/teknofest_paths.txt): nnU-Net's
own integrity check, label values per class folder, duplicate groups against a pairwise pixel comparison,
the grouped splits, and every error case leaving nothing in nnUNet_raw."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnunet_stroke.dataset_conversion import teknofest
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom.ct import write_teknofest

FIXTURE = Path(__file__).parent / "fixtures" / "teknofest_paths.txt"
SLICE_SIZE = 128


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_teknofest(tmp_path_factory.mktemp("teknofest_src"), cases=10, seed=3, slice_size=SLICE_SIZE)


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def test_layout_of_phantom_matches_the_cited_release_paths(release):
    lines = [l.strip() for l in FIXTURE.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
    fixture_folders = {l.rstrip("/") for l in lines if l.endswith("/")}
    base = release.parent
    phantom_folders = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_dir()}
    assert phantom_folders == fixture_folders
    for example in (l for l in lines if not l.endswith("/")):
        example = Path(example)
        siblings = list((base / example.parent).iterdir())
        assert example.stem.isdigit() and siblings
        assert all(p.stem.isdigit() and p.suffix == example.suffix for p in siblings)
    external = release / "External_Test"
    assert {p.name for p in (external / "PNG").iterdir()} == {p.name for p in (external / "MASKS").iterdir()}


def test_converts_release_into_a_valid_2d_dataset(release, raw):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    out = teknofest.convert(release, 971, num_processes=1)
    assert out == raw / "Dataset971_TEKNOFEST"
    verify_dataset_integrity(str(out), 1)
    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["labels"] == {"background": 0, "ischemic": 1, "hemorrhagic": 2}
    assert dataset["channel_names"] == {"0": "zscore"} and dataset["file_ending"] == ".png"
    assert dataset["overwrite_image_reader_writer"] == "NaturalImage2DIO"
    expected_label = {"Normal": 0, "Ischemia": 1, "Bleeding": 2}
    cases = read_table(out / "cases.csv")
    source_slices = [p for folder in expected_label for p in (release / folder / "PNG").glob("*.png")]
    assert dataset["numTraining"] == len(cases) == len(source_slices)
    for png in source_slices:
        case = f"{png.parent.parent.name}_{png.stem}"
        label = np.asarray(Image.open(out / "labelsTr" / f"{case}.png"))
        assert np.array_equal(np.asarray(Image.open(out / "imagesTr" / f"{case}_0000.png")), np.asarray(Image.open(png)))
        assert set(np.unique(label)) <= {0, expected_label[png.parent.parent.name]}
        assert int(cases[case]["lesion_area_px"]) == int(np.count_nonzero(label))
    assert all(int(cases[c]["lesion_area_px"]) == 0 for c in cases if c.startswith("Normal_"))
    lesion_cases = [c for c in cases if not c.startswith("Normal_")]
    assert all(int(cases[c]["lesion_area_px"]) > 0 for c in lesion_cases)
    external_masks = sorted((release / "External_Test" / "MASKS").glob("*.png"))
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == sorted(f"External_{p.stem}_0000.png" for p in external_masks)
    for mask in external_masks:
        assert np.array_equal(np.asarray(Image.open(out / "labelsTs" / f"External_{mask.stem}.png")),
                              (np.asarray(Image.open(mask)) > 0).astype(np.uint8))


def test_duplicate_groups_match_pairwise_pixel_comparison_and_stay_on_one_side(release, raw):
    from nnunet_stroke.splits import make_splits

    out = teknofest.convert(release, 972, num_processes=1)
    table = {**read_table(out / "cases.csv"), **read_table(out / "cases_test.csv")}
    slices = {f"{p.parent.parent.name}_{p.stem}".replace("External_Test_", "External_"): np.asarray(Image.open(p))
              for p in sorted(release.glob("*/PNG/*.png"))}
    names = sorted(slices)
    reference = {frozenset(b for b in names if np.array_equal(slices[a], slices[b])) for a in names}
    reference = {group for group in reference if len(group) > 1}
    found: dict[str, set] = {}
    for case, row in table.items():
        if row["duplicate_group"]:
            found.setdefault(row["duplicate_group"], set()).add(case)
    assert {frozenset(g) for g in found.values()} == reference and len(reference) == 3

    training = read_table(out / "cases.csv")
    splits, heldout = make_splits(sorted(training), seed=0, table=training, group_column="duplicate_group")
    for group in (g for g in reference if g <= set(training)):
        for fold, split in enumerate(splits):
            sides = {"train" if c in split["train"] else "val" if c in split["val"] else "test" for c in group}
            assert len(sides) == 1, (fold, group, sides)


def _drop_overlay(root: Path) -> str:
    victim = sorted((root / "Ischemia" / "OVERLAY").glob("*.png"))[0]
    victim.unlink()
    return victim.stem


def _shrink_overlay(root: Path) -> str:
    victim = sorted((root / "Bleeding" / "OVERLAY").glob("*.png"))[0]
    Image.open(victim).resize((SLICE_SIZE // 2, SLICE_SIZE // 2)).save(victim)
    return victim.stem


def _grey_mask(root: Path) -> str:
    victim = sorted((root / "External_Test" / "MASKS").glob("*.png"))[0]
    mask = np.asarray(Image.open(victim)).copy()
    mask[:4, :4] = 128
    Image.fromarray(mask).save(victim)
    return victim.stem


def _corrupt_png(root: Path) -> str:
    victim = sorted((root / "Normal" / "PNG").glob("*.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return victim.stem


def _colour_slice(root: Path) -> str:
    victim = sorted((root / "Normal" / "PNG").glob("*.png"))[0]
    rgb = np.repeat(np.asarray(Image.open(victim))[..., None], 3, axis=-1)
    rgb[10:20, 10:20, 0] = 255
    Image.fromarray(rgb).save(victim)
    return victim.stem


def _wrong_layout(root: Path) -> str:
    shutil.rmtree(root / "Normal")
    return "Normal/PNG"


@pytest.mark.parametrize("damage, message", [
    (_drop_overlay, "is missing"), (_shrink_overlay, "must be the same slice"), (_grey_mask, "not a binary"),
    (_corrupt_png, "cannot read"), (_colour_slice, "colour image"), (_wrong_layout, "not the TEKNOFEST layout")])
def test_errors_name_the_case_and_leave_nothing_behind(release, raw, tmp_path, damage, message):
    source = tmp_path / "src"
    shutil.copytree(release, source)
    culprit = damage(source)
    with pytest.raises(UserError, match=message) as error:
        teknofest.convert(source, 973, num_processes=1)
    assert culprit in str(error.value)
    assert list(raw.iterdir()) == []


def test_refuses_a_taken_dataset_id_unless_overwrite(release, raw):
    first = teknofest.convert(release, 974, num_processes=1)
    marker = first / "marker.txt"
    marker.write_text("first conversion", encoding="utf-8")
    with pytest.raises(UserError, match="already taken"):
        teknofest.convert(release, 974, name="OTHER", num_processes=1)
    assert marker.read_text(encoding="utf-8") == "first conversion" and sorted(p.name for p in raw.iterdir()) == [first.name]
    again = teknofest.convert(release, 974, overwrite=True, num_processes=1)
    assert again == first and not marker.exists()


def test_normalisation_schemes_chosen_by_the_channel_names():
    """nnU-Net casefolds channel names: "CT" selects its global CT scheme, "zscore" per-image z-scoring."""
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization, ZScoreNormalization
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import get_normalization_scheme

    assert get_normalization_scheme(teknofest.CHANNEL_NAMES["0"]) is ZScoreNormalization
    assert get_normalization_scheme("CT") is CTNormalization
