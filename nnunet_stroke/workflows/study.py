"""`nnunet-stroke study TABLE ID`: one paper table from training to the table (LBMNet, Kuang et al.,
Front. Med. 2026, Tables 1 and 6-9, Figure 11; rows in :mod:`nnunet_stroke.workflows.study_tables`).

Every row x split (folds 5-9: the repeated 8:1:1 splits, section 4.5) is trained with the stock
``nnUNetv2_train`` and its held-out test cases are predicted and evaluated with
`nnunet-stroke predict-heldout` (protocol ``lbmnet``); the table is then aggregated
(:mod:`nnunet_stroke.workflows.study_aggregate`). The ``local`` launcher runs these steps in turn on this
machine; ``slurm`` writes a job array with the same commands (:mod:`nnunet_stroke.workflows.study_slurm`).
Both skip finished work, so a study resumes where it stopped: a fold is trained when its folder holds
``checkpoint_final.pth`` (an interrupted training continues from ``checkpoint_latest.pth`` with ``--c``),
predicted when ``heldout_test/metrics.json`` is at least as new as that checkpoint.

Files: ``$nnUNet_results/<Dataset>/studies/<table>[_tiny]__<plans>__<configuration>/`` holds
``study.md``, ``study.json`` and, for slurm, ``slurm/``; the trainings are nnU-Net's usual results
folders ``<trainer>__<plans>__<configuration>/fold_<f>/``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nnunet_stroke.errors import UserError
from nnunet_stroke.workflows.study_aggregate import aggregate_study, write_study
from nnunet_stroke.workflows.study_tables import StudyRow, StudyTable

PAPER_PLANS = "nnUNetLBMNetPlans"  # 1 mm, at most five levels: `nnunet-stroke plan ID --planner lbmnet`
TINY_PLANS = "nnUNetPlans"  # what the phantom (demo, tests) is planned with
PROTOCOL = "lbmnet"
HELDOUT_FOLDS = range(5, 10)


def parse_folds(text: str) -> tuple[int, ...]:
    """``5-9``, ``5,7`` or ``6`` -> folds; only the 8:1:1 folds 5-9 have held-out test cases."""
    folds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            folds += range(int(first), int(last or first) + 1)
    except ValueError:
        raise UserError(f"--folds {text!r}: give a range or list of folds, e.g. 5-9 or 5,6") from None
    if not folds or any(f not in HELDOUT_FOLDS for f in folds):
        raise UserError(f"--folds {text!r}: studies use the repeated 8:1:1 folds 5-9 (held-out test cases); "
                        f"write them with `nnunet-stroke splits ID`")
    return tuple(dict.fromkeys(folds))


def _environment_folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise UserError(f"{variable} is not set; point nnU-Net's folders (nnUNet_raw, nnUNet_preprocessed, "
                        f"nnUNet_results) at your data first")
    return Path(value)


@dataclass(frozen=True)
class Study:
    """One study run: the table, its selected rows, the dataset, splits, plans and configuration."""

    table: StudyTable
    rows: tuple[StudyRow, ...]
    dataset_id: int
    dataset_name: str
    folds: tuple[int, ...]
    plans: str
    configuration: str
    tiny: bool
    use_tta: bool = True  # nnU-Net's mirroring at prediction; off: --disable_tta, about 8x faster in 3D

    def trainer(self, row: StudyRow) -> str:
        return row.trainer_name(self.tiny)

    def fold_folder(self, row: StudyRow, fold: int) -> Path:
        return (_environment_folder("nnUNet_results") / self.dataset_name
                / f"{self.trainer(row)}__{self.plans}__{self.configuration}" / f"fold_{fold}")

    def is_trained(self, row: StudyRow, fold: int) -> bool:
        return (self.fold_folder(row, fold) / "checkpoint_final.pth").is_file()

    def is_predicted(self, row: StudyRow, fold: int) -> bool:
        folder = self.fold_folder(row, fold)
        metrics, checkpoint = folder / "heldout_test" / "metrics.json", folder / "checkpoint_final.pth"
        return metrics.is_file() and (not checkpoint.is_file() or metrics.stat().st_mtime >= checkpoint.stat().st_mtime)

    @property
    def folder(self) -> Path:
        name = f"{self.table.name}{'_tiny' if self.tiny else ''}__{self.plans}__{self.configuration}"
        return _environment_folder("nnUNet_results") / self.dataset_name / "studies" / name

    def train_arguments(self, trainer: str, fold: int | str) -> list[str]:
        """``nnUNetv2_train``'s arguments for one trainer and split."""
        return [str(self.dataset_id), self.configuration, str(fold), "-tr", trainer, "-p", self.plans]

    def predict_arguments(self, trainer: str, fold: int | str) -> list[str]:
        """`nnunet-stroke predict-heldout`'s arguments for one trainer and split."""
        return ["predict-heldout", str(self.dataset_id), "-c", self.configuration, "-f", str(fold),
                "-tr", trainer, "-p", self.plans, "--protocol", PROTOCOL] + ([] if self.use_tta else ["--disable_tta"])

    def study_arguments(self) -> list[str]:
        """`nnunet-stroke study`'s arguments that name this study (table, dataset, folds, rows, plans)."""
        arguments = ["study", self.table.name, str(self.dataset_id), "--folds", ",".join(map(str, self.folds)),
                     "-p", self.plans, "-c", self.configuration]
        if self.rows != self.table.rows:
            arguments += ["--rows", ",".join(row.key for row in self.rows)]
        return arguments + (["--tiny"] if self.tiny else [])


