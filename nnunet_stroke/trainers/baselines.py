"""Trainers of the baselines (LBMNet Tables 1, 3, 4; nnU-Net Revisited), see docs/baselines.md.

Every baseline trains with the package's loss (Dice + class-weighted CE, LBMNet eq. 13). The names
below keep nnU-Net's schedule (SGD lr 1e-2, weight decay 3e-5, 1000 epochs, the planned batch size);
``nnUNetTrainer<Baseline>_LBMNetRecipe`` trains the same network on LBMNet's recipe (section 4.2: "all
baseline methods employed the same configuration"; lr 1e-3, 300 epochs, batch size 2, see
trainers.recipes), one per baseline of LBMNet's Table 1 and for the 3D U-Net row
(``nnUNetTrainerStrokeUNet_LBMNetRecipe``), plus Attention U-Net and SegMamba. Networks without deep
supervision (UNETR, SwinUNETR, Attention U-Net, SegMamba) switch nnU-Net's deep supervision off the
way nnU-Net's own Primus trainers do (``enable_deep_supervision = False`` and a no-op
``set_deep_supervision_enabled``). ``param_check`` names the figure the paper-scale network's
parameter count is tested against (tests/test_baselines_params.py).

nnU-Net's own 3D/2D U-Net and ResEnc M/L are not duplicated: train ``nnUNetTrainerStrokeUNet`` with
nnU-Net's plans (``-p nnUNetPlans`` or ``-p nnUNetResEncUNetMPlans``/``LPlans``).
"""
from __future__ import annotations

import torch

from nnunet_stroke.trainers.base import PresetTrainer, nnUNetTrainerStrokeUNet
from nnunet_stroke.trainers.recipes import LBMNetRecipe


class NoDeepSupervisionMixin:
    """Single-output networks: no deep-supervision targets, loss weights or network switch."""

    # nnU-Net records the constructor's named parameters in every checkpoint: keep its exact signature
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False

    def set_deep_supervision_enabled(self, enabled: bool):
        pass


class nnUNetTrainerUNetPlusPlus(PresetTrainer):
    """3D UNet++: nested dense skip pathways on the planned pooling, nnU-Net deep supervision."""

    network_preset, tiny_preset = "unetpp", "unetpp_tiny"
    paper = "Zhou et al., UNet++, DLMIA 2018 / IEEE TMI 2020"
    param_check = "9.04 M in UNet++'s 2D setting (widths 32-512, 1 channel, 1 class): Zhou et al. 2018, Table 1"


class nnUNetTrainerAttentionUNet(NoDeepSupervisionMixin, PresetTrainer):
    """3D Attention U-Net (MONAI AttentionUnet) on the planned pooling, no deep supervision."""

    network_preset, tiny_preset = "attention_unet", "attention_unet_tiny"
    paper = "Oktay et al., Attention U-Net, MIDL 2018"
    param_check = ""  # no published figure exists for MONAI's variant of the network


class nnUNetTrainerUNETR(NoDeepSupervisionMixin, PresetTrainer):
    """UNETR (MONAI), patch padded to a multiple of 16, no deep supervision."""

    network_preset, tiny_preset = "unetr", "unetr_tiny"
    paper = "Hatamizadeh et al., UNETR, WACV 2022"
    param_check = "99.1 M (feature size 16, hidden 768, 3 channels, 2 classes, 96^3): MONAI UNETR instantiated with these settings"


class nnUNetTrainerSwinUNETR(NoDeepSupervisionMixin, PresetTrainer):
    """SwinUNETR (MONAI, feature size 48), patch padded to a multiple of 32, no deep supervision."""

    network_preset, tiny_preset = "swin_unetr", "swin_unetr_tiny"
    paper = "Hatamizadeh et al., Swin UNETR, BrainLes 2021"
    param_check = "62.2 M (feature size 48, 3 channels, 2 classes): MONAI SwinUNETR instantiated with these settings"


