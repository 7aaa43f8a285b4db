"""Experiment loggers from the `logger` config group; W&B runs offline unless the user is logged in."""

from __future__ import annotations

import csv
import netrc
import os
import re
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf


def wandb_logged_in() -> bool:
    """True when a W&B API key is available (environment or ~/.netrc), without printing it."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return (
            netrc.netrc(os.environ.get("NETRC", Path.home() / ".netrc")).authenticators(
                "api.wandb.ai"
            )
            is not None
        )
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def previous_wandb_run_id(save_dir: str | Path) -> str | None:
    """The id of the newest W&B run (online or offline) under `<save_dir>/wandb/`, if any."""
    runs = [
        p for p in Path(save_dir, "wandb").glob("*run-*-*") if p.is_dir() and not p.is_symlink()
    ]
    if not runs:
        return None
    newest = max(runs, key=lambda p: p.name.split("run-", 1)[1])  # run-<YYYYmmdd_HHMMSS>-<id>
    match = re.fullmatch(r"(?:offline-)?run-\d{8}_\d{6}-(\w+)", newest.name)
    return match.group(1) if match else None


def _csv_rows_before(path: Path, step: int) -> list[dict[str, str]]:
    """The rows of an earlier metrics.csv logged before `step`, their values as written."""
    with open(path, newline="") as file:
        rows = [
            {k: v for k, v in row.items() if k and v not in (None, "")}
            for row in csv.DictReader(file)
        ]
    return [row for row in rows if float(row.get("step", "inf")) < step]


def build_loggers(cfg: DictConfig | None, resume_step: int | None = None) -> list[Any]:
    """Instantiate every logger of the group; W&B `mode: null` becomes online or offline.

    resume_step: the global step of the checkpoint a `resume=true` run continues from. W&B then
    continues the run folder's earlier W&B run (same id, `resume="allow"`), and the CSV logger
    keeps the earlier metrics.csv rows logged before that step instead of starting it over.
    """
    loggers = []
    for name, node in (cfg or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        node = OmegaConf.to_container(node, resolve=True)
        target = node["_target_"]
        kept_rows = None
        if name == "wandb" or target.endswith("WandbLogger"):
            if node.get("mode") is None:
                node["mode"] = "online" if wandb_logged_in() else "offline"
            os.environ.setdefault("WANDB_SILENT", "true")
            run_id = (
                previous_wandb_run_id(node.get("save_dir") or ".")
                if resume_step is not None
                else None
            )
            if run_id and not node.get("id"):
                node.update(id=run_id, resume="allow")
        elif target.endswith("CSVLogger") and resume_step is not None:
            version = node.get("version")
            old = Path(
                node.get("save_dir") or ".",
                node.get("name") or "",
                "" if version is None else str(version),
            )
            if (old / "metrics.csv").is_file():
                kept_rows = _csv_rows_before(old / "metrics.csv", resume_step)
        logger = hydra.utils.instantiate(node)
        if kept_rows:
            writer = (
                logger.experiment
            )  # creating the writer clears the old file; write back what came before
            writer.metrics = kept_rows
            writer.save()
        loggers.append(logger)
    return loggers
