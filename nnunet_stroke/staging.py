"""The package's one way to write files and folders that must never be seen half-written.

- ``atomic_write_text``: a file (JSON, CSV, markdown) written to a hidden sibling and renamed into place.
- ``staged_folder``: a folder tree built in a hidden sibling ``.<tag>.<host>.<pid>.<start>.<random>`` and
  renamed into place when complete. Every new staging folder first removes the stale ones of the same
  tag in the same parent: those of a process that no longer exists on this host (a run killed by SIGKILL
  or a SLURM time limit), or whose pid now belongs to a process started after the folder was made. On
  another host only folders older than ``FOREIGN_STALE_SECONDS`` are removed (their pid cannot be checked).
- ``check_writable``: a folder can take a new file and has some free space, checked before long work.

Files and folders are created with ``open``/``os.mkdir`` and so get the user's normal permissions
(0666/0777 minus the umask); ``tempfile.mkstemp``/``mkdtemp`` would make them 0600/0700, which survives the
rename.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

from nnunet_stroke.errors import UserError

FOREIGN_STALE_SECONDS = 24 * 3600
MIN_FREE_BYTES = 16 * 1024 * 1024
_HOST = socket.gethostname().replace(".", "-") or "host"


def _process_start_time(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` (Linux /proc), None when unknown; raises ProcessLookupError if gone."""
    try:
        os.kill(pid, 0)  # ProcessLookupError when gone
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def _is_stale(folder: Path, tag: str) -> bool:
    fields = folder.name[len(tag) + 2:].split(".")
    try:
        host, pid, started = fields[0], int(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        return False  # not one of ours
    if host != _HOST:
        return time.time() - started > FOREIGN_STALE_SECONDS
    if pid == os.getpid():
        return False
    try:
        process_started = _process_start_time(pid)
    except ProcessLookupError:
        return True
    return process_started is not None and process_started > started + 1.0  # pid reused by a newer process


def remove_stale(parent: Path, tag: str) -> list[Path]:
    """Remove the stale staging folders ``.<tag>.*`` in ``parent`` (see the module docstring); return them."""
    removed = []
    for folder in sorted(Path(parent).glob(f".{_glob_escape(tag)}.*")):
        if folder.is_dir() and _is_stale(folder, tag):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def new_staging_folder(parent: Path, tag: str) -> Path:
    """A new empty hidden folder in ``parent`` named after ``tag`` and this process (stale ones removed)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, tag)
    folder = parent / f".{tag}.{_HOST}.{os.getpid()}.{time.time():.3f}.{secrets.token_hex(3)}"
    os.mkdir(folder)
    return folder


@contextlib.contextmanager
def staged_folder(final: Path, tag: str | None = None, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder next to ``final``; on success it becomes ``final`` in one rename
    (an existing ``final`` is an error unless ``replace``); on any exception it is deleted."""
    final = Path(final)
    if final.exists() and not replace:
        raise UserError(f"{final} already exists; remove it or write into another folder")
    staging = new_staging_folder(final.parent, tag or f"{final.name}.partial")
    try:
        yield staging
        if final.exists():
            old = final.parent / f"{staging.name}.old"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden sibling that is renamed into place (no half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp"
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_writable(folder, what: str, min_free_bytes: int = MIN_FREE_BYTES) -> Path:
    """Raise a UserError unless ``folder`` (created if missing) takes a new file and has ``min_free_bytes``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}.{secrets.token_hex(3)}"
        with open(probe, "x") as handle:
            handle.write("x")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write into {folder} ({what}): {error.strerror or error}; "
                        "make it writable or choose another folder") from None
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise UserError(f"{folder} ({what}) has only {free // 1024} KiB free; free some space or choose another "
                        "folder")
    return folder


def os_error_message(error: OSError) -> str | None:
    """A user-facing message for an environment or path fault (disk full, read-only, permission, a path
    through a file or to nothing), else None (an unexpected error keeps its traceback)."""
    faults = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "operation not permitted", errno.ENOENT: "no such file or folder",
              errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EISDIR: "it is a folder",
              errno.EEXIST: "it exists and is not a folder"}
    if error.errno not in faults:
        return None
    where = error.filename or "a file"
    return f"{where}: {faults[error.errno]}; free space, fix the path or permissions, or choose another folder"
