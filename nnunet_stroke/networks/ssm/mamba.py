"""Mamba-1 mixer with the parameter names, shapes and initialisation of mamba-ssm's v1 ``Mamba``.

Follows ``mamba_ssm/modules/mamba_simple.py`` (Gu & Dao 2023): in_proj -> causal depthwise conv1d +
SiLU -> x_proj to (dt, B, C) -> dt_proj -> selective scan (A = -exp(A_log), skip D, gate silu(z),
dt_proj.bias passed as ``delta_bias`` with softplus, as the fused kernel expects) -> out_proj.
A state_dict saved by mamba-ssm's ``Mamba`` (or by this class on any device) loads with strict=True.

Parameters (E = expand, d = d_model, R = dt_rank, N = d_state, Di = E*d):
in_proj.weight (2Di, d) [+ in_proj.bias], conv1d.weight (Di, 1, d_conv), conv1d.bias (Di),
x_proj.weight (R + 2N, Di), dt_proj.weight (Di, R), dt_proj.bias (Di), A_log (Di, N), D (Di),
out_proj.weight (d, Di) [+ out_proj.bias]; in total 3 E d^2 + E d (d_conv + 2R + 3N + 3) with the
default biases.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_stroke.networks.ssm import token_major_scan
from nnunet_stroke.networks.ssm.dispatch import selective_scan


def causal_depthwise_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv(x)[..., :L]``, mamba's causal depthwise Conv1d. On CPU it runs as a channels-last Conv2d: the
    same result, but PyTorch's CPU backward of a depthwise Conv1d is about 1000x slower."""
    length = x.shape[-1]
    if x.device.type != "cpu":
        return conv(x)[..., :length]
    out = F.conv2d(x.unsqueeze(2).contiguous(memory_format=torch.channels_last), conv.weight.unsqueeze(2),
                   conv.bias, padding=(0, conv.padding[0]), groups=conv.groups)
    return out.squeeze(2)[..., :length]


class Mamba(nn.Module):
    """(batch, length, d_model) -> (batch, length, d_model); causal along the length."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001,
                 dt_max=0.1, dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True,
                 bias=False):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self._init_dt_proj(dt_min, dt_max, dt_init, dt_scale, dt_init_floor)
        # S4D-real initialisation, kept in float32: A = -[1, ..., N] for every channel
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def _init_dt_proj(self, dt_min, dt_max, dt_init, dt_scale, dt_init_floor):
        std = self.dt_rank ** -0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                self.dt_proj.weight.fill_(std)
            else:
                self.dt_proj.weight.uniform_(-std, std)
            log_dt = torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            dt = torch.exp(log_dt).clamp(min=dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True

    def forward(self, hidden_states, reverse=False):
        """``reverse=True``: the mixer on the time-reversed sequence, its output in the original order
        (``flip(mixer(flip(x)))``; at CPU inference without the two copies)."""
        if token_major_scan.applies(hidden_states):  # CPU inference: the same maths token-major, in place in xz
            return self.out_proj(self._mix_token_major(self.in_proj(hidden_states), reverse))
        if reverse:
            return self.forward(hidden_states.flip(1)).flip(1)
        xz = self.in_proj(hidden_states)  # (batch, L, 2Di)
        x, z = xz.transpose(1, 2).chunk(2, dim=1)  # (batch, Di, L) each
        x = F.silu(causal_depthwise_conv(x, self.conv1d))
        x_dbl = self.x_proj(x.transpose(1, 2))  # (batch, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight)  # (batch, L, Di); bias goes to the scan
        y = selective_scan(x, delta.transpose(1, 2), -torch.exp(self.A_log.float()), B.transpose(1, 2),
                           C.transpose(1, 2), self.D.float(), z=z,
                           delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))

    def inner_inference(self, hidden_states, reverse=False, xz=None):
        """CPU inference (``token_major_scan.applies``): y (batch, L, Di), what ``forward`` feeds ``out_proj``,
        written into the x half of in_proj's output; ``xz`` (batch, L, 2Di, contiguous): a buffer to write that
        output into instead of a fresh tensor (``DirectionalScan3d`` reuses one across its directions)."""
        if xz is None:
            xz = self.in_proj(hidden_states)
        else:
            torch.matmul(hidden_states, self.in_proj.weight.t(), out=xz)
            if self.in_proj.bias is not None:
                xz.add_(self.in_proj.bias)
        return self._mix_token_major(xz, reverse)

    def _mix_token_major(self, xz, reverse):
        """What ``forward`` computes between in_proj and out_proj, without autograd on the CPU: the causal
        conv + SiLU overwrite the x half of xz, y overwrites it again (``token_major_scan``)."""
        x, z = xz.chunk(2, dim=-1)  # (batch, L, Di) views
        x = token_major_scan.causal_conv_silu_(x, self.conv1d, reverse)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        return token_major_scan.scan_token_major(x, dt, self.dt_proj.weight, self.dt_proj.bias,
                                                 -torch.exp(self.A_log.to(x.dtype)), B, C,
                                                 self.D.to(x.dtype), z, out=x, reverse=reverse)
