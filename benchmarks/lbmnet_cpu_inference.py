"""Paper-scale LBMNet against nnU-Net's planned 3D U-Net at CPU inference, side by side in one process:
one patch, and a whole ISLES-sized volume through nnU-Net's predictor; and the per-module profile.
Modes of ``bench_lbmnet.py`` (``--inference-ratio``, ``--profile``).

Both networks come from their trainers' ``build_network_architecture`` for the same plans (the 2 mm
ISLES-like ``3d_fullres`` plan: patch 80x112x112, strides [1,1,1] + 4 x [2,2,2], 2 channels, 2 classes):
``nnUNetTrainerLBMNet`` (preset ``lbmnet``) and nnU-Net's own ``nnUNetTrainer`` (the planned
PlainConvUNet, widths 32-320). Same as nnU-Net prediction: eval mode, ``torch.inference_mode``, no deep
supervision. Every timed call gets a fresh random input; the two networks alternate call by call, so
load from other processes hits both alike. Whole volume: ``nnUNetPredictor.predict_logits_from_
preprocessed_data`` (Gaussian sliding window, tile step 0.5, no mirroring, CPU), one warm-up each.
The 1-minute load average is sampled every 5 s during the run; the records go to benchmarks/results/lbmnet/.
"""
from __future__ import annotations

import statistics
import time

import torch
from records import Measurement, load_summary, not_recorded, provenance, write_record

RECORD_NAME = "lbmnet"
PATCH = [80, 112, 112]
STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 4
CHANNELS, CLASSES = 2, 2
ISLES_VOLUME = (72, 112, 112)  # ISLES'22 DWI/ADC at 2 mm (bench_evaluation's synthetic cases)
LBMNET, UNET = "LBMNet paper (nnUNetTrainerLBMNet)", "nnU-Net planned 3D U-Net (nnUNetTrainer)"


