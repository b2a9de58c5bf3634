"""SegMamba (Xing et al., "SegMamba: Long-range Sequential Modeling Mamba for 3D Medical Image
Segmentation", MICCAI 2024; reference code ``ge-xing/SegMamba``, ``model_segmamba/segmamba.py`` and the
vendored ``mamba_ssm/modules/mamba_simple.py`` with ``bimamba_type="v3"``), on the package's scan.

Tri-orientated Mamba (ToM), ``TriOrientedMamba``: one shared ``in_proj`` and ``out_proj``; three
direction sets (forward raster: ``conv1d, x_proj, dt_proj, A_log, D``; reversed raster: the ``_b``
set; inter-slice: the ``_s`` set), each the causal conv + selective scan + silu(z) gate of Mamba-1
applied to the permuted ``xz``; the three gated outputs are summed in raster order before
``out_proj``. Inter-slice is SegMamba's chunk-and-interleave of the raster sequence into
``nslices`` = depth chunks, i.e. each (h, w) visits all depth positions in a row. SegMamba hard-codes
nslices = 64, 32, 16, 8, the depths of its four stages at a 128^3 input; here it is the actual depth.
Parameter names match the vendored module, so its state_dicts load.

Network: stem conv 7^3 (stride 2), then three (InstanceNorm, conv k=s=2) downsamplings; per stage a
gated spatial convolution (GSC) and ``depths[i]`` Mamba layers (LayerNorm -> ToM + residual);
InstanceNorm + MLP (1x1 convs, 2x) on every stage output; MONAI UNETR blocks as skip encoders
(encoder1..encoder5, hidden 768) and decoder (decoder5..decoder1), 1x1 output block. Default
(feat 48-384, depths 2) = 67.4 M parameters. No deep supervision.

Adaptation to nnU-Net's plans: the four downsamplings use the first four planned poolings
(strides[1:5], padded with stride 1 when the plans have fewer), the kernel of each downsampling and
transposed convolution equals its stride. Input (B, C_in, D, H, W) -> logits (B, classes, D, H, W).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from torch import nn

from nnunet_stroke.networks.baselines.common import NoDeepSupervision, require_no_deep_supervision
from nnunet_stroke.networks.registry import register_architecture
from nnunet_stroke.networks.ssm import Mamba, selective_scan

SEGMAMBA_POOLINGS = 4
_DIRECTION_SUFFIXES = ("", "_b", "_s")  # forward raster, reversed raster, inter-slice


class TriOrientedMamba(nn.Module):
    """ToM mixer: (B, L, d_model) of a (depth, height, width) map in raster order -> same shape."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        mixers = [Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand) for _ in _DIRECTION_SUFFIXES]
        self.d_inner, self.dt_rank, self.d_state = mixers[0].d_inner, mixers[0].dt_rank, d_state
        self.in_proj, self.out_proj = mixers[0].in_proj, mixers[0].out_proj  # shared by the directions
        for suffix, mixer in zip(_DIRECTION_SUFFIXES, mixers):  # each direction initialised as a Mamba mixer
            setattr(self, f"conv1d{suffix}", mixer.conv1d)
            setattr(self, f"x_proj{suffix}", mixer.x_proj)
            setattr(self, f"dt_proj{suffix}", mixer.dt_proj)
            setattr(self, f"A{suffix}_log", mixer.A_log)
            setattr(self, f"D{suffix}", mixer.D)

    def _gated_scan(self, xz: torch.Tensor, suffix: str) -> torch.Tensor:
        """Mamba-1 without out_proj (mamba-ssm's ``mamba_inner_fn_no_out_proj``): (B, 2Di, L) -> (B, Di, L)."""
        length = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(getattr(self, f"conv1d{suffix}")(x)[..., :length])
        dt, B, C = torch.split(getattr(self, f"x_proj{suffix}")(x.transpose(1, 2)),
                               [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt_proj = getattr(self, f"dt_proj{suffix}")
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)
        A = -torch.exp(getattr(self, f"A{suffix}_log").float())
        return selective_scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2),
                              getattr(self, f"D{suffix}").float(), z=z,
                              delta_bias=dt_proj.bias.float(), delta_softplus=True)

    def forward(self, hidden_states: torch.Tensor, depth: int) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (B, 2Di, L)
        out = self._gated_scan(xz, "")
        out_b = self._gated_scan(xz.flip(-1), "_b").flip(-1)
        per_slice = length // depth  # inter-slice: (depth, h*w) -> (h*w, depth)
        xz_s = xz.reshape(batch, -1, depth, per_slice).transpose(-1, -2).flatten(-2)
        out_s = self._gated_scan(xz_s, "_s")
        out_s = out_s.reshape(batch, -1, per_slice, depth).transpose(-1, -2).flatten(-2)
        return self.out_proj((out + out_b + out_s).transpose(1, 2))


