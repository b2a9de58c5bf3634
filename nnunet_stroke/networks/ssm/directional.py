"""Multi-directional Mamba block for 2D/3D feature maps (LBMNet eq. 6-8, Table 9; SegMamba; U-Mamba).

For an input x (batch, C, *spatial) the block computes

    s     = LayerNorm_C(x) as a channels-last map                       (norm=True; else s = x)
    y_k   = unflatten_k(Mamba_k(flatten_k(s)))   for every direction k  (eq. 6, 7)
    fused = Linear_{kC -> C}([y_1; ...; y_k])    (fuse="concat", eq. 8)  or  sum_k y_k  (fuse="sum")
    out   = fused + x                                                   (residual=True, eq. 8)

LayerNorm is a pre-norm shared by all directions, as in U-Mamba/Vision Mamba (eq. 6-8 leave it
unspecified); the residual adds the block input x, not the normalised map.

A direction is a flattening order of the spatial axes (C order: the last listed axis varies fastest)
and a sense. With spatial axes (depth, height, width) -- (height, width) in 2D:

    "raster"        (depth, height, width): the reshape of U-Mamba/LBMNet, width fastest
    "height-major"  (height, depth, width): height outermost (LBMNet Table 9 "H"); 2D: (width, height)
    "inter-slice"   (height, width, depth): each (h, w) visits all depths in a row (SegMamba's
                    chunk-and-interleave of the raster sequence); 2D: (width, height)

``directions`` selects, in this order of mixers/concatenation:
    "forward": raster forward (one-way, causal in raster order)
    "bi":      raster forward, raster reversed (LBMNet eq. 6-7, Vision Mamba)
    "quad":    raster forward, raster reversed, height-major forward, height-major reversed
               (LBMNet Table 9 four-way)
    "tri":     raster forward, raster reversed, inter-slice forward (SegMamba ToM)
A reversed direction flips the sequence before the mixer and flips its output back (eq. 7); with
one mixer per direction this is the mixer's reverse mode (``Mamba(s, reverse=True)``), which at CPU
inference scans backwards in place instead of copying.

Each direction has its own ``Mamba`` (``mixers.0``, ``mixers.1``, ...; Vision Mamba style) unless
``share_mixer=True``, in which case one mixer (``mixers.0``) runs every direction, stacked in the
batch. At CPU inference with one mixer per direction and one flattening order ("forward", "bi"), each mixer's
out_proj and its slice of W_f run as one product with the cached W_f,k W_out,k (reassociated), the mixers
sharing one in_proj output buffer. LBMNet's BSC-Mamba block uses directions="bi", fuse="concat", share_mixer=False, residual=False
and adds eq. 8's residual, the block input before ASC, itself (networks/blocks/bsc_mamba.py).
"""

import torch
from torch import nn

from nnunet_stroke.networks import inference_fusion
from nnunet_stroke.networks.ssm import token_major_scan
from nnunet_stroke.networks.ssm.mamba import Mamba

_ORDERS_3D = {"raster": (0, 1, 2), "height-major": (1, 0, 2), "inter-slice": (1, 2, 0)}
_ORDERS_2D = {"raster": (0, 1), "height-major": (1, 0), "inter-slice": (1, 0)}
DIRECTIONS = {
    "forward": (("raster", False),),
    "bi": (("raster", False), ("raster", True)),
    "quad": (("raster", False), ("raster", True), ("height-major", False), ("height-major", True)),
    "tri": (("raster", False), ("raster", True), ("inter-slice", False)),
}
FUSIONS = ("concat", "sum")


def _flatten(maps, order, reverse):
    """(batch, *spatial, C) -> (batch, L, C) visiting the spatial axes in ``order``."""
    perm = (0, *(axis + 1 for axis in order), maps.dim() - 1)
    sequence = maps.permute(perm).reshape(maps.shape[0], -1, maps.shape[-1])
    return sequence.flip(1) if reverse else sequence


def _unflatten(sequence, spatial, order, reverse):
    """Inverse of ``_flatten``: (batch, L, C) -> (batch, *spatial, C)."""
    if reverse:
        sequence = sequence.flip(1)
    permuted = sequence.reshape(sequence.shape[0], *(spatial[axis] for axis in order), -1)
    inverse = [0] * len(order)
    for position, axis in enumerate(order):
        inverse[axis] = position + 1
    return permuted.permute(0, *inverse, permuted.dim() - 1)


