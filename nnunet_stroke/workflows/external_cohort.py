"""An external test cohort for the demo: phantom cases from another seed and another scanner profile.

``write_external_cohort`` writes ``EXTERNAL_CASES`` ISLES 2022-layout phantom cases (seed
``EXTERNAL_SEED_OFFSET + seed``, scanner profile ``EXTERNAL_SCANNER``: noise x1.15, bias field x1.2,
DWI contrast excess x0.9; the same mix of grids, lesion sizes and lesion-free cases; names
``sub-strokecase1001`` on, so no name is shared with the training phantom) and converts them with the
ISLES 2022 converter's own case reader and writer into ``WORKDIR/external/imagesTs`` and ``labelsTs``
(nnU-Net naming) plus ``cases.csv``. Nothing goes into ``nnUNet_raw``: planning and training never see
these cases. ``predict_external`` predicts them with nnU-Net's predictor from a trained fold into
``WORKDIR/external/predictions`` and evaluates them there (``metrics.json``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from nnunet_stroke.phantom.mri import DEFAULT_DIFFICULTY, with_scanner

EXTERNAL_CASES = 24
EXTERNAL_SEED_OFFSET = 10_000
EXTERNAL_FIRST_CASE = 1000  # a multiple of 40: the same mix of grids and lesion-free cases as cases 0, 1, ...
EXTERNAL_SCANNER = with_scanner(DEFAULT_DIFFICULTY, noise=1.15, bias=1.2, contrast=0.9)
FILE_ENDING = ".nii.gz"


def external_seed(seed: int) -> int:
    return EXTERNAL_SEED_OFFSET + seed


def external_cases(external: Path) -> list[str]:
    return sorted(p.name[: -len(FILE_ENDING)] for p in (Path(external) / "labelsTs").glob(f"*{FILE_ENDING}"))


def write_external_cohort(workdir: Path, seed: int, cases: int = EXTERNAL_CASES, num_processes: int = 2) -> Path:
    """Write and convert the cohort into ``workdir/external`` (replacing an earlier one); return that folder."""
    from nnunet_stroke.dataset_conversion.common import write_cases_csv
    from nnunet_stroke.dataset_conversion.isles22 import convert_case, find_cases
    from nnunet_stroke.parallel import parallel_map
    from nnunet_stroke.phantom.isles22 import write_isles22
    from nnunet_stroke.staging import staged_folder

    source_parent = Path(workdir) / "external_phantom"
    shutil.rmtree(source_parent, ignore_errors=True)
    source = write_isles22(source_parent, cases, external_seed(seed), difficulty=EXTERNAL_SCANNER,
                           first_case=EXTERNAL_FIRST_CASE)
    external = Path(workdir) / "external"
    with staged_folder(external, replace=True) as staging:
        images, labels = staging / "imagesTs", staging / "labelsTs"
        images.mkdir()
        labels.mkdir()
        jobs = [(case, str(images), str(labels), False) for case in find_cases(source, with_flair=False)]
        write_cases_csv(staging / "cases.csv", parallel_map(convert_case, jobs, num_processes, "convert external"))
    shutil.rmtree(source_parent, ignore_errors=True)
    return external


def predict_external(external: Path, dataset: int, configuration: str, fold: int, trainer: str,
                     plans: str = "nnUNetPlans", protocol: str = "isles22", device: str = "cpu",
                     checkpoint: str = "checkpoint_final.pth", use_mirroring: bool = True) -> dict:
    """Predict ``external/imagesTs`` with the fold's checkpoint into ``external/predictions`` and evaluate
    them against ``external/labelsTs``; returns the metrics (also written to ``predictions/metrics.json``)."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_stroke.workflows.heldout import predict_and_evaluate
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    with_ext_trainer()
    external = Path(external)
    model_folder = Path(get_output_folder(dataset, trainer, plans, configuration))
    output = external / "predictions"
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir()
    return predict_and_evaluate(model_folder, fold, trainer, external / "imagesTs", external_cases(external),
                                external / "labelsTs", output, protocol=protocol, device=device,
                                checkpoint=checkpoint, use_mirroring=use_mirroring)
