"""selective_scan (default backend: numba on CPU) against the float64 naive recurrence (tests/ssm_naive.py)."""

import sys
import warnings

import pytest
import torch
from ssm_naive import naive_scan, random_inputs

import nnunet_stroke.networks.ssm as ssm_package
from nnunet_stroke.networks.ssm import chunked_scan, cpu_scan, selective_scan

GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
FP32_TOLERANCE = {"rtol": 6e-4, "atol": 2e-3}  # mamba-ssm tests/ops/test_selective_scan.py
FP64_TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    monkeypatch.delenv("NNUNET_STROKE_SCAN", raising=False)

CASES = [  # batch, channels, n_state, length, delta_scale
    (1, 3, 1, 1, 1.0),
    (2, 4, 16, 37, 1.0),
    (2, 3, 16, 131, 1.0),  # odd, spans three checkpoint chunks of the backward pass
    (1, 5, 1, 129, 1.0),
    (2, 4, 16, 101, 10.0),  # delta ten times the initial scale
]


def _scan_and_grads(function, inputs, options, upstream):
    args = {name: inputs[name] for name in ("u", "delta", "A", "B", "C")}
    extras = {name: inputs[name] for name in ("D", "z", "delta_bias") if options.get(name, True)}
    result = function(**args, **extras, delta_softplus=options.get("softplus", True))
    out = result[0] if isinstance(result, tuple) else result
    used = [inputs[name] for name in GRAD_NAMES if name in args or name in extras]
    grads = torch.autograd.grad(out, used, upstream.to(out.dtype))
    return out, dict(zip([n for n in GRAD_NAMES if n in args or n in extras], grads))


def _check_against_naive(inputs, options, tolerance):
    upstream = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out, grads = _scan_and_grads(selective_scan, inputs, options, upstream)
    reference = {name: t.detach().double().requires_grad_() for name, t in inputs.items()}
    expected, expected_grads = _scan_and_grads(naive_scan, reference, options, upstream)
    assert out.dtype == inputs["u"].dtype
    torch.testing.assert_close(out.double(), expected, **tolerance)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        assert grad.dtype == inputs[name].dtype, name
        torch.testing.assert_close(grad.double(), expected_grads[name], **tolerance, msg=name)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_naive_recurrence(case, dtype):
    batch, channels, n_state, length, delta_scale = case
    inputs = random_inputs(batch, channels, n_state, length, dtype, delta_scale)
    tolerance = FP64_TOLERANCE if dtype == torch.float64 else FP32_TOLERANCE
    _check_against_naive(inputs, {}, tolerance)


@pytest.mark.parametrize("options", [
    {"D": False, "z": False, "delta_bias": False, "softplus": False},
    {"z": False, "softplus": True},
    {"D": False, "delta_bias": False},
])
def test_optional_arguments(options):
    inputs = random_inputs(2, 3, 16, 45, torch.float64, seed=3)
    if not options.get("softplus", True):
        inputs["delta"] = inputs["delta"].detach().abs().mul(0.05).requires_grad_()
    _check_against_naive(inputs, options, FP64_TOLERANCE)


def test_softplus_threshold_region():
    inputs = random_inputs(1, 3, 4, 9, torch.float64, seed=4)
    inputs["delta"] = torch.tensor([[-3.0, 19.5, 20.5, 25.0, 0.0, 1.0, 21.0, 19.9, 3.0]] * 3,
                                   dtype=torch.float64)[None].requires_grad_()
    inputs["A"] = inputs["A"].detach().mul(0.01).requires_grad_()  # keeps decays exp(20 A) visible
    _check_against_naive(inputs, {"delta_bias": False}, FP64_TOLERANCE)


def test_last_state_matches_recurrence():
    inputs = random_inputs(2, 3, 16, 70, torch.float64, seed=5)
    out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    expected, expected_last = naive_scan(**inputs, delta_softplus=True)
    torch.testing.assert_close(out, expected, **FP64_TOLERANCE)
    torch.testing.assert_close(last, expected_last, **FP64_TOLERANCE)
    assert not last.requires_grad


