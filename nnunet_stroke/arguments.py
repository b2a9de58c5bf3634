"""Argument types for the sub-commands' numeric options: a non-finite or out-of-range number (``nan``,
``inf``, ``-3``) is refused by argparse with a message naming the option, before any work starts."""
from __future__ import annotations

import argparse
import math
import os


def _number(text: str, kind: type, minimum: float, inclusive: bool):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number {bound}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 0, inclusive=False)


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, inclusive=False)


def non_negative_float(text: str) -> float:
    return _number(text, float, 0.0, inclusive=True)


def non_negative_int(text: str) -> int:
    return _number(text, int, 0, inclusive=True)


def add_prediction_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """nnU-Net's prediction run options as its own commands spell them: --disable_tta, -device, -npp, -nps."""
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring (8x faster in 3D)")
    parser.add_argument("-device", default="cuda", choices=("cuda", "cpu", "mps"))
    parser.add_argument("-npp", type=non_negative_int, default=int(os.environ.get("nnUNet_npp", 0)),
                        help="preprocessing processes (0 with -nps 0: everything in this process)")
    parser.add_argument("-nps", type=non_negative_int, default=int(os.environ.get("nnUNet_nps", 0)),
                        help="segmentation export processes")