def resolve_study(table: StudyTable, dataset: str, folds: tuple[int, ...], plans: str | None, configuration: str,
                  tiny: bool, row_keys: list[str] | None, use_tta: bool = True) -> Study:
    """The study, after checking that its plans, preprocessed data and splits exist (errors name the fix)."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.workflows.heldout import heldout_cases

    preprocessed = _environment_folder("nnUNet_preprocessed")
    try:
        dataset_name = maybe_convert_to_dataset_name(dataset)
    except RuntimeError:
        raise UserError(f"dataset {dataset} is in none of nnU-Net's folders; convert it first "
                        f"(`nnunet-stroke convert ...`)") from None
    dataset_id = int(dataset_name[len("Dataset"):len("Dataset") + 3])
    plans = plans or (TINY_PLANS if tiny else PAPER_PLANS)
    plans_file = preprocessed / dataset_name / f"{plans}.json"
    if not plans_file.is_file():
        how = (f"`nnunet-stroke plan {dataset_id} --planner lbmnet` then `nnUNetv2_preprocess -d {dataset_id} "
               f"-plans_name {plans} -c {configuration}`" if plans == PAPER_PLANS else
               f"`nnUNetv2_plan_and_preprocess -d {dataset_id} -c {configuration}` (or the planner writing {plans})")
        raise UserError(f"{plans_file} is missing; plan the dataset first: {how}, or pass -p PLANS")
    plans_manager = PlansManager(json.loads(plans_file.read_text(encoding="utf-8")))
    if configuration not in plans_manager.available_configurations:
        raise UserError(f"{plans_file} has no configuration {configuration!r}; it has "
                        f"{', '.join(plans_manager.available_configurations)}")
    data = preprocessed / dataset_name / plans_manager.get_configuration(configuration).data_identifier
    if not data.is_dir():
        raise UserError(f"{data} is missing; preprocess first: `nnUNetv2_preprocess -d {dataset_id} "
                        f"-plans_name {plans} -c {configuration}`")
    for fold in folds:
        heldout_cases(dataset_id, fold)  # splits written, with held-out cases for every fold
    return Study(table, table.select(row_keys), dataset_id, dataset_name, folds, plans, configuration, tiny, use_tta)


def aggregate(study: Study) -> dict:
    """Write ``study.json`` and ``study.md`` from every finished row x split; returns the summary."""
    rows = [{"key": row.key, "label": row.label, "trainer": study.trainer(row),
             "metrics": {fold: (study.fold_folder(row, fold) / "heldout_test" / "metrics.json"
                                if study.is_predicted(row, fold) else None) for fold in study.folds}}
            for row in study.rows]
    title = f"LBMNet {study.table.title}" + (" (_Tiny trainers)" if study.tiny else "")
    header = {"table": study.table.name, "title": title,
              "dataset": study.dataset_name, "plans": study.plans, "configuration": study.configuration,
              "folds": list(study.folds), "tiny": study.tiny, "protocol": PROTOCOL}
    summary = aggregate_study(header, rows, study.table.reference)
    write_study(summary, study.folder)
    return summary


def _console_script(name: str) -> str:
    """The entry point installed next to this Python (the same environment), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def _run(command: list[str], environment: dict, what: str, log_hint: Path) -> None:
    print(f"\n=== {what}: {' '.join(command)}", flush=True)
    completed = subprocess.run(command, env=environment)
    if completed.returncode != 0:
        raise UserError(f"{what} failed (exit code {completed.returncode}); see its output above and the logs in "
                        f"{log_hint}; fix the cause and rerun the same `nnunet-stroke study` command to resume")


