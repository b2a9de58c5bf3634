"""MRI intensities of a synthetic head (``phantom.anatomy``): DWI (b=1000), ADC, FLAIR and T1w.

Acute lesions are bright on DWI and dark on ADC (restricted diffusion); stroke mimics are DWI-bright
with normal or raised ADC (T2 shine-through), so DWI alone cannot separate them and a network has to
use ADC, as a radiologist does. The difficulty is pinned by ``Difficulty`` (see docs/data.md: at up to 2:1 DWI contrast with few mimics a global DWI threshold beat
a small U-Net; at 1.4-1.8:1 with 2-5 mimics per case it did not). DWI, FLAIR and T1w carry a smooth
multiplicative bias field and Rician noise; ADC, a ratio of two acquisitions, has no bias and Gaussian
noise. Chronic lesions on T1w (ATLAS v2.0) are dark.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_stroke.phantom.anatomy import BACKGROUND, WHITE, Head, centred_coordinates, smooth_noise

# Noise-free tissue intensities, indexed by the tissue labels of phantom.anatomy (0 BACKGROUND, 1 SCALP,
# 2 CSF, 3 GREY, 4 WHITE).
DWI_TISSUE = np.array([0.0, 80.0, 120.0, 440.0, 400.0], np.float32)        # arbitrary units, WM = 400
ADC_TISSUE = np.array([0.0, 400.0, 3000.0, 850.0, 720.0], np.float32)      # 1e-6 mm^2/s
FLAIR_TISSUE = np.array([0.0, 200.0, 60.0, 360.0, 300.0], np.float32)
T1W_TISSUE = np.array([0.0, 70.0, 30.0, 75.0, 110.0], np.float32)


@dataclass(frozen=True)
class Difficulty:
    """Contrasts are factors on the surrounding tissue's noise-free intensity, drawn per lesion/mimic."""

    dwi_lesion_contrast: tuple[float, float] = (1.4, 1.8)
    adc_lesion_factor: tuple[float, float] = (0.5, 0.7)
    flair_lesion_factor: tuple[float, float] = (1.0, 1.3)   # acute: FLAIR often still normal
    t1w_lesion_factor: tuple[float, float] = (0.35, 0.65)   # chronic: hypointense
    mimic_dwi_contrast: tuple[float, float] = (1.4, 1.8)
    mimic_adc_factor: tuple[float, float] = (1.0, 1.4)      # normal or raised: T2 shine-through
    mimic_flair_factor: tuple[float, float] = (1.2, 1.6)
    mimics_per_case: tuple[int, int] = (2, 5)                # inclusive range, for cases that have mimics
    mimic_case_fraction: float = 0.9
    noise_fraction: float = 0.07       # noise sigma / white-matter intensity
    bias_peak_to_peak: float = 0.4     # (max - min) / mean of the bias field inside the brain


DEFAULT_DIFFICULTY = Difficulty()


def draw_mimic_count(rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY) -> int:
    if rng.uniform() >= difficulty.mimic_case_fraction:
        return 0
    low, high = difficulty.mimics_per_case
    return int(rng.integers(low, high + 1))


def _factor_map(labels: np.ndarray, factor_range: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """1 outside ``labels``, a per-label factor inside, with one voxel of partial-volume blur at edges."""
    factors = np.ones(int(labels.max()) + 1, np.float32)
    factors[1:] = rng.uniform(*factor_range, size=len(factors) - 1)
    if len(factors) == 1:
        return np.ones(labels.shape, np.float32)
    return 1.0 + ndimage.gaussian_filter(factors[labels] - 1.0, sigma=0.6)


def bias_field(head: Head, rng: np.random.Generator, peak_to_peak: float) -> np.ndarray:
    """Smooth multiplicative field: a linear ramp plus very low-frequency noise, scaled so that
    (max - min) / mean inside the brain equals ``peak_to_peak``."""
    shape, spacing = head.tissue.shape, head.spacing_mm
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    half_extent_mm = float(np.mean(np.array(shape) * spacing)) / 2.0
    ramp = sum(d * c / half_extent_mm for d, c in zip(direction, centred_coordinates(shape, spacing)))
    field = ramp + 0.3 * smooth_noise(shape, spacing, 0.3 * float(np.mean(np.array(shape) * spacing)), rng)
    brain_voxels = field[head.brain_mask]
    low, high = float(brain_voxels.min()), float(brain_voxels.max())
    return (1.0 + peak_to_peak * ((field - low) / (high - low) - 0.5)).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.sqrt(real * real + imaginary * imaginary).astype(np.float32)


def dwi_adc_flair(head: Head, rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DWI and ADC with noise on the head's grid, and a noise-free FLAIR (with bias) on the same grid, to be
    resampled onto FLAIR's own grid and given noise there with ``rician``."""
    d = difficulty
    dwi = DWI_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.dwi_lesion_contrast, rng) \
        * _factor_map(head.mimic_labels, d.mimic_dwi_contrast, rng)
    adc = ADC_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.adc_lesion_factor, rng) \
        * _factor_map(head.mimic_labels, d.mimic_adc_factor, rng)
    flair = FLAIR_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.flair_lesion_factor, rng) \
        * _factor_map(head.mimic_labels, d.mimic_flair_factor, rng)
    dwi = rician(dwi * bias_field(head, rng, d.bias_peak_to_peak), d.noise_fraction * DWI_TISSUE[WHITE], rng)
    adc = adc + rng.normal(0.0, 0.05 * ADC_TISSUE[WHITE], adc.shape).astype(np.float32)
    adc = np.where(head.tissue == BACKGROUND, 0.0, np.maximum(adc, 0.0)).astype(np.float32)
    flair = (flair * bias_field(head, rng, d.bias_peak_to_peak)).astype(np.float32)
    return dwi.astype(np.float32), adc, flair


def t1w(head: Head, rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY) -> np.ndarray:
    """T1-weighted image with dark chronic lesions, bias field and Rician noise."""
    d = difficulty
    signal = T1W_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.t1w_lesion_factor, rng)
    signal = signal * bias_field(head, rng, d.bias_peak_to_peak)
    return rician(signal, d.noise_fraction * T1W_TISSUE[WHITE], rng)
