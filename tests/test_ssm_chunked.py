"""The chunked parallel scan (backend torch_chunked) against the float64 naive recurrence
(tests/ssm_naive.py): outputs, every gradient, last state; chunk boundaries; autocast; memory kept for
backward; through the Mamba mixer and DirectionalScan3d against the token-loop reference."""

import pytest
import torch
from ssm_naive import naive_scan, random_inputs

from nnunet_stroke.networks.ssm import DirectionalScan3d, Mamba, chunked_scan, cpu_scan, selective_scan

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
FP32_TOLERANCE = {"rtol": 6e-4, "atol": 2e-3}  # mamba-ssm tests/ops/test_selective_scan.py
FP64_TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}

CASES = [  # batch, channels, n_state, length, delta_scale, chunk (None: the default)
    (1, 3, 1, 1, 1.0, None),  # length 1
    (2, 4, 16, 37, 1.0, None),  # odd length, one chunk larger than the sequence
    (2, 3, 16, 131, 1.0, 32),  # five chunks, the last one partial
    (1, 5, 1, 129, 1.0, 8),  # 17 chunks, the last one a single token
    (2, 4, 16, 101, 10.0, 16),  # ten times the initial step sizes
    (1, 2, 4, 300, 1.0, 4096),  # chunk far larger than the sequence (padded with identity maps)
]


@pytest.fixture(autouse=True)
def chunked_backend(monkeypatch):
    monkeypatch.setenv("NNUNET_STROKE_SCAN", "torch_chunked")


def _canonical(inputs):
    """selective_scan's (batch, N, L) B and C as the scans' (batch, L, N)."""
    return [inputs[n].transpose(1, 2) if n in ("B", "C") else inputs[n] for n in NAMES]


def _compare(inputs, tolerance, chunk=None, seed=1):
    out, last = chunked_scan.scan_chunked(*_canonical(inputs), True, chunk=chunk)
    reference = {name: t.detach().double().requires_grad_() for name, t in inputs.items()}
    expected, expected_last = naive_scan(**reference, delta_softplus=True)
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = torch.autograd.grad(out, [inputs[n] for n in NAMES], upstream.to(out.dtype))
    expected_grads = torch.autograd.grad(expected, [reference[n] for n in NAMES], upstream)
    assert out.dtype == inputs["u"].dtype and not last.requires_grad
    torch.testing.assert_close(out.double(), expected, **tolerance)
    torch.testing.assert_close(last.double(), expected_last, **tolerance)
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        torch.testing.assert_close(grad.double(), expected_grad, **tolerance, msg=name)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_naive_recurrence(case, dtype):
    batch, channels, n_state, length, delta_scale, chunk = case
    inputs = random_inputs(batch, channels, n_state, length, dtype, delta_scale)
    _compare(inputs, FP64_TOLERANCE if dtype == torch.float64 else FP32_TOLERANCE, chunk)


@pytest.mark.parametrize("length", [1, 2, 64])
@pytest.mark.parametrize("reverse", [False, True])
def test_prefix_scan_equals_a_loop(length, reverse):
    generator = torch.Generator().manual_seed(2)
    decay = torch.rand(2, length, 3, dtype=torch.float64, generator=generator)
    x = torch.randn(2, length, 3, dtype=torch.float64, generator=generator)
    h = chunked_scan.prefix_scan_(decay.clone(), x.clone(), reverse=reverse)
    state = torch.zeros(2, 3, dtype=torch.float64)
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        state = decay[:, t] * state + x[:, t]
        torch.testing.assert_close(h[:, t], state, rtol=1e-12, atol=1e-12)


def test_chunk_must_be_a_power_of_two():
    inputs = random_inputs(1, 2, 4, 10, torch.float32)
    with pytest.raises(ValueError, match="chunk must be a power of two, got 6"):
        chunked_scan.scan_chunked(*_canonical(inputs), True, chunk=6)


def test_huge_steps_stay_finite_and_exact():
    """Steps up to 100x the initial scale (|dt A| in the hundreds, decays underflowing to 0 in float32):
    no overflow or NaN, and the result still matches the recurrence."""
    inputs = random_inputs(1, 3, 16, 200, torch.float32, delta_scale=100.0, seed=3)
    _compare(inputs, FP32_TOLERANCE, chunk=64)


def test_dispatch_runs_chunked_scan_with_optional_arguments_absent(monkeypatch):
    calls = []
    original = chunked_scan.scan_chunked
    monkeypatch.setattr(chunked_scan, "scan_chunked", lambda *args: calls.append(1) or original(*args))
    inputs = random_inputs(2, 3, 16, 45, torch.float64, seed=4)
    inputs["delta"] = inputs["delta"].detach().abs().mul(0.05).requires_grad_()
    out, last = selective_scan(inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"],
                               return_last_state=True)
    expected, expected_last = naive_scan(*(inputs[n] for n in NAMES[:5]))
    assert len(calls) == 1
    torch.testing.assert_close(out, expected, **FP64_TOLERANCE)
    torch.testing.assert_close(last, expected_last, **FP64_TOLERANCE)
    grads = torch.autograd.grad(out.sum(), [inputs[n] for n in NAMES[:5]])
    expected_grads = torch.autograd.grad(expected.sum(), [inputs[n] for n in NAMES[:5]])
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, **FP64_TOLERANCE)


