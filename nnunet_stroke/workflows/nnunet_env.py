"""Environment for running nnU-Net's stock entry points with this package's trainers (``nnUNet_extTrainer``
and worker-pool sizes)."""
from __future__ import annotations

import os

from nnunet_stroke import ext_trainer_dir


def with_ext_trainer(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, str] | os._Environ:
    """Put the trainer shim folder first in ``nnUNet_extTrainer`` and cap nnU-Net's worker pools at the
    core count (its defaults of 8 to 12 processes oversubscribe small machines); returns ``environ``."""
    shim = ext_trainer_dir()
    existing = [p for p in environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p and p != shim]
    environ["nnUNet_extTrainer"] = os.pathsep.join([shim, *existing])
    cores = str(os.cpu_count() or 1)
    environ.setdefault("nnUNet_n_proc_DA", cores)
    environ.setdefault("nnUNet_def_n_proc", cores)
    return environ

