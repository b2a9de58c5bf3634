"""MRI intensities of a synthetic head (``phantom.anatomy``): DWI (b=1000), ADC, FLAIR and T1w.

Acute lesions are bright on DWI and dark on ADC (restricted diffusion). Three confounders make sure that
no rule on one voxel's DWI and ADC values segments them (docs/data.md, "Confounders"):

- T2 shine-through mimics: DWI-bright with clearly raised ADC (label 0);
- skull-base susceptibility artefacts (``phantom.confounders``): DWI-bright and ADC-low like an infarct,
  as thin arcs at the brain's inferior-frontal and inferior-temporal border (label 0);
- evolving lesions: a DWI-bright rim whose ADC has pseudo-normalised (within ``rim_adc_factor`` of the
  tissue's) around a restricted core (label 1).

Lesions are heterogeneous (a smooth multiplicative field on their DWI and ADC contrast). The difficulty is
pinned by ``Difficulty`` (see docs/data.md: at up to 2:1 DWI contrast with few mimics a global DWI
threshold beat a small U-Net; at 1.4-1.8:1 with 2-5 mimics per case it did not). DWI, FLAIR and T1w carry
a smooth multiplicative bias field and Rician noise; ADC, a ratio of two acquisitions, has no bias and
Gaussian noise, and stays in physical units (1e-6 mm^2/s). ``with_scanner`` gives another scanner's
profile (noise, bias field, DWI contrast). Chronic lesions on T1w (ATLAS v2.0) are dark.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from nnunet_stroke.phantom.anatomy import BACKGROUND, WHITE, Head, centred_coordinates, smooth_noise

Range = tuple[float, float]

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
    mimic_adc_factor: tuple[float, float] = (1.2, 1.6)      # clearly raised: T2 shine-through
    mimic_flair_factor: tuple[float, float] = (1.2, 1.6)
    mimics_per_case: tuple[int, int] = (2, 5)                # inclusive range, for cases that have mimics
    mimic_case_fraction: float = 0.9
    artefact_dwi_contrast: tuple[float, float] = (1.4, 1.8)  # as lesions: no voxel rule tells them apart
    artefact_adc_factor: tuple[float, float] = (0.5, 0.7)
    artefacts_per_case: tuple[int, int] = (1, 3)             # inclusive range, of the three skull-base sites
    evolving_fraction: float = 0.7                           # lesions with a pseudo-normalised rim
    rim_adc_factor: tuple[float, float] = (0.92, 1.08)       # rim ADC / tissue ADC
    lesion_heterogeneity: float = 0.1  # sd of a smooth (3 mm) relative field on lesion DWI and ADC
    noise_fraction: float = 0.07       # noise sigma / white-matter intensity
    adc_noise_fraction: float = 0.08   # ADC noise sigma / white-matter ADC (about 60e-6 mm^2/s)
    bias_peak_to_peak: float = 0.4     # (max - min) / mean of the bias field inside the brain


DEFAULT_DIFFICULTY = Difficulty()


def with_scanner(difficulty: Difficulty, noise: float = 1.0, bias: float = 1.0, contrast: float = 1.0) -> Difficulty:
    """Another scanner's profile: noise (DWI, FLAIR, T1w and ADC) and the bias field's peak-to-peak times
    ``noise`` and ``bias``; every finding's DWI contrast excess (factor - 1) times ``contrast``. ADC
    values stay physical: a scanner changes their noise, not their scale."""
    def scaled(factors: Range) -> Range:
        return tuple(1.0 + (f - 1.0) * contrast for f in factors)

    return replace(difficulty, noise_fraction=difficulty.noise_fraction * noise,
                   adc_noise_fraction=difficulty.adc_noise_fraction * noise,
                   bias_peak_to_peak=difficulty.bias_peak_to_peak * bias,
                   dwi_lesion_contrast=scaled(difficulty.dwi_lesion_contrast),
                   mimic_dwi_contrast=scaled(difficulty.mimic_dwi_contrast),
                   artefact_dwi_contrast=scaled(difficulty.artefact_dwi_contrast))


def draw_artefact_count(rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY) -> int:
    low, high = difficulty.artefacts_per_case
    return int(rng.integers(low, high + 1))


def draw_mimic_count(rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY) -> int:
    if rng.uniform() >= difficulty.mimic_case_fraction:
        return 0
    low, high = difficulty.mimics_per_case
    return int(rng.integers(low, high + 1))


def _per_label(labels: np.ndarray, factor_range: Range, rng: np.random.Generator) -> np.ndarray:
    """1 outside ``labels``, one factor drawn from ``factor_range`` per label inside (no blur)."""
    factors = np.ones(int(labels.max()) + 1, np.float32)
    factors[1:] = rng.uniform(*factor_range, size=len(factors) - 1)
    return factors[labels]


def _partial_volume(factors: np.ndarray) -> np.ndarray:
    """One voxel of partial-volume blur at the edges of a factor map (1 = no change)."""
    return 1.0 + ndimage.gaussian_filter(factors - 1.0, sigma=0.6)


def _factor_map(labels: np.ndarray, factor_range: Range, rng: np.random.Generator) -> np.ndarray:
    """1 outside ``labels``, a per-label factor inside, with one voxel of partial-volume blur at edges."""
    if labels.max() == 0:
        return np.ones(labels.shape, np.float32)
    return _partial_volume(_per_label(labels, factor_range, rng))


def _lesion_factor_maps(head: Head, d: Difficulty, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """DWI and ADC factor maps of the lesions: per-lesion contrast, a pseudo-normalised ADC in the rims of
    evolving lesions, and a smooth heterogeneity field on both."""
    if head.lesion_labels.max() == 0:
        return np.ones(head.tissue.shape, np.float32), np.ones(head.tissue.shape, np.float32)
    dwi = _per_label(head.lesion_labels, d.dwi_lesion_contrast, rng)
    adc = _per_label(head.lesion_labels, d.adc_lesion_factor, rng)
    if head.rim_mask is not None:
        adc = np.where(head.rim_mask, _per_label(head.lesion_labels, d.rim_adc_factor, rng), adc)
    lesion = head.lesion_mask
    for factors in (dwi, adc):
        field = smooth_noise(head.tissue.shape, head.spacing_mm, 3.0, rng)
        factors[lesion] *= np.clip(1.0 + d.lesion_heterogeneity * field[lesion], 0.5, 1.5)
    return _partial_volume(dwi), _partial_volume(adc)


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
    lesion_dwi, lesion_adc = _lesion_factor_maps(head, d, rng)
    dwi = DWI_TISSUE[head.tissue] * lesion_dwi * _factor_map(head.mimic_labels, d.mimic_dwi_contrast, rng)
    adc = ADC_TISSUE[head.tissue] * lesion_adc * _factor_map(head.mimic_labels, d.mimic_adc_factor, rng)
    if head.artefact_labels is not None:
        dwi = dwi * _factor_map(head.artefact_labels, d.artefact_dwi_contrast, rng)
        adc = adc * _factor_map(head.artefact_labels, d.artefact_adc_factor, rng)
    flair = FLAIR_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.flair_lesion_factor, rng) \
        * _factor_map(head.mimic_labels, d.mimic_flair_factor, rng)
    dwi = rician(dwi * bias_field(head, rng, d.bias_peak_to_peak), d.noise_fraction * DWI_TISSUE[WHITE], rng)
    adc = adc + rng.normal(0.0, d.adc_noise_fraction * ADC_TISSUE[WHITE], adc.shape).astype(np.float32)
    adc = np.where(head.tissue == BACKGROUND, 0.0, np.maximum(adc, 0.0)).astype(np.float32)
    flair = (flair * bias_field(head, rng, d.bias_peak_to_peak)).astype(np.float32)
    return dwi.astype(np.float32), adc, flair


def t1w(head: Head, rng: np.random.Generator, difficulty: Difficulty = DEFAULT_DIFFICULTY) -> np.ndarray:
    """T1-weighted image with dark chronic lesions, bias field and Rician noise."""
    d = difficulty
    signal = T1W_TISSUE[head.tissue] * _factor_map(head.lesion_labels, d.t1w_lesion_factor, rng)
    signal = signal * bias_field(head, rng, d.bias_peak_to_peak)
    return rician(signal, d.noise_fraction * T1W_TISSUE[WHITE], rng)
