"""LBMNet trainers (Kuang et al., Front. Med. 2026): the paper's recipe, nnU-Net's schedule, and one
trainer per row of the ablation Tables 6-9 and Figure 11 (see docs/lbmnet.md for the table).

``nnUNetTrainerLBMNet`` follows section 4.2 through :class:`~nnunet_stroke.trainers.recipes.LBMNetRecipe`
(shared with the ``_LBMNetRecipe`` baselines): SGD with momentum 0.99 (nnU-Net's Nesterov SGD and
poly learning-rate decay), initial lr 1e-3, weight decay 3e-5, 300 epochs, batch size 2 (global: under
``-num_gpus`` nnU-Net splits it over the GPUs), deep supervision, the hybrid Dice + class-weighted CE
loss of ``nnUNetTrainerStrokeUNet`` (eq. 13), AMP on CUDA (the selective scan itself runs in float32).
``nnUNetTrainerLBMNet_NnunetSchedule`` keeps nnU-Net's defaults (lr 1e-2, 1000 epochs, planned batch
size) for comparisons on equal terms with nnU-Net's trainers.

The ablation trainers ``nnUNetTrainerLBMNet_Abl<row>`` use the paper's recipe (the ablations were run
like the full model) and differ only in their network preset; rows whose network is the full LBMNet
(Table 6 Model 5, Table 7/8 "Ours", Table 9 two-way, Figure 11 full BAGF) use the ``lbmnet`` preset,
so one name per row exists for running a table top to bottom.

Plans (docs/lbmnet.md, "Plans"): every LBMNet trainer, ``_Tiny`` variants included, refuses a plan with
more than five resolution levels (the stem and the paper's four encoder stages, section 3 and Figure 2)
and names ``nnunet-stroke plan ID --planner lbmnet``, which writes such plans; at start each logs its
parameter count next to the paper's 66.42 M (section 5).
"""
from __future__ import annotations

from nnunet_stroke.errors import UserError
from nnunet_stroke.trainers.base import PresetTrainer
from nnunet_stroke.trainers.recipes import LBMNetRecipe

PAPER = "Kuang et al., LBMNet, Front. Med. 2026"
PAPER_PARAMETERS = 66.42e6  # section 5: "a parameter count of 66.42 M"
PAPER_LEVELS = 5  # the stem and four encoder stages (section 3, Figure 2)


def check_plan_levels(strides, plans_name: str, configuration: str, dataset_name: str) -> None:
    """Refuse a plan with more than ``PAPER_LEVELS`` resolution levels (a network with more encoder
    stages than the paper's); the message names the command that writes LBMNet's plans."""
    if len(strides) <= PAPER_LEVELS:
        return
    dataset_id = int(dataset_name[len("Dataset"):].split("_")[0])
    raise UserError(
        f"plans {plans_name} ({dataset_name}), configuration {configuration}: {len(strides)} resolution levels "
        f"(pool_op_kernel_sizes {[list(s) for s in strides]}); LBMNet has {PAPER_LEVELS}, the stem and the paper's "
        f"four encoder stages, and this plan would build {len(strides) - 1} encoder stages instead. Write LBMNet's "
        f"plans with `nnunet-stroke plan {dataset_id} --planner lbmnet`, preprocess them with `nnUNetv2_preprocess "
        f"-d {dataset_id} -plans_name nnUNetLBMNetPlans -c {configuration}` and train with -p nnUNetLBMNetPlans")


class nnUNetTrainerLBMNet(LBMNetRecipe, PresetTrainer):
    """LBMNet with the paper's recipe: SGD lr 1e-3, momentum 0.99, wd 3e-5, 300 epochs, batch size 2."""

    network_preset, tiny_preset = "lbmnet", "lbmnet_tiny"
    paper = PAPER + ", section 3 and 4.2"

    def initialize(self):
        if not self.was_initialized:
            check_plan_levels(self.configuration_manager.pool_op_kernel_sizes, self.plans_manager.plans_name,
                              self.configuration_name, self.plans_manager.dataset_name)
        super().initialize()
        parameters = sum(p.numel() for p in self.network.parameters())
        preset = self.tiny_preset if self.is_tiny else self.network_preset
        self.print_to_log_file(f"Network: preset {preset}, {parameters / 1e6:.2f} M parameters; the paper's LBMNet "
                               f"has {PAPER_PARAMETERS / 1e6:.2f} M ({PAPER}, section 5)")


