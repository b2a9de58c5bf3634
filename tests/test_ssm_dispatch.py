"""Dispatch of selective_scan. CUDA: a fake mamba-ssm kernel (forced onto the "cuda" branch with CPU
tensors) checks what the real kernel requires; broken installs fall back with exactly one warning.
Backends: NNUNET_STROKE_SCAN parsing, which scan runs, errors for unavailable choices, the log line."""

import importlib
import importlib.util
import sys
import types
import warnings

import pytest
import torch
from ssm_naive import naive_scan, random_inputs

from nnunet_stroke.networks.ssm import Mamba, cuda_kernel, selective_scan

dispatch = importlib.import_module("nnunet_stroke.networks.ssm.dispatch")
FP32_TOLERANCE = {"rtol": 6e-4, "atol": 2e-3}


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    monkeypatch.delenv("NNUNET_STROKE_SCAN", raising=False)


@pytest.fixture
def force_cuda_branch(monkeypatch):
    """Every tensor takes the CUDA branch; the kernel loader state is fresh and restored afterwards."""
    monkeypatch.setattr(dispatch, "_runs_on_cuda", lambda device: True)
    cuda_kernel.reset()
    yield monkeypatch
    cuda_kernel.reset()


class FakeKernel:
    """Stands in for mamba_ssm's selective_scan_fn: checks its input contract, then computes in fp32."""

    def __init__(self):
        self.calls = []

    def __call__(self, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                 return_last_state=False):
        named = {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "delta_bias": delta_bias}
        for name, tensor in named.items():
            if tensor is not None and (tensor.dtype != torch.float32 or not tensor.is_contiguous()):
                pytest.fail(f"{name} reached the kernel as {tensor.dtype}, contiguous={tensor.is_contiguous()}")
        self.calls.append({"delta_bias": delta_bias, "delta_softplus": delta_softplus})
        out, last = naive_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        out, last = out.float(), last.float()
        return (out, last) if return_last_state else out


def _use_kernel(monkeypatch, kernel):
    monkeypatch.setattr(cuda_kernel, "_import_kernel", lambda: kernel)


def _recorded_warnings(function, repeats=2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [function() for _ in range(repeats)]
    return results, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_fake_kernel_receives_float32_contiguous_inputs(force_cuda_branch):
    kernel = FakeKernel()
    _use_kernel(force_cuda_branch, kernel)
    inputs = {name: t.detach() for name, t in random_inputs(2, 3, 4, 9, torch.float32).items()}
    inputs["u"] = inputs["u"].bfloat16()
    inputs["B"] = inputs["B"].transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous view
    out = selective_scan(**inputs, delta_softplus=True)
    assert len(kernel.calls) == 1 and out.dtype == torch.bfloat16


def test_mamba_passes_delta_bias_and_softplus_to_kernel(force_cuda_branch):
    kernel = FakeKernel()
    _use_kernel(force_cuda_branch, kernel)
    mixer = Mamba(16)
    mixer(torch.randn(2, 7, 16))
    (call,) = kernel.calls
    assert call["delta_softplus"] is True
    torch.testing.assert_close(call["delta_bias"], mixer.dt_proj.bias.float(), rtol=0, atol=0)


def test_state_dict_round_trip_between_cpu_and_cuda_paths(force_cuda_branch):
    torch.manual_seed(0)
    x = torch.randn(2, 11, 16)
    saved_on_cpu = Mamba(16)
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: False)
    cpu_out = saved_on_cpu(x)
    kernel = FakeKernel()
    _use_kernel(force_cuda_branch, kernel)
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: True)
    loaded = Mamba(16)
    loaded.load_state_dict(saved_on_cpu.state_dict(), strict=True)
    cuda_out = loaded(x)
    assert len(kernel.calls) == 1
    torch.testing.assert_close(cuda_out, cpu_out, **FP32_TOLERANCE)
    back_on_cpu = Mamba(16)
    back_on_cpu.load_state_dict(loaded.state_dict(), strict=True)
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: False)
    torch.testing.assert_close(back_on_cpu(x), cpu_out, rtol=0, atol=0)


