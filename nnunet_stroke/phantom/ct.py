"""Synthetic non-contrast CT in the layouts of the two public CT stroke sets (see docs/ct_data.md).

Intensities are Hounsfield units over the tissue labels of ``phantom.anatomy``: air -1000, skull bright,
CSF near water, grey matter brighter than white matter, acute ischemia a few HU hypodense (the subtle
NCCT sign), fresh bleeding hyperdense (55-80 HU), plus noise.

- ``write_teknofest``: the Kaggle packaging of the TEKNOFEST-2021 stroke set (Koc et al., Eurasian J Med
  2022;54:248): ``Brain_Stroke_CT_Dataset/{Bleeding,Ischemia,Normal}/{PNG,DICOM}``, ``OVERLAY`` for the
  lesion classes (the PNG with the lesion tinted red for bleeding, green for ischemia), and
  ``External_Test/{PNG,DICOM,OVERLAY,MASKS}`` with 0/255 lesion masks. 512x512 brain-window PNGs with
  numeric names, a few exact duplicate slices (one crossing into External_Test), as the release has.
- ``write_aisd``: the AISD download after unpacking (GriffinLiang/AISD): ``image/image/<case>/000.png``
  brain-window slices, ``mask/mask/<case>/000.png`` label stacks (values 0-5), and the CT series in
  ``dicom/dicom-<k>/<case>/CT/*.dcm``, 5 mm slices.
The ground truth of each slice/case is returned so tests can check the converters against it.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from nnunet_stroke.errors import UserError
import SimpleITK as sitk
from scipy import ndimage

from nnunet_stroke.phantom.anatomy import BACKGROUND, CSF, GREY, SCALP, WHITE, Head, make_head

CT_TISSUE_HU = np.array([-1000.0, 800.0, 8.0, 38.0, 28.0], np.float32)  # BACKGROUND, SCALP(+skull), CSF, GREY, WHITE
assert (BACKGROUND, SCALP, CSF, GREY, WHITE) == (0, 1, 2, 3, 4)
ISCHEMIA_DROP_HU = (6.0, 12.0)      # hypodensity of an acute infarct relative to its tissue
BLEEDING_HU = (55.0, 80.0)          # fresh intraparenchymal blood
NOISE_HU = 3.0
BRAIN_WINDOW = (40.0, 80.0)         # level, width in HU: what the PNG renderings show
OVERLAY_COLOUR = {"Bleeding": (255, 0, 0), "Ischemia": (0, 255, 0)}
OVERLAY_ALPHA = 0.45

TEKNOFEST_ROOT = "Brain_Stroke_CT_Dataset"
TEKNOFEST_SLICE_SIZE = 512         # pixels; the field of view is always 230 mm
TEKNOFEST_FOV_MM = 230.0
AISD_SHAPE = (20, 512, 512)         # z, y, x: 5 mm slices, 512x512 in-plane
AISD_SPACING_MM = (5.0, 0.45, 0.45)
AISD_LESION_VALUES = (1, 2, 3, 4, 5)  # the mask PNGs carry several lesion labels (see docs/ct_data.md)


def ct_hounsfield(head: Head, rng: np.random.Generator, lesion_kind: str) -> np.ndarray:
    """HU image of ``head``; lesions hypodense (``"ischemia"``) or hyperdense (``"bleeding"``)."""
    hu = CT_TISSUE_HU[head.tissue].copy()
    for label in range(1, int(head.lesion_labels.max()) + 1):
        inside = head.lesion_labels == label
        if lesion_kind == "ischemia":
            hu[inside] -= rng.uniform(*ISCHEMIA_DROP_HU)
        elif lesion_kind == "bleeding":
            hu[inside] = rng.uniform(*BLEEDING_HU)
        else:
            raise ValueError(f"unknown lesion kind {lesion_kind!r}")
    hu = ndimage.gaussian_filter(hu, sigma=0.5) + rng.normal(0.0, NOISE_HU, hu.shape).astype(np.float32)
    hu[head.tissue == BACKGROUND] = -1000.0
    return hu.astype(np.float32)


def brain_window(hu: np.ndarray, level: float = BRAIN_WINDOW[0], width: float = BRAIN_WINDOW[1]) -> np.ndarray:
    """8-bit rendering of HU in a window, as the PNG exports show CT."""
    scaled = (hu - (level - width / 2.0)) / width * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def tinted_overlay(gray: np.ndarray, mask: np.ndarray, colour: Sequence[int], alpha: float = OVERLAY_ALPHA
                   ) -> np.ndarray:
    """RGB copy of ``gray`` with ``mask`` blended towards ``colour``: how OVERLAY images mark a lesion."""
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(colour, np.float32)
    return np.rint(rgb).astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_dicom_slices(folder: Path, hu: np.ndarray, spacing_mm: Sequence[float], names: Sequence[str],
                       series_uid: str) -> None:
    """One CT DICOM file per z slice of ``hu`` (int16 HU), with the position/orientation tags that
    SimpleITK/GDCM sort a series by."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z, name in enumerate(names):
        image = sitk.GetImageFromArray(np.rint(hu[z]).astype(np.int16))
        image.SetSpacing((float(spacing_mm[2]), float(spacing_mm[1])))
        for tag, value in (("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|000d", series_uid + ".1"),
                           ("0008|0018", f"{series_uid}.{z + 1}"), ("0020|0013", str(z + 1)),
                           ("0020|0032", f"0\\0\\{z * spacing_mm[0]:.3f}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0018|0050", f"{spacing_mm[0]:.3f}"), ("0028|1052", "0"), ("0028|1053", "1")):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / name))
        writer.Execute(image)