def isles_like_plans() -> dict:
    """nnU-Net plans with one 3d_fullres configuration: the 2 mm ISLES-like plan, as nnU-Net writes it."""
    arch_kwargs = {
        "n_stages": 5, "features_per_stage": [32, 64, 128, 256, 320], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 5, "strides": STRIDES, "n_conv_per_stage": [2] * 5,
        "n_conv_per_stage_decoder": [2] * 4, "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}}
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": PATCH, "median_image_size_in_voxels": list(ISLES_VOLUME), "spacing": [2.0, 2.0, 2.0],
        "normalization_schemes": ["ZScoreNormalization"] * CHANNELS, "use_mask_for_norm": [False] * CHANNELS,
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": arch_kwargs,
                         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": False}
    return {"dataset_name": "Dataset999_ISLESLike", "plans_name": "nnUNetPlans",
            "original_median_spacing_after_transp": [2.0, 2.0, 2.0],
            "original_median_shape_after_transp": list(ISLES_VOLUME), "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "configurations": {"3d_fullres": configuration}, "experiment_planner_used": "ExperimentPlanner",
            "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {}}


DATASET_JSON = {"channel_names": {"0": "DWI", "1": "ADC"}, "labels": {"background": 0, "lesion": 1},
                "numTraining": 1, "file_ending": ".nii.gz"}


def build_networks(seed: int = 0) -> tuple[dict, object, object]:
    """{label: network} from the trainers' build_network_architecture, plus the plans and configuration."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_stroke.trainers.lbmnet import nnUNetTrainerLBMNet

    manager = PlansManager(isles_like_plans())
    configuration = manager.get_configuration("3d_fullres")
    networks = {}
    for label, trainer in ((LBMNET, nnUNetTrainerLBMNet), (UNET, nnUNetTrainer)):
        torch.manual_seed(seed)
        networks[label] = trainer.build_network_architecture(manager, configuration, CHANNELS, CLASSES,
                                                             enable_deep_supervision=False).eval()
    return networks, manager, configuration


def time_patch(networks: dict, repeats: int) -> dict:
    """{label: [seconds per forward]}: fresh input every call, networks alternating, one warm-up each."""
    times = {label: [] for label in networks}
    with torch.inference_mode():
        for run in range(repeats + 1):
            for label, network in networks.items():
                x = torch.randn(1, CHANNELS, *PATCH)
                start = time.perf_counter()
                network(x)
                if run:
                    times[label].append(time.perf_counter() - start)
    return times


def time_volume(networks: dict, manager, configuration, repeats: int, volume: tuple[int, ...]) -> dict:
    """{label: [seconds per whole-volume prediction]} with nnU-Net's predictor (see the module docstring)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictors = {}
    for label, network in networks.items():
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=False, device=torch.device("cpu"),
                                    verbose=False, allow_tqdm=False)
        predictor.manual_initialization(network, manager, configuration, [network.state_dict()], DATASET_JSON,
                                        label, None)
        predictors[label] = predictor
    times = {label: [] for label in networks}
    for run in range(repeats + 1):
        for label, predictor in predictors.items():
            data = torch.randn(CHANNELS, *volume)
            start = time.perf_counter()
            predictor.predict_logits_from_preprocessed_data(data)
            if run:
                times[label].append(time.perf_counter() - start)
    return times


def run_inference_ratio(repeats: int, volume_repeats: int, threads: int, volume: tuple[int, ...]) -> dict:
    torch.set_num_threads(threads)
    networks, manager, configuration = build_networks()
    with Measurement() as measured:
        patch = time_patch(networks, repeats)
        whole = time_volume(networks, manager, configuration, volume_repeats, volume)
    figures = {"suite": "inference-ratio", "threads": threads, "patch": PATCH, "strides": STRIDES,
               "volume": list(volume), "patch_seconds": patch, "volume_seconds": whole,
               "patch_ratio": statistics.median(patch[LBMNET]) / statistics.median(patch[UNET]),
               "volume_ratio": statistics.median(whole[LBMNET]) / statistics.median(whole[UNET])}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")
    return figures


INFERENCE_TITLE = "LBMNet CPU inference against nnU-Net's planned 3D U-Net"
PROFILE_TITLE = "Where paper-scale LBMNet's CPU inference time goes"


def render_inference_ratio(records: list[dict]) -> str:
    """Every inference-ratio record, newest last: one row per run and measurement."""
    if not records:
        return not_recorded(INFERENCE_TITLE, "python benchmarks/bench_lbmnet.py --inference-ratio")
    f = records[-1]["figures"]
    lines = [f"## {INFERENCE_TITLE}", "",
             f"Networks from `nnUNetTrainerLBMNet` / `nnUNetTrainer.build_network_architecture` for the 2 mm "
             f"ISLES-like plan (patch {'x'.join(map(str, f['patch']))}, strides [1,1,1] + 4 x [2,2,2], 2 channels, "
             "2 classes), eval mode, inference mode, a fresh random input per call, the two networks alternating; "
             f"median after one warm-up. Whole volume: {'x'.join(map(str, f['volume']))} voxels (ISLES'22 at 2 mm), "
             "`predict_logits_from_preprocessed_data`, Gaussian sliding window, tile step 0.5, no mirroring. "
             f"{len(records)} run(s), oldest first.", "",
             "| run | measurement | LBMNet (s) | nnU-Net U-Net (s) | LBMNet / U-Net | calls | 1-minute load average |",
             "|---|---|---|---|---|---|---|"]
    for number, record in enumerate(records, 1):
        figures, load = record["figures"], record.get("load_average_1min")
        load_text = load_summary(load)
        for what, key, ratio in (("one patch, forward", "patch_seconds", "patch_ratio"),
                                 ("whole volume, nnUNetPredictor", "volume_seconds", "volume_ratio")):
            seconds = {label: statistics.median(values) for label, values in figures[key].items()}
            lines.append(f"| {number} | {what} | {seconds[LBMNET]:.2f} | {seconds[UNET]:.2f} | {figures[ratio]:.2f}x | "
                         f"{len(figures[key][LBMNET])} | {load_text} |")
    lines += [""] + [f"Run {n}: {provenance(r)}" for n, r in enumerate(records, 1)] + [""]
    return "\n".join(lines)


def run_profile(repeats: int, threads: int) -> list[dict]:
    """Per-module-kind self time of paper LBMNet's forward (after one warm-up) -> a record (suite profile)."""
    from lbmnet_module_profile import profile_forward

    torch.set_num_threads(threads)
    networks, _, _ = build_networks()
    network = networks[LBMNET]
    with Measurement() as measured:
        with torch.inference_mode():
            network(torch.randn(1, CHANNELS, *PATCH))  # warm-up: numba compilation, oneDNN primitives
        rows, wall = profile_forward(network, torch.randn(1, CHANNELS, *PATCH), repeats)
    figures = {"suite": "profile", "threads": threads, "repeats": repeats, "forward_seconds": wall, "rows": rows}
    print(f"wrote {write_record(RECORD_NAME, figures, measurement=measured)}")
    return rows


def render_profile(record: dict | None) -> str:
    if record is None:
        return not_recorded(PROFILE_TITLE, "python benchmarks/bench_lbmnet.py --profile")
    f = record["figures"]
    table = [f"| {r['kind']} | {r['calls']} | {r['seconds']:.2f} | {100 * r['share']:.1f} |" for r in f["rows"]]
    repeats = f"mean of {f['repeats']} forward passes" if f.get("repeats") else "forward passes"
    return "\n".join([
        f"## {PROFILE_TITLE}", "", provenance(record), "",
        "Network from `nnUNetTrainerLBMNet.build_network_architecture` (ISLES-like plan, one 80x112x112 patch, "
        f"batch 1, inference mode), {repeats} after a warm-up: {f['forward_seconds']:.2f} s per pass. Self time "
        "per module kind from forward hooks (a module's time minus its children's; element-wise work in a block's "
        "own forward counts for the block; `benchmarks/lbmnet_module_profile.py`).", "",
        "| module kind | calls per pass | seconds per pass | share (%) |", "|---|---|---|---|", *table, ""])
