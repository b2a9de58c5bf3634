"""Write a phantom tree into a temporary sibling folder and rename it into place at the end, so an
interrupted run never leaves a half-written dataset that looks complete."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from nnunet_stroke.errors import UserError


@contextlib.contextmanager
def staged_root(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``final``; rename it to ``final`` on success."""
    final = Path(final)
    if final.exists():
        raise UserError(f"{final} already exists; remove it or write the phantom into another folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would survive the rename
    try:
        yield staging
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