def test_autocast_keeps_float32_accuracy():
    """Under CPU autocast (bfloat16) the scan still computes in float32: the float32 output is as close
    to the float64 recurrence as without autocast, far closer than bfloat16 rounding (0.4 %)."""
    inputs = {name: t.detach() for name, t in random_inputs(2, 4, 16, 77, torch.float32, seed=5).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(**inputs, delta_softplus=True)
        out_bf16 = selective_scan(inputs["u"].bfloat16(), *(inputs[n] for n in NAMES[1:]), delta_softplus=True)
    expected, _ = naive_scan(**inputs, delta_softplus=True)
    assert out.dtype == torch.float32 and out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_bf16, selective_scan(inputs["u"].bfloat16().float(),
                                                        *(inputs[n] for n in NAMES[1:]),
                                                        delta_softplus=True).bfloat16(), rtol=0, atol=0)


def _saved_elements(function, inputs):
    """Largest tensor (in elements) that autograd keeps for backward, and their total."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(*_canonical(inputs), True)
    return max(sizes), sum(sizes)


def test_backward_keeps_chunk_checkpoints_not_every_state():
    batch, channels, n_state, length, chunk = 1, 4, 16, 2048, 64
    inputs = random_inputs(batch, channels, n_state, length, torch.float32, seed=6)
    largest, total = _saved_elements(lambda *a: chunked_scan.scan_chunked(*a, chunk=chunk), inputs)
    per_sequence = batch * channels * length  # u, delta, z, y: what any scan keeps
    checkpoints = batch * (length // chunk) * channels * n_state
    assert largest == max(per_sequence, batch * length * n_state)  # no (L, channels, state) tensor
    assert total <= 4 * per_sequence + 2 * batch * length * n_state + checkpoints + channels * (n_state + 2)
    _, loop_total = _saved_elements(cpu_scan.scan_torch, inputs)
    assert loop_total >= batch * channels * n_state * length  # the token loop keeps every state


def _parameter_grads(module, x):
    out = module(x)
    grads = torch.autograd.grad(out.square().sum(), [x, *module.parameters()])
    return out, grads


@pytest.mark.parametrize("make, shape", [
    (lambda: Mamba(12, d_state=8), (2, 53, 12)),
    (lambda: DirectionalScan3d(6, directions="bi"), (1, 6, 3, 4, 5)),
])
def test_layers_match_token_loop_reference(monkeypatch, make, shape):
    torch.manual_seed(7)
    layer = make().double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out, grads = _parameter_grads(layer, x)
    monkeypatch.setenv("NNUNET_STROKE_SCAN", "torch_loop")
    expected, expected_grads = _parameter_grads(layer, x)
    torch.testing.assert_close(out, expected, **FP64_TOLERANCE)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, **FP64_TOLERANCE)


@pytest.mark.parametrize("length", [1, 70])
def test_inputs_are_left_unchanged(length):
    """A chunk's time-major copy of delta can be a view of delta itself (length 1): nothing is written
    into the caller's tensors."""
    inputs = random_inputs(1, 3, 4, length, torch.float32, seed=8)
    before = {name: t.detach().clone() for name, t in inputs.items()}
    out, _ = chunked_scan.scan_chunked(*_canonical(inputs), True, chunk=32)
    out.backward(torch.ones_like(out))
    for name, tensor in inputs.items():
        torch.testing.assert_close(tensor.detach(), before[name], rtol=0, atol=0, msg=name)


def test_backward_under_autocast_keeps_float32_accuracy():
    """Gradients taken inside an autocast context (bfloat16 matrix products) are still float32-exact."""
    inputs = random_inputs(2, 4, 16, 77, torch.float32, seed=9)
    upstream = torch.randn(2, 4, 77, generator=torch.Generator().manual_seed(10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(**inputs, delta_softplus=True)
        grads = torch.autograd.grad(out, [inputs[n] for n in NAMES], upstream)
    reference = {name: t.detach().double().requires_grad_() for name, t in inputs.items()}
    expected, _ = naive_scan(**reference, delta_softplus=True)
    expected_grads = torch.autograd.grad(expected, [reference[n] for n in NAMES], upstream.double())
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        assert grad.dtype == torch.float32
        torch.testing.assert_close(grad.double(), expected_grad, **FP32_TOLERANCE, msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_softplus_matches_torch(dtype):
    x = torch.cat([torch.linspace(-120, 120, 4001, dtype=dtype), torch.tensor([0.0, 19.99, 20.0, 20.01], dtype=dtype)])
    info = torch.finfo(dtype)  # absolute: below the smallest normal number (float32 near x = -88)
    torch.testing.assert_close(chunked_scan.softplus(x), torch.nn.functional.softplus(x), rtol=4 * info.eps,
                               atol=info.tiny)


def test_thread_setting_is_restored():
    threads = torch.get_num_threads()
    inputs = random_inputs(1, 3, 4, 40, torch.float32, seed=11)
    out, _ = chunked_scan.scan_chunked(*_canonical(inputs), True, chunk=16)
    assert torch.get_num_threads() == threads
    out.sum().backward()
    assert torch.get_num_threads() == threads
