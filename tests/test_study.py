"""`nnunet-stroke study`: the tables' rows, the aggregation against hand-computed means, sd and exact
Wilcoxon p-values, the SLURM scripts (valid bash, every row x split once, the stock commands), and one
`study --tiny` run on the planned phantom (two rows, one split, one epoch) that a second run resumes
without redoing anything."""
import itertools
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from nnunet_stroke.cli import build_parser, main
from nnunet_stroke.errors import UserError
from nnunet_stroke.trainers import TRAINERS
from nnunet_stroke.trainers.lbmnet import ABLATIONS
from nnunet_stroke.workflows.study import Study, parse_folds, resolve_study
from nnunet_stroke.workflows.study_aggregate import aggregate_study, write_study
from nnunet_stroke.workflows.study_slurm import write_slurm_scripts
from nnunet_stroke.workflows.study_tables import TABLES

RECIPE_BASELINES = ["StrokeUNet", "UNetPlusPlus", "AttentionUNet", "UNETR", "SwinUNETR", "TransUNet", "UMambaBotCPU",
                    "STUNet_S", "STUNet_B", "SegMamba"]


def test_every_table_lists_its_rows_and_trainers(capsys):
    assert main(["study", "--list"]) == 0
    listed = capsys.readouterr().out
    table1 = {row.trainer for row in TABLES["lbmnet-table1"].rows}
    assert table1 == {f"nnUNetTrainer{b}_LBMNetRecipe" for b in RECIPE_BASELINES} | {"nnUNetTrainerLBMNet"}
    ablation_rows = [row for name, table in TABLES.items() if name != "lbmnet-table1" for row in table.rows]
    assert sorted(row.trainer for row in ablation_rows) == sorted(f"nnUNetTrainerLBMNet_{s}" for s in ABLATIONS)
    assert [len(TABLES[f"lbmnet-{t}"].rows) for t in ("table6", "table7", "table8", "table9", "fig11")] == [5, 6, 4, 3, 5]
    for table in TABLES.values():
        assert table.name in listed
        reference = next(row for row in table.rows if row.key == table.reference)
        assert reference.trainer == "nnUNetTrainerLBMNet" or ABLATIONS[reference.key][0] == "lbmnet"
        for row in table.rows:
            assert row.trainer in listed and row.trainer in TRAINERS and row.trainer_name(True) in TRAINERS


def test_folds_and_rows_are_parsed_and_checked():
    assert parse_folds("5-9") == (5, 6, 7, 8, 9) and parse_folds("5,7") == (5, 7) and parse_folds("6") == (6,)
    for wrong in ("0-4", "x", "5-10"):
        with pytest.raises(UserError):
            parse_folds(wrong)
    table = TABLES["lbmnet-table6"]
    assert [row.key for row in table.select(["aBLt6m5", "AblT6M1"])] == ["AblT6M1", "AblT6M5"]  # table order
    with pytest.raises(UserError, match="AblT6M1"):
        table.select(["Model9"])


# ---------------------------------------------------------------- aggregation against hand-computed values

def _metrics_file(path: Path, cases: dict[str, tuple[float, float | None]], dice_mean: float,
                  hd95_mean: float, hd95_n: int) -> Path:
    """A hand-made metrics.json: per-case Dice and HD95 (px), and the split's means typed in by hand."""
    rows = [{"case": case, "dice": dice, "iou": dice / (2 - dice), "f2": dice, "recall": dice, "hd95_vox": hd95}
            for case, (dice, hd95) in cases.items()]
    aggregate = {"dice": {"mean": dice_mean, "std": None, "n": len(rows)},
                 "hd95_vox": {"mean": hd95_mean, "std": None, "n": hd95_n}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"protocol": "lbmnet", "n_cases": len(rows), "cases": rows, "aggregate": aggregate}))
    return path


