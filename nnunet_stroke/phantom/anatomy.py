"""Label maps of a synthetic head: tissue classes, acute stroke lesions and stroke mimics.

Everything is drawn in physical millimetres around the grid centre, so the same head looks the same
at 2 mm, at 2x2x4 mm or on a CT grid. Modalities (MRI in ``phantom.mri``, CT in ``phantom.ct``) turn
these labels into intensities. Typical use::

    rng = np.random.default_rng(seed)
    head = make_head((40, 64, 64), (2.0, 2.0, 2.0), rng, lesion_count=2, mimic_count=3)
    head.tissue          # uint8 (z, y, x): BACKGROUND, SCALP (skull + scalp), CSF, GREY, WHITE
    head.lesion_labels   # uint16: 0 outside lesions, k inside lesion k (1..lesion_count)
    head.mimic_labels    # uint16: 0 outside mimics, k inside mimic k; never overlaps a lesion
    head.lesion_mask     # bool, the ground truth

With ``artefact_count`` (ISLES-like DWI), the head also gets skull-base susceptibility artefacts
(``head.artefact_labels``) and lesions are kept out of the skull-base band where they occur; with
``evolving_fraction`` > 0, lesions evolve with that probability and ``head.rim_mask`` marks their
pseudo-normalised rims (``phantom.confounders``). Without them, no extra random numbers are drawn, so
the other layouts' phantoms do not change.

A case's total lesion volume is drawn log-uniformly (default 0.3-100 ml, capped at 30 % of the brain
so small test grids stay plausible) and split at random between its lesions; shapes are randomly
oriented ellipsoids roughened by smooth noise, clipped to grey and white matter and regrown towards the
drawn volume. Mimics (0.5-16 ml each, at most 6 % of the brain) are blobs elsewhere in the brain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from nnunet_stroke.phantom.confounders import (BRAIN_RADIUS, pseudonormalised_rims, skull_base_artefacts,
                                               skull_base_zone)

BACKGROUND, SCALP, CSF, GREY, WHITE = 0, 1, 2, 3, 4

LESION_VOLUME_ML = (0.3, 100.0)
MIMIC_VOLUME_ML = (0.5, 16.0)
MAX_LESION_FRACTION_OF_BRAIN = 0.3


@dataclass(frozen=True)
class Head:
    tissue: np.ndarray
    lesion_labels: np.ndarray
    mimic_labels: np.ndarray
    spacing_mm: tuple[float, float, float]
    artefact_labels: np.ndarray | None = None  # uint16 skull-base artefacts (label 0 in the ground truth)
    rim_mask: np.ndarray | None = None         # bool, pseudo-normalised rims of evolving lesions (lesion)

    @property
    def artefact_mask(self) -> np.ndarray:
        return np.zeros(self.tissue.shape, bool) if self.artefact_labels is None else self.artefact_labels > 0

    @property
    def lesion_mask(self) -> np.ndarray:
        return self.lesion_labels > 0

    @property
    def mimic_mask(self) -> np.ndarray:
        return self.mimic_labels > 0

    @property
    def brain_mask(self) -> np.ndarray:
        return (self.tissue == GREY) | (self.tissue == WHITE)


def smooth_noise(shape: Sequence[int], spacing_mm: Sequence[float], sigma_mm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise with zero mean and unit standard deviation. Smooth fields are drawn on
    a grid no finer than ``sigma_mm / 2`` and interpolated linearly, so large grids stay fast."""
    coarse_spacing = [max(s, sigma_mm / 2.0) for s in spacing_mm]
    coarse_shape = [max(2, int(np.ceil(n * s / c))) for n, s, c in zip(shape, spacing_mm, coarse_spacing)]
    field = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32),
                                    sigma=[sigma_mm / c for c in coarse_spacing], mode="reflect")
    for axis, n in enumerate(shape):  # separable linear interpolation, one matrix product per axis
        field = np.moveaxis(np.tensordot(_linear_weights(field.shape[axis], n), field, axes=(1, axis)), 0, axis)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _linear_weights(source: int, target: int) -> np.ndarray:
    """(target, source) matrix of linear interpolation between voxel centres spanning the same extent."""
    position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0.0, source - 1.0)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, source - 1)
    weights = np.zeros((target, source), np.float32)
    np.add.at(weights, (np.arange(target), low), 1.0 - (position - low))
    np.add.at(weights, (np.arange(target), high), position - low)
    return weights


