"""Hydra composition of the shipped train config for tests that pick their own run folder."""

from __future__ import annotations

from dml.config import compose_train

__all__ = ["compose_train"]
