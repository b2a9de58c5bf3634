"""``selective_scan``: mamba-ssm's ``selective_scan_fn`` (Mamba-1, Gu & Dao 2023, Algorithm 2) anywhere.

Same arguments, layouts and semantics as ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``
with per-channel-and-state A:

    u, delta: (batch, D, L)     A: (D, N)     B, C: (batch, N, L)     D: (D,)     z: (batch, D, L)
    delta_bias: (D,)  added to delta before the optional softplus (delta_softplus=True)

Returns ``out`` (batch, D, L) in u's dtype, and with ``return_last_state`` also the final state
(batch, D, N), which carries no gradient (as in mamba-ssm).

Where it runs: a CUDA tensor with a working mamba-ssm build -> mamba-ssm's fused kernel (all inputs
passed as contiguous float32); everything else -> the package's numba kernel (CPU), or the PyTorch
scan when numba cannot run (see ``cpu_scan``). Half-precision inputs are computed in float32 (also
under autocast) and the output cast back; float64 inputs are computed in float64.
"""

import torch

from nnunet_stroke.networks.ssm import cpu_scan, cuda_kernel


def _runs_on_cuda(tensor):
    """Whether the CUDA kernel should be tried for this tensor (tests force it for CPU tensors)."""
    return tensor.is_cuda


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
    with torch.autocast(u.device.type, enabled=False):
        out = last_state = None
        if _runs_on_cuda(u) and dtype == torch.float32:
            out, last_state = _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        if out is None:
            u_, delta_, A_, D_, z_, bias_ = (_cast(t, dtype) for t in (u, delta, A, D, z, delta_bias))
            B_, C_ = (_cast(t.transpose(1, 2), dtype) for t in (B, C))  # (batch, L, N) for locality
            out, last_state = cpu_scan.scan_cpu(u_, delta_, A_, B_, C_, D_, z_, bias_,
                                                delta_softplus)
    out = out.to(u.dtype)
    return (out, last_state) if return_last_state else out


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """mamba-ssm's fused kernel; (None, None) when it is unavailable or raises (warned once)."""
    kernel = cuda_kernel.load_kernel()
    if kernel is None:
        return None, None
    args = [_cast(t, torch.float32) for t in (u, delta, A, B, C, D, z, delta_bias)]
    try:
        return kernel(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                      delta_softplus=bool(delta_softplus), return_last_state=True)
    except Exception as error:  # a broken build can raise anything from the extension
        cuda_kernel.disable(error)
        return None, None
