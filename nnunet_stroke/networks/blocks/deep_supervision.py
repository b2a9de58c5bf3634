"""The one deep-supervision decoder loop of the package (as dynamic-network-architectures' ``UNetDecoder``
owns it for nnU-Net's U-Nets), shared by the LBMNet, PMSAN and U-Mamba decoders."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class DeepSupervisionDecoder(nn.Module):
    """Base of a U-shaped decoder with nnU-Net's deep-supervision contract.

    A subclass defines ``decode_stage(index, coarse, skip)`` (stage ``index`` counts from the coarsest) and
    ``segmentation_head(index)`` (its 1x1 logits layer); its modules keep their own names, so checkpoints
    are unaffected.

    Args:
        deep_supervision: nnU-Net's switch (``network.decoder.deep_supervision``, settable at any time).

    Input: the encoder's features, finest first, ``[(N, C_0, *S_0), ..., (N, C_L, *S_L)]``.
    Output: with ``deep_supervision`` a list of ``L`` logits ``(N, classes, *S_l)``, highest resolution first
    (one per decoder stage, no softmax); otherwise the full-resolution logits ``(N, classes, *S_0)`` alone
    (the coarser heads are then not evaluated).
    """

    def __init__(self, deep_supervision: bool):
        super().__init__()
        self.deep_supervision = deep_supervision

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def decode_stage(self, index: int, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def segmentation_head(self, index: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = features[-1]
        outputs = []
        last = self.num_stages - 1
        for index in range(self.num_stages):
            x = self.decode_stage(index, x, features[-(index + 2)])
            if self.deep_supervision or index == last:
                outputs.append(self.segmentation_head(index)(x))
        return outputs[::-1] if self.deep_supervision else outputs[-1]
