"""StrokeNeXt: stroke classification of 2D CT slices with two ConvNeXt encoders ("StrokeNeXt: A
Siamese-encoder Approach for Brain Stroke Classification in Computed Tomography Imagery"; docs/strokenext.md).

The paper: "a dual-branch design with two ConvNeXt encoders, whose features are fused through a
lightweight convolutional decoder based on stacked 1D operations, including a bottleneck projection and
transformation layers, and a compact classification head". What it leaves open is the package's choice
(docs/strokenext.md, deviations table):

- **What the branches see.** Branch A sees the slice, branch B its left-right mirror image. Their token
  maps are fused position by position, so the token at (i, j) holds a point of one hemisphere and the
  mirrored point of the other (nnU-Net crops each image to its non-zero box, which roughly centres the
  head): the fusion can compare hemispheres, the classic reading cue for a hypodense infarct or a
  hyperdense bleed. Both encoders have the same timm ConvNeXt architecture; by default they do not share
  weights ("two encoders"); ``shared_weights=True`` makes them one encoder applied twice.
- **Encoders** from timm (``timm.create_model(encoder, pretrained=False, num_classes=0, global_pool="")``,
  never downloading anything), each ending in ConvNeXt's own final LayerNorm (applied per position,
  without pooling; built by timm and loaded with the ImageNet weights); ImageNet weights are loaded from a local file by
  :func:`load_imagenet_weights` (stem adapted to the input channels with timm's ``adapt_input_conv``).
- **Input size.** Each slice is resized (bilinear) to ``image_size`` x ``image_size`` inside the network,
  in training and prediction alike; the ConvNeXt output is then ``image_size / 32`` on a side.
- **Decoder** (stacked 1D operations over the ``L = (image_size / 32)**2`` token positions): the two
  branches' features are concatenated along channels, ``(B, 2C, L)``; a bottleneck projection
  ``Conv1d(2C, d, 1)`` + BatchNorm + GELU; ``decoder_layers`` transformation layers, each
  ``Conv1d(d, d, 3)`` + BatchNorm + GELU with a residual connection; then the mean over positions.
- **Head**: LayerNorm(d) -> Dropout -> Linear(d, num_classes); logits, no softmax.

Input ``(B, C, H, W)``; output ``(B, num_classes)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.networks.registry import register_architecture


def convnext_encoder(name: str, input_channels: int, drop_path_rate: float, **overrides) -> nn.Module:
    """A timm ConvNeXt without its head (features ``(B, C, H/32, W/32)`` from ``forward_features``)."""
    import timm

    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="", in_chans=input_channels,
                             drop_path_rate=drop_path_rate, **overrides)


def encoder_tokens(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, d, H/32 * W/32)``: the encoder's features after ConvNeXt's own final LayerNorm
    (timm's ``forward_head(pre_logits=True)`` without pooling, so ImageNet weights of that norm are used)."""
    return encoder.forward_head(encoder.forward_features(x), pre_logits=True).flatten(2)


class TransformationLayer(nn.Module):
    """Conv1d(d, d, k) + BatchNorm + GELU, residual."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
                                  nn.BatchNorm1d(channels), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StrokeNeXt(nn.Module):
    """Two ConvNeXt encoders (slice and mirror image), a 1D convolutional decoder and a head.

    Args:
        input_channels, num_classes: image channels and classes.
        encoder: timm ConvNeXt name; ``encoder_overrides`` its constructor arguments.
        shared_weights: one encoder applied to both branches.
        image_size: side the slice is resized to inside the network.
        decoder_dim, decoder_layers, decoder_kernel: the decoder's width, layers and kernel.
        dropout: before the head's linear layer; ``drop_path_rate``: the encoders' stochastic depth.

    Shapes: ``(B, C, H, W) -> (B, num_classes)``.
    """

    def __init__(self, input_channels: int, num_classes: int, encoder: str = "convnext_tiny",
                 encoder_overrides: dict | None = None, shared_weights: bool = False, image_size: int = 224,
                 decoder_dim: int = 256, decoder_layers: int = 2, decoder_kernel: int = 3, dropout: float = 0.2,
                 drop_path_rate: float = 0.1):
        super().__init__()
        overrides = dict(encoder_overrides or {})
        first = convnext_encoder(encoder, input_channels, drop_path_rate, **overrides)
        second = first if shared_weights else convnext_encoder(encoder, input_channels, drop_path_rate, **overrides)
        self.branches = nn.ModuleList([first] if shared_weights else [first, second])
        self.image_size = image_size
        features = first.num_features
        self.bottleneck = nn.Sequential(nn.Conv1d(2 * features, decoder_dim, 1, bias=False),
                                        nn.BatchNorm1d(decoder_dim), nn.GELU())
        self.transformation = nn.Sequential(*(TransformationLayer(decoder_dim, decoder_kernel)
                                              for _ in range(decoder_layers)))
        self.head = nn.Sequential(nn.LayerNorm(decoder_dim), nn.Dropout(dropout), nn.Linear(decoder_dim, num_classes))

    def encoders(self) -> tuple[nn.Module, nn.Module]:
        return (self.branches[0], self.branches[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"StrokeNeXt classifies 2D images (B, C, H, W), got {tuple(x.shape)}; "
                             f"train it on a 2d configuration")
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        branch_a, branch_b = self.encoders()
        tokens_a = encoder_tokens(branch_a, x)
        tokens_b = encoder_tokens(branch_b, torch.flip(x, dims=(-1,)))
        fused = self.transformation(self.bottleneck(torch.cat([tokens_a, tokens_b], dim=1)))
        return self.head(fused.mean(dim=2))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A timm/torchvision-style state dict from ``.safetensors`` or ``.pth``/``.bin`` (``model`` or
    ``state_dict`` wrappers unwrapped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def load_imagenet_weights(network: StrokeNeXt, path: Path) -> list[str]:
    """Load ConvNeXt ImageNet weights from the local file ``path`` into both encoders (the classifier head
    of the file is dropped, the stem adapted to the input channels); returns the encoder keys left at
    their initialisation (none when the file matches the encoder)."""
    from timm.models._manipulate import adapt_input_conv
    from timm.models.convnext import checkpoint_filter_fn

    missing: list[str] = []
    for encoder in network.branches:
        state = checkpoint_filter_fn(read_state_dict(Path(path)), encoder)
        state = {k: v for k, v in state.items() if not k.startswith("head.fc")}
        stem = "stem.0.weight"
        if stem in state and state[stem].shape[1] != encoder.stem[0].weight.shape[1]:
            state[stem] = adapt_input_conv(encoder.stem[0].weight.shape[1], state[stem])
        result = encoder.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{path}: keys {result.unexpected_keys[:5]} do not belong to this ConvNeXt encoder; "
                             f"use the weights of the preset's encoder")
        missing = list(result.missing_keys)
    return missing


@register_architecture("strokenext", params_from=StrokeNeXt)
def build_strokenext(*, input_channels: int, num_classes: int, patch_size: Sequence[int],
                     strides: Sequence[Sequence[int]], deep_supervision: bool, **params) -> StrokeNeXt:
    """StrokeNeXt; nnU-Net's planned patch, strides and deep supervision are not used (whole slices)."""
    if len(patch_size) != 2:
        raise ValueError(f"StrokeNeXt is a 2D classifier: train it on a 2d configuration, not a "
                         f"{len(patch_size)}D one (patch {tuple(patch_size)})")
    return StrokeNeXt(input_channels, num_classes, **params)
