"""Lazy access to mamba-ssm's fused CUDA selective scan, with a single warning when it is unusable.

mamba-ssm is optional (``pip install --no-build-isolation "nnunet-stroke[cuda]"``). It is imported on
the first call with a CUDA tensor, never at package import. Releases 2.3.x fail at import when the
compiled ``selective_scan_cuda`` module is missing; newer sources import but set it to None -- both
count as unavailable. A kernel that raises at call time disables the CUDA path too. Every one of
these cases issues exactly one RuntimeWarning per process when the backend is chosen automatically
(dispatch.py), and the package's own scan is used; an explicit choice of mamba_ssm raises instead.
"""

from nnunet_stroke.networks.ssm.optional_kernel import OptionalKernel


def _import_kernel():
    from mamba_ssm.ops import selective_scan_interface as interface

    if getattr(interface, "selective_scan_cuda", None) is None:
        raise ImportError("mamba_ssm is installed without its compiled selective_scan_cuda module")
    return interface.selective_scan_fn


_KERNEL = OptionalKernel(lambda: _import_kernel(), (  # looked up at call time: tests replace _import_kernel
    "mamba-ssm CUDA selective scan unavailable ({error!r}); running the package's own scan instead. To use the "
    'fused kernel install `pip install --no-build-isolation "nnunet-stroke[cuda]"` on a CUDA machine.'))


def load_kernel(warn=True):
    """mamba-ssm's ``selective_scan_fn``, or None if it cannot be used (then warned once if ``warn``)."""
    return _KERNEL.get(warn)


def failure():
    """Why the kernel is unusable (the exception), or None."""
    return _KERNEL.failure


disable = _KERNEL.disable
reset = _KERNEL.reset
