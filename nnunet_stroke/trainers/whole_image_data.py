"""Whole-image batches for the classification trainers (:mod:`nnunet_stroke.trainers.classification`).

nnU-Net's data loader cuts patches; an image-level classifier sees the whole preprocessed image instead:
the whole volume of a ``3d_*`` configuration, ``(C, D, H, W)``, or the one slice of a 2D dataset's case
in a ``2d`` configuration, ``(C, H, W)`` (a 2D configuration of a volumetric dataset has no image-level
label per slice and is refused). Cases are read with nnU-Net's own dataset classes
(``nnunetv2.training.dataloading.nnunet_dataset``), so the plans' preprocessing and the blosc2/numpy
storage are nnU-Net's.

Batching (the package's choice): the images of a batch are zero-padded, centred, to the largest shape in
the batch. Zero is the mean of nnU-Net's z-scored intensities; the networks end in global pooling or
resize their input, so they accept any size, and prediction feeds one whole image unpadded.

Sampling: training batches are class-balanced - each item first draws a class uniformly among the classes
present in the training cases, then a case of that class uniformly. Validation batches go through the
validation cases in order, each exactly once per pass.

Augmentation (training only; the package's choice, kept simple and label-preserving): a left-right mirror
(the last array axis, x in nnU-Net's arrays) with probability 0.5, and per channel an intensity scale
from U(0.9, 1.1) and shift from U(-0.1, 0.1) (in z-score units).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from nnunet_stroke.errors import UserError

MIRROR_PROBABILITY = 0.5
INTENSITY_SCALE = (0.9, 1.1)
INTENSITY_SHIFT = (-0.1, 0.1)


def load_whole_image(dataset, identifier: str, two_d: bool) -> np.ndarray:
    """The preprocessed image of ``identifier``: (C, D, H, W), or (C, H, W) when ``two_d``."""
    image = np.asarray(dataset.load_case(identifier)[0][:], dtype=np.float32)
    if not two_d:
        return image
    if image.shape[1] != 1:
        raise UserError(f"case {identifier} has {image.shape[1]} slices: a 2d classification configuration needs a "
                        f"2D dataset (one slice per case, e.g. TEKNOFEST); train volumes with 3d_fullres")
    return image[:, 0]


def pad_to_common_shape(images: list[np.ndarray]) -> np.ndarray:
    """Stack ``images`` (C, *spatial) into (B, C, *max spatial), each zero-padded and centred."""
    shape = np.max([image.shape for image in images], axis=0)
    batch = np.zeros((len(images), *shape), dtype=np.float32)
    for index, image in enumerate(images):
        start = [(s - i) // 2 for s, i in zip(shape, image.shape)]
        batch[(index, *(slice(b, b + i) for b, i in zip(start, image.shape)))] = image
    return batch


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Left-right mirror (p 0.5) and per-channel intensity scale and shift (module docstring)."""
    if rng.random() < MIRROR_PROBABILITY:
        image = image[..., ::-1]
    channels = image.shape[0]
    scale = rng.uniform(*INTENSITY_SCALE, size=channels).reshape(-1, *([1] * (image.ndim - 1)))
    shift = rng.uniform(*INTENSITY_SHIFT, size=channels).reshape(-1, *([1] * (image.ndim - 1)))
    return (image * scale + shift).astype(np.float32)


def balanced_choice(identifiers: list[str], labels: dict[str, int], count: int,
                    rng: np.random.Generator) -> list[str]:
    """``count`` identifiers: a class drawn uniformly among those present, then a case of it uniformly."""
    by_class: dict[int, list[str]] = {}
    for identifier in identifiers:
        by_class.setdefault(labels[identifier], []).append(identifier)
    classes = sorted(by_class)
    return [by_class[c][rng.integers(len(by_class[c]))] for c in rng.choice(classes, size=count)]


class WholeImageBatches:
    """Iterator of ``{"data": (B, C, *spatial) float tensor, "target": (B,) long tensor, "keys": [...]}``.

    ``training``: endless class-balanced, augmented batches; otherwise the cases in order, one pass per
    :attr:`batches_per_pass` batches, then again from the start.
    """

    def __init__(self, dataset, identifiers: list[str], labels: dict[str, int], batch_size: int, two_d: bool,
                 training: bool, seed: int | None = None):
        missing = [i for i in identifiers if i not in labels]
        if missing:
            raise UserError(f"cases {missing[:5]} are in nnU-Net's preprocessed data but not in cases.csv; "
                            f"convert the dataset again so that cases.csv lists every case")
        self.dataset, self.identifiers, self.labels = dataset, list(identifiers), labels
        self.batch_size, self.two_d, self.training = batch_size, two_d, training
        self.rng = np.random.default_rng(seed)
        self.position = 0

    @property
    def batches_per_pass(self) -> int:
        return math.ceil(len(self.identifiers) / self.batch_size)

    def __iter__(self):
        return self

    def next_keys(self) -> list[str]:
        if self.training:
            return balanced_choice(self.identifiers, self.labels, self.batch_size, self.rng)
        keys = self.identifiers[self.position:self.position + self.batch_size]
        self.position = self.position + self.batch_size
        if self.position >= len(self.identifiers):
            self.position = 0
        return keys

    def __next__(self) -> dict:
        keys = self.next_keys()
        images = [load_whole_image(self.dataset, key, self.two_d) for key in keys]
        if self.training:
            images = [augment(image, self.rng) for image in images]
        return {"data": torch.from_numpy(pad_to_common_shape(images)),
                "target": torch.tensor([self.labels[key] for key in keys], dtype=torch.long), "keys": keys}
