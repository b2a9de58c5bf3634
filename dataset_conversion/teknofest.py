"""``nnunet-stroke convert teknofest SRC``: the TEKNOFEST-2021 stroke CT set (Koc et al., Eurasian J Med
2022;54:248) as packaged on Kaggle (``Brain_Stroke_CT_Dataset/``; layout pinned in
tests/fixtures/teknofest_paths.txt) -> a 2D nnU-Net dataset (docs/ct_data.md).

- imagesTr/labelsTr: every slice of ``Bleeding``, ``Ischemia`` and ``Normal`` (``PNG/``), labels
  background 0 / ischemic 1 / hemorrhagic 2. Lesion masks are derived from ``OVERLAY/`` vs ``PNG/``
  (``teknofest_masks.mask_from_overlay``) and take the folder's class; Normal slices get empty masks.
- imagesTs/labelsTs: ``External_Test`` (the set's own external test part), masks from ``MASKS/`` as 0/1
  lesion masks: the release gives no subtype there, so labelsTs are binary (lesion of either type).
- One grey channel named ``zscore`` (nnU-Net z-scores each slice; see docs/ct_data.md on why not ``CT``,
  which nnU-Net casefolds to its global ``ct`` scheme), ``.png`` read by ``NaturalImage2DIO``.
- ``cases.csv`` (imagesTr) and ``cases_test.csv`` (imagesTs): the design's columns plus
  ``duplicate_group`` (slices with identical decoded pixels share a value, empty for unique slices; read
  by ``nnunet-stroke splits --group duplicate``) and ``lesion_area_px``. ``lesion_volume_ml`` stays empty:
  PNG slices carry no pixel spacing. ``lesion_count`` counts 8-connected lesions.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_stroke.errors import UserError
from nnunet_stroke.image_files import is_resource_fork
from nnunet_stroke.parallel import parallel_map

from .common import CASES_CSV_COLUMNS, dataset_folder_name, nnunet_raw_dir, staged_dataset, write_cases_csv
from .teknofest_masks import as_grayscale, binary_from_mask_png, lesion_count_2d, mask_from_overlay, read_png

RELEASE_FOLDER = "Brain_Stroke_CT_Dataset"
CLASS_FOLDERS = {"Ischemia": ("ischemic", 1), "Bleeding": ("hemorrhagic", 2), "Normal": ("normal", 0)}
EXTERNAL_FOLDER = "External_Test"
LABELS = {"background": 0, "ischemic": 1, "hemorrhagic": 2}
CHANNEL_NAMES = {"0": "zscore"}
CSV_COLUMNS = (*CASES_CSV_COLUMNS, "duplicate_group", "lesion_area_px")
REFERENCE = ("Koc U, et al. Artificial Intelligence in Healthcare Competition (TEKNOFEST-2021): Stroke Data Set. "
             "Eurasian J Med 2022;54(3):248-258. doi:10.5152/eurasianjmed.2022.22096; packaged at "
             "https://www.kaggle.com/datasets/ozguraslank/brain-stroke-ct-dataset")
LICENSE = ("no explicit license; all legal rights belong to the Republic of Turkiye Ministry of Health "
           "(https://acikveri.saglik.gov.tr/Home/DataSetDetail/1)")


@dataclass(frozen=True)
class SliceJob:
    """One slice to convert: its PNG, where its mask comes from, and where the outputs go."""

    case: str
    image: Path
    overlay: Path | None     # lesion classes of the development part
    mask: Path | None        # External_Test
    label: int               # value the lesion gets in the output mask (External_Test: 1 = lesion)
    class_name: str
    images_dir: Path
    labels_dir: Path


def find_release_root(src: Path) -> Path:
    """``src`` itself or its ``Brain_Stroke_CT_Dataset`` subfolder: the folder holding the class folders."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; pass the unpacked Kaggle download (the folder that holds "
                        f"{RELEASE_FOLDER}/ or Bleeding/, Ischemia/, Normal/)")
    for root in (src, src / RELEASE_FOLDER):
        if all((root / folder / "PNG").is_dir() for folder in CLASS_FOLDERS):
            return root
    found = sorted(p.name for p in src.iterdir() if p.is_dir())
    raise UserError(f"{src} is not the TEKNOFEST layout: expected Bleeding/PNG, Ischemia/PNG and Normal/PNG "
                    f"(directly or under {RELEASE_FOLDER}/), found folders {found}; point SRC at the unpacked "
                    "brain-stroke-ct-dataset download")