def _exact_wilcoxon_p(differences: list[float]) -> float:
    """Two-sided exact signed-rank p by enumerating all 2^n sign patterns (no ties, no zeros)."""
    ranks = {d: r for r, d in enumerate(sorted(differences, key=abs), 1)}
    t_plus = sum(ranks[d] for d in differences if d > 0)
    t_min = min(t_plus, sum(ranks.values()) - t_plus)
    n = len(differences)
    sums = [sum(r for r, s in zip(range(1, n + 1), signs) if s) for signs in itertools.product((0, 1), repeat=n)]
    return min(1.0, 2 * sum(s <= t_min for s in sums) / 2 ** n)


def test_aggregation_against_hand_computed_means_sd_and_wilcoxon(tmp_path):
    # row X: fold 5 Dice 0.5, 0.6, 0.7 (mean 0.6), fold 6 Dice 0.65, 0.7, 0.75 (mean 0.7); the same case
    # names in both folds, so pairing must use (fold, case). HD95: fold 5 2, null, 4 (mean 3 over 2 cases),
    # fold 6 5, 6, 7 (mean 6)
    x5 = _metrics_file(tmp_path / "x5.json", {"a": (0.5, 2.0), "b": (0.6, None), "c": (0.7, 4.0)}, 0.6, 3.0, 2)
    x6 = _metrics_file(tmp_path / "x6.json", {"a": (0.65, 5.0), "b": (0.7, 6.0), "c": (0.75, 7.0)}, 0.7, 6.0, 3)
    # reference: X - reference = -0.1, -0.2, +0.05 (fold 5) and -0.3, -0.25, -0.15 (fold 6)
    r5 = _metrics_file(tmp_path / "r5.json", {"a": (0.6, 1.0), "b": (0.8, 1.0), "c": (0.65, 1.0)}, 2.05 / 3, 1.0, 3)
    r6 = _metrics_file(tmp_path / "r6.json", {"a": (0.95, 1.0), "b": (0.95, 1.0), "c": (0.9, 1.0)}, 2.8 / 3, 1.0, 3)
    rows = [{"key": "X", "label": "Model X", "trainer": "nnUNetTrainerX", "metrics": {5: x5, 6: x6}},
            {"key": "Y", "label": "Model Y", "trainer": "nnUNetTrainerY", "metrics": {5: None, 6: None}},
            {"key": "Ref", "label": "LBMNet", "trainer": "nnUNetTrainerRef", "metrics": {5: r5, 6: r6, 7: None}}]
    header = {"table": "t", "title": "T", "dataset": "Dataset999_Hand", "plans": "P", "configuration": "3d_fullres",
              "folds": [5, 6, 7]}
    summary = aggregate_study(header, rows, "Ref")
    x, y, ref = summary["rows"]

    dice = x["across_splits"]["dice"]
    assert dice["mean"] == pytest.approx(0.65) and dice["std"] == pytest.approx(math.sqrt(2 * 0.05 ** 2))
    assert (dice["n_splits"], dice["n_cases"]) == (2, 6)
    hd95 = x["across_splits"]["hd95_vox"]
    assert hd95["mean"] == pytest.approx(4.5) and hd95["std"] == pytest.approx(math.sqrt(2 * 1.5 ** 2))
    assert hd95["n_cases"] == 5
    # ranks of |d|: 0.05 -> 1 (the only positive), 0.1 -> 2, ..., 0.3 -> 6; T+ = 1; p = 2 * 2 / 64
    test = x["wilcoxon_dice_vs_reference"]
    assert test["p_value"] == pytest.approx(0.0625) == pytest.approx(_exact_wilcoxon_p([-0.1, -0.2, 0.05, -0.3, -0.25, -0.15]))
    assert (test["n_pairs"], test["n_nonzero_differences"]) == (6, 6)
    assert ref["wilcoxon_dice_vs_reference"] is None and summary["reference_trainer"] == "nnUNetTrainerRef"
    assert y["across_splits"] == {} and y["folds_missing"] == [5, 6] and ref["folds_missing"] == [7]

    json_path, markdown_path = write_study(summary, tmp_path / "study")
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["study.json", "study.md"]  # no temporaries
    assert json.loads(json_path.read_text(encoding="utf-8"))["rows"][0]["across_splits"]["dice"]["mean"] == pytest.approx(0.65)
    table = markdown_path.read_text(encoding="utf-8")
    model_x = next(line for line in table.splitlines() if line.startswith("| Model X"))
    assert "65.00 ± 7.07" in model_x and "4.50 ± 2.12" in model_x and "| 2 | 6 | 0.0625 (n=6) |" in model_x
    assert "not run" in next(line for line in table.splitlines() if line.startswith("| Model Y"))
    assert "`nnUNetTrainerRef` folds 7" in table


