"""Checks that an image file is whole before its voxels are trusted, shared by the converters and
``evaluate``.

SimpleITK reads a truncated ``.nii.gz`` or ``.nii`` without complaint and fills the missing voxels with
zeros (a cut-short lesion mask loses lesion voxels silently). ``check_complete`` therefore reads the
whole file once: a gzip stream is decompressed to its end, which checks its CRC and length trailer, and
a NIfTI file must hold at least the header's offset plus every voxel the header announces. macOS
resource files (``._name``, written next to every file copied from a Mac to a foreign file system) are
not images: ``is_resource_fork`` tells the file finders to skip them.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nnunet_stroke.errors import UserError

NIFTI_ENDINGS = (".nii.gz", ".nii")
_CHUNK = 1 << 22


def is_resource_fork(path: Path) -> bool:
    """True for macOS AppleDouble files (``._*``), which are never images."""
    return Path(path).name.startswith("._")


def is_nifti(path: Path) -> bool:
    return Path(path).name.lower().endswith(NIFTI_ENDINGS)


def unreadable(path: Path, case: str, reason: str) -> UserError:
    return UserError(f"case {case}: cannot read {path} ({reason}); the file is truncated or corrupt: "
                     "re-download or replace it, or remove the case")


def _bytes_in(path: Path) -> int:
    """Bytes of ``path`` after decompression; a gzip stream is read to its end (CRC and length checked)."""
    opener = gzip.open if Path(path).name.lower().endswith(".gz") else open
    total = 0
    with opener(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    return total


def nifti_shape(path: Path, case: str) -> tuple[int, ...]:
    """The voxel shape a NIfTI header announces (x, y, z[, t, ...])."""
    import nibabel

    try:
        return tuple(int(s) for s in nibabel.load(str(path)).shape)
    except Exception as error:  # nibabel raises its own, OS and value errors for a broken header
        raise unreadable(path, case, str(error).strip().splitlines()[-1] if str(error).strip()
                         else type(error).__name__) from None


def check_complete(path: Path, case: str) -> None:
    """Decode ``path`` to its end; a truncated or corrupt gzip stream or a NIfTI file shorter than its
    header says is a UserError naming the case and the file."""
    path = Path(path)
    try:
        available = _bytes_in(path)
    except (EOFError, OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise unreadable(path, case, str(error) or type(error).__name__) from None
    if is_nifti(path):
        import nibabel

        header = nibabel.load(str(path)).header
        needed = int(header.get_data_offset()) + int(np.prod(header.get_data_shape(), dtype=np.int64)) * \
            header.get_data_dtype().itemsize
        if available < needed:
            raise unreadable(path, case, f"{available} bytes of voxel data where the header announces {needed}")


def complete_nifti_values(path: Path, case: str) -> np.ndarray:
    """The voxel values of a NIfTI file as stored, from one complete read (``check_complete`` and the
    decoding in a single decompression)."""
    import io

    import nibabel

    path = Path(path)
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as stream:
            data = stream.read()
    except (EOFError, OSError, zlib.error) as error:
        raise unreadable(path, case, str(error) or type(error).__name__) from None
    header_size = int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big")
    image_class = nibabel.Nifti2Image if 540 in header_size else nibabel.Nifti1Image
    try:
        image = image_class.from_file_map({"header": nibabel.FileHolder(fileobj=io.BytesIO(data)),
                                           "image": nibabel.FileHolder(fileobj=io.BytesIO(data))})
        return np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises its own, OS and value errors for a broken file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise unreadable(path, case, reason) from None


def check_3d(path: Path, case: str) -> bool:
    """For a NIfTI file: True when it is stored as 3-D; False when it is 4-D or more with singleton extra
    axes (the caller squeezes it); a UserError when an extra axis holds several volumes."""
    shape = nifti_shape(path, case)
    if len(shape) <= 3:
        return True
    if any(s != 1 for s in shape[3:]):
        raise UserError(f"case {case}: {path} holds {shape[3:]} volumes along its 4th+ axes (shape {shape}), "
                        "expected one 3-D volume; split out the volume you want or remove the case")
    return False