def test_long_sequence_is_finite_and_stable():
    """100k tokens at ten times the initial delta: no NaN/inf, and float32 agrees with the float64 path
    (itself checked against the naive recurrence above) over the whole sequence."""
    inputs = random_inputs(1, 2, 16, 100_000, torch.float32, delta_scale=10.0, seed=6)
    out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    grads = torch.autograd.grad(out.square().mean(), list(inputs.values()))
    assert torch.isfinite(out).all() and torch.isfinite(last).all()
    assert all(torch.isfinite(g).all() for g in grads)
    as_double = {name: t.detach().double() for name, t in inputs.items()}
    expected, expected_last = selective_scan(**as_double, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out.detach().double(), expected, **FP32_TOLERANCE)
    torch.testing.assert_close(last.double(), expected_last, **FP32_TOLERANCE)


def test_half_precision_and_autocast_compute_in_float32(monkeypatch):
    inputs = random_inputs(2, 4, 16, 33, torch.float32, seed=7)
    u_bf16 = inputs["u"].detach().bfloat16()
    rest = {name: t.detach() for name, t in inputs.items() if name != "u"}
    seen_dtypes = []
    original = cpu_scan.scan_numba

    def spy(u, *args, **kwargs):
        seen_dtypes.append(u.dtype)
        return original(u, *args, **kwargs)

    monkeypatch.setattr(cpu_scan, "scan_numba", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(u_bf16, **rest, delta_softplus=True)
    expected = selective_scan(u_bf16.float(), **rest, delta_softplus=True)
    assert seen_dtypes == [torch.float32, torch.float32]
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected.bfloat16())


@pytest.fixture
def numba_state(monkeypatch):
    """Lets a test break numba; the module state is restored afterwards."""
    monkeypatch.setattr(cpu_scan, "_NUMBA", cpu_scan.OptionalKernel(cpu_scan._import_kernels,
                                                                     cpu_scan._NUMBA._unavailable))
    return monkeypatch


def test_missing_numba_falls_back_to_exact_chunked_scan(numba_state):
    numba_state.setitem(sys.modules, "numba", None)
    numba_state.setitem(sys.modules, "nnunet_stroke.networks.ssm.numba_kernels", None)
    numba_state.delattr(ssm_package, "numba_kernels", raising=False)
    chunked_calls = []
    original = chunked_scan.scan_chunked
    numba_state.setattr(chunked_scan, "scan_chunked", lambda *args: chunked_calls.append(1) or original(*args))
    inputs = random_inputs(2, 3, 16, 21, torch.float64, seed=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _check_against_naive(inputs, {}, FP64_TOLERANCE)
        _check_against_naive(inputs, {}, FP64_TOLERANCE)
    assert [str(w.message).split(" (")[0] for w in caught] == ["numba selective-scan kernel unavailable"]
    assert "chunked PyTorch scan" in str(caught[0].message) and len(chunked_calls) == 2


def test_failing_numba_compilation_falls_back(numba_state):
    from numba.core.errors import TypingError

    from nnunet_stroke.networks.ssm import numba_kernels

    def failing(*args):
        raise TypingError("cannot compile on this platform")

    numba_state.setattr(numba_kernels, "scan_forward", failing)
    inputs = random_inputs(1, 2, 4, 11, torch.float64, seed=9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _check_against_naive(inputs, {}, FP64_TOLERANCE)
        _check_against_naive(inputs, {}, FP64_TOLERANCE)
    assert len(caught) == 1 and "numba selective-scan kernel unavailable" in str(caught[0].message)


def test_rejects_wrong_shapes_with_layout_in_message():
    inputs = {name: t.detach() for name, t in random_inputs(1, 3, 4, 5, torch.float32).items()}
    inputs["B"] = inputs["B"].transpose(1, 2)
    with pytest.raises(ValueError, match=r"B has shape \(1, 5, 4\), expected \(1, 4, 5\)"):
        selective_scan(**inputs)
