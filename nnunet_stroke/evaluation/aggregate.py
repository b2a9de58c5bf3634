"""Aggregation of per-case metrics (mean, sample standard deviation, n) and writing metrics.json.

Undefined values are ``None`` (JSON null) and are left out of the mean; ``n`` says how many cases
entered. The standard deviation uses ddof=1 (null for n < 2). NaN never reaches the file:
`write_metrics` refuses it, and writes through a temporary file so no half-written file is left.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from nnunet_stroke.staging import atomic_write_text


def summarize(values: Iterable[float | None]) -> dict:
    """{mean, std, n} over the values that are not None."""
    defined = np.array([v for v in values if v is not None], dtype=float)
    n = int(defined.size)
    return {"mean": float(defined.mean()) if n else None,
            "std": float(defined.std(ddof=1)) if n > 1 else None,
            "n": n}


def numeric_keys(cases: list[dict]) -> list[str]:
    """Keys whose values are numbers (bool excluded) in at least one case, in first-seen order."""
    keys: dict[str, bool] = {}
    for case in cases:
        for key, value in case.items():
            keys[key] = keys.get(key, False) or (isinstance(value, (int, float)) and not isinstance(value, bool))
    return [key for key, numeric in keys.items() if numeric]


def aggregate_cases(cases: list[dict]) -> dict[str, dict]:
    return {key: summarize(case.get(key) for case in cases) for key in numeric_keys(cases)}


def _to_json(value):
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("metrics must not contain NaN or infinity; undefined values are None")
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics(metrics: dict, path) -> None:
    """Write ``metrics`` as JSON (numpy scalars converted, NaN refused), atomically."""
    atomic_write_text(path, json.dumps(_to_json(metrics), indent=1, allow_nan=False) + "\n")


def load_metrics(path) -> dict:
    from nnunet_stroke.errors import UserError

    try:
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read metrics file {path}: {error}") from None
    if not isinstance(metrics, dict) or not {"protocol", "cases", "aggregate"} <= set(metrics):
        raise UserError(f"{path} is not a metrics.json of `nnunet-stroke evaluate` (needs protocol, cases, aggregate)")
    return metrics