def test_exact_wilcoxon_reference_matches_a_second_hand_case():
    # d = 1, 2, 3 (all positive, ranks 1..3): T- = 0, P(T+ <= 0) = 1/8, p = 2/8
    assert _exact_wilcoxon_p([0.1, 0.2, 0.3]) == pytest.approx(0.25)


# ---------------------------------------------------------------- SLURM scripts

def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body, encoding="utf-8")
    path.chmod(0o755)


def test_slurm_scripts_run_every_row_and_split_once_with_the_stock_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    table = TABLES["lbmnet-table6"]
    study = Study(table, table.rows, 990, "Dataset990_Phantom", (5, 6, 7, 8, 9), "nnUNetLBMNetPlans", "3d_fullres",
                  False)
    folder, instructions = write_slurm_scripts(study, ["--partition=gpu"])
    assert "--dependency=afterok" in instructions and "sbatch" in instructions
    scripts = [folder / name for name in ("train_array.sbatch", "aggregate.sbatch", "submit.sh")]
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    text = scripts[0].read_text(encoding="utf-8")
    tasks = text[text.index("TASKS=(") + len("TASKS=("):].split(")", 1)[0].split()
    tasks = list(zip(tasks[0::2], tasks[1::2]))
    tasks = [(trainer.strip('"'), int(fold.strip('"'))) for trainer, fold in tasks]
    expected = [(row.trainer, fold) for row in table.rows for fold in study.folds]
    assert sorted(tasks) == sorted(expected) and len(set(tasks)) == len(tasks) == 25
    assert f"#SBATCH --array=0-{len(tasks) - 1}" in text and "#SBATCH --gres=gpu:1" in text
    assert "#SBATCH --partition=gpu" in text
    from nnunet_stroke import ext_trainer_dir

    assert f"export nnUNet_extTrainer={ext_trainer_dir()}" in text  # the stock nnUNetv2_train finds the trainers

    bin_folder, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_folder.mkdir()
    for name in ("nnUNetv2_train", "nnunet-stroke"):
        _stub(bin_folder, name, f'echo "{name} $*" >> {calls}\n')
    environment = dict(os.environ, PATH=f"{bin_folder}:{os.environ['PATH']}")
    finished = tmp_path / "results" / "Dataset990_Phantom" / f"{expected[3][0]}__nnUNetLBMNetPlans__3d_fullres" / "fold_8"
    (finished / "heldout_test").mkdir(parents=True)
    (finished / "checkpoint_final.pth").write_text("", encoding="utf-8")
    os.utime(finished / "checkpoint_final.pth", (1, 1))
    (finished / "heldout_test" / "metrics.json").write_text("{}")  # newer than the checkpoint: done
    for index, (trainer, fold) in enumerate(tasks):
        calls.write_text("", encoding="utf-8")
        done = subprocess.run(["bash", str(scripts[0])], env=dict(environment, SLURM_ARRAY_TASK_ID=str(index)))
        assert done.returncode == 0
        lines = calls.read_text(encoding="utf-8").splitlines()
        if (trainer, fold) == expected[3]:
            assert lines == []  # trained and predicted already: skipped
            continue
        assert lines == [f"nnUNetv2_train 990 3d_fullres {fold} -tr {trainer} -p nnUNetLBMNetPlans",
                         f"nnunet-stroke predict-heldout 990 -c 3d_fullres -f {fold} -tr {trainer} "
                         f"-p nnUNetLBMNetPlans --protocol lbmnet"]

    calls.write_text("", encoding="utf-8")
    assert subprocess.run(["bash", str(scripts[1])], env=environment).returncode == 0
    words = calls.read_text(encoding="utf-8").split()
    assert words[0] == "nnunet-stroke"
    arguments = build_parser().parse_args(words[1:])
    assert (arguments.table, arguments.dataset, arguments.folds, arguments.plans) == \
        ("lbmnet-table6", "990", "5,6,7,8,9", "nnUNetLBMNetPlans")
    assert arguments.aggregate_only and not arguments.tiny and arguments.rows is None

    _stub(bin_folder, "sbatch", f'echo "sbatch $*" >> {calls}\nif [ "$1" = --parsable ]; then echo "4242;cluster"; fi\n')
    calls.write_text("", encoding="utf-8")
    assert subprocess.run(["bash", str(scripts[2])], env=environment, capture_output=True).returncode == 0
    assert calls.read_text(encoding="utf-8").splitlines() == ["sbatch --parsable train_array.sbatch",
                                              "sbatch --dependency=afterok:4242 aggregate.sbatch"]


