"""Every trainer of the package, found by nnU-Net through the ``nnunet_ext`` shim.

Each module of this folder defines ``nnUNetTrainer...`` classes; they are collected here, and a
``_Tiny`` variant of each is generated (see :mod:`nnunet_stroke.trainers.tiny`). Trainer class names
are written into every checkpoint: never rename one that has shipped.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from nnunet_stroke.trainers.tiny import has_tiny_variant, make_tiny


def _collect_trainers() -> dict[str, type]:
    found: dict[str, type] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and name.startswith("nnUNetTrainer") and obj.__module__ == module.__name__:
                found[name] = obj
    for trainer in list(found.values()):
        if has_tiny_variant(trainer):
            tiny = make_tiny(trainer, __name__)
            found[tiny.__name__] = tiny
    return found


TRAINERS = _collect_trainers()
globals().update(TRAINERS)
__all__ = sorted(TRAINERS)
