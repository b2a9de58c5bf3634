"""Every trainer family's ``_Tiny`` network learns: on one fixed batch its training loss falls by a clear
margin within a few dozen steps, and every parameter gets a non-zero gradient at the first step (so a network that cannot learn, or carries a dead branch, fails here).

One trainer per network architecture of the registry (the one with the shortest tiny preset and name:
``nnUNetTrainerLBMNet_Tiny`` stands for every LBMNet ablation that shares its architecture), its network built by the trainer's own
``build_network_architecture`` from an nnU-Net plan, and the trainer's loss:
- segmentation: Dice + cross-entropy with the package's class weights (``min(n_0 / n_c, 10)``, here from
  the batch's labels) under nnU-Net's deep-supervision weights (1/2^i, lowest resolution 0), the
  ``DC_and_CE_loss`` of :class:`~nnunet_stroke.trainers.base.nnUNetTrainerStrokeUNet`; single-output
  trainers without deep supervision; PMSAN-Seg adds its detection term (the trainer's own
  ``compute_train_loss``);
- image-level classifiers: the trainer's cross-entropy (``_build_loss``, label smoothing included).
"Falls" means: after 20 Adam steps the loss is below half its first value (positive for every family:
cross-entropy outweighs the Dice term at initialisation); a network that cannot learn keeps its loss.
The optimiser is Adam for every family (the test asks whether the network can fit a batch, not whether a
schedule is tuned). The gradient check weights every deep-supervision output (nnU-Net's zero weight on
the lowest one is a training choice, not a property of the network). The two tests at the end show that
the checks fail for a network with a silenced output and for one with a detached branch.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn
from torch.nn import functional as F

from nnunet_stroke.networks.registry import load_preset
from nnunet_stroke.trainers import TRAINERS
from nnunet_stroke.trainers.base import inverse_frequency_weights

STEPS = 20
LEARNING_RATE = 3e-3
LOSS_RATIO = 0.5  # the last loss must be below this fraction of the first (which is positive)
PLAN_3D = ([16, 16, 16], [[1, 1, 1], [2, 2, 2], [2, 2, 2]])
PLAN_2D = ([32, 32], [[1, 1], [2, 2], [2, 2]])
PLANS = {  # architectures that need another plan
    # STU-Net always has six stages; on a plan with fewer its extra heads are unused by design
    # (networks/baselines/stunet.py), so its plan has six
    "stunet": ([16, 16, 16], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 1, 1], [1, 1, 1]]),
    "strokenext": PLAN_2D,
}


def _architecture(trainer: type) -> str:
    preset = getattr(trainer, "tiny_preset", None)
    return load_preset(preset)["architecture"] if preset else "nnunet_planned_unet"


def one_trainer_per_architecture() -> list[str]:
    families: dict[str, str] = {}
    for name in sorted(TRAINERS, key=lambda n: (len(getattr(TRAINERS[n], "tiny_preset", None) or ""), len(n), n)):
        if name.endswith("_Tiny"):
            families.setdefault(_architecture(TRAINERS[name]), name)
    return sorted(families.values())


def is_classifier(trainer: type) -> bool:
    return any(c.__name__ == "ClassificationTrainer" for c in trainer.__mro__)


def uses_deep_supervision(trainer: type) -> bool:
    return not any(c.__name__ == "NoDeepSupervisionMixin" for c in trainer.__mro__)


def _plan(patch: list[int], strides: list[list[int]]):
    """An nnU-Net plan with one configuration ``c`` (PlainConvUNet widths for the planned-network trainers)."""
    dim, stages = len(patch), len(strides)
    ops = {3: ("Conv3d", "InstanceNorm3d"), 2: ("Conv2d", "InstanceNorm2d")}[dim]
    architecture = {
        "n_stages": stages, "features_per_stage": [32, 64, 128, 256, 320, 320][:stages],
        "conv_op": f"torch.nn.modules.conv.{ops[0]}", "kernel_sizes": [[3] * dim] * stages, "strides": strides,
        "n_conv_per_stage": [2] * stages, "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.{ops[1]}", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True}}
    configuration = {
        "data_identifier": "c", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2, "patch_size": patch,
        "median_image_size_in_voxels": patch, "spacing": [1.0] * dim,
        "normalization_schemes": ["ZScoreNormalization"] * 2, "use_mask_for_norm": [False] * 2,
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": architecture,
                         "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        "batch_dice": False}
    plans = {"dataset_name": "Dataset999_Learning", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": [1.0] * dim, "original_median_shape_after_transp": patch,
             "image_reader_writer": "SimpleITKIO", "transpose_forward": list(range(dim)),
             "transpose_backward": list(range(dim)), "configurations": {"c": configuration},
             "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {}}
    manager = PlansManager(plans)
    return manager, manager.get_configuration("c")


def _blobs(batch: int, shape: list[int], generator: torch.Generator) -> torch.Tensor:
    """(batch, 1, *shape) label maps: one ball per image at a random place, radius a quarter of the patch."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in shape], indexing="ij"))
    labels = []
    for _ in range(batch):
        centre = torch.tensor([float(torch.randint(s // 4, s - s // 4, (1,), generator=generator)) for s in shape])
        distance = ((grid - centre.view(-1, *[1] * len(shape))) ** 2).sum(0).sqrt()
        labels.append(distance < min(shape) / 4)
    return torch.stack(labels)[:, None].float()


def fixed_batch(classifier: bool, shape: list[int], channels: int, seed: int = 0):
    """(input, target): lesions bright in the first channel and dark in the second, over noise."""
    generator = torch.Generator().manual_seed(seed)
    batch = 2  # classifiers: one image of each class
    lesion = _blobs(batch, shape, generator)
    if classifier:  # lesion-free images for class 0
        classes = torch.arange(batch) % 2
        lesion = lesion * classes.view(-1, *[1] * (lesion.dim() - 1))
    signal = torch.cat([lesion, -lesion][:channels], dim=1)
    x = signal + 0.5 * torch.randn(batch, channels, *shape, generator=generator)
    return x, (classes if classifier else lesion)


def segmentation_loss(target: torch.Tensor, deep_supervision: bool, stages: int, all_outputs: bool = False):
    """The trainers' Dice + weighted CE (trainers.base), wrapped with nnU-Net's deep-supervision weights."""
    counts = np.bincount(target.long().flatten().numpy(), minlength=2)
    weights = inverse_frequency_weights(counts, 10.0)
    loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False},
                          {"weight": torch.tensor(weights, dtype=torch.float32)}, weight_ce=1, weight_dice=1,
                          ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    if not deep_supervision:
        return loss
    ds_weights = np.array([1 / 2 ** i for i in range(stages - 1)])
    if not all_outputs:
        ds_weights[-1] = 0
    return DeepSupervisionWrapper(loss, ds_weights / ds_weights.sum())


def deep_supervision_targets(target: torch.Tensor, outputs) -> list[torch.Tensor]:
    return [F.interpolate(target, size=o.shape[2:], mode="nearest") for o in outputs]


class Family:
    """A trainer's network on its plan, the trainer's loss and one fixed batch."""

    def __init__(self, trainer_name: str, seed: int = 0):
        self.trainer = TRAINERS[trainer_name]
        self.classifier = is_classifier(self.trainer)
        self.deep_supervision = not self.classifier and uses_deep_supervision(self.trainer)
        patch, strides = PLANS.get(_architecture(self.trainer), PLAN_3D)
        self.stages = len(strides)
        channels = 1 if len(patch) == 2 else 2
        manager, configuration = _plan(patch, strides)
        torch.manual_seed(seed)
        self.network = self.trainer.build_network_architecture(manager, configuration, channels, 2,
                                                               self.deep_supervision)
        self.x, self.target = fixed_batch(self.classifier, patch, channels, seed)
        # a trainer instance without nnU-Net's set-up: only what its loss methods read
        self.hook = object.__new__(self.trainer)
        self.hook.network = self.network
        self.hook.label_manager = type("Labels", (), {"ignore_label": None})()

    def loss(self, all_outputs: bool = False) -> torch.Tensor:
        if self.classifier:
            self.hook.loss = self.hook._build_loss()
            return self.hook.compute_train_loss(self.x, self.target)
        self.hook.loss = segmentation_loss(self.target, self.deep_supervision, self.stages, all_outputs)
        output = self.network(self.x)  # the shapes of the deep-supervision targets
        target = deep_supervision_targets(self.target, output) if self.deep_supervision else self.target
        if hasattr(self.hook, "compute_train_loss"):  # PMSAN-Seg: its joint loss, from a fresh forward
            return self.hook.compute_train_loss(self.x, target)
        return self.hook.loss(output, target)


# parameters a library builds and never uses, by architecture: (name fragment, why)
UNUSED_BY_THE_LIBRARY = {
    # MONAI's TransformerBlock creates norm_cross_attn even when with_cross_attention is False (MONAI 1.4-1.6)
    "unetr": ("norm_cross_attn", "MONAI's ViT blocks build a cross-attention norm they use only with cross-attention"),
}


def parameters_without_gradient(network: nn.Module, loss: torch.Tensor, architecture: str | None = None) -> list[str]:
    network.zero_grad(set_to_none=True)
    loss.backward()
    unused = UNUSED_BY_THE_LIBRARY[architecture][0] if architecture in UNUSED_BY_THE_LIBRARY else None
    return [name for name, p in network.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
            and not (unused and unused in name)]


def train_on_batch(family: Family, steps: int = STEPS) -> list[float]:
    optimizer = torch.optim.Adam([p for p in family.network.parameters() if p.requires_grad], lr=LEARNING_RATE)
    family.network.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = family.loss()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def loss_falls(losses: list[float]) -> bool:
    return all(np.isfinite(losses)) and losses[0] > 0 and losses[-1] < LOSS_RATIO * losses[0]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a shared machine; the networks are tiny
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("trainer_name", one_trainer_per_architecture())
def test_tiny_network_learns_one_batch_and_every_parameter_gets_a_gradient(trainer_name):
    family = Family(trainer_name)
    dead = parameters_without_gradient(family.network, family.loss(all_outputs=True), _architecture(family.trainer))
    assert not dead, f"{trainer_name}: no gradient at the first step for {dead[:10]}"
    losses = train_on_batch(family)
    assert loss_falls(losses), f"{trainer_name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {STEPS} steps"


def test_families_cover_every_network_kind():
    architectures = {_architecture(TRAINERS[name]) for name in one_trainer_per_architecture()}
    assert {"nnunet_planned_unet", "lbmnet", "pmsan", "pmsan_classifier", "strokenext"} <= architectures
    assert {"unetpp", "attention_unet", "unetr", "swin_unetr", "transunet", "umamba_bot", "umamba_enc", "segmamba",
            "stunet"} <= architectures  # every baseline family


class _SilencedOutput(nn.Module):
    """A network whose outputs are multiplied by zero: it cannot learn."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network, self.decoder = network, network.decoder

    def forward(self, x):
        return [o * 0 for o in self.network(x)]


class _DetachedBranch(nn.Module):
    """A network plus a branch whose output is detached before it joins: the branch gets no gradient."""

    def __init__(self, network: nn.Module, channels: int):
        super().__init__()
        self.network, self.decoder = network, network.decoder
        self.branch = nn.Conv3d(channels, 2, 1)

    def forward(self, x):
        outputs = self.network(x)
        return [outputs[0] + self.branch(x).detach()] + list(outputs[1:])


def test_a_network_with_a_silenced_output_fails_the_loss_check():
    family = Family("nnUNetTrainerStrokeUNet_Tiny")
    family.network = family.hook.network = _SilencedOutput(family.network)
    assert not loss_falls(train_on_batch(family, steps=STEPS))


def test_a_detached_branch_fails_the_gradient_check():
    family = Family("nnUNetTrainerStrokeUNet_Tiny")
    family.network = family.hook.network = _DetachedBranch(family.network, family.x.shape[1])
    assert parameters_without_gradient(family.network, family.loss(all_outputs=True)) == ["branch.weight", "branch.bias"]