class DirectionalScan3d(nn.Module):
    """(batch, channels, *spatial) -> same shape; see the module docstring for the exact maths."""

    def __init__(self, channels, directions="bi", fuse="concat", share_mixer=False, norm=True,
                 residual=True, d_state=16, d_conv=4, expand=2):
        super().__init__()
        if directions not in DIRECTIONS:
            raise ValueError(f"DirectionalScan3d: directions must be one of {sorted(DIRECTIONS)}, "
                             f"got {directions!r}")
        if fuse not in FUSIONS:
            raise ValueError(f"DirectionalScan3d: fuse must be one of {FUSIONS}, got {fuse!r}")
        self.channels = channels
        self.directions = DIRECTIONS[directions]
        self.residual = residual
        self.share_mixer = share_mixer
        self.norm = nn.LayerNorm(channels) if norm else nn.Identity()
        n_mixers = 1 if share_mixer else len(self.directions)
        self.mixers = nn.ModuleList(Mamba(channels, d_state=d_state, d_conv=d_conv, expand=expand)
                                    for _ in range(n_mixers))
        k = len(self.directions)
        self.fuse = nn.Linear(k * channels, channels) if fuse == "concat" else None
        self._combined = inference_fusion.InferenceCache()

    def forward(self, x):
        if x.dim() not in (4, 5) or x.shape[1] != self.channels:
            raise ValueError(f"DirectionalScan3d: expected (batch, {self.channels}, *spatial) with 2 or 3 "
                             f"spatial axes, got {tuple(x.shape)}")
        spatial = x.shape[2:]
        orders = _ORDERS_3D if len(spatial) == 3 else _ORDERS_2D
        maps = self.norm(x.movedim(1, -1))
        names = {name for name, _ in self.directions}
        if (self.fuse is not None and not self.share_mixer and len(names) == 1 and inference_fusion.applies(self)
                and token_major_scan.applies(maps)):  # CPU inference, every direction in one order
            order = orders[names.pop()]
            fused = _unflatten(self._fused_mixers_in_place(maps, order), spatial, order, False).movedim(-1, 1)
            return fused + x if self.residual else fused
        if self.share_mixer:  # the directions stacked in the batch, reversed ones flipped
            sequences = [_flatten(maps, orders[name], reverse) for name, reverse in self.directions]
            outputs = self.mixers[0](torch.cat(sequences, 0)).chunk(len(sequences), 0)
            maps_out = [_unflatten(out, spatial, orders[name], reverse)
                        for out, (name, reverse) in zip(outputs, self.directions)]
        else:  # a reversed direction is the mixer's own reverse mode (flip(mixer(flip(s))))
            maps_out = [_unflatten(mixer(_flatten(maps, orders[name], False), reverse=reverse), spatial,
                                   orders[name], False) for mixer, (name, reverse) in zip(self.mixers, self.directions)]
        if self.fuse is None:
            fused = sum(maps_out)
        elif torch.is_grad_enabled():
            fused = self.fuse(torch.cat(maps_out, -1))
        else:  # inference: W_f [y_1; ...; y_k] = sum_k W_f,k y_k, accumulated in place, no concatenated copy
            fused = self._fuse_in_place(maps_out)
        fused = fused.movedim(-1, 1)
        return fused + x if self.residual else fused

    def _fused_mixers_in_place(self, maps, order):
        """CPU inference, one mixer per direction, every direction in one flattening ``order``: ``self.fuse`` of
        the concatenated mixer outputs as b + sum_k y_k (W_f,k W_out,k)^T, y_k the k-th mixer's output before
        its out_proj and b = b_f + sum_k W_f,k b_out,k (the two products reassociated, the combined weights
        cached); the mixers write their in_proj outputs into one reused buffer. Returns (batch, L, C)."""
        weights, bias = self._combined.get(
            inference_fusion.sources(self.fuse, *(mixer.out_proj for mixer in self.mixers)), self._combine)
        sequence = _flatten(maps, order, False)
        fused, xz = None, None
        for mixer, (_, reverse), weight in zip(self.mixers, self.directions, weights):
            y = mixer.inner_inference(sequence, reverse, xz)  # the x half of the in_proj output xz
            xz = torch.as_strided(y, (*y.shape[:-1], 2 * y.shape[-1]), (y.stride(0), y.stride(1), 1), 0)
            rows = y.reshape(-1, y.shape[-1])
            fused = torch.addmm(bias, rows, weight.t()) if fused is None else fused.addmm_(rows, weight.t())
        return fused.view(*sequence.shape[:-1], self.channels)

    def _combine(self):
        """([W_f,k W_out,k per direction k], b_f + sum_k W_f,k b_out,k)."""
        weights, bias = [], self.fuse.bias.clone()
        for mixer, fuse_weight in zip(self.mixers, self.fuse.weight.split(self.channels, dim=1)):
            weights.append(fuse_weight @ mixer.out_proj.weight)
            if mixer.out_proj.bias is not None:
                bias += fuse_weight @ mixer.out_proj.bias
        return weights, bias

    def _fuse_in_place(self, maps_out):
        """``self.fuse(torch.cat(maps_out, -1))`` as one product per direction added into one output."""
        weights = self.fuse.weight.split(self.channels, dim=1)
        fused = torch.nn.functional.linear(maps_out[0], weights[0], self.fuse.bias)
        rows = fused.view(-1, self.channels)
        for maps, weight in zip(maps_out[1:], weights[1:]):
            rows.addmm_(maps.reshape(-1, self.channels), weight.t())
        return fused
