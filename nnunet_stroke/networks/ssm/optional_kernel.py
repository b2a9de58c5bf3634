"""An optional compiled kernel (numba's CPU scan, mamba-ssm's CUDA scan): imported on first use, a failure
kept and warned about once per process, so the caller falls back to the package's own scan."""
from __future__ import annotations

import warnings
from typing import Callable


class OptionalKernel:
    """Lazy access to one kernel.

    Args:
        load: imports and returns the kernel; raises (anything) when it is unusable.
        unavailable: the RuntimeWarning's text, ``{error!r}`` standing for the failure.
    """

    def __init__(self, load: Callable[[], object], unavailable: str):
        self._load = load
        self._unavailable = unavailable
        self.reset()

    def reset(self) -> None:
        """Forget the loaded kernel, the failure and the warning (used by tests)."""
        self._tried, self.kernel, self.failure, self._warned = False, None, None, False

    def get(self, warn: bool) -> object | None:
        """The kernel, or None if it cannot be used (then warned once if ``warn``)."""
        if not self._tried:
            self._tried = True
            try:
                self.kernel = self._load()
            except Exception as error:  # ImportError, or a broken build raising anything at import
                self.disable(error, warn=False)
        if self.kernel is None and warn:
            self.disable(self.failure)
        return self.kernel

    def disable(self, error: BaseException | None, warn: bool = True) -> None:
        """Stop using the kernel after ``error``; warn the first time only."""
        self._tried, self.kernel, self.failure = True, None, error
        if warn and not self._warned:
            self._warned = True
            warnings.warn(self._unavailable.format(error=error), RuntimeWarning, stacklevel=4)
