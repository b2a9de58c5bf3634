"""Pixel rules of the TEKNOFEST-2021 CT set (Koc et al., Eurasian J Med 2022;54:248; docs/ct_data.md):
reading the 8-bit PNG slices as grayscale, reading the External_Test MASKS as binary lesion masks, and
deriving a lesion mask from an OVERLAY image (the slice with the lesion painted in colour) and its PNG.

Overlay rule (``mask_from_overlay``), all steps on the 2D pixel grid:
1. difference = max over the overlay's colour channels of |overlay_c - png| (the PNG is grayscale, so a
   painted pixel differs in at least one channel however the paint is blended);
2. candidate = difference > ``tolerance`` (default 24 of 255: rounding or re-encoding noise of a few grey
   levels is ignored; a 45 % blend of pure red or green moves some channel by at least 57 levels);
3. holes inside a candidate region are filled (an outline-only annotation becomes its region);
4. 8-connected components smaller than ``min_area_px`` (default 16 px, about 3 mm^2 at 0.45 mm) are
   dropped as speckle.
The class of the lesion is the folder's (Ischemia -> 1, Bleeding -> 2), not the paint colour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_stroke.errors import UserError

OVERLAY_TOLERANCE = 24
OVERLAY_MIN_AREA_PX = 16
EIGHT_CONNECTED = np.ones((3, 3), bool)


def read_png(path: Path, case: str) -> np.ndarray:
    """The decoded pixels of a PNG as (H, W) or (H, W, 3/4); palette images are expanded to their colours,
    1-bit and grey+alpha images to grey. Unreadable files raise a UserError."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in ("P", "PA"):
                image = image.convert("RGBA")
            elif image.mode in ("1", "LA"):
                image = image.convert("L")
            array = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise UserError(f"case {case}: cannot read {path} ({error}); re-download or replace the file") from None
    if array.ndim not in (2, 3) or array.dtype not in (np.uint8, np.uint16):
        raise UserError(f"case {case}: {path} is not an 8/16-bit grey or colour image (shape {array.shape}, "
                        f"{array.dtype}); replace the file")
    return array


def as_grayscale(array: np.ndarray, path: Path, case: str) -> np.ndarray:
    """(H, W) uint8 of a grey PNG; an RGB(A) PNG is accepted when its three colour channels are equal."""
    if array.ndim == 3:
        if array.shape[2] not in (3, 4) or not (np.array_equal(array[..., 0], array[..., 1])
                                                and np.array_equal(array[..., 0], array[..., 2])):
            raise UserError(f"case {case}: {path} is a colour image, not a grey CT slice; use the file from "
                            "the PNG folder (OVERLAY images are the coloured ones)")
        array = array[..., 0]
    if array.dtype != np.uint8:
        raise UserError(f"case {case}: {path} is {array.dtype}, expected 8-bit grey levels; "
                        "re-export the slice as an 8-bit PNG")
    return array


def binary_from_mask_png(array: np.ndarray, path: Path, case: str) -> np.ndarray:
    """A MASKS image as uint8 0/1: background 0 and one lesion value (1 or 255), grey or equal-channel RGB."""
    gray = as_grayscale(array, path, case)
    values = np.unique(gray)
    foreground = values[values != 0]
    if foreground.size > 1 or (foreground.size == 1 and foreground[0] not in (1, 255)):
        shown = ", ".join(str(v) for v in values[:6])
        raise UserError(f"case {case}: {path} is not a binary lesion mask (values {shown}); expected 0 and "
                        "one of 1/255; binarise it (mask > 0) or remove the case")
    return (gray > 0).astype(np.uint8)


def mask_from_overlay(png: np.ndarray, overlay: np.ndarray, tolerance: int = OVERLAY_TOLERANCE,
                      min_area_px: int = OVERLAY_MIN_AREA_PX) -> np.ndarray:
    """Boolean lesion mask of a grey ``png`` (H, W) and its ``overlay`` (H, W) or (H, W, 3/4); see the
    module docstring for the rule."""
    colour = overlay[..., :3] if overlay.ndim == 3 else overlay[..., None]
    difference = np.abs(colour.astype(np.int16) - png.astype(np.int16)[..., None]).max(axis=-1)
    mask = ndimage.binary_fill_holes(difference > tolerance)
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if count == 0:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    keep = np.concatenate([[False], areas >= min_area_px])
    return keep[labels]


def lesion_count_2d(mask: np.ndarray) -> int:
    """Number of 8-connected lesions in a 2D mask."""
    return int(ndimage.label(mask > 0, structure=EIGHT_CONNECTED)[1])
