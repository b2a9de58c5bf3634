"""SLURM scripts for a study (`nnunet-stroke study ... --launcher slurm`): a job array with one task per
row x split, each running the stock ``nnUNetv2_train`` (one GPU) and `nnunet-stroke predict-heldout`
and skipping what is done already, as the local launcher does; and an aggregation job that runs
`nnunet-stroke study ... --aggregate-only` once every task has succeeded (``--dependency=afterok``).

Written to ``<study folder>/slurm/``: ``train_array.sbatch``, ``aggregate.sbatch`` and ``submit.sh``
(submits both). The jobs inherit the submitting shell's environment (sbatch's default ``--export=ALL``);
nnU-Net's folders and ``nnUNet_extTrainer`` are also exported in the scripts.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from nnunet_stroke.staging import atomic_write_text
from nnunet_stroke.workflows.study import Study

CPUS_PER_TASK = 8  # nnU-Net's data augmentation workers per training (nnUNet_n_proc_DA)
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def _header(job_name: str, log_file: Path, extra_options: list[str], lines: list[str]) -> list[str]:
    return ["#!/bin/bash", f"#SBATCH --job-name={job_name}", *lines,
            f"#SBATCH --output={log_file}", *(f"#SBATCH {option}" for option in extra_options),
            "set -euo pipefail", *_exports()]


def _exports() -> list[str]:
    from nnunet_stroke import ext_trainer_dir

    exports = [f"export {name}={shlex.quote(os.environ[name])}" for name in NNUNET_FOLDERS if os.environ.get(name)]
    # the package's trainer shim first, folders the user lists already after it (as nnunet_env.with_ext_trainer)
    shim = shlex.quote(ext_trainer_dir())
    return exports + [f'export nnUNet_extTrainer={shim}"${{nnUNet_extTrainer:+:$nnUNet_extTrainer}}"']


def task_list(study: Study) -> list[tuple[str, int]]:
    """(trainer, fold) of every array task, task i = entry i: rows in the table's order, folds within."""
    return [(study.trainer(row), fold) for row in study.rows for fold in study.folds]


TASK_VARIABLES = ('"$TRAINER"', '"$FOLD"')


def _shell(arguments: list[str]) -> str:
    """Arguments quoted for bash, except the task's "$TRAINER" and "$FOLD" (expanded per task)."""
    return " ".join(a if a in TASK_VARIABLES else shlex.quote(a) for a in arguments)


def train_array_script(study: Study, log_folder: Path, extra_options: list[str]) -> str:
    tasks = task_list(study)
    results = Path(os.environ["nnUNet_results"]) / study.dataset_name
    lines = _header(f"study-{study.table.name}", log_folder / "%x_%A_%a.out", extra_options,
                    [f"#SBATCH --array=0-{len(tasks) - 1}", "#SBATCH --gres=gpu:1",
                     f"#SBATCH --cpus-per-task={CPUS_PER_TASK}"])
    lines += [f'export nnUNet_n_proc_DA="${{SLURM_CPUS_PER_TASK:-{CPUS_PER_TASK}}}"', "",
              "# one task per row x split: trainer and fold", "TASKS=("]
    lines += [f'  "{trainer} {fold}"' for trainer, fold in tasks]
    lines += [")", 'read -r TRAINER FOLD <<< "${TASKS[$SLURM_ARRAY_TASK_ID]}"',
              f'FOLD_DIR={shlex.quote(str(results))}/"${{TRAINER}}__{study.plans}__{study.configuration}/fold_${{FOLD}}"',
              'if [ ! -f "$FOLD_DIR/checkpoint_final.pth" ]; then',
              '  CONTINUE=""',
              '  if [ -f "$FOLD_DIR/checkpoint_latest.pth" ]; then CONTINUE="--c"; fi',
              f"  nnUNetv2_train {_shell(study.train_arguments(*TASK_VARIABLES))} $CONTINUE",
              "fi",
              'if [ ! "$FOLD_DIR/heldout_test/metrics.json" -nt "$FOLD_DIR/checkpoint_final.pth" ]; then',
              f"  nnunet-stroke {_shell(study.predict_arguments(*TASK_VARIABLES))}",
              "fi"]
    return "\n".join(lines) + "\n"


def aggregate_script(study: Study, log_folder: Path, extra_options: list[str]) -> str:
    lines = _header(f"study-{study.table.name}-aggregate", log_folder / "%x_%j.out", extra_options,
                    ["#SBATCH --cpus-per-task=2"])
    lines += ["", "nnunet-stroke " + " ".join(shlex.quote(a) for a in study.study_arguments()) + " --aggregate-only"]
    return "\n".join(lines) + "\n"


SUBMIT = """#!/bin/bash
# Submit the training array, then the aggregation once every task has succeeded.
set -euo pipefail
cd "$(dirname "$0")"
job=$(sbatch --parsable train_array.sbatch)
job=${job%%;*}
echo "training array: job $job"
sbatch --dependency=afterok:"$job" aggregate.sbatch
"""


def write_slurm_scripts(study: Study, extra_options: list[str]) -> tuple[Path, str]:
    """Write the scripts into ``<study folder>/slurm/``; returns the folder and how to submit them."""
    folder = study.folder / "slurm"
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "train_array.sbatch", train_array_script(study, logs, extra_options))
    atomic_write_text(folder / "aggregate.sbatch", aggregate_script(study, logs, extra_options))
    atomic_write_text(folder / "submit.sh", SUBMIT)
    tasks = len(task_list(study))
    instructions = (f"wrote {folder}/train_array.sbatch ({tasks} tasks: {len(study.rows)} rows x {len(study.folds)} "
                    f"splits), aggregate.sbatch and submit.sh. Submit from the environment where nnunet-stroke is "
                    f"installed:\n  bash {folder}/submit.sh\nwhich runs\n"
                    f"  job=$(sbatch --parsable {folder}/train_array.sbatch)\n"
                    f"  sbatch --dependency=afterok:${{job%%;*}} {folder}/aggregate.sbatch\n"
                    f"The table then is {study.folder}/study.md (study.json); rerunning a failed task skips "
                    f"finished work.")
    return folder, instructions
