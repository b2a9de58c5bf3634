"""Baseline networks of LBMNet Tables 1, 3, 4 and the nnU-Net Revisited comparison (see docs/baselines.md).

Importing this package registers their architectures with ``networks.registry``: UNet++, Attention
U-Net, UNETR, SwinUNETR, TransUNet-style 3D, STU-Net, U-Mamba Bot/Enc, SegMamba.
nnU-Net's own U-Net and ResEnc come from nnU-Net (``nnUNetTrainerStrokeUNet`` with its plans).
"""
from nnunet_stroke.networks.baselines import (attention_unet, segmamba, stunet, swin_unetr, transunet,  # noqa: F401
                                              umamba, unetpp, unetr)
