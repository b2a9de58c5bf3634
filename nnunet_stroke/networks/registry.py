"""Preset name -> network; presets inherit (a base plus overrides, as timm writes its model variants).

Presets are JSON files in ``network_configs/`` (installed as ``nnunet_stroke.network_configs``). A root
preset states everything::

    {"architecture": "lbmnet", "paper": "Kuang et al., Front. Med. 2026", "description": "...",
     "params": {...keyword arguments of the architecture's builder...}}

Every other preset names its base and holds only what differs::

    {"base": "lbmnet", "description": "Table 7 Model A: ...",
     "params": {"lsc_kernels": [5], "lsc_refine": false}}

Resolution (:func:`load_preset`): the base chain is resolved first; then ``params`` are the base's params
updated key by key with the preset's (a value, list or object alike, replaces the base's value whole),
and ``paper`` / ``description`` are inherited unless the preset states them. A preset inherits its base's architecture and may not name one (a preset of another
architecture is a root). Refused, with an error naming the preset file: a top-level key other than
``base``, ``architecture``, ``paper``, ``description``, ``params``; a params key the architecture's
builder does not accept (checked against its signature, and against ``params_from`` for builders that
forward ``**params``); a plan argument (``input_channels``, ``num_classes``, ``patch_size``, ``strides``,
``deep_supervision``: they come from nnU-Net's plans) as a param; an unknown base; a cycle.

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
import inspect
import json
from importlib import resources
from typing import Callable, Sequence

from torch import nn

from nnunet_stroke.errors import UserError

PRESET_KEYS = ("base", "architecture", "paper", "description", "params")
PLAN_ARGUMENTS = ("input_channels", "num_classes", "patch_size", "strides", "deep_supervision")

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
_FORWARDED_PARAMS: dict[str, Callable] = {}  # architecture -> callable that receives the builder's **params
# modules that register architectures; imported on first use so that importing the registry is cheap
_ARCHITECTURE_MODULES = (
    "nnunet_stroke.networks.plain_unet",
    "nnunet_stroke.networks.lbmnet",
    "nnunet_stroke.networks.pmsan",
    "nnunet_stroke.networks.pmsan_classifier",
    "nnunet_stroke.networks.strokenext",
    "nnunet_stroke.networks.baselines",
)


class PresetError(UserError, ValueError):
    """A preset file that cannot be resolved (unknown key or base, cycle, missing architecture)."""


class UnknownPresetError(PresetError, KeyError):
    """No preset of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_architecture(name: str, params_from: Callable | None = None):
    """Decorator: make ``builder`` available to presets under ``name``.

    ``params_from``: for a builder that takes ``**params`` and forwards them, the callable that receives
    them, so that the preset keys it accepts can be checked against its signature too.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not builder:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHITECTURES[name] = builder
        if params_from is not None:
            _FORWARDED_PARAMS[name] = params_from
        return builder

    return decorator


def _import_architectures() -> None:
    for module in _ARCHITECTURE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a missing dependency inside an existing module is a real error
                raise


def _folder():
    return resources.files("nnunet_stroke.network_configs")


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".json"))


def preset_file(name: str):
    """The JSON file of preset ``name`` (raises UnknownPresetError if there is none)."""
    path = _folder() / f"{name}.json"
    if not path.is_file():
        raise UnknownPresetError(f"unknown network preset {name!r}; known presets: {', '.join(preset_names())}")
    return path


def read_preset_file(name: str) -> dict:
    """The preset's own JSON as written (unresolved), with its top-level keys checked."""
    path = preset_file(name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PresetError(f"{path}: not valid JSON ({error}); fix the file") from error
    if not isinstance(raw, dict):
        raise PresetError(f"{path}: a preset is a JSON object with keys {list(PRESET_KEYS)}")
    unknown = sorted(set(raw) - set(PRESET_KEYS))
    if unknown:
        raise PresetError(f"{path}: unknown top-level key(s) {unknown}; a preset may hold only {list(PRESET_KEYS)}")
    if not isinstance(raw.get("params", {}), dict):
        raise PresetError(f"{path}: 'params' must be a JSON object of builder keyword arguments")
    return raw


def accepted_params(architecture: str) -> set[str] | None:
    """Keyword arguments a preset may set for ``architecture`` (None: the builder accepts any)."""
    _import_architectures()
    names: set[str] = set()
    for function in (_ARCHITECTURES[architecture], _FORWARDED_PARAMS.get(architecture)):
        if function is None:
            continue
        parameters = inspect.signature(function).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names - set(PLAN_ARGUMENTS) - {"self"}
    return None


def _check_params(where: str, architecture: str, params: dict) -> None:
    """Raise PresetError (naming ``where``) for a plan argument or a key the builder does not accept."""
    plan = sorted(set(params) & set(PLAN_ARGUMENTS))
    if plan:
        raise PresetError(f"{where}: params {plan} come from nnU-Net's plans, not from a preset; remove them")
    accepted = accepted_params(architecture)
    unknown = sorted(set(params) - accepted) if accepted is not None else []
    if unknown:
        raise PresetError(f"{where}: params {unknown} are not arguments of architecture {architecture!r}; "
                          f"accepted: {sorted(accepted)}")


def load_preset(name: str) -> dict:
    """The resolved preset: ``{"architecture", "paper", "description", "params", "chain"}``.

    ``chain`` lists the presets it was resolved from, root first, ending with ``name``.
    """
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            cycle = " -> ".join([*chain, current])
            raise PresetError(f"{preset_file(name)}: its base chain has a cycle ({cycle}); "
                              f"one preset of the cycle must be a root (no 'base')")
        chain.append(current)
        raw = read_preset_file(current)
        if "base" in raw and "architecture" in raw:
            raise PresetError(f"{preset_file(current)}: a preset with a 'base' inherits the base's architecture; "
                              f"remove 'architecture' (or 'base', to make it a root)")
        base = raw.get("base")
        if base is not None and base not in preset_names():
            raise PresetError(f"{preset_file(current)}: base {base!r} is not a preset; "
                              f"known presets: {', '.join(preset_names())}")
        current = base
    chain.reverse()
    resolved: dict = {"params": {}}
    for link in chain:
        raw = read_preset_file(link)
        resolved.update({key: raw[key] for key in ("architecture", "paper", "description") if key in raw})
        resolved["params"] = {**resolved["params"], **raw.get("params", {})}
    _import_architectures()
    root = preset_file(chain[0])
    if "architecture" not in resolved:
        raise PresetError(f"{root}: a root preset must name its 'architecture'")
    if resolved["architecture"] not in _ARCHITECTURES:
        raise PresetError(f"{root}: architecture {resolved['architecture']!r} is not registered; "
                          f"registered: {sorted(_ARCHITECTURES)}")
    for link in chain:
        _check_params(str(preset_file(link)), resolved["architecture"], read_preset_file(link).get("params", {}))
    return {"architecture": resolved["architecture"], "paper": resolved.get("paper", ""),
            "description": resolved.get("description", ""), "params": resolved["params"], "chain": chain}


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
    architecture = config["architecture"]
    _check_params(f"build_network({preset!r}) overrides", architecture, overrides)
    params = {**config["params"], **overrides}
    return _ARCHITECTURES[architecture](
        input_channels=input_channels,
        num_classes=num_classes,
        patch_size=tuple(int(p) for p in patch_size),
        strides=[tuple(int(s) for s in stride) for stride in strides],
        deep_supervision=deep_supervision,
        **params,
    )
