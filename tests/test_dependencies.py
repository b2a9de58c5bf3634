"""Dependencies declared as used: every third-party top-level module the installed package imports (an ``ast``
walk of every module, imports inside functions included) belongs to a distribution that pyproject.toml
declares, in ``dependencies`` or in an extra (``mamba_ssm`` through ``[cuda]``), and the
distributions the design names are declared with the reason next to them in pyproject.toml."""
from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from test_layers import MAPPED_SUBPACKAGES, imports_of, package_modules

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# import names that packages_distributions() cannot map when the distribution is not installed here
NOT_INSTALLED = {"mamba_ssm": "mamba-ssm", "causal_conv1d": "causal-conv1d"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, list[str]]:
    """{top-level module: [file:line, ...]} over every module of the installed package."""
    found: dict[str, list[str]] = {}
    for module, file in package_modules("nnunet_stroke", MAPPED_SUBPACKAGES).items():
        for line, name in imports_of(module, file):
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("__future__", "nnunet_stroke"):
                found.setdefault(top, []).append(f"{file.name}:{line}")
    return found


def declared() -> tuple[set[str], set[str]]:
    """(``dependencies``, every extra's) distribution names declared in pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = [text for group in project.get("optional-dependencies", {}).values() for text in group]
    return ({normalise(Requirement(text).name) for text in project["dependencies"]},
            {normalise(Requirement(text).name) for text in extras})


def test_every_imported_distribution_is_declared():
    always, extras = declared()
    providers = metadata.packages_distributions()
    missing = []
    for top, places in sorted(third_party_imports().items()):
        distributions = {normalise(d) for d in providers.get(top, [])} or {normalise(NOT_INSTALLED.get(top, top))}
        if not distributions & (always | extras):
            missing.append(f"{top} ({', '.join(sorted(distributions))}) imported at {', '.join(places[:3])}")
    assert not missing, "imported but not declared in pyproject.toml dependencies:\n" + "\n".join(missing)


def test_the_walk_sees_the_direct_imports_the_design_names():
    imported = third_party_imports()
    for top in ("dynamic_network_architectures", "batchgenerators", "timm", "torch", "nnunetv2"):
        assert top in imported, top


def test_directly_imported_nnunet_companions_are_declared_with_a_reason():
    always, _ = declared()
    text = PYPROJECT.read_text(encoding="utf-8")
    comments = text.split("dependencies = [")[0]
    for distribution in ("dynamic-network-architectures", "batchgenerators", "timm"):
        assert distribution in always, distribution
        line = next((l for l in comments.splitlines() if l.startswith(f"#   {distribution}")), "")
        assert len(line.split(distribution, 1)[1].strip()) > 20, f"{distribution}: say why it is declared"
