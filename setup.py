"""Package list only (everything else is in pyproject.toml).

`network_configs/` and `dataset_conversion/` live at the top of the repo and are installed inside the
package as `nnunet_stroke.network_configs` and `nnunet_stroke.dataset_conversion` (see package-dir in
pyproject.toml); setuptools' automatic discovery cannot combine that mapping with subpackage search.
"""
from setuptools import find_packages, setup

MAPPED = {"nnunet_stroke.network_configs": "network_configs", "nnunet_stroke.dataset_conversion": "dataset_conversion"}

setup(
    packages=find_packages(include=["nnunet_stroke", "nnunet_stroke.*"])
    + [f"{name}{sub}" for name, folder in MAPPED.items() for sub in [""] + [f".{p}" for p in find_packages(folder)]],
)