class SegMambaLayer(nn.Module):
    """x + ToM(LayerNorm(x)) on the flattened (depth, height, width) map."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim)
        self.mamba = TriOrientedMamba(dim)

    def forward(self, x):
        batch, channels, depth, *_ = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        out = self.mamba(self.norm(tokens), depth)
        return out.transpose(1, 2).reshape(x.shape) + x


class GSC(nn.Module):
    """Gated spatial convolution: (3^3 conv-IN-ReLU x2) + (1^3 conv-IN-ReLU) -> 1^3 conv-IN-ReLU, + input."""

    def __init__(self, channels: int):
        super().__init__()

        def unit(kernel):
            return nn.Sequential(nn.Conv3d(channels, channels, kernel, 1, kernel // 2),
                                 nn.InstanceNorm3d(channels), nn.ReLU())

        self.branch3 = nn.Sequential(unit(3), unit(3))
        self.branch1 = unit(1)
        self.fuse = unit(1)

    def forward(self, x):
        return self.fuse(self.branch3(x) + self.branch1(x)) + x


class MlpChannel(nn.Sequential):
    """1x1x1 convolution MLP over channels: ``(B, C, D, H, W) -> (B, C, D, H, W)``.

    Args:
        channels: C in and out.
        hidden: hidden channels.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__(nn.Conv3d(channels, hidden, 1), nn.GELU(), nn.Conv3d(hidden, channels, 1))


class MambaEncoder(nn.Module):
    """SegMamba's encoder: a 7^3 stem and three downsamplings, each followed by tri-orientated Mamba blocks.

    Args:
        in_chans: image channels.
        depths: Mamba blocks per stage; ``dims``: channels per stage.
        poolings: the four downsampling strides.

    Shapes: ``(B, C_in, *patch)`` -> four stage features ``(B, dims[i], *patch / cumprod(poolings)[i])``.
    """

    def __init__(self, in_chans, depths, dims, poolings):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Conv3d(in_chans, dims[0], 7, stride=poolings[0], padding=3)])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                nn.InstanceNorm3d(dims[i]), nn.Conv3d(dims[i], dims[i + 1], poolings[i + 1], stride=poolings[i + 1])))
        self.gscs = nn.ModuleList(GSC(d) for d in dims)
        self.stages = nn.ModuleList(nn.Sequential(*[SegMambaLayer(d) for _ in range(n)]) for d, n in zip(dims, depths))
        self.norms = nn.ModuleList(nn.InstanceNorm3d(d) for d in dims)
        self.mlps = nn.ModuleList(MlpChannel(d, 2 * d) for d in dims)

    def forward(self, x):
        outs = []
        for down, gsc, stage, norm, mlp in zip(self.downsample_layers, self.gscs, self.stages, self.norms, self.mlps):
            x = stage(gsc(down(x)))
            outs.append(mlp(norm(x)))
        return outs


class SegMamba(nn.Module):
    """SegMamba (Xing et al. 2024) on nnU-Net's planned pooling (module docstring).

    Args:
        in_chans, out_chans: image channels and classes.
        strides: nnU-Net's planned strides (the first four downsamplings are used).
        depths, feat_size: Mamba blocks and channels per encoder stage.
        hidden_size: channels of the bottleneck.
        norm_name: normalisation of the UNETR-block decoder.

    Shapes: ``(B, C_in, D, H, W) -> (B, classes, D, H, W)``.
    """

    def __init__(self, in_chans, out_chans, strides, depths=(2, 2, 2, 2), feat_size=(48, 96, 192, 384),
                 hidden_size=768, norm_name="instance"):
        super().__init__()
        poolings = [tuple(s) for s in strides[1:]][:SEGMAMBA_POOLINGS]
        poolings += [(1, 1, 1)] * (SEGMAMBA_POOLINGS - len(poolings))
        self.vit = MambaEncoder(in_chans, depths, feat_size, poolings)
        widths = [in_chans, *feat_size]
        outs = [*feat_size, hidden_size]
        for i in range(5):  # encoder1..encoder5: residual UNETR blocks on the input and the 4 stage outputs
            setattr(self, f"encoder{i + 1}", UnetrBasicBlock(3, widths[i], outs[i], kernel_size=3, stride=1,
                                                             norm_name=norm_name, res_block=True))
        ups = [hidden_size, *feat_size[::-1]]
        for i in range(4):  # decoder5..decoder2: transposed conv by the pooling, concat skip, residual block
            setattr(self, f"decoder{5 - i}", UnetrUpBlock(3, ups[i], ups[i + 1] if i < 3 else feat_size[0],
                                                          kernel_size=3, upsample_kernel_size=poolings[3 - i],
                                                          norm_name=norm_name, res_block=True))
        self.decoder1 = UnetrBasicBlock(3, feat_size[0], feat_size[0], kernel_size=3, stride=1,
                                        norm_name=norm_name, res_block=True)
        self.out = UnetOutBlock(3, feat_size[0], out_chans)
        self.decoder = NoDeepSupervision()

    def forward(self, x_in):
        outs = self.vit(x_in)
        enc1 = self.encoder1(x_in)
        enc2, enc3, enc4 = self.encoder2(outs[0]), self.encoder3(outs[1]), self.encoder4(outs[2])
        hidden = self.encoder5(outs[3])
        x = self.decoder5(hidden, enc4)
        x = self.decoder4(x, enc3)
        x = self.decoder3(x, enc2)
        x = self.decoder2(x, enc1)
        return self.out(self.decoder1(x))


@register_architecture("segmamba")
def build_segmamba(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                   strides: Sequence[Sequence[int]], deep_supervision: bool, depths: Sequence[int],
                   feat_size: Sequence[int], hidden_size: int) -> SegMamba:
    require_no_deep_supervision("SegMamba", deep_supervision)
    if len(patch_size) != 3:
        raise ValueError(f"SegMamba is a 3D network; got a {len(patch_size)}D patch {tuple(patch_size)}")
    return SegMamba(input_channels, num_classes, strides, depths, feat_size, hidden_size)
