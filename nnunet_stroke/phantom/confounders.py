"""Label maps of the confounders that no voxel rule separates from an infarct (docs/data.md, "Confounders").

- Susceptibility artefacts of echo-planar DWI at tissue-air interfaces of the skull base: bright on DWI
  and dark on ADC, like an infarct, but thin arcs along the brain's inferior-frontal border (over the
  orbits and frontal sinus) and inferior-temporal border (over the petrous bone and mastoid air cells).
  They are not lesions (label 0); their place and shape, not their voxels, tell them apart.
  ``skull_base_zone`` is the band of the brain's border where they occur; infarcts of the phantom are
  kept out of it (our simplification: a real infarct can reach these gyri) so that place is a reliable cue.
- Pseudo-normalised rims of evolving (subacute) infarcts: ``pseudonormalised_rims`` marks the outer
  2.5-5 mm of a lesion whose ADC has risen back to about normal around a core that is still restricted;
  the rim is lesion (label 1) and is told apart from normal tissue by its continuity with the core.

Coordinates are the head's normalised (z, y, x) coordinates (``anatomy.make_head``): z < 0 inferior,
y < 0 anterior, the brain's border at radius ``BRAIN_RADIUS``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

BRAIN_RADIUS = 0.82
ZONE_DEPTH_MM = 8.0            # skull-base band: this deep under the brain's border, lesions are kept out
ZONE_MIN_INFERIOR = 0.35       # ... where the direction from the centre points at least this far down
ARTEFACT_THICKNESS_MM = (3.0, 6.0)
# (centre direction, direction along the interface) in normalised (z, y, x): the orbitofrontal border
# runs left-right, the inferior-temporal borders run front-back
ARTEFACT_SITES = {
    "inferior_frontal": ((-0.55, -0.83, 0.0), (0.0, 0.0, 1.0)),
    "inferior_temporal_left": ((-0.62, -0.12, -0.78), (0.0, 1.0, 0.0)),
    "inferior_temporal_right": ((-0.62, -0.12, 0.78), (0.0, 1.0, 0.0)),
}
ARTEFACT_HALF_LENGTH_RAD = (0.35, 0.55)   # along the interface
ARTEFACT_HALF_WIDTH_RAD = (0.10, 0.18)    # across it
RIM_WIDTH_MM = (2.5, 5.0)
MIN_CORE_FRACTION = 0.15        # a lesion evolves only if its restricted core keeps this share of it


def _unit(vector: Sequence[float]) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    return vector / np.linalg.norm(vector)


def directions(normalised: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Unit direction from the head's centre (z, y, x components) and normalised radius of every voxel."""
    radius = np.sqrt(sum(c * c for c in normalised))
    return [c / np.maximum(radius, 1e-6) for c in normalised], radius


def skull_base_zone(normalised: Sequence[np.ndarray], depth_mm: np.ndarray) -> np.ndarray:
    """The brain's inferior border band (``ZONE_DEPTH_MM`` deep) where skull-base artefacts occur."""
    unit, _ = directions(normalised)
    return (depth_mm < ZONE_DEPTH_MM) & (-unit[0] >= ZONE_MIN_INFERIOR)


def skull_base_artefacts(normalised: Sequence[np.ndarray], depth_mm: np.ndarray, parenchyma: np.ndarray,
                         count: int, rng: np.random.Generator) -> np.ndarray:
    """Labels 1..count of thin arcs (2-4 mm thick, elongated along the border) at ``count`` of the
    ``ARTEFACT_SITES``, on grey and white matter; 0 elsewhere."""
    unit, _ = directions(normalised)
    zone = skull_base_zone(normalised, depth_mm)
    labels = np.zeros(parenchyma.shape, np.uint16)
    sites = rng.permutation(len(ARTEFACT_SITES))[:count]
    for label, site in enumerate(sites, start=1):
        centre, along = (np.asarray(v) for v in list(ARTEFACT_SITES.values())[int(site)])
        centre = _unit(centre + rng.normal(0.0, 0.06, 3))
        along = _unit(along - np.dot(along, centre) * centre)
        across = np.cross(centre, along)
        length, width = rng.uniform(*ARTEFACT_HALF_LENGTH_RAD), rng.uniform(*ARTEFACT_HALF_WIDTH_RAD)
        thickness = rng.uniform(*ARTEFACT_THICKNESS_MM)
        cosine = sum(u * c for u, c in zip(unit, centre))
        a = sum(u * c for u, c in zip(unit, along))
        b = sum(u * c for u, c in zip(unit, across))
        patch = (cosine > 0) & ((a / length) ** 2 + (b / width) ** 2 < 1.0)
        labels[patch & zone & (depth_mm < thickness) & parenchyma & (labels == 0)] = label
    return labels


def pseudonormalised_rims(lesion_labels: np.ndarray, spacing_mm: Sequence[float], evolving_fraction: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Rim voxels (bool) of the lesions drawn as evolving (each with probability ``evolving_fraction``):
    the voxels within a 2.5-5 mm rim of the lesion's surface, if its core keeps ``MIN_CORE_FRACTION``."""
    rims = np.zeros(lesion_labels.shape, bool)
    for label, box in enumerate(ndimage.find_objects(lesion_labels), start=1):
        if box is None or rng.uniform() >= evolving_fraction:
            continue
        padded = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        lesion = lesion_labels[padded] == label
        depth = ndimage.distance_transform_edt(np.pad(lesion, 1), sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
        rim = lesion & (depth <= rng.uniform(*RIM_WIDTH_MM))
        if (lesion & ~rim).sum() >= MIN_CORE_FRACTION * lesion.sum():
            rims[padded] |= rim
    return rims
