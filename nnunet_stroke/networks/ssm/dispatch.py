"""``selective_scan``: mamba-ssm's ``selective_scan_fn`` (Mamba-1, Gu & Dao 2023, Algorithm 2) anywhere.

Same arguments, layouts and semantics as ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``
with per-channel-and-state A:

    u, delta: (batch, D, L)     A: (D, N)     B, C: (batch, N, L)     D: (D,)     z: (batch, D, L)
    delta_bias: (D,)  added to delta before the optional softplus (delta_softplus=True)

Returns ``out`` (batch, D, L) in u's dtype, and with ``return_last_state`` also the final state
(batch, D, N), which carries no gradient (as in mamba-ssm).

Backends, chosen per call by ``NNUNET_STROKE_SCAN`` (read at every call; default ``auto``):

    mamba_ssm      mamba-ssm's fused CUDA kernel (CUDA tensors, float32 computation)
    numba          the package's compiled CPU kernel (cpu_scan.py, numba_kernels.py)
    torch_chunked  the chunked parallel scan in PyTorch ops, any device (chunked_scan.py)
    torch_loop     the token-by-token PyTorch loop, kept as a reference (cpu_scan.scan_torch)
    auto           mamba_ssm for CUDA tensors when its kernel imports, numba for CPU tensors when
                   numba loads, torch_chunked otherwise (one warning when a kernel is missing or fails)

Asking explicitly for a backend that cannot run (mamba_ssm without a working build or on non-CUDA
tensors, numba without numba or on non-CPU tensors, an unknown name) raises ``ScanBackendError``
saying how to get it. Half-precision inputs are computed in float32 (also under autocast) and the
output cast back; float64 inputs are computed in float64 (mamba_ssm: float32 only).
"""

import os

import torch

from nnunet_stroke.errors import UserError
from nnunet_stroke.networks.ssm import chunked_scan, cpu_scan, cuda_kernel

ENV_VAR = "NNUNET_STROKE_SCAN"
BACKENDS = ("auto", "mamba_ssm", "numba", "torch_chunked", "torch_loop")
_HOW_TO_GET = {
    "mamba_ssm": 'CUDA tensors and a working mamba-ssm build: `pip install --no-build-isolation '
                 '"nnunet-stroke[cuda]"` on a machine with CUDA and nvcc (docs/ssm.md)',
    "numba": "CPU tensors and numba: `pip install numba`",
}


class ScanBackendError(UserError):
    """The backend asked for by NNUNET_STROKE_SCAN is unknown or cannot run here."""


def requested_backend():
    """The backend named by NNUNET_STROKE_SCAN (``auto`` when unset or empty)."""
    name = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ScanBackendError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a selective-scan backend; "
                               f"use one of {', '.join(BACKENDS)} (or unset it for auto)")
    return name


def _runs_on_cuda(device):
    """Whether the CUDA kernel can take tensors on ``device`` (tests force it for the CPU)."""
    return device.type == "cuda"


def _unavailable(name, reason):
    return ScanBackendError(f"{ENV_VAR}={name}: {reason}. The {name} backend needs {_HOW_TO_GET[name]}; "
                            f"or set {ENV_VAR}=auto (or torch_chunked, which runs anywhere).")


def _resolve(device, dtype, name):
    """The backend that runs for tensors on ``device`` computed in ``dtype``; raises for unavailable
    explicit choices."""
    if name == "mamba_ssm":
        if not _runs_on_cuda(device):
            raise _unavailable(name, f"the tensors are on {device.type}, not CUDA")
        if dtype != torch.float32:
            raise _unavailable(name, f"the fused kernel computes in float32, the inputs are {dtype}")
        if cuda_kernel.load_kernel(warn=False) is None:
            raise _unavailable(name, f"mamba-ssm's kernel is not usable ({cuda_kernel.failure()!r})")
    elif name == "numba":
        if device.type != "cpu":
            raise _unavailable(name, f"the tensors are on {device.type}, not the CPU")
        if cpu_scan._load_kernels() is None:
            raise _unavailable(name, f"numba is not usable ({cpu_scan.numba_failure()!r})")
    elif name == "auto":
        if _runs_on_cuda(device) and dtype == torch.float32 and cuda_kernel.load_kernel() is not None:
            return "mamba_ssm"
        if device.type == "cpu" and cpu_scan._load_kernels(warn=True) is not None:
            return "numba"
        return "torch_chunked"
    return name


def describe_scan_backend(device):
    """One line naming the backend that runs float32 scans on ``device`` (for training logs)."""
    device = torch.device(device)
    name = requested_backend()
    backend = _resolve(device, torch.float32, name)
    how = "chosen automatically" if name == "auto" else "forced"
    return (f"Selective scan (Mamba) backend on {device.type}: {backend} ({how}; {ENV_VAR}={name}, "
            f"one of {', '.join(BACKENDS)})")


def _check_shapes(u, delta, A, B, C, D, z, delta_bias):
    batch, channels, length = u.shape
    n_state = A.shape[-1]
    expected = {"delta": (delta, (batch, channels, length)), "A": (A, (channels, n_state)),
                "B": (B, (batch, n_state, length)), "C": (C, (batch, n_state, length)),
                "D": (D, (channels,)), "z": (z, (batch, channels, length)),
                "delta_bias": (delta_bias, (channels,))}
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"selective_scan: {name} has shape {tuple(tensor.shape)}, expected {shape} "
                             "(u, delta, z: (batch, D, L); A: (D, N); B, C: (batch, N, L); D, "
                             "delta_bias: (D,))")


def _compute_dtype(tensors):
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _cast(tensor, dtype):
    return None if tensor is None else tensor.to(dtype).contiguous()


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False):
    """Selective scan with mamba-ssm's ``selective_scan_fn`` semantics; see the module docstring."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    present = [t for t in (u, delta, A, B, C, D, z, delta_bias) if t is not None]
    dtype = _compute_dtype(present)
    requested = requested_backend()
    with torch.autocast(u.device.type, enabled=False):
        backend = _resolve(u.device, dtype, requested)
        out = last_state = None
        if backend == "mamba_ssm":
            out, last_state = _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                         fall_back=requested == "auto")
            if out is None:  # the kernel raised and is now disabled
                backend = _resolve(u.device, dtype, "auto")
        if out is None:
            u_, delta_, A_, D_, z_, bias_ = (_cast(t, dtype) for t in (u, delta, A, D, z, delta_bias))
            B_, C_ = (_cast(t.transpose(1, 2), dtype) for t in (B, C))  # (batch, L, N) for locality
            args = (u_, delta_, A_, B_, C_, D_, z_, bias_, delta_softplus)
            if backend == "numba":
                out, last_state = cpu_scan.scan_numba(
                    *args, fallback=chunked_scan.scan_chunked if requested == "auto" else None)
            elif backend == "torch_chunked":
                out, last_state = chunked_scan.scan_chunked(*args)
            else:
                out, last_state = cpu_scan.scan_torch(*args)
    out = out.to(u.dtype)
    return (out, last_state) if return_last_state else out


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus, fall_back):
    """mamba-ssm's fused kernel. If it raises: with ``fall_back``, (None, None) and the kernel is
    disabled (warned once); otherwise the error propagates."""
    kernel = cuda_kernel.load_kernel()
    args = [_cast(t, torch.float32) for t in (u, delta, A, B, C, D, z, delta_bias)]
    try:
        return kernel(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                      delta_softplus=bool(delta_softplus), return_last_state=True)
    except Exception as error:  # a broken build can raise anything from the extension
        if not fall_back:
            raise
        cuda_kernel.disable(error)
        return None, None
