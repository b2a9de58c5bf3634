"""Voxel grids of the phantom and their SimpleITK images.

Arrays are (z, y, x); SimpleITK sizes and spacings are (x, y, z). Every grid is centred on the
physical origin, so grids with different spacing, size or direction are physically aligned: a FLAIR on
its own grid shows the same head as the DWI, as after a scanner's own reconstruction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]            # (z, y, x)
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # SimpleITK row-major, x-y-z

    def origin(self) -> tuple[float, float, float]:
        """Origin (x, y, z) that puts the grid's centre voxel at the physical origin."""
        half_extent = np.array([(n - 1) * s / 2.0 for n, s in zip(self.shape[::-1], self.spacing_mm[::-1])])
        return tuple(float(v) for v in -np.asarray(self.direction).reshape(3, 3) @ half_extent)

    def image(self, array: np.ndarray) -> sitk.Image:
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} does not match grid {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing_mm[::-1])
        image.SetDirection(self.direction)
        image.SetOrigin(self.origin())
        return image

    def resample(self, image: sitk.Image, linear: bool = True) -> np.ndarray:
        """``image`` resampled (physical space, zero outside) onto this grid, as an array."""
        reference = self.image(np.zeros(self.shape, np.uint8))
        interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
        return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0))


def rotation_direction(angle_deg: float, flip_x: bool) -> tuple[float, ...]:
    """Direction cosines of an axial rotation by ``angle_deg`` (about z), optionally with x mirrored."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    if flip_x:
        rotation = rotation @ np.diag([-1.0, 1.0, 1.0])
    return tuple(float(v) for v in rotation.ravel())


def write_nifti(array: np.ndarray, grid: Grid, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(grid.image(array), str(path), useCompression=True)
