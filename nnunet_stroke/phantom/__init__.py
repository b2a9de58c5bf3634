"""Synthetic stroke data in the real datasets' file layouts, the package's embedded default data.

``write_phantom(out, layout, cases, seed, shape)`` writes one dataset tree under ``out`` and returns its
root (the folder a user would pass to ``nnunet-stroke convert``). Layouts (``LAYOUTS``):

- ``isles22``, ``isles22-github``: DWI/ADC/FLAIR + masks, ISLES 2022 releases (``phantom.isles22``)
- ``atlas2``: T1w + masks, ATLAS v2.0 (``phantom.atlas2``)
- ``teknofest``, ``aisd``: CT sets (``phantom.ct``)

Label maps (tissue, lesions, mimics) come from ``phantom.anatomy.make_head``, reusable for any modality.
The same seed gives byte-identical files.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from nnunet_stroke.errors import UserError

# layout -> (module, function, extra keyword arguments, accepts a shape)
LAYOUTS: dict[str, tuple[str, str, dict, bool]] = {
    "isles22": ("nnunet_stroke.phantom.isles22", "write_isles22", {"github_layout": False}, True),
    "isles22-github": ("nnunet_stroke.phantom.isles22", "write_isles22", {"github_layout": True}, True),
    "atlas2": ("nnunet_stroke.phantom.atlas2", "write_atlas2", {}, True),
    "teknofest": ("nnunet_stroke.phantom.ct", "write_teknofest", {}, False),
    "aisd": ("nnunet_stroke.phantom.ct", "write_aisd", {}, True),
}


def write_phantom(out: Path, layout: str = "isles22", cases: int = 20, seed: int = 0,
                  shape: tuple[int, int, int] | None = None) -> Path:
    """Write ``cases`` synthetic cases in ``layout`` under ``out``; return the dataset root written."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown phantom layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if cases < 1:
        raise UserError(f"--cases must be at least 1, got {cases}")
    module_name, function_name, options, accepts_shape = LAYOUTS[layout]
    if shape is not None:
        if not accepts_shape:
            raise UserError(f"layout {layout} has a fixed image size; drop --shape")
        if len(shape) != 3 or min(shape) < 16:
            raise UserError(f"--shape needs three sizes Z Y X of at least 16 voxels, got {tuple(shape)}")
        options = {**options, "shape": tuple(int(n) for n in shape)}
    writer = getattr(importlib.import_module(module_name), function_name)
    return writer(Path(out), cases, seed, **options)