def png_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() == ".png" and not is_resource_fork(p)}


def paired_files(images: dict[str, Path], images_dir: Path, partners_dir: Path, what: str) -> dict[str, Path]:
    """The file of ``partners_dir`` with each image's stem; a missing or unpaired file is an error."""
    if not partners_dir.is_dir():
        raise UserError(f"{partners_dir} is missing; it holds the {what} of the slices in {images_dir}; "
                        "restore it from the download")
    partners = png_files(partners_dir)
    for stem, image in images.items():
        if stem not in partners:
            raise UserError(f"case {stem}: {partners_dir / (stem + '.png')} is missing (the {what} of {image}); "
                            f"restore it from the download or remove {image}")
    for stem, partner in partners.items():
        if stem not in images:
            raise UserError(f"{partner} has no slice {images_dir / (stem + '.png')}; restore the slice or "
                            "remove the file")
    return partners


def development_jobs(root: Path, images_dir: Path, labels_dir: Path) -> list[SliceJob]:
    jobs = []
    for folder, (class_name, label) in CLASS_FOLDERS.items():
        images = png_files(root / folder / "PNG")
        if not images:
            raise UserError(f"{root / folder / 'PNG'} holds no .png slices; restore it from the download")
        overlays = paired_files(images, root / folder / "PNG", root / folder / "OVERLAY", "lesion overlay") if label else {}
        jobs += [SliceJob(f"{folder}_{stem}", image, overlays.get(stem), None, label, class_name, images_dir,
                          labels_dir) for stem, image in images.items()]
    return jobs


def external_jobs(root: Path, images_dir: Path, labels_dir: Path) -> list[SliceJob]:
    external = root / EXTERNAL_FOLDER
    if not external.is_dir():
        return []
    images = png_files(external / "PNG") if (external / "PNG").is_dir() else {}
    if not images:
        raise UserError(f"{external / 'PNG'} holds no .png slices; restore External_Test from the download "
                        "or remove the External_Test folder to convert the development part only")
    masks = paired_files(images, external / "PNG", external / "MASKS", "lesion mask")
    return [SliceJob(f"External_{stem}", image, None, masks[stem], 1, "", images_dir, labels_dir)
            for stem, image in images.items()]


def convert_slice(job: SliceJob) -> dict:
    """Write one slice and its mask; return its cases.csv values and the hash of its decoded pixels."""
    from PIL import Image

    gray = as_grayscale(read_png(job.image, job.case), job.image, job.case)
    source = job.overlay or job.mask
    partner = read_png(source, job.case) if source is not None else None
    if partner is not None and partner.shape[:2] != gray.shape:
        raise UserError(f"case {job.case}: {source} is {partner.shape[1]}x{partner.shape[0]} pixels but {job.image} "
                        f"is {gray.shape[1]}x{gray.shape[0]}; the two must be the same slice; replace the file")
    if job.overlay is not None:
        mask = mask_from_overlay(gray, partner).astype(np.uint8) * job.label
    elif job.mask is not None:
        mask = binary_from_mask_png(partner, job.mask, job.case)
    else:
        mask = np.zeros_like(gray)
    Image.fromarray(gray).save(job.images_dir / f"{job.case}_0000.png")
    Image.fromarray(mask.astype(np.uint8)).save(job.labels_dir / f"{job.case}.png")
    lesion = mask > 0
    class_name = job.class_name or ("lesion" if lesion.any() else "no_lesion")
    return {"case": job.case, "lesion_volume_ml": "", "lesion_count": lesion_count_2d(lesion), "site": "",
            "class": class_name, "lesion_area_px": int(lesion.sum()), "expects_lesion": job.label > 0 and job.mask is None,
            "pixel_hash": hashlib.sha1(np.ascontiguousarray(gray).tobytes() + str(gray.shape).encode()).hexdigest()}


