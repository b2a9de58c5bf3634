"""nnU-Net's conventions shared by every network of the package: the width rule ``min(base * 2**i, max)``
per resolution stage, and He initialisation (``InitWeights_He``)."""
from __future__ import annotations

from torch import nn

HE_LAYERS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def stage_features(n_stages: int, base_features: int, max_features: int) -> list[int]:
    """Channel widths of the stages: ``min(base_features * 2**i, max_features)`` for stage i = 0 .. n-1."""
    return [min(base_features * 2 ** i, max_features) for i in range(n_stages)]


def init_he(module: nn.Module, neg_slope: float = 1e-2, linear: bool = False) -> None:
    """nnU-Net's ``InitWeights_He`` for ``network.apply``: Kaiming-normal weights (LeakyReLU slope
    ``neg_slope``) and zero biases of convolutions and transposed convolutions (and of ``nn.Linear`` with
    ``linear``); other modules keep their own initialisation."""
    if isinstance(module, HE_LAYERS + ((nn.Linear,) if linear else ())):
        nn.init.kaiming_normal_(module.weight, a=neg_slope)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