def run_local(study: Study, device: str) -> dict:
    """Train and predict every row x split not done yet, one after the other, then aggregate."""
    from nnunet_stroke.workflows.nnunet_env import with_ext_trainer

    environment = with_ext_trainer(dict(os.environ))
    steps = [(row, fold) for row in study.rows for fold in study.folds]
    for number, (row, fold) in enumerate(steps, 1):
        trainer, folder = study.trainer(row), study.fold_folder(row, fold)
        what = f"[{number}/{len(steps)}] {trainer} fold {fold}"
        if study.is_trained(row, fold):
            print(f"{what}: trained already ({folder / 'checkpoint_final.pth'})", flush=True)
        else:
            resume = ["--c"] if (folder / "checkpoint_latest.pth").is_file() else []
            _run([_console_script("nnUNetv2_train"), *study.train_arguments(trainer, fold), "-device", device, *resume],
                 environment, f"{what}: training", folder)
        if study.is_predicted(row, fold):
            print(f"{what}: held-out test cases evaluated already ({folder / 'heldout_test' / 'metrics.json'})",
                  flush=True)
        else:
            predict = [sys.executable, "-m", "nnunet_stroke.cli", *study.predict_arguments(trainer, fold)]
            _run([*predict, "-device", device],
                 environment, f"{what}: predicting the held-out test cases", folder / "heldout_test")
    return aggregate(study)


def run_study(table_name: str, dataset: str, folds: str = "5-9", plans: str | None = None,
              configuration: str = "3d_fullres", launcher: str = "local", tiny: bool = False,
              rows: list[str] | None = None, aggregate_only: bool = False, device: str | None = None,
              sbatch_options: list[str] | None = None, use_tta: bool = True) -> str:
    """Run (local), write the job scripts for (slurm) or only aggregate a study; returns what to print."""
    from nnunet_stroke.workflows.study_aggregate import study_markdown
    from nnunet_stroke.workflows.study_tables import get_table

    study = resolve_study(get_table(table_name), dataset, parse_folds(folds), plans, configuration, tiny, rows,
                          use_tta)
    if launcher == "slurm" and not aggregate_only:
        from nnunet_stroke.workflows.study_slurm import write_slurm_scripts

        return write_slurm_scripts(study, sbatch_options or [])[1]
    if aggregate_only:
        summary = aggregate(study)
    else:
        import torch

        summary = run_local(study, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return f"{study_markdown(summary)}\nwrote {study.folder / 'study.md'} and {study.folder / 'study.json'}"