def assign_duplicate_groups(records: list[dict]) -> list[list[dict]]:
    """Give slices with identical pixels a shared ``duplicate_group`` (dup001, ...); return the groups."""
    by_hash: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: r["case"]):
        by_hash.setdefault(record["pixel_hash"], []).append(record)
    groups = sorted((members for members in by_hash.values() if len(members) > 1), key=lambda m: m[0]["case"])
    for record in records:
        record["duplicate_group"] = ""
    for index, members in enumerate(groups, start=1):
        for record in members:
            record["duplicate_group"] = f"dup{index:03d}"
    return groups


def warn_about(development: list[dict], external: list[dict], groups: list[list[dict]]) -> None:
    empty = [r["case"] for r in development if r["expects_lesion"] and r["lesion_area_px"] == 0]
    if empty:
        warnings.warn(f"{len(empty)} lesion-class slices got an empty mask from their overlay (e.g. "
                      f"{', '.join(empty[:5])}); check those OVERLAY images", stacklevel=3)
    external_cases = {r["case"] for r in external}
    crossing = [m for m in groups if {r["case"] for r in m} & external_cases and
                {r["case"] for r in m} - external_cases]
    if crossing:
        warnings.warn(f"{len(crossing)} External_Test slices repeat a development slice exactly ("
                      + "; ".join(", ".join(r["case"] for r in m) for m in crossing[:3])
                      + "); leave them out when reporting external results", stacklevel=3)
    conflicting = [m for m in groups if len({r["class"] for r in m if r["case"] not in external_cases}) > 1]
    if conflicting:
        warnings.warn(f"{len(conflicting)} duplicate groups span classes ("
                      + "; ".join(", ".join(r["case"] for r in m) for m in conflicting[:3]) + ")", stacklevel=3)


def convert(src: Path, dataset_id: int, name: str = "TEKNOFEST", overwrite: bool = False,
            num_processes: int = 2) -> Path:
    """Convert the release at ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_{name}`` and return that folder."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    root = find_release_root(Path(src))
    final = nnunet_raw_dir() / dataset_folder_name(dataset_id, name)
    with staged_dataset(dataset_id, name, overwrite) as staging:
        folders = {sub: staging / sub for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
        development = development_jobs(root, folders["imagesTr"], folders["labelsTr"])
        external = external_jobs(root, folders["imagesTs"], folders["labelsTs"])
        for sub, folder in folders.items():
            if sub.endswith("Tr") or external:
                folder.mkdir()
        records = parallel_map(convert_slice, development + external, num_processes, "TEKNOFEST slices")
        dev_records, ext_records = records[:len(development)], records[len(development):]
        groups = assign_duplicate_groups(records)
        write_cases_csv(staging / "cases.csv", dev_records, CSV_COLUMNS)
        if ext_records:
            write_cases_csv(staging / "cases_test.csv", ext_records, CSV_COLUMNS)
        generate_dataset_json(str(staging), channel_names=CHANNEL_NAMES, labels=LABELS,
                              num_training_cases=len(dev_records), file_ending=".png", dataset_name=final.name,
                              overwrite_image_reader_writer="NaturalImage2DIO", reference=REFERENCE,
                              license=LICENSE,
                              description="TEKNOFEST-2021 stroke CT slices, brain window PNG; masks from "
                                          "OVERLAY (training) and MASKS (External_Test, binary)",
                              converted_by="nnunet-stroke convert teknofest")
        warn_about(dev_records, ext_records, groups)
    return final
