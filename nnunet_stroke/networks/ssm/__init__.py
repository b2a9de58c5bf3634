"""Selective state-space (Mamba) layers that run on CPU and, with mamba-ssm installed, on its CUDA kernels.

- ``selective_scan``: mamba-ssm's ``selective_scan_fn`` semantics (dispatch.py); its backend (mamba-ssm's
  CUDA kernel, the numba CPU kernel, the chunked PyTorch scan, the token loop) follows NNUNET_STROKE_SCAN,
  and ``describe_scan_backend(device)`` names the one in use
- ``Mamba``: the v1 mixer with mamba-ssm's parameter names (mamba.py)
- ``DirectionalScan3d``: one-/bi-/tri-/quad-directional block for 2D/3D maps (directional.py,
  LBMNet eq. 6-8 and Table 9)
See docs/ssm.md.
"""

from nnunet_stroke.networks.ssm.directional import DirectionalScan3d
from nnunet_stroke.networks.ssm.mamba import Mamba
from nnunet_stroke.networks.ssm.dispatch import describe_scan_backend, selective_scan

__all__ = ["selective_scan", "describe_scan_backend", "Mamba", "DirectionalScan3d"]
