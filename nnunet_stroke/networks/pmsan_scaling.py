"""Compound scaling of PMSAN (section "Progressive Compound Scaling").

The paper prints ``Depth = alpha * phi``, ``Width = beta * phi**2``, ``Resolution = gamma * phi`` and
reports PMSAN-S/M/L/XL (phi = 1.0/1.3/1.6/2.0) with 5.2/9.7/16.3/28.6 M parameters and 4.8/10.5/21.4/42.3
GFLOPs. Taken literally (depth linear, channels quadratic in phi) the parameters would grow like phi**5,
i.e. XL/S = 32; the paper's sizes grow like phi**2.46 and its FLOPs like phi**3.14.

Reading used here (fixed before counting): the three constants are exponents of power laws in phi,

    blocks per stage  = round(base_depth * phi**ALPHA)
    channels          = round(base_width * phi**BETA / 8) * 8
    in-plane patch    = planned patch * phi**GAMMA   (see :func:`scaled_patch_size`)

with BETA = 1 (channels grow like phi, so the weights of one layer grow like phi**2: the "phi**2" of the
width line), ALPHA = 0.45 so that parameters grow like phi**(ALPHA + 2 * BETA) = phi**2.45, and
GAMMA = 0.35 so that per-slice FLOPs grow like phi**(ALPHA + 2 * BETA + 2 * GAMMA) = phi**3.15 - the
growth rates of the paper's own table. The base widths/depths (phi = 1) live in the presets.
"""
from __future__ import annotations

import math
from typing import Sequence

ALPHA_DEPTH = 0.45
BETA_WIDTH = 1.0
GAMMA_RESOLUTION = 0.35

PAPER_SIZES = {"s": (1.0, 5.2e6), "m": (1.3, 9.7e6), "l": (1.6, 16.3e6), "xl": (2.0, 28.6e6)}


def scaled_depth(base_depth: int, phi: float) -> int:
    return max(1, round(base_depth * phi**ALPHA_DEPTH))


def scaled_width(base_width: int, phi: float, multiple: int = 8) -> int:
    return max(multiple, round(base_width * phi**BETA_WIDTH / multiple) * multiple)


def resolution_multiplier(phi: float) -> float:
    return phi**GAMMA_RESOLUTION


def scaled_patch_size(patch_size: Sequence[int], strides: Sequence[Sequence[int]], phi: float) -> list[int]:
    """In-plane axes of ``patch_size`` times ``phi**GAMMA``, rounded up to a multiple of the cumulative
    stride of that axis (so the planned pooling still divides it); the slice axis of a 3D patch is kept.

    nnU-Net plans one patch per configuration from the data and the GPU budget; PMSAN's resolution axis
    is applied on top of it as an added plans configuration (``inherits_from`` the planned one, with this
    patch), see docs/pmsan.md. The four presets are trained on the planned patch unless such a
    configuration is chosen with ``-c``.
    """
    cumulative = [math.prod(stride[axis] for stride in strides) for axis in range(len(patch_size))]
    first_in_plane = len(patch_size) - 2
    scaled = list(patch_size)
    for axis in range(first_in_plane, len(patch_size)):
        target = patch_size[axis] * resolution_multiplier(phi)
        scaled[axis] = int(math.ceil(target / cumulative[axis]) * cumulative[axis])
    return scaled
