"""The ways the fuzz table (tests/reliability_scenarios.py) damages a copy of phantom data: truncated or
garbage files, wrong values, shapes, spacing, orientation or origin, macOS resource forks."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def truncate(path: Path, fraction: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def cut_gzip_trailer(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-4])


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(2000))


def nifti(path: Path):
    import nibabel

    return nibabel.load(str(path))


def _save(path: Path, array: np.ndarray, like) -> None:
    import nibabel

    nibabel.save(nibabel.Nifti1Image(array, like.affine), str(path))


def with_value(path: Path, value: float) -> None:
    image = nifti(path)
    array = np.asanyarray(image.dataobj).astype(np.float32)
    array[tuple(s // 2 for s in array.shape)] = value
    _save(path, array, image)


def four_d(path: Path, volumes: int) -> None:
    image = nifti(path)
    array = np.asanyarray(image.dataobj)
    _save(path, np.stack([array] * volumes, axis=-1), image)


def other_spacing(path: Path) -> None:
    import nibabel

    image = nifti(path)
    nibabel.save(nibabel.Nifti1Image(np.asanyarray(image.dataobj), np.diag([1.5, 1.5, 1.5, 1.0])), str(path))


def uncompressed_truncated(path: Path) -> None:
    plain = path.with_name(path.name[:-3])
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    path.unlink()
    truncate(plain, 0.7)


def resource_forks(folder: Path) -> None:
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        path.with_name("._" + path.name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")


def flip_x(path: Path) -> None:
    """The same voxels in physical space, stored with the x axis reversed (direction and origin adjusted)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(image)[:, :, ::-1]))
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint((image.GetSize()[0] - 1, 0, 0)))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    direction[:, 0] *= -1
    flipped.SetDirection(tuple(direction.ravel()))
    sitk.WriteImage(flipped, str(path))


def shift_origin(path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    image.SetOrigin(tuple(o + 5.0 for o in image.GetOrigin()))
    sitk.WriteImage(image, str(path))
