"""The paper tables `nnunet-stroke study` runs: which trainer trains each row (LBMNet, Kuang et al.,
Front. Med. 2026).

- ``lbmnet-table1``: Table 1 (comparison on ATLAS v2.0): every baseline on LBMNet's recipe
  (``_LBMNetRecipe`` trainers; section 4.2: "all baseline methods employed the same configuration"),
  nnU-Net's planned 3D U-Net for the "3Dunet" row, and LBMNet. FRPNet has no public implementation and
  is left out; the paper names neither STU-Net's size (both S and B are rows) nor U-Mamba's variant (Bot).
  Attention U-Net and SegMamba are cited by the paper but are not rows of its Table 1: they are extra rows
  here, marked as such.
- ``lbmnet-table6`` ... ``lbmnet-table9``, ``lbmnet-fig11``: the ablations, one row per entry of
  ``trainers.lbmnet.ABLATIONS`` (every row on the paper's recipe).

Each table compares every row with its full-LBMNet row (the ``reference``): Table 1 with
``nnUNetTrainerLBMNet``, an ablation table with its own row whose network is the full model.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_stroke.errors import UserError
from nnunet_stroke.trainers.lbmnet import ABLATIONS
from nnunet_stroke.trainers.tiny import TINY_SUFFIX

FULL_MODEL_PRESET = "lbmnet"


@dataclass(frozen=True)
class StudyRow:
    """One row of a paper's table: its key for ``--rows``, the paper's label and the trainer that reproduces it."""

    key: str  # short name for --rows
    label: str  # the paper's row
    trainer: str  # paper-scale trainer; `--tiny` appends _Tiny

    def trainer_name(self, tiny: bool) -> str:
        return self.trainer + (TINY_SUFFIX if tiny else "")


@dataclass(frozen=True)
class StudyTable:
    """A paper's table as rows of trainers, and the row every other row is compared with."""

    name: str
    title: str
    rows: tuple[StudyRow, ...]
    reference: str  # key of the full-LBMNet row every other row is compared with
    note: str = ""

    def select(self, keys: list[str] | None) -> tuple[StudyRow, ...]:
        """The rows named by ``keys`` (case-insensitive), in the table's order; all rows for None."""
        if not keys:
            return self.rows
        by_key = {row.key.lower(): row for row in self.rows}
        unknown = [key for key in keys if key.lower() not in by_key]
        if unknown:
            raise UserError(f"{self.name} has no row {', '.join(unknown)}; its rows: "
                            f"{', '.join(row.key for row in self.rows)} (`nnunet-stroke study --list`)")
        wanted = {key.lower() for key in keys}
        return tuple(row for row in self.rows if row.key.lower() in wanted)


def _recipe(baseline: str) -> str:
    return f"nnUNetTrainer{baseline}_LBMNetRecipe"


NOT_IN_TABLE_1 = "(cited by the paper, not a row of its Table 1)"
TABLE_1 = StudyTable(
    "lbmnet-table1", "Table 1: comparison of different models (ATLAS v2.0 in the paper)",
    (StudyRow("3DUNet", "3Dunet (nnU-Net's planned 3D U-Net)", _recipe("StrokeUNet")),
     StudyRow("UNetPlusPlus", "U-Net++", _recipe("UNetPlusPlus")),
     StudyRow("SwinUNETR", "SwinUNet (Swin UNETR)", _recipe("SwinUNETR")),
     StudyRow("TransUNet", "TransUNet (TransUNet-style 3D)", _recipe("TransUNet")),
     StudyRow("UNETR", "UNETR", _recipe("UNETR")),
     StudyRow("STUNet_S", "STU-Net (S)", _recipe("STUNet_S")),
     StudyRow("STUNet_B", "STU-Net (B)", _recipe("STUNet_B")),
     StudyRow("UMambaBot", "Umamba (U-Mamba Bot)", _recipe("UMambaBotCPU")),
     StudyRow("AttentionUNet", f"Attention U-Net {NOT_IN_TABLE_1}", _recipe("AttentionUNet")),
     StudyRow("SegMamba", f"SegMamba {NOT_IN_TABLE_1}", _recipe("SegMamba")),
     StudyRow("LBMNet", "LBMNet", "nnUNetTrainerLBMNet")),
    reference="LBMNet",
    note="FRPNet (no public implementation) is not reproduced.")

ABLATION_TABLES = {  # table name -> (trainer suffix prefix in ABLATIONS, title)
    "lbmnet-table6": ("AblT6", "Table 6: performance comparison of different components"),
    "lbmnet-table7": ("AblT7", "Table 7: LSC ablation"),
    "lbmnet-table8": ("AblT8", "Table 8: BSC-Mamba ablation (SSM, ASC)"),
    "lbmnet-table9": ("AblT9", "Table 9: BSC-Mamba scanning directions"),
    "lbmnet-fig11": ("AblF11", "Figure 11: BAGF ablation"),
}


def _ablation_table(name: str, prefix: str, title: str) -> StudyTable:
    """Rows ``nnUNetTrainerLBMNet_<suffix>`` for the ABLATIONS entries of one table, in their order."""
    entries = [(suffix, preset, row) for suffix, (preset, row) in ABLATIONS.items()
               if suffix.startswith(prefix) and suffix[len(prefix)].isalpha()]  # AblF1 must not take AblF11
    rows = tuple(StudyRow(suffix, row.split(", ", 1)[1], f"nnUNetTrainerLBMNet_{suffix}") for suffix, _, row in entries)
    reference = next(suffix for suffix, preset, _ in entries if preset == FULL_MODEL_PRESET)
    return StudyTable(name, title, rows, reference)


TABLES: dict[str, StudyTable] = {"lbmnet-table1": TABLE_1, **{
    name: _ablation_table(name, prefix, title) for name, (prefix, title) in ABLATION_TABLES.items()}}


def get_table(name: str) -> StudyTable:
    try:
        return TABLES[name]
    except KeyError:
        raise UserError(f"unknown table {name!r}; choose one of {', '.join(TABLES)} (`nnunet-stroke study --list`)") \
            from None


def describe_tables() -> str:
    """Every table with its rows, trainers and reference row, for `nnunet-stroke study --list`."""
    lines = []
    for table in TABLES.values():
        lines.append(f"{table.name}: {table.title}")
        for row in table.rows:
            marker = "  (reference: p-values against this row)" if row.key == table.reference else ""
            lines.append(f"  {row.key:<14} {row.trainer:<44} {row.label}{marker}")
        if table.note:
            lines.append(f"  {table.note}")
        lines.append("")
    lines.append("--tiny trains each row's <trainer>_Tiny variant; --rows KEY,KEY runs some rows only.")
    return "\n".join(lines)
