"""PMSAN classifier sizes and distillation initialisation, counted (no timing; load-independent).

    python benchmarks/bench_pmsan_classifier.py

- Parameters of ``nnUNetTrainerPMSANClassifier_{S,M,L,XL}`` networks with 2 input channels (DWI + ADC) and
  2 classes, built through nnU-Net's hook (``build_network_architecture``) on the meta device for two
  3d_fullres plans (the phantom-like 24x32x32 four-level plan and a five-level 80x112x112 plan), against
  the paper's 5.2 / 9.7 / 16.3 / 28.6 M.
- Share of each student's parameters initialised from its teacher (Algorithm 1 step 3, chunk-wise
  slicing of nnunet_stroke/networks/pmsan_init.py), for both PMSAN families at paper size.

Writes a record in benchmarks/results/pmsan_classifier/.
"""
from __future__ import annotations

import sys

import torch
from records import Measurement, not_recorded, provenance, write_record

RECORD_NAME = "pmsan_classifier"
PLANS = {"4 levels, 24x32x32": ([24, 32, 32], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]),
         "5 levels, 80x112x112": ([80, 112, 112], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]])}
CHAIN = (("xl", "l"), ("l", "m"), ("m", "s"))


def plans_manager(patch: list[int], strides: list[list[int]]):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    n = len(strides)
    configuration = {
        "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2, "patch_size": patch,
        "median_image_size_in_voxels": patch, "spacing": [1, 1, 1], "normalization_schemes": ["ZScoreNormalization"] * 2,
        "use_mask_for_norm": [False, False], "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {},
        "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {}, "batch_dice": False,
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": {"n_stages": n, "features_per_stage": [32] * n, "conv_op": "torch.nn.modules.conv.Conv3d",
                                         "kernel_sizes": [[3, 3, 3]] * n, "strides": strides, "n_conv_per_stage": [2] * n,
                                         "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
                                         "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                                         "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                                         "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                                         "nonlin_kwargs": {"inplace": True}},
                         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}}
    plans = {"dataset_name": "Dataset000_Sizes", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1, 1, 1],
             "original_median_shape_after_transp": patch, "image_reader_writer": "SimpleITKIO",
             "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": configuration},
             "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {}}
    manager = PlansManager(plans)
    return manager, manager.get_configuration("3d_fullres")


def count(trainer: str, patch, strides) -> int:
    from nnunet_stroke.trainers import TRAINERS

    manager, configuration = plans_manager(patch, strides)
    with torch.device("meta"):
        network = TRAINERS[trainer].build_network_architecture(manager, configuration, 2, 2, False)
    return sum(p.numel() for p in network.parameters())


def initialisation_share(preset: str, teacher_size: str, student_size: str) -> tuple[int, int]:
    from nnunet_stroke.networks.pmsan_init import initialize_from_teacher
    from nnunet_stroke.networks.registry import build_network

    patch, strides = PLANS["5 levels, 80x112x112"]
    build = lambda size: build_network(f"{preset}{size}", input_channels=2, num_classes=2,  # noqa: E731
                                       patch_size=patch, strides=strides, deep_supervision=False)
    return initialize_from_teacher(build(student_size), build(teacher_size).state_dict())


def main() -> int:
    from nnunet_stroke.networks.pmsan_scaling import PAPER_SIZES

    with Measurement() as measured:
        sizes = []
        for size, (phi, paper) in PAPER_SIZES.items():
            trainer = f"nnUNetTrainerPMSANClassifier_{size.upper()}"
            sizes.append({"trainer": trainer, "phi": phi, "paper": paper,
                          "counts": [count(trainer, *plan) for plan in PLANS.values()]})
        shares = [{"family": family, "teacher": teacher, "student": student,
                   "copied_total": list(initialisation_share(preset, teacher, student))}
                  for family, preset in (("PMSAN classifier", "pmsan_classifier_"), ("PMSAN-Seg", "pmsan_"))
                  for teacher, student in CHAIN]
    figures = {"plans": list(PLANS), "sizes": sizes, "initialisation": shares}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")
    return 0


TITLE = "PMSAN classifier: sizes and distillation initialisation"


def render(records: list[dict]) -> str:
    if not records:
        return not_recorded(TITLE, "python benchmarks/bench_pmsan_classifier.py")
    record = records[-1]
    f = record["figures"]
    lines = [f"## {TITLE}", "", provenance(record) + " Parameter counts on the meta device (no timing).", "",
             "Whole network (encoder + classification head), 2 input channels, 2 classes, built through nnU-Net's "
             "hook on two 3d_fullres plans:", "",
             "| trainer | phi | paper | " + " | ".join(f["plans"]) + " | difference |",
             "|---|---|---|" + "---|" * (len(f["plans"]) + 1)]
    for row in f["sizes"]:
        counts, paper = row["counts"], row["paper"]
        lines.append(f"| `{row['trainer']}` | {row['phi']} | {paper / 1e6:.1f} M | "
                     + " | ".join(f"{c / 1e6:.2f} M" for c in counts) + f" | {(counts[-1] - paper) / paper:+.1%} |")
    lines += ["", "Students initialised from their teachers (chunk-wise slicing; five-level plan):", "",
              "| family | teacher -> student | parameters from the teacher | share |", "|---|---|---|---|"]
    for row in f["initialisation"]:
        copied, total = row["copied_total"]
        lines.append(f"| {row['family']} | {row['teacher'].upper()} -> {row['student'].upper()} | {copied:,} of "
                     f"{total:,} | {copied / total:.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
