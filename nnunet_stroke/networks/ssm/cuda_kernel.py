"""Lazy access to mamba-ssm's fused CUDA selective scan, with a single warning when it is unusable.

mamba-ssm is optional (``pip install --no-build-isolation "nnunet-stroke[cuda]"``). It is imported on
the first call with a CUDA tensor, never at package import. Releases 2.3.x fail at import when the
compiled ``selective_scan_cuda`` module is missing; newer sources import but set it to None -- both
count as unavailable. A kernel that raises at call time disables the CUDA path too. Every one of
these cases issues exactly one RuntimeWarning per process when the backend is chosen automatically
(dispatch.py), and the package's own scan is used; an explicit choice of mamba_ssm raises instead.
"""

import warnings

_UNSET = object()
_kernel = _UNSET
_failure = None
_warned = False


def _import_kernel():
    from mamba_ssm.ops import selective_scan_interface as interface

    if getattr(interface, "selective_scan_cuda", None) is None:
        raise ImportError("mamba_ssm is installed without its compiled selective_scan_cuda module")
    return interface.selective_scan_fn


def load_kernel(warn=True):
    """mamba-ssm's ``selective_scan_fn``, or None if it cannot be used (then warned once if ``warn``)."""
    global _kernel
    if _kernel is _UNSET:
        try:
            _kernel = _import_kernel()
        except Exception as error:  # ImportError, or a broken build raising anything at import
            disable(error, warn=False)
    if _kernel is None and warn:
        disable(_failure)
    return _kernel


def failure():
    """Why the kernel is unusable (the exception), or None."""
    return _failure


def disable(error, warn=True):
    """Stop using the CUDA kernel after ``error``; warn the first time only."""
    global _kernel, _failure, _warned
    _kernel, _failure = None, error
    if warn and not _warned:
        _warned = True
        warnings.warn(f"mamba-ssm CUDA selective scan unavailable ({error!r}); running the "
                      "package's own scan instead. To use the fused kernel install "
                      '`pip install --no-build-isolation "nnunet-stroke[cuda]"` on a CUDA machine.',
                      RuntimeWarning, stacklevel=4)


def reset():
    """Forget the loaded kernel and the warning (used by tests)."""
    global _kernel, _failure, _warned
    _kernel, _failure, _warned = _UNSET, None, False
