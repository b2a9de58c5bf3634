"""nnU-Net's train step with the loss computed by one hook, ``compute_train_loss(data, target)``, for trainers
whose loss is more than ``self.loss(network(data), target)``: PMSAN-Seg's joint segmentation + detection
loss, the distillation losses, and the image-level classifiers' cross-entropy."""
from __future__ import annotations

import torch
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast


class LossHookTrainStep:
    """Mixin for an ``nnUNetTrainer``: AMP on CUDA, gradient clipping at 12 and the optimiser step exactly as
    nnU-Net's ``train_step``, with :meth:`compute_train_loss` in place of ``self.loss(output, target)``.
    ``target`` may be a tensor or nnU-Net's deep-supervision list of tensors."""

    def compute_train_loss(self, data: torch.Tensor, target) -> torch.Tensor:
        raise NotImplementedError

    def autocast_context(self):
        """nnU-Net's choice: autocast on CUDA only."""
        return autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()

    def train_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = ([t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list)
                  else target.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast_context():
            loss = self.compute_train_loss(data, target)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
        return {"loss": loss.detach().cpu().numpy()}
