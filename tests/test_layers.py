"""The package's import layers (README, "Architecture"): every module of the installed package is parsed
with ``ast`` (imports inside functions included) and no import may point against the layers

    networks <- trainers <- inference <- workflows <- commands <- cli

(a module may import its own layer and the layers to its left). ``networks`` is pure torch: nothing from
nnunetv2. ``evaluation``, ``splits``, ``phantom`` and ``dataset_conversion`` import none of the layers.
Everything else (errors, staging, nnU-Net folder lookup, presets) is a foundation that imports no layer.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

LAYERS = ("networks", "trainers", "inference", "workflows", "commands", "cli")
SIDE = ("evaluation", "splits", "phantom", "dataset_conversion")
FORBIDDEN_IN_LAYER = {"networks": ("nnunetv2",)}  # third-party packages a layer must not import
ALIASES = {"nnunet_ext": "trainers"}  # the trainer shim nnU-Net imports re-exports the trainers
# packages installed inside nnunet_stroke from folders at the top of the repo (pyproject package-dir)
MAPPED_SUBPACKAGES = ("dataset_conversion", "network_configs")


def package_modules(package: str, mapped: tuple[str, ...] = ()) -> dict[str, Path]:
    """{dotted module name: file} for every module of the importable ``package`` and its mapped subpackages."""
    roots = {package: Path(importlib.util.find_spec(package).origin).parent}
    for sub in mapped:
        spec = importlib.util.find_spec(f"{package}.{sub}")
        roots[f"{package}.{sub}"] = Path(spec.origin).parent
    modules = {}
    for name, root in roots.items():
        for file in sorted(root.rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([name, *parts])] = file
    return modules


def imports_of(module: str, file: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``file``, wherever it appears (relative ones resolved)."""
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            # `from package import module` imports the module: judge each name as base.name
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str, package: str) -> str | None:
    """The layer (or side module) a dotted name of ``package`` belongs to; None for the foundation."""
    parts = module.split(".")
    if parts[0] != package or len(parts) < 2:
        return None
    first = ALIASES.get(parts[1], parts[1])
    return first if first in LAYERS + SIDE else None


def import_allowed(source: str | None, target: str | None, imported: str) -> bool:
    """Whether a module of layer ``source`` may import ``imported`` (of layer ``target``)."""
    if imported.split(".")[0] in FORBIDDEN_IN_LAYER.get(source, ()):
        return False
    if target is None or target == source or target in SIDE:
        return True  # third party, the foundation, its own layer, the side modules
    return source in LAYERS and LAYERS.index(target) <= LAYERS.index(source)


def layer_violations(package: str, mapped: tuple[str, ...] = ()) -> list[str]:
    """Every import of ``package`` that points against the layers, as ``file:line: importer -> imported``."""
    violations = []
    for module, file in package_modules(package, mapped).items():
        source = layer_of(module, package)
        for line, imported in imports_of(module, file):
            if not import_allowed(source, layer_of(imported, package), imported):
                violations.append(f"{file}:{line}: {module} -> {imported}")
    return violations


def test_the_package_imports_follow_the_layers():
    violations = layer_violations("nnunet_stroke", MAPPED_SUBPACKAGES)
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_every_module_of_the_package_is_walked():
    modules = package_modules("nnunet_stroke", MAPPED_SUBPACKAGES)
    for expected in ("nnunet_stroke.cli", "nnunet_stroke.networks.lbmnet", "nnunet_stroke.dataset_conversion.common",
                     "nnunet_stroke.workflows.heldout", "nnunet_stroke.evaluation.overlap"):
        assert expected in modules


def _write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_finds_planted_violations(tmp_path, monkeypatch):
    """A tiny synthetic package: one allowed arrow of each kind, and one planted violation of each rule,
    two of them hidden inside functions or written as relative imports."""
    init = ""
    _write_package(tmp_path, {
        "layered_pkg/__init__.py": init,
        "layered_pkg/errors.py": "class UserError(Exception): pass\n",
        "layered_pkg/networks/__init__.py": init,
        "layered_pkg/networks/net.py": "import torch\nfrom layered_pkg.errors import UserError\n"
                                       "def build():\n    import nnunetv2\n",  # planted: nnunetv2 in networks
        "layered_pkg/trainers/__init__.py": init,
        "layered_pkg/trainers/trainer.py": "from ..networks import net\nfrom layered_pkg.evaluation import metric\n",
        "layered_pkg/workflows/__init__.py": init,
        "layered_pkg/workflows/flow.py": "from layered_pkg.trainers.trainer import x\n"
                                         "def run():\n    from layered_pkg.commands import cmd\n",  # planted
        "layered_pkg/commands/__init__.py": init,
        "layered_pkg/commands/cmd.py": "from layered_pkg.workflows import flow\n",
        "layered_pkg/evaluation/__init__.py": init,
        "layered_pkg/evaluation/metric.py": "from layered_pkg import splits\nfrom .. import trainers\n",  # planted
        "layered_pkg/splits.py": "from layered_pkg.networks.net import build\n",  # planted
        "layered_pkg/staging.py": "from layered_pkg.workflows.flow import run\n",  # planted: foundation -> layer
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    violations = layer_violations("layered_pkg")
    found = sorted(v.split(": ", 1)[1] for v in violations)
    assert found == sorted([
        "layered_pkg.networks.net -> nnunetv2",
        "layered_pkg.workflows.flow -> layered_pkg.commands.cmd",
        "layered_pkg.evaluation.metric -> layered_pkg.trainers",
        "layered_pkg.splits -> layered_pkg.networks.net.build",
        "layered_pkg.staging -> layered_pkg.workflows.flow.run",
    ]), violations
    assert all(":" in v.split(" ")[0] for v in violations)  # each names file:line
