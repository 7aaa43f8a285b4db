"""Packaging glue: ship the top-level ``configs/`` tree inside the wheel as ``dml.configs``, and the
embedded datasets' files (dml/data/embedded/) with ``dml.data``.

Metadata lives in pyproject.toml; this file only maps the config folder into the package so
that ``dml-train`` finds its Hydra configs after a plain (non-editable) ``pip install .``.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dml", "dml.*"]) + ["dml.configs"],
    package_dir={"dml.configs": "configs"},
    package_data={
        "dml.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml"],
        # the embedded datasets (dataset=emoji, dataset=fonts), their checksums and licences
        "dml.data": ["embedded/*.npz", "embedded/SHA256SUMS", "embedded/*.md", "embedded/*.txt"],
    },
    include_package_data=False,
)