def centred_coordinates(shape: Sequence[int], spacing_mm: Sequence[float]) -> list[np.ndarray]:
    """Broadcastable (z, y, x) coordinates in mm, zero at the grid centre."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing_mm)]
    return list(np.meshgrid(*axes, indexing="ij", sparse=True))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _blob(coords: list[np.ndarray], centre_mm: np.ndarray, volume_mm3: float, roughness: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """A randomly oriented ellipsoid of about ``volume_mm3`` whose surface is roughened by ``roughness``,
    evaluated only inside a box that contains every voxel it can reach."""
    axes = np.array([1.0, rng.uniform(0.55, 1.0), rng.uniform(0.4, 1.0)])
    axes *= (volume_mm3 / (4.0 / 3.0 * np.pi * np.prod(axes))) ** (1.0 / 3.0)
    rotation = _random_rotation(rng)
    reach_mm = axes.max() * np.sqrt(1.0 + 0.35 * max(0.0, -float(roughness.min())))
    box = []
    for axis, (c, m) in enumerate(zip(coords, centre_mm)):
        values = c.ravel()
        inside = np.nonzero(np.abs(values - m) <= reach_mm)[0]
        box.append(slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0))
    offsets = [c[tuple(box[k] if k == axis else slice(None) for k in range(3))] - m
               for axis, (c, m) in enumerate(zip(coords, centre_mm))]
    radius2 = sum(sum(rotation[i, j] * offsets[j] for j in range(3)) ** 2 / axes[i] ** 2 for i in range(3))
    blob = np.zeros(roughness.shape, bool)
    blob[tuple(box)] = radius2 + 0.35 * roughness[tuple(box)] < 1.0
    return blob


def log_uniform(rng: np.random.Generator, low: float, high: float, size: int | None = None):
    return np.exp(rng.uniform(np.log(low), np.log(max(low, high)), size))


def _place_blobs(coords, allowed: np.ndarray, volumes_ml: Sequence[float], spacing_mm, rng: np.random.Generator,
                 roughness: np.ndarray) -> np.ndarray:
    labels = np.zeros(allowed.shape, np.uint16)
    candidates = np.argwhere(allowed)
    if len(candidates) == 0:
        return labels
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    for k, volume_ml in enumerate(volumes_ml, start=1):
        centre_index = candidates[rng.integers(len(candidates))]
        centre_mm = [(i - (n - 1) / 2.0) * s for i, n, s in zip(centre_index, allowed.shape, spacing_mm)]
        free = allowed & (labels == 0)
        target_ml, drawn_ml = volume_ml, volume_ml
        for _ in range(3):  # clipping at tissue borders shrinks a blob: grow it towards the drawn volume
            blob = _blob(coords, np.asarray(centre_mm), drawn_ml * 1000.0, roughness, rng) & free
            achieved_ml = float(blob.sum()) * voxel_ml
            if achieved_ml >= 0.8 * target_ml:
                break
            drawn_ml *= min(3.0, target_ml / max(achieved_ml, voxel_ml))
        blob[tuple(centre_index)] = labels[tuple(centre_index)] == 0  # never an empty blob
        labels[blob] = k
    return labels


def make_head(shape: Sequence[int], spacing_mm: Sequence[float], rng: np.random.Generator, lesion_count: int,
              mimic_count: int, lesion_volume_ml: tuple[float, float] = LESION_VOLUME_ML,
              mimic_volume_ml: tuple[float, float] = MIMIC_VOLUME_ML, artefact_count: int | None = None,
              evolving_fraction: float = 0.0) -> Head:
    """Draw one head on a (z, y, x) grid of ``shape`` voxels of ``spacing_mm``; see the module docstring."""
    shape = tuple(int(n) for n in shape)
    spacing_mm = tuple(float(s) for s in spacing_mm)
    coords = centred_coordinates(shape, spacing_mm)
    fov = np.array(shape) * np.array(spacing_mm)
    semi_axes = fov * np.array([0.45, 0.46, 0.42]) * rng.uniform(0.94, 1.02, 3)
    outline = smooth_noise(shape, spacing_mm, 0.15 * fov.mean(), rng)
    radius = np.sqrt(sum((c / a) ** 2 for c, a in zip(coords, semi_axes))) * (1.0 + 0.03 * outline)

    tissue = np.full(shape, BACKGROUND, np.uint8)
    tissue[radius < 1.0] = SCALP
    intracranial = radius < 0.86
    tissue[intracranial] = CSF
    brain = radius < BRAIN_RADIUS
    cortex_mm = rng.uniform(2.5, 4.0)
    gyri = smooth_noise(shape, spacing_mm, 2.5, rng)
    depth_mm = (BRAIN_RADIUS - radius) * semi_axes.mean()
    tissue[brain] = WHITE
    tissue[brain & (depth_mm < cortex_mm * (1.6 + 0.6 * gyri))] = GREY
    tissue[brain & (depth_mm < cortex_mm) & (gyri > 1.3)] = CSF  # sulci

    z, y, x = coords
    atrophy = rng.uniform(0.7, 1.4)
    for side in (-1.0, 1.0):
        horn = ((x - side * 0.13 * semi_axes[2]) / (0.09 * semi_axes[2] * atrophy)) ** 2 \
            + ((y + 0.05 * semi_axes[1]) / (0.33 * semi_axes[1])) ** 2 + ((z - 0.08 * semi_axes[0]) / (0.2 * semi_axes[0])) ** 2
        deep_grey = ((x - side * 0.3 * semi_axes[2]) / (0.12 * semi_axes[2])) ** 2 \
            + ((y - 0.05 * semi_axes[1]) / (0.17 * semi_axes[1])) ** 2 + ((z + 0.05 * semi_axes[0]) / (0.16 * semi_axes[0])) ** 2
        tissue[brain & (deep_grey < 1.0)] = GREY
        tissue[brain & (horn < 1.0)] = CSF

    parenchyma = (tissue == GREY) | (tissue == WHITE)
    artefacts, lesion_allowed = None, parenchyma
    if artefact_count is not None:
        normalised = [c / a for c, a in zip(coords, semi_axes)]
        artefacts = skull_base_artefacts(normalised, depth_mm, parenchyma, artefact_count, rng)
        lesion_allowed = parenchyma & ~skull_base_zone(normalised, depth_mm)
    brain_ml = float(parenchyma.sum()) * float(np.prod(spacing_mm)) / 1000.0
    roughness = smooth_noise(shape, spacing_mm, 3.0, rng)
    total_ml = float(log_uniform(rng, lesion_volume_ml[0], min(lesion_volume_ml[1], MAX_LESION_FRACTION_OF_BRAIN * brain_ml)))
    shares = rng.dirichlet(np.ones(lesion_count)) if lesion_count else np.zeros(0)
    lesion_volumes = np.maximum(total_ml * shares, lesion_volume_ml[0] / 2)
    lesions = _place_blobs(coords, lesion_allowed, lesion_volumes, spacing_mm, rng, roughness)
    away_from_lesions = lesion_allowed & ~ndimage.binary_dilation(lesions > 0, iterations=2)
    mimic_volumes = log_uniform(rng, mimic_volume_ml[0], min(mimic_volume_ml[1], 0.06 * brain_ml), mimic_count)
    mimics = _place_blobs(coords, away_from_lesions, mimic_volumes, spacing_mm, rng, roughness)
    rims = pseudonormalised_rims(lesions, spacing_mm, evolving_fraction, rng) if evolving_fraction > 0 else None
    return Head(tissue, lesions, mimics, spacing_mm, artefacts, rims)