def _cpu_result(inputs):
    return selective_scan(**inputs, delta_softplus=True)


def test_raising_kernel_warns_once_and_returns_cpu_result(force_cuda_branch):
    inputs = {name: t.detach() for name, t in random_inputs(1, 3, 4, 8, torch.float32).items()}
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: False)
    expected = _cpu_result(inputs)
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: True)

    def raising_kernel(*args, **kwargs):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    _use_kernel(force_cuda_branch, raising_kernel)
    results, caught = _recorded_warnings(lambda: _cpu_result(inputs))
    assert len(caught) == 1 and "no kernel image" in str(caught[0].message)
    for result in results:
        torch.testing.assert_close(result, expected, rtol=0, atol=0)


def test_import_error_warns_once(force_cuda_branch):
    def failing_import():
        raise ImportError("libc10_cuda.so: undefined symbol")

    force_cuda_branch.setattr(cuda_kernel, "_import_kernel", failing_import)
    inputs = {name: t.detach() for name, t in random_inputs(1, 2, 4, 5, torch.float32).items()}
    results, caught = _recorded_warnings(lambda: _cpu_result(inputs))
    assert len(caught) == 1 and "undefined symbol" in str(caught[0].message)
    expected, _ = naive_scan(**inputs, delta_softplus=True)
    torch.testing.assert_close(results[0].double(), expected, **FP32_TOLERANCE)


