"""Finding and reading the files of one evaluation: reference and predicted label maps, images, saved
probabilities and detection.json, with the checks that turn bad input into a `UserError` naming the case.

File names follow nnU-Net: references ``CASE<ending>`` (labelsTr), predictions ``CASE<ending>``, images
``CASE_XXXX<ending>`` (imagesTr) and probabilities ``CASE.npz`` (key ``probabilities``, shape
(C, *label array shape), written by ``nnUNetv2_predict --save_probabilities``: the same array order as
the label map nnU-Net's reader returns, see nnunetv2/inference/export_prediction.py). Label maps are read
with the nnU-Net reader class for the file ending (SimpleITKIO for NIfTI, NaturalImage2DIO for PNG), so
every dataset nnU-Net can train on can be evaluated. nnU-Net returns 2D images as (1, 1, y, x) with a
dummy spacing of 999 along the first axis; they are evaluated as 2D arrays with the in-plane spacing
((1, 1) for PNG).

Every label map is decoded completely before it is trusted (``image_files.check_complete``: SimpleITK
returns zeros for the missing part of a truncated file), and a prediction must lie on the reference's
grid in physical space: same size, spacing, origin and direction within ``GRID_TOLERANCE`` (mm for
spacing and origin, absolute for direction cosines). ``resample_to_reference`` puts a prediction onto
the reference grid by nearest neighbour, through the scanner coordinates in the headers (no registration).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_stroke.errors import UserError
from nnunet_stroke.image_files import check_3d, check_complete, is_nifti, is_resource_fork

KNOWN_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".bmp", ".tif", ".tiff")
GRID_TOLERANCE = 1e-3


@dataclass
class LabelMap:
    """A label map read from disk with its geometry (spacing, and origin and direction where the format has them)."""

    array: np.ndarray  # integer labels, 2D (y, x) or 3D in nnU-Net's array order
    spacing: tuple[float, ...]  # per array axis, mm (1 for PNG)
    origin: tuple[float, ...] | None = None  # scanner coordinates of the first voxel (None: format has none)
    direction: tuple[float, ...] | None = None  # direction cosines, row-major


def case_files(folder: Path, file_ending: str) -> dict[str, Path]:
    """{case id: path} of the label maps in ``folder`` (image channel files CASE_XXXX are not label maps)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the folder that holds the {file_ending} label maps")
    return {p.name[: -len(file_ending)]: p for p in sorted(folder.iterdir())
            if p.is_file() and p.name.endswith(file_ending) and not is_resource_fork(p)}


def detect_file_ending(folder: Path) -> str:
    """The ending of the label maps in ``folder``: dataset.json's ``file_ending`` of the nnU-Net raw
    dataset the folder belongs to, else the one known ending its files use."""
    dataset_json = folder.parent / "dataset.json"
    if dataset_json.is_file():
        ending = json.loads(dataset_json.read_text(encoding="utf-8")).get("file_ending")
        if ending:
            return ending
    found = {e for p in folder.iterdir() for e in KNOWN_ENDINGS if p.name.endswith(e) and
             not (e == ".nii" and p.name.endswith(".nii.gz"))} if folder.is_dir() else set()
    if len(found) != 1:
        raise UserError(f"cannot tell the file ending of the label maps in {folder} (found {sorted(found) or 'none'}); "
                        f"pass --file-ending, e.g. --file-ending .nii.gz")
    return found.pop()


