"""The package's one process pool with a progress bar: a map over cases (conversion, evaluation)."""
from __future__ import annotations

import multiprocessing
from typing import Callable, Sequence


def parallel_map(function: Callable, items: Sequence, num_processes: int, description: str,
                 progress: bool = True) -> list:
    """``[function(item) for item in items]`` in a spawn pool of ``num_processes`` workers with a tqdm bar
    (``progress``), results in input order. ``function`` must be a module-level function (picklable under
    spawn); ``num_processes <= 1`` or a single item runs in this process."""
    from tqdm import tqdm

    bar = dict(total=len(items), desc=description, unit="case", disable=not progress)
    if num_processes <= 1 or len(items) <= 1:
        return [function(item) for item in tqdm(items, **bar)]
    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(items))) as pool:
        return list(tqdm(pool.imap(function, items), **bar))
