"""Mamba mixer: mamba-ssm v1 parameter names/shapes/count/initialisation, and its forward maths."""

import math

import pytest
import torch
import torch.nn.functional as F
from ssm_naive import naive_scan

from nnunet_stroke.networks.ssm import Mamba

# mamba_ssm/modules/mamba_simple.py::Mamba(d_model=32): d_inner 64, dt_rank 2, d_state 16, d_conv 4
GOLDEN_D32 = {
    "A_log": (64, 16),
    "D": (64,),
    "in_proj.weight": (128, 32),
    "conv1d.weight": (64, 1, 4),
    "conv1d.bias": (64,),
    "x_proj.weight": (34, 64),
    "dt_proj.weight": (64, 2),
    "dt_proj.bias": (64,),
    "out_proj.weight": (32, 64),
}


def test_state_dict_keys_and_shapes_match_mamba_ssm():
    state = Mamba(32).state_dict()
    assert list(state) == list(GOLDEN_D32)
    assert {key: tuple(t.shape) for key, t in state.items()} == GOLDEN_D32
    assert state["A_log"].dtype == torch.float32 and state["D"].dtype == torch.float32


def test_bias_option_adds_projection_biases():
    keys = set(Mamba(32, bias=True, conv_bias=False).state_dict())
    assert keys == set(GOLDEN_D32) - {"conv1d.bias"} | {"in_proj.bias", "out_proj.bias"}


@pytest.mark.parametrize("d_model, expected", [(32, 9_920), (64, 32_640), (320, 675_200)])
def test_parameter_count_formula(d_model, expected):
    expand, d_conv, n_state = 2, 4, 16
    rank = math.ceil(d_model / 16)
    formula = 3 * expand * d_model**2 + expand * d_model * (d_conv + 2 * rank + 3 * n_state + 3)
    assert formula == expected
    assert sum(p.numel() for p in Mamba(d_model).parameters()) == expected


def test_initialisation_ranges():
    torch.manual_seed(0)
    mixer = Mamba(64, d_state=8, dt_min=0.002, dt_max=0.05)
    expected_A_log = torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(128, 8)
    torch.testing.assert_close(mixer.A_log.data, expected_A_log, rtol=0, atol=0)
    assert torch.equal(mixer.D.data, torch.ones(128))
    dt = F.softplus(mixer.dt_proj.bias.data.double())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    assert dt.max() / dt.min() > 5  # log-uniform spread, not a constant
    bound = mixer.dt_rank ** -0.5
    assert mixer.dt_proj.weight.abs().max() <= bound
    constant = Mamba(64, dt_init="constant", dt_scale=2.0)
    assert torch.all(constant.dt_proj.weight == 2.0 * constant.dt_rank ** -0.5)


def test_dt_init_floor_clamps_small_steps():
    mixer = Mamba(16, dt_min=1e-6, dt_max=2e-6, dt_init_floor=1e-3)
    torch.testing.assert_close(F.softplus(mixer.dt_proj.bias.data.double()),
                               torch.full((32,), 1e-3, dtype=torch.float64), rtol=1e-6, atol=0)


def _mamba_simple_forward_fp64(mixer, x):
    """mamba-ssm's slow path written out in float64, with the naive scan."""
    p = {name: t.detach().double() for name, t in mixer.state_dict().items()}
    length = x.shape[1]
    xz = (x.double() @ p["in_proj.weight"].T).transpose(1, 2)
    u, z = xz.chunk(2, dim=1)
    u = F.silu(F.conv1d(u, p["conv1d.weight"], p["conv1d.bias"], padding=mixer.d_conv - 1,
                        groups=mixer.d_inner)[..., :length])
    x_dbl = u.transpose(1, 2) @ p["x_proj.weight"].T
    dt, B, C = torch.split(x_dbl, [mixer.dt_rank, mixer.d_state, mixer.d_state], dim=-1)
    delta = (dt @ p["dt_proj.weight"].T).transpose(1, 2)
    y, _ = naive_scan(u, delta, -torch.exp(p["A_log"]), B.transpose(1, 2), C.transpose(1, 2), p["D"],
                      z=z, delta_bias=p["dt_proj.bias"], delta_softplus=True)
    return y.transpose(1, 2) @ p["out_proj.weight"].T


@pytest.mark.parametrize("length", [1, 3, 26])
def test_forward_matches_mamba_simple_slow_path(length):
    torch.manual_seed(1)
    mixer = Mamba(24, d_state=8)
    x = torch.randn(2, length, 24)
    torch.testing.assert_close(mixer(x).double(), _mamba_simple_forward_fp64(mixer, x),
                               rtol=6e-4, atol=2e-3)
    mixer64 = mixer.double()
    torch.testing.assert_close(mixer64(x.double()), _mamba_simple_forward_fp64(mixer64, x),
                               rtol=1e-10, atol=1e-10)


def test_mixer_is_differentiable_in_every_parameter():
    mixer = Mamba(16)
    mixer(torch.randn(1, 9, 16)).square().sum().backward()
    missing = [name for name, p in mixer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_cpu_causal_conv_equals_mambas_conv1d_with_gradients():
    from nnunet_stroke.networks.ssm.mamba import causal_depthwise_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
    x = torch.randn(2, 6, 37, dtype=torch.float64, requires_grad=True)
    reference = conv(x)[..., :37]
    result = causal_depthwise_conv(x, conv)
    torch.testing.assert_close(result, reference, rtol=0, atol=1e-12)
    params = [x, conv.weight, conv.bias]
    for a, b in zip(torch.autograd.grad(result.square().sum(), params),
                    torch.autograd.grad(reference.square().sum(), params)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
