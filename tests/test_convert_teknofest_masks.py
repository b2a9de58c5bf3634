"""The OVERLAY-vs-PNG mask rule on phantom slices whose true lesion mask is known (clean, noisy,
outline-only overlays), and the MASKS value rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nnunet_stroke.dataset_conversion.teknofest_masks import (OVERLAY_TOLERANCE, binary_from_mask_png,
                                                              mask_from_overlay)
from nnunet_stroke.errors import UserError
from nnunet_stroke.phantom.ct import OVERLAY_COLOUR, teknofest_slice, tinted_overlay

SIZE = 256


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def phantom_slices():
    """(kind, (HU, PNG, true lesion mask with holes filled: the rule fills holes by design))."""
    for seed in range(4):
        for kind in ("Ischemia", "Bleeding"):
            hu, png, truth = teknofest_slice(np.random.default_rng(seed), kind, SIZE)
            yield kind, (hu, png, ndimage.binary_fill_holes(truth))


def test_clean_overlay_gives_the_true_mask():
    for kind, (_, png, truth) in phantom_slices():
        derived = mask_from_overlay(png, tinted_overlay(png, truth, OVERLAY_COLOUR[kind]))
        assert truth.sum() > 100 and dice(derived, truth) > 0.98, kind


def test_rendering_noise_and_speckles_are_ignored():
    rng = np.random.default_rng(7)
    for kind, (_, png, truth) in phantom_slices():
        overlay = tinted_overlay(png, truth, OVERLAY_COLOUR[kind]).astype(np.int16)
        overlay += rng.integers(-3, 4, overlay.shape, dtype=np.int16)          # re-encoding noise
        far = np.argwhere(~ndimage.binary_dilation(truth, iterations=4))
        for y, x in far[rng.choice(len(far), 25, replace=False)]:             # isolated painted pixels
            overlay[y, x] = OVERLAY_COLOUR[kind]
        derived = mask_from_overlay(png, np.clip(overlay, 0, 255).astype(np.uint8))
        assert dice(derived, truth) > 0.98
        assert not (derived & ~ndimage.binary_dilation(truth)).any()


def test_outline_only_annotation_is_filled():
    for kind, (_, png, truth) in phantom_slices():
        outline = truth & ~ndimage.binary_erosion(truth)
        derived = mask_from_overlay(png, tinted_overlay(png, outline, (0, 0, 255), alpha=1.0))
        assert dice(derived, truth) > 0.98


def test_differences_within_tolerance_give_an_empty_mask():
    _, png, truth = teknofest_slice(np.random.default_rng(1), "Bleeding", SIZE)
    overlay = np.clip(png.astype(np.int16) + OVERLAY_TOLERANCE, 0, 255).astype(np.uint8)
    assert not mask_from_overlay(png, np.repeat(overlay[..., None], 3, axis=-1)).any()


@pytest.mark.parametrize("values", [(0, 255), (0, 1), (0,)])
def test_binary_masks_are_read_as_zero_one(values):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:6] = values[-1]
    rgb = np.repeat(mask[..., None], 3, axis=-1)
    for array in (mask, rgb):
        assert np.array_equal(binary_from_mask_png(array, Path("m.png"), "c"), (mask > 0).astype(np.uint8))


@pytest.mark.parametrize("values", [(0, 1, 255), (0, 128), (0, 2)])
def test_other_mask_values_are_errors(values):
    mask = np.zeros((8, 8), np.uint8)
    for index, value in enumerate(values):
        mask[index] = value
    with pytest.raises(UserError, match="not a binary lesion mask"):
        binary_from_mask_png(mask, Path("m.png"), "c")


def test_palette_overlay_files_are_read_in_colour(tmp_path):
    from PIL import Image

    from nnunet_stroke.dataset_conversion.teknofest_masks import read_png

    kind, (_, png, truth) = next(phantom_slices())
    path = tmp_path / "overlay.png"
    Image.fromarray(tinted_overlay(png, truth, OVERLAY_COLOUR[kind])).quantize(256).save(path)
    assert Image.open(path).mode == "P"
    assert dice(mask_from_overlay(png, read_png(path, "c")), truth) > 0.95