def teknofest_slice(rng: np.random.Generator, kind: str, size: int = TEKNOFEST_SLICE_SIZE
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU slice, brain-window PNG, lesion mask) of one axial slice; ``kind`` Normal/Ischemia/Bleeding."""
    lesions = 0 if kind == "Normal" else int(rng.integers(1, 3))
    pixel_mm = TEKNOFEST_FOV_MM / size
    head = make_head((1, size, size), (5.0, pixel_mm, pixel_mm), rng,
                     lesion_count=lesions, mimic_count=0, lesion_volume_ml=(1.5, 8.0))
    hu = ct_hounsfield(head, rng, "bleeding" if kind == "Bleeding" else "ischemia")[0]
    return hu, brain_window(hu), head.lesion_mask[0]


def write_teknofest(out: Path, cases: int, seed: int, slice_size: int = TEKNOFEST_SLICE_SIZE) -> Path:
    """Write ``cases`` development slices (about half Normal, the rest Ischemia/Bleeding) and
    ``max(3, cases // 4)`` External_Test slices of ``slice_size``^2 pixels (512 as released; smaller is
    faster for tests) into ``out/Brain_Stroke_CT_Dataset`` and return that root. Two development slices
    are repeated as exact duplicates, and one Normal development slice reappears in External_Test."""
    if cases < 6:
        raise UserError("--cases must be at least 6 for the TEKNOFEST phantom (two slices of each class); "
                        "pass --cases 6 or more")
    rng = np.random.default_rng(seed)
    root = Path(out) / TEKNOFEST_ROOT
    kinds = ["Ischemia", "Bleeding"] * 2 + ["Normal"] * 2
    kinds += list(rng.choice(["Normal", "Normal", "Ischemia", "Bleeding"], size=cases - len(kinds)))
    number = iter(range(10001, 10001 + 10 * cases))
    written: list[tuple[str, str]] = []
    for kind in kinds:
        stem = str(next(number))
        hu, png, mask = teknofest_slice(rng, kind, slice_size)
        write_png(root / kind / "PNG" / f"{stem}.png", png)
        write_dicom_slices(root / kind / "DICOM", hu[None], (5.0, TEKNOFEST_FOV_MM / slice_size,
                                                              TEKNOFEST_FOV_MM / slice_size),
                           [f"{stem}.dcm"], f"1.2.826.0.1.3680043.2.1125.{seed}.{stem}")
        if kind != "Normal":
            write_png(root / kind / "OVERLAY" / f"{stem}.png", tinted_overlay(png, mask, OVERLAY_COLOUR[kind]))
        written.append((kind, stem))
    for kind, stem in (written[0], written[4]):  # exact duplicates inside the development part
        copy = str(next(number))
        for folder, suffix in (("PNG", "png"), ("OVERLAY", "png"), ("DICOM", "dcm")):
            source = root / kind / folder / f"{stem}.{suffix}"
            if source.exists():
                shutil.copyfile(source, root / kind / folder / f"{copy}.{suffix}")
    _write_external_test(root, rng, number, max(3, cases // 4), duplicate_of=root / written[5][0] / "PNG" /
                         f"{written[5][1]}.png", seed=seed, size=slice_size)
    return root


def _write_external_test(root: Path, rng: np.random.Generator, number, count: int, duplicate_of: Path,
                         seed: int, size: int) -> None:
    external = root / "External_Test"
    for index in range(count):
        stem = str(next(number))
        kind = ("Ischemia", "Bleeding", "Normal")[index % 3]
        hu, png, mask = teknofest_slice(rng, kind, size)
        write_png(external / "PNG" / f"{stem}.png", png)
        write_png(external / "MASKS" / f"{stem}.png", (mask * 255).astype(np.uint8))
        write_png(external / "OVERLAY" / f"{stem}.png", tinted_overlay(png, mask, OVERLAY_COLOUR.get(kind, (0, 0, 0))))
        write_dicom_slices(external / "DICOM", hu[None], (5.0, TEKNOFEST_FOV_MM / size, TEKNOFEST_FOV_MM / size),
                           [f"{stem}.dcm"], f"1.2.826.0.1.3680043.2.1125.{seed}.{stem}")
    stem = str(next(number))  # a Normal development slice that reappears in the external test, as in the release
    shutil.copyfile(duplicate_of, external / "PNG" / f"{stem}.png")
    write_png(external / "MASKS" / f"{stem}.png", np.zeros((size, size), np.uint8))


def write_aisd(out: Path, cases: int, seed: int, shape: Sequence[int] | None = None) -> Path:
    """Write ``cases`` AISD-layout cases (7-digit ids; about 1 in 6 without lesion) into ``out/AISD`` and
    return that root. ``shape`` (z, y, x) defaults to the real grid, 20 slices of 512x512 at 5 mm."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in (shape or AISD_SHAPE))
    spacing = (AISD_SPACING_MM[0], AISD_SPACING_MM[1] * AISD_SHAPE[1] / shape[1],
               AISD_SPACING_MM[2] * AISD_SHAPE[2] / shape[2])
    root = Path(out) / "AISD"
    for index in range(cases):
        case = f"{73400 + 17 * index + seed % 17:07d}"
        head = make_head(shape, spacing, rng, lesion_count=0 if index % 6 == 5 else int(rng.integers(1, 3)),
                         mimic_count=0, lesion_volume_ml=(1.0, 60.0))
        hu = ct_hounsfield(head, rng, "ischemia")
        labels = np.zeros(shape, np.uint8)
        for label in range(1, int(head.lesion_labels.max()) + 1):
            labels[head.lesion_labels == label] = rng.choice(AISD_LESION_VALUES)
        names = [f"{z:03d}.png" for z in range(shape[0])]
        for z, name in enumerate(names):
            write_png(root / "image" / "image" / case / name, brain_window(hu[z]))
            write_png(root / "mask" / "mask" / case / name, labels[z])
        series = root / "dicom" / f"dicom-{index % 3}" / case
        write_dicom_slices(series / "CT", hu, spacing, [f"IM{z:04d}.dcm" for z in range(shape[0])],
                           f"1.2.826.0.1.3680043.2.1125.{seed}.{case}")
    return root