class nnUNetTrainerLBMNet_NnunetSchedule(nnUNetTrainerLBMNet):
    """LBMNet with nnU-Net's default schedule: lr 1e-2, 1000 epochs, the planned batch size."""

    recipe = None


# trainer suffix -> (preset, row of the paper); the suffix names the table and the paper's row label
ABLATIONS = {
    "AblT6M1": ("lbmnet_abl_plain_unet", "Table 6, Model 1: plain 3D U-Net"),
    "AblT6M2": ("lbmnet_abl_lsc_encoder_only", "Table 6, Model 2: LSC encoder, convolutional decoder, concatenation skips"),
    "AblT6M3": ("lbmnet_abl_bsc_decoder_only", "Table 6, Model 3: convolutional encoder, BSC-Mamba decoder, concatenation skips"),
    "AblT6M4": ("lbmnet_abl_concat_skips", "Table 6, Model 4: LSC encoder, BSC-Mamba decoder, concatenation skips"),
    "AblT6M5": ("lbmnet", "Table 6, Model 5: full LBMNet"),
    "AblT7Base": ("lbmnet_abl_resblock_encoder", "Table 7, Baseline: 3^3 residual blocks instead of LSC"),
    "AblT7A": ("lbmnet_abl_lsc_k5", "Table 7, Model A: single 5^3 depthwise kernel"),
    "AblT7B": ("lbmnet_abl_lsc_k7", "Table 7, Model B: single 7^3 depthwise kernel"),
    "AblT7C": ("lbmnet_abl_lsc_k9", "Table 7, Model C: single 9^3 depthwise kernel"),
    "AblT7D": ("lbmnet_abl_lsc_k5k7_norefine", "Table 7, Model D: 5^3 + 7^3 without the 3^3 refinement"),
    "AblT7Ours": ("lbmnet", "Table 7, Ours: full LSC (5^3 + 7^3 + 3^3)"),
    "AblT8Base": ("lbmnet_abl_conv_decoder", "Table 8, Baseline: convolutional decoder, no SSM, no ASC"),
    "AblT8OnlyASC": ("lbmnet_abl_asc_only_decoder", "Table 8, Only-ASC"),
    "AblT8OnlySSM": ("lbmnet_abl_ssm_only_decoder", "Table 8, Only-SSM"),
    "AblT8Ours": ("lbmnet", "Table 8, Ours: ASC + bidirectional SSM"),
    "AblT9OneWay": ("lbmnet_abl_scan_forward", "Table 9, One-way Mamba (forward, D)"),
    "AblT9TwoWay": ("lbmnet", "Table 9, Two-way Mamba (bidirectional, D): the paper's choice"),
    "AblT9FourWay": ("lbmnet_abl_scan_quad", "Table 9, Four-way Mamba (bidirectional, D + H)"),
    "AblF11Concat": ("lbmnet_abl_concat_skips", "Figure 11, baseline: BAGF replaced by concatenation"),
    "AblF11EncRes": ("lbmnet_abl_concat_encres", "Figure 11, +Enc-Res: concatenation + encoder residual block"),
    "AblF11EncSA": ("lbmnet_abl_concat_encsa", "Figure 11, +Enc-SA: concatenation + encoder spatial attention"),
    "AblF11DecCA": ("lbmnet_abl_concat_decca", "Figure 11, +Dec-CA: concatenation + decoder channel attention"),
    "AblF11Full": ("lbmnet", "Figure 11, full BAGF"),
}


def _ablation_trainer(suffix: str, preset: str, row: str) -> type:
    name = f"nnUNetTrainerLBMNet_{suffix}"
    attributes = {"network_preset": preset, "tiny_preset": f"{preset}_tiny", "paper": f"{PAPER}, {row}",
                  "__doc__": f"LBMNet ablation, {row} (preset {preset}); the paper's recipe.",
                  "__module__": __name__, "__qualname__": name}
    return type(name, (nnUNetTrainerLBMNet,), attributes)


globals().update({trainer.__name__: trainer for trainer in
                  (_ablation_trainer(suffix, preset, row) for suffix, (preset, row) in ABLATIONS.items())})
