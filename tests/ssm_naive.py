"""Float64 naive per-token selective-scan recurrence (Gu & Dao 2023, Algorithm 2), the tests' reference.

Written directly from the equations, independently of the package:
h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,  y_t = C_t . h_t + D u_t,  out_t = y_t silu(z_t),
with dt_t = softplus(delta_t + delta_bias) (softplus linear above 20, as torch/mamba-ssm).
Layouts as mamba-ssm's selective_scan_fn: u, delta, z (b, d, l); A (d, n); B, C (b, n, l).
"""

import math

import torch


def naive_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Returns (out, last_state) in float64; differentiable through autograd."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[None, :, None]
    if delta_softplus:
        delta = torch.where(delta > 20, delta, torch.log(1 + torch.exp(torch.clamp(delta, max=20))))
    batch, channels, length = u.shape
    state = torch.zeros(batch, channels, A.shape[1], dtype=torch.float64)
    outputs = []
    for t in range(length):
        step = delta[:, :, t].unsqueeze(-1)
        state = torch.exp(step * A) * state + step * B[:, :, t].unsqueeze(1) * u[:, :, t].unsqueeze(-1)
        y = (state * C[:, :, t].unsqueeze(1)).sum(-1)
        if D is not None:
            y = y + D.double() * u[:, :, t]
        if z is not None:
            zt = z[:, :, t].double()
            y = y * zt / (1 + torch.exp(-zt))
        outputs.append(y)
    return torch.stack(outputs, dim=-1), state


def random_inputs(batch, channels, n_state, length, dtype, delta_scale=1.0, seed=0):
    """Inputs at Mamba's initial scale: delta ~ softplus(bias) in [0.001, 0.1] (x delta_scale), A = -[1..N]
    perturbed, B, C, u, z ~ N(0, 1). Returns a dict of leaf tensors requiring grad."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    log_dt = torch.rand(batch, channels, length, generator=generator, dtype=torch.float64)
    dt = torch.exp(log_dt * (math.log(0.1) - math.log(0.001)) + math.log(0.001)) * delta_scale
    raw = dt + torch.log(-torch.expm1(-dt))  # inverse softplus: softplus(raw + bias) ~ dt
    bias = 0.1 * randn(channels)
    A = -torch.arange(1, n_state + 1, dtype=torch.float64).repeat(channels, 1) * (1 + 0.2 * randn(channels, n_state)).abs()
    tensors = {"u": randn(batch, channels, length), "delta": raw - bias[None, :, None], "A": A,
               "B": randn(batch, n_state, length), "C": randn(batch, n_state, length),
               "D": randn(channels), "z": randn(batch, channels, length), "delta_bias": bias}
    return {name: t.to(dtype).requires_grad_() for name, t in tensors.items()}