# ---------------------------------------------------------------- the local launcher on the phantom

def test_missing_plans_name_the_lbmnet_planner(planned_phantom, capsys):
    with pytest.raises(UserError, match=f"nnunet-stroke plan {planned_phantom.dataset_id} --planner lbmnet"):
        resolve_study(TABLES["lbmnet-table6"], str(planned_phantom.dataset_id), (5,), None, "3d_fullres", False, None)
    assert main(["study", "lbmnet-table6", str(planned_phantom.dataset_id), "--folds", "5"]) == 2
    assert "nnUNetLBMNetPlans.json is missing" in capsys.readouterr().err


def test_tiny_study_runs_two_rows_on_one_split_and_resumes(planned_phantom, monkeypatch, capsys):
    monkeypatch.setenv("NNUNET_STROKE_TINY_EPOCHS", "1")
    monkeypatch.setenv("NNUNET_STROKE_TINY_ITERATIONS", "2")
    command = ["study", "lbmnet-table6", str(planned_phantom.dataset_id), "--tiny", "--rows", "AblT6M1,AblT6M2",
               "--folds", "5", "-device", "cpu", "--disable-tta"]
    assert main(command) == 0
    folder = (Path(os.environ["nnUNet_results"]) / planned_phantom.name / "studies"
              / "lbmnet-table6_tiny__nnUNetPlans__3d_fullres")
    summary = json.loads((folder / "study.json").read_text(encoding="utf-8"))
    assert [row["trainer"] for row in summary["rows"]] == ["nnUNetTrainerLBMNet_AblT6M1_Tiny",
                                                           "nnUNetTrainerLBMNet_AblT6M2_Tiny"]
    heldout = planned_phantom.heldout["5"]
    for row in summary["rows"]:
        assert row["folds_done"] == [5] and row["folds_missing"] == []
        cases = json.loads(Path(row["metrics_json"]["5"]).read_text(encoding="utf-8"))["cases"]
        assert sorted(c["case"] for c in cases) == sorted(heldout)
        dice = row["across_splits"]["dice"]
        assert dice["mean"] == pytest.approx(sum(c["dice"] for c in cases) / len(cases))
        assert (dice["std"], dice["n_splits"], dice["n_cases"]) == (None, 1, len(heldout))
        assert row["wilcoxon_dice_vs_reference"] is None  # the reference row (Model 5) was not run
        checkpoint = Path(row["metrics_json"]["5"]).parents[1] / "checkpoint_final.pth"
        assert checkpoint.is_file()
    first = (folder / "study.json").read_text(encoding="utf-8")
    assert "Model 1: plain 3D U-Net" in (folder / "study.md").read_text(encoding="utf-8")

    def no_step(command, *args):
        raise AssertionError(f"finished work was redone: {command}")

    monkeypatch.setattr("nnunet_stroke.workflows.study._run", no_step)
    capsys.readouterr()
    assert main(command) == 0
    out = capsys.readouterr().out
    assert out.count("trained already") == 2 and out.count("evaluated already") == 2
    assert (folder / "study.json").read_text(encoding="utf-8") == first
