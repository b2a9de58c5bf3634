"""Detection head of PMSAN ("a classification head consisting of global average pooling followed by fully
connected layers"): deepest per-slice features -> global average pool over the slices and the plane
-> Linear -> ReLU -> Dropout -> Linear -> one stroke logit per input (no sigmoid)."""
from __future__ import annotations

import torch
from torch import nn


class DetectionHead(nn.Module):
    """Global average pooling and two fully connected layers: one stroke logit per input.

    Args:
        channels: C of the deepest per-slice features.
        hidden: width of the hidden layer.
        dropout: dropout before the last layer.

    Shapes: ``forward(features, num_slices)`` with features ``(B * num_slices, C, H, W)`` -> logits ``(B,)``.
    """

    def __init__(self, channels: int, hidden: int, dropout: float = 0.2):
        super().__init__()
        self.classifier = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, num_slices: int = 1) -> torch.Tensor:
        """``features`` (batch * num_slices, C, H, W) -> logits (batch,)."""
        pooled = features.mean(dim=(2, 3)).reshape(-1, num_slices, features.shape[1]).mean(dim=1)
        return self.classifier(pooled).squeeze(1)
