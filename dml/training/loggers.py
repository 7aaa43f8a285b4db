"""Experiment loggers from the `logger` config group; W&B runs offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf


def wandb_logged_in() -> bool:
    """True when a W&B API key is available (environment or ~/.netrc), without printing it."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC", Path.home() / ".netrc")).authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def build_loggers(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every logger of the group; W&B `mode: null` becomes online or offline."""
    loggers = []
    for name, node in (cfg or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        node = OmegaConf.to_container(node, resolve=True)
        if name == "wandb" or node["_target_"].endswith("WandbLogger"):
            if node.get("mode") is None:
                node["mode"] = "online" if wandb_logged_in() else "offline"
            os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(hydra.utils.instantiate(node))
    return loggers
