"""Write a phantom tree into a staging sibling and rename it into place at the end, so an interrupted run
never leaves a half-written dataset that looks complete (stale staging of killed runs is removed;
see nnunet_stroke/staging.py)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from nnunet_stroke.errors import UserError
from nnunet_stroke.staging import staged_folder


@contextlib.contextmanager
def staged_root(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder next to ``final``; rename it to ``final`` on success."""
    final = Path(final)
    if final.exists():
        raise UserError(f"{final} already exists; remove it or write the phantom into another folder")
    with staged_folder(final, tag=f"{final.name}.partial") as staging:
        yield staging