def reader_class_for(file_ending: str, example_file: Path):
    """nnU-Net's reader/writer class for this file ending (the one nnU-Net itself would use)."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_file_ending

    try:
        return determine_reader_writer_from_file_ending(file_ending, str(example_file), verbose=False)
    except RuntimeError as error:
        raise UserError(f"nnU-Net has no reader for {example_file} ({error})") from None


def _squeeze_2d(array: np.ndarray, spacing) -> tuple[np.ndarray, tuple[float, ...]]:
    spacing = tuple(float(s) for s in spacing)
    if array.shape[0] == 1 and len(spacing) == 3 and spacing[0] >= 999:
        return array[0], spacing[1:]
    return array, spacing


def _decoded(path: Path, case: str, read):
    """``read()`` after checking the file is complete and one volume; any reader failure is a UserError."""
    check_complete(path, case)
    if is_nifti(path):
        check_3d(path, case)
    try:
        return read()
    except UserError:
        raise
    except Exception as error:  # readers raise RuntimeError, OSError, ValueError... for a broken file
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise UserError(f"case {case}: cannot read {path} ({reason}); the file is corrupt or not an image: "
                        "replace it") from None


def read_label_map(path: Path, reader_class, case: str) -> LabelMap:
    """Read one label map completely; reject non-integer or negative values."""
    seg, properties = _decoded(path, case, lambda: reader_class().read_seg(str(path)))
    array, spacing = _squeeze_2d(seg[0], properties["spacing"])
    geometry = properties.get("sitk_stuff", {})
    return _checked_labels(LabelMap(array, spacing, geometry.get("origin"), geometry.get("direction")), path, case)


def resample_to_reference(path: Path, reference: LabelMap, reference_path: Path, case: str) -> LabelMap:
    """The prediction at ``path`` resampled (nearest neighbour, scanner coordinates) onto the reference grid."""
    import SimpleITK as sitk

    if reference.origin is None:
        raise UserError(f"case {case}: {reference_path} has no scanner geometry (origin, direction); resampling "
                        "needs NIfTI/NRRD/MHA label maps")
    target, moving = _decoded(reference_path, case, lambda: sitk.ReadImage(str(reference_path))), \
        _decoded(path, case, lambda: sitk.ReadImage(str(path)))
    if moving.GetDimension() != target.GetDimension():
        raise UserError(f"case {case}: {path} is {moving.GetDimension()}-D, the reference {reference_path} "
                        f"{target.GetDimension()}-D; they cannot be resampled onto each other")
    resampled = sitk.Resample(moving, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0, moving.GetPixelID())
    array = sitk.GetArrayFromImage(resampled).reshape(reference.array.shape)
    return _checked_labels(LabelMap(array, reference.spacing, reference.origin, reference.direction), path, case)


def _checked_labels(label_map: LabelMap, path: Path, case: str) -> LabelMap:
    array = label_map.array
    labels = array.astype(np.int32)
    if not np.array_equal(labels, array) or labels.min() < 0:
        raise UserError(f"case {case}: {path} holds non-integer or negative values (e.g. "
                        f"{array[labels != array][:1].tolist() or labels.min()}); label maps must hold class "
                        f"ids, not probabilities")
    label_map.array = labels
    return label_map


def lesion_mask(label_map: LabelMap, allowed_labels: tuple[int, ...], lesion_labels: tuple[int, ...] | None,
                case: str, path: Path) -> np.ndarray:
    """Boolean lesion mask: any of ``lesion_labels`` (None: any foreground). Values outside
    {0} | allowed_labels are an error (a non-binary mask in a binary task)."""
    expected = {0, *allowed_labels}
    if expected == set(range(max(expected) + 1)) and label_map.array.max() <= max(expected):
        unexpected = []  # labels 0..K expected and none above K
    else:
        unexpected = sorted(set(np.flatnonzero(np.bincount(label_map.array.ravel())).tolist()) - expected)
    if unexpected:
        raise UserError(f"case {case}: {path} holds labels {unexpected}, but the expected labels are "
                        f"{[0, *allowed_labels]}; a binary task needs 0/1 masks (pass --labels with the "
                        f"dataset's foreground labels if it has several classes)")
    if lesion_labels is None:
        return label_map.array > 0
    return np.isin(label_map.array, lesion_labels)


def grid_differences(reference: LabelMap, prediction: LabelMap) -> list[str]:
    """What differs between the two voxel grids in physical space (empty when they agree)."""
    if reference.array.shape != prediction.array.shape:
        return [f"shape {prediction.array.shape} vs {reference.array.shape}"]
    found = []
    for what, a, b in (("spacing", prediction.spacing, reference.spacing),
                       ("origin", prediction.origin, reference.origin),
                       ("direction", prediction.direction, reference.direction)):
        if a is None or b is None:
            continue
        if not np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-5, atol=GRID_TOLERANCE):
            found.append(f"{what} {tuple(round(float(v), 4) for v in a)} vs {tuple(round(float(v), 4) for v in b)}")
    return found


def check_same_geometry(reference: LabelMap, prediction: LabelMap, case: str, pred_path: Path) -> None:
    """A UserError naming the case and every difference unless the prediction lies on the reference grid."""
    differences = grid_differences(reference, prediction)
    if differences:
        raise UserError(f"case {case}: prediction {pred_path} is not on the reference grid ({'; '.join(differences)}; "
                        f"prediction vs reference); export predictions on the reference grid (nnUNetv2_predict does "
                        f"this), or pass --resample-to-reference to resample them (nearest neighbour) through the "
                        f"scanner coordinates")


def read_images(images_dir: Path, case: str, file_ending: str, reader_class) -> np.ndarray:
    """All channels CASE_XXXX of one case as (C, *spatial), squeezed like the label maps."""
    channel_files = sorted(images_dir.glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"))
    if not channel_files:
        raise UserError(f"case {case}: no image {case}_0000{file_ending} in {images_dir}; --images must be the "
                        f"imagesTr/imagesTs folder of the evaluated cases")
    for path in channel_files[1:]:
        _decoded(path, case, lambda: None)
    data, properties = _decoded(channel_files[0], case,
                                lambda: reader_class().read_images([str(p) for p in channel_files]))
    return np.stack([_squeeze_2d(channel, properties["spacing"])[0] for channel in data])


def read_lesion_probability(probabilities_dir: Path, case: str, shape: tuple[int, ...],
                            lesion_labels: tuple[int, ...] | None) -> np.ndarray:
    """P(lesion) per voxel from nnU-Net's CASE.npz: the sum of the lesion classes' softmax channels
    (all foreground channels unless ``lesion_labels`` is given)."""
    path = probabilities_dir / f"{case}.npz"
    if not path.is_file():
        raise UserError(f"case {case}: no {path.name} in {probabilities_dir}; predict with "
                        f"--save_probabilities or leave out --probabilities")
    def load():
        with np.load(path) as archive:
            if "probabilities" not in archive:
                raise UserError(f"case {case}: {path} has no 'probabilities' array (keys {list(archive)})")
            return archive["probabilities"]

    probabilities = _decoded(path, case, load)
    if int(np.prod(probabilities.shape[1:])) != int(np.prod(shape)) or \
            tuple(s for s in probabilities.shape[1:] if s != 1) != tuple(s for s in shape if s != 1):
        raise UserError(f"case {case}: {path} has shape {probabilities.shape}, expected (classes, *{shape}) "
                        f"like the label map")
    probabilities = probabilities.reshape(probabilities.shape[0], *shape)
    channels = list(lesion_labels) if lesion_labels is not None else list(range(1, probabilities.shape[0]))
    lesion = probabilities[channels].sum(axis=0, dtype=np.float32)
    if not np.all(np.isfinite(lesion)):
        raise UserError(f"case {case}: {path} holds NaN or infinite probabilities")
    return np.clip(lesion, 0.0, 1.0)


def read_detection_json(path: Path, cases: list[str]) -> dict[str, float]:
    """{case: lesion probability} written by `nnunet-stroke predict`; every evaluated case must be there."""
    try:
        scores = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read detection file {path}: {error}") from None
    if not isinstance(scores, dict):
        raise UserError(f"detection file {path} holds a {type(scores).__name__}, not {{case: probability}}")
    missing = [c for c in cases if c not in scores]
    if missing:
        raise UserError(f"detection file {path} has no probability for case {missing[0]} "
                        f"({len(missing)} cases missing); it must hold {{case: probability}} for every case")
    bad = [c for c in cases if not isinstance(scores[c], (int, float)) or not 0.0 <= float(scores[c]) <= 1.0]
    if bad:
        raise UserError(f"detection file {path}: case {bad[0]} has {scores[bad[0]]!r}, not a probability in [0, 1]")
    return {c: float(scores[c]) for c in cases}