class nnUNetTrainerTransUNet(PresetTrainer):
    """TransUNet-style 3D: nnU-Net CNN encoder, ViT-B on the bottleneck tokens, nnU-Net decoder."""

    network_preset, tiny_preset = "transunet", "transunet_tiny"
    paper = "Chen et al., TransUNet, arXiv 2102.04306; 3D TransUNet, arXiv 2310.07781"
    param_check = "85,054,464 in the 12 ViT-B blocks (ViT-B/16 = 86 M): Dosovitskiy et al. 2021, Table 1"


class nnUNetTrainerUMambaBotCPU(PresetTrainer):
    """U-Mamba Bot with the package's Mamba mixer (CPU and CUDA)."""

    network_preset, tiny_preset = "umamba_bot", "umamba_bot_tiny"
    paper = "Ma et al., U-Mamba, arXiv 2401.04722"
    param_check = "bottleneck MambaLayer 675,200 + 640 at C=320: mamba-ssm v1 Mamba (mamba_simple.py) instantiated"


class nnUNetTrainerUMambaEncCPU(PresetTrainer):
    """U-Mamba Enc with the package's Mamba mixer (CPU and CUDA)."""

    network_preset, tiny_preset = "umamba_enc", "umamba_enc_tiny"
    paper = "Ma et al., U-Mamba, arXiv 2401.04722"
    param_check = "every MambaLayer = 3Ed^2 + Ed(d_conv + 2R + 3N + 3) + 2d (mamba-ssm v1), 675,840 at d=320"


class nnUNetTrainerSegMamba(NoDeepSupervisionMixin, PresetTrainer):
    """SegMamba: tri-orientated Mamba encoder, UNETR-block decoder, no deep supervision."""

    network_preset, tiny_preset = "segmamba", "segmamba_tiny"
    paper = "Xing et al., SegMamba, MICCAI 2024"
    param_check = "67.4 M default (4 channels, 3 classes), Mamba layers 31,488-1,122,816: SegMamba reference code (ge-xing/SegMamba) instantiated"


class nnUNetTrainerSTUNet_S(PresetTrainer):
    """STU-Net S (dims 16-256) on the planned pooling, nnU-Net deep supervision."""

    network_preset, tiny_preset = "stunet_s", "stunet_tiny"
    paper = "Huang et al., STU-Net, arXiv 2304.06716"
    param_check = "14.6 M (1 channel, 105 classes): Huang et al. 2023, arXiv 2304.06716 (model scales)"


class nnUNetTrainerSTUNet_B(PresetTrainer):
    """STU-Net B (dims 32-512) on the planned pooling, nnU-Net deep supervision."""

    network_preset, tiny_preset = "stunet_b", "stunet_tiny"
    paper = "Huang et al., STU-Net, arXiv 2304.06716"
    param_check = "58.3 M (1 channel, 105 classes): Huang et al. 2023, arXiv 2304.06716 (model scales)"


LBMNET_RECIPE_BASELINES = (nnUNetTrainerStrokeUNet, nnUNetTrainerUNetPlusPlus, nnUNetTrainerAttentionUNet,
                           nnUNetTrainerUNETR, nnUNetTrainerSwinUNETR, nnUNetTrainerTransUNet,
                           nnUNetTrainerUMambaBotCPU, nnUNetTrainerSTUNet_S, nnUNetTrainerSTUNet_B,
                           nnUNetTrainerSegMamba)


def _on_lbmnet_recipe(baseline: type) -> type:
    """``<baseline>_LBMNetRecipe``: the baseline's network and loss on LBMNet's recipe (trainers.recipes)."""
    name = f"{baseline.__name__}_LBMNetRecipe"
    summary = (baseline.__doc__ or "").strip().splitlines()[0]
    attributes = {"paper": f"{baseline.paper}; recipe of Kuang et al., LBMNet, Front. Med. 2026, section 4.2",
                  "__doc__": f"{summary} On LBMNet's recipe: SGD lr 1e-3, wd 3e-5, 300 epochs, batch size 2.",
                  "__module__": __name__, "__qualname__": name}
    return type(name, (LBMNetRecipe, baseline), attributes)


globals().update({trainer.__name__: trainer for trainer in map(_on_lbmnet_recipe, LBMNET_RECIPE_BASELINES)})
