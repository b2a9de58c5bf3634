"""Preset name -> network.

Presets are JSON files in ``network_configs/`` (installed as ``nnunet_stroke.network_configs``)::

    {"architecture": "lbmnet", "paper": "Kuang et al., Front. Med. 2026", "description": "...",
     "params": {...keyword arguments of the architecture's builder...}}

An architecture is a builder function registered with :func:`register_architecture`; it is called as
``builder(input_channels=, num_classes=, patch_size=, strides=, deep_supervision=, **params)`` where
``strides`` is nnU-Net's planned ``pool_op_kernel_sizes`` (one entry per resolution level, the first
usually all ones) and ``patch_size`` the planned patch. Networks return a logits tensor, or with deep
supervision a list of ``len(strides) - 1`` logits, highest resolution first, and expose
``network.decoder.deep_supervision`` (nnU-Net's switch).

Like ``timm.create_model``: every network is constructible by name, ``build_network("lbmnet_tiny", ...)``,
with no other import.
"""
from __future__ import annotations

import importlib
import json
from importlib import resources
from typing import Callable, Sequence

from torch import nn

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
# modules that register architectures; imported on first use so that importing the registry is cheap
_ARCHITECTURE_MODULES = (
    "nnunet_stroke.networks.plain_unet",
    "nnunet_stroke.networks.lbmnet",
    "nnunet_stroke.networks.pmsan",
    "nnunet_stroke.networks.baselines",
)


def register_architecture(name: str):
    """Decorator: make ``builder`` available to presets under ``name``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not builder:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHITECTURES[name] = builder
        return builder

    return decorator


def _import_architectures() -> None:
    for module in _ARCHITECTURE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a missing dependency inside an existing module is a real error
                raise


def preset_names() -> list[str]:
    folder = resources.files("nnunet_stroke.network_configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> dict:
    path = resources.files("nnunet_stroke.network_configs") / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown network preset {name!r}; known presets: {', '.join(preset_names())}")
    return json.loads(path.read_text(encoding="utf-8"))


def build_network(
    preset: str,
    *,
    input_channels: int,
    num_classes: int,
    patch_size: Sequence[int],
    strides: Sequence[Sequence[int]],
    deep_supervision: bool = False,
    **overrides,
) -> nn.Module:
    """Build the network of ``preset`` for a planned patch and pooling; ``overrides`` replace preset params."""
    config = load_preset(preset)
    _import_architectures()
    architecture = config["architecture"]
    if architecture not in _ARCHITECTURES:
        raise KeyError(f"preset {preset!r} names architecture {architecture!r}, which is not registered")
    params = {**config.get("params", {}), **overrides}
    return _ARCHITECTURES[architecture](
        input_channels=input_channels,
        num_classes=num_classes,
        patch_size=tuple(int(p) for p in patch_size),
        strides=[tuple(int(s) for s in stride) for stride in strides],
        deep_supervision=deep_supervision,
        **params,
    )