def test_install_without_compiled_module_counts_as_unavailable(force_cuda_branch):
    """mamba-ssm sources newer than 2.3.2 import without selective_scan_cuda and set it to None."""
    package, ops, interface = (types.ModuleType(name) for name in
                               ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface"))
    interface.selective_scan_cuda = None
    interface.selective_scan_fn = FakeKernel()
    package.ops, ops.selective_scan_interface = ops, interface
    for module in (package, ops, interface):
        force_cuda_branch.setitem(sys.modules, module.__name__, module)
    inputs = {name: t.detach() for name, t in random_inputs(1, 2, 4, 5, torch.float32).items()}
    _, caught = _recorded_warnings(lambda: _cpu_result(inputs))
    assert len(caught) == 1 and "without its compiled selective_scan_cuda" in str(caught[0].message)
    assert interface.selective_scan_fn.calls == []


def _gpu_with_mamba_ssm():
    if not torch.cuda.is_available():
        return "no CUDA device"
    if importlib.util.find_spec("mamba_ssm") is None:
        return "mamba-ssm is not installed (pip install --no-build-isolation 'nnunet-stroke[cuda]')"
    return None


@pytest.mark.skipif(_gpu_with_mamba_ssm() is not None, reason=f"needs a GPU and mamba-ssm: {_gpu_with_mamba_ssm()}")
def test_real_kernel_matches_portable_scan_on_gpu():
    cuda_kernel.reset()
    inputs = {name: t.detach().cuda().requires_grad_() for name, t in
              random_inputs(2, 8, 16, 300, torch.float32, delta_scale=10.0).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would warn
        out = selective_scan(**inputs, delta_softplus=True)
    grads = torch.autograd.grad(out.sum(), list(inputs.values()))
    reference = {name: t.detach().cpu().double().requires_grad_() for name, t in inputs.items()}
    expected, _ = naive_scan(**reference, delta_softplus=True)
    expected_grads = torch.autograd.grad(expected.sum(), list(reference.values()))
    torch.testing.assert_close(out.double().cpu(), expected, **FP32_TOLERANCE)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad.double().cpu(), expected_grad, **FP32_TOLERANCE)


# --- backend selection (NNUNET_STROKE_SCAN) --------------------------------------------------------


@pytest.fixture
def spies(monkeypatch):
    """Records which scan ran; the real scans still compute."""
    from nnunet_stroke.networks.ssm import chunked_scan, cpu_scan

    calls = []
    for module, name in ((cpu_scan, "scan_numba"), (cpu_scan, "scan_torch"), (chunked_scan, "scan_chunked")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    return calls


def _inputs_f32():
    return {name: t.detach() for name, t in random_inputs(1, 3, 4, 9, torch.float32, seed=11).items()}


@pytest.mark.parametrize("value, expected", [(None, "auto"), ("", "auto"), (" Torch_Chunked ", "torch_chunked"),
                                             ("numba", "numba"), ("torch_loop", "torch_loop")])
def test_env_var_parsing(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("NNUNET_STROKE_SCAN", raising=False)
    else:
        monkeypatch.setenv("NNUNET_STROKE_SCAN", value)
    assert dispatch.requested_backend() == expected


def test_unknown_backend_is_an_error_listing_the_choices(monkeypatch):
    monkeypatch.setenv("NNUNET_STROKE_SCAN", "cuda")
    with pytest.raises(dispatch.ScanBackendError, match="NNUNET_STROKE_SCAN='cuda' is not a selective-scan backend; "
                                                        "use one of auto, mamba_ssm, numba, torch_chunked, torch_loop"):
        selective_scan(**_inputs_f32())


@pytest.mark.parametrize("value, expected", [(None, "scan_numba"), ("numba", "scan_numba"),
                                             ("torch_chunked", "scan_chunked"), ("torch_loop", "scan_torch")])
def test_cpu_tensors_run_the_chosen_backend(monkeypatch, spies, value, expected):
    if value is None:
        monkeypatch.delenv("NNUNET_STROKE_SCAN", raising=False)
    else:
        monkeypatch.setenv("NNUNET_STROKE_SCAN", value)
    inputs = _inputs_f32()
    out = selective_scan(**inputs, delta_softplus=True)
    assert spies == [expected]
    torch.testing.assert_close(out.double(), naive_scan(**inputs, delta_softplus=True)[0], **FP32_TOLERANCE)


def test_auto_on_cuda_without_mamba_ssm_runs_the_chunked_scan(force_cuda_branch, spies):
    force_cuda_branch.delenv("NNUNET_STROKE_SCAN", raising=False)

    def failing_import():
        raise ModuleNotFoundError("No module named 'selective_scan_cuda'")

    force_cuda_branch.setattr(cuda_kernel, "_import_kernel", failing_import)
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: device.type == "cpu")
    inputs = _inputs_f32()
    results, caught = _recorded_warnings(lambda: _cpu_result(inputs))
    assert len(caught) == 1 and "selective_scan_cuda" in str(caught[0].message)
    assert spies == ["scan_numba", "scan_numba"]  # CPU tensors still get the CPU kernel
    force_cuda_branch.setattr(dispatch, "_runs_on_cuda", lambda device: True)
    assert dispatch._resolve(torch.device("mps"), torch.float32, "auto") == "torch_chunked"


def test_forced_mamba_ssm_uses_kernel_and_does_not_hide_its_errors(force_cuda_branch):
    force_cuda_branch.setenv("NNUNET_STROKE_SCAN", "mamba_ssm")
    kernel = FakeKernel()
    _use_kernel(force_cuda_branch, kernel)
    selective_scan(**_inputs_f32(), delta_softplus=True)
    assert len(kernel.calls) == 1

    def raising_kernel(*args, **kwargs):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    cuda_kernel.reset()
    _use_kernel(force_cuda_branch, raising_kernel)
    with pytest.raises(RuntimeError, match="no kernel image"):
        selective_scan(**_inputs_f32(), delta_softplus=True)


@pytest.mark.parametrize("backend, device, setup, message", [
    ("mamba_ssm", "cpu", None, r"tensors are on cpu, not CUDA\. The mamba_ssm backend needs CUDA tensors and "
                               r"a working mamba-ssm build: `pip install --no-build-isolation "
                               r"\"nnunet-stroke\[cuda\]\"`"),
    ("mamba_ssm", "cuda", "no_mamba", r"mamba-ssm's kernel is not usable \(ModuleNotFoundError\(.*mamba_ssm.*\)\)\. "
                                      r"The mamba_ssm backend needs .*nnunet-stroke\[cuda\]"),
    ("numba", "mps", None, r"tensors are on mps, not the CPU\. The numba backend needs CPU tensors and numba: "
                           r"`pip install numba`"),
    ("numba", "cpu", "no_numba", r"numba is not usable .*`pip install numba`; or set NNUNET_STROKE_SCAN=auto"),
])
def test_unavailable_backend_error_says_how_to_get_it(monkeypatch, backend, device, setup, message):
    from nnunet_stroke.networks.ssm import cpu_scan

    monkeypatch.setenv("NNUNET_STROKE_SCAN", backend)
    cuda_kernel.reset()
    if setup == "no_mamba":
        monkeypatch.setitem(sys.modules, "mamba_ssm", None)
    if setup == "no_numba":
        monkeypatch.setattr(cpu_scan, "_NUMBA", cpu_scan.OptionalKernel(cpu_scan._import_kernels, ""))
        cpu_scan._NUMBA.disable(ImportError("No module named 'numba'"), warn=False)
    try:
        with pytest.raises(dispatch.ScanBackendError, match=message):
            dispatch.describe_scan_backend(device)
        if device == "cpu":
            with pytest.raises(dispatch.ScanBackendError, match=message):
                selective_scan(**_inputs_f32())
    finally:
        cuda_kernel.reset()


def test_float64_with_forced_mamba_ssm_is_an_error(force_cuda_branch):
    force_cuda_branch.setenv("NNUNET_STROKE_SCAN", "mamba_ssm")
    _use_kernel(force_cuda_branch, FakeKernel())
    inputs = {name: t.double() for name, t in _inputs_f32().items()}
    with pytest.raises(dispatch.ScanBackendError, match="computes in float32, the inputs are torch.float64"):
        selective_scan(**inputs)


@pytest.mark.parametrize("value, device, expected", [
    (None, "cpu", "Selective scan (Mamba) backend on cpu: numba (chosen automatically; NNUNET_STROKE_SCAN=auto"),
    (None, "mps", "Selective scan (Mamba) backend on mps: torch_chunked (chosen automatically"),
    ("torch_chunked", "cpu",
     "Selective scan (Mamba) backend on cpu: torch_chunked (forced; NNUNET_STROKE_SCAN=torch_chunked"),
])
def test_describe_scan_backend_names_the_backend(monkeypatch, value, device, expected):
    if value is None:
        monkeypatch.delenv("NNUNET_STROKE_SCAN", raising=False)
    else:
        monkeypatch.setenv("NNUNET_STROKE_SCAN", value)
    assert dispatch.describe_scan_backend(device).startswith(expected)


@pytest.mark.parametrize("has_mamba", [True, False])
def test_trainer_logs_the_backend_once_at_start_for_mamba_networks(monkeypatch, has_mamba):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_stroke.trainers.base import nnUNetTrainerStrokeUNet

    monkeypatch.setenv("NNUNET_STROKE_SCAN", "torch_chunked")
    monkeypatch.setattr(nnUNetTrainer, "on_train_start", lambda self: None)  # nnU-Net's own start-up
    trainer = object.__new__(nnUNetTrainerStrokeUNet)
    trainer.device = torch.device("cpu")
    trainer.network = torch.nn.Sequential(torch.nn.Linear(4, 4), *([Mamba(4)] if has_mamba else []))
    logged = []
    trainer.print_to_log_file = lambda *args, **kwargs: logged.append(" ".join(map(str, args)))
    trainer.on_train_start()
    expected = ["Selective scan (Mamba) backend on cpu: torch_chunked (forced; NNUNET_STROKE_SCAN=torch_chunked, "
                "one of auto, mamba_ssm, numba, torch_chunked, torch_loop)"]
    assert logged == (expected if has_mamba else [])
