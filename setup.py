"""Packaging glue: ship the top-level ``configs/`` tree inside the wheel as ``dml.configs``.

Metadata lives in pyproject.toml; this file only maps the config folder into the package so
that ``dml-train`` finds its Hydra configs after a plain (non-editable) ``pip install .``.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dml", "dml.*"]) + ["dml.configs"],
    package_dir={"dml.configs": "configs"},
    package_data={"dml.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
    include_package_data=False,
)
