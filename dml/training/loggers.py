"""Experiment loggers from the `logger` config group; W&B runs offline unless the user is logged in
and its server answers."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from dml.config import ConfigError

log = logging.getLogger("dml")
# seconds the W&B server gets to answer before a run logs offline (wandb itself retries for minutes)
WANDB_PROBE_TIMEOUT = 3.0


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


def wandb_base_url() -> str:
    """The W&B server this machine logs to: WANDB_BASE_URL, else `wandb login --host`'s, else wandb's default."""
    import wandb

    settings = wandb.Settings()
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
    return str(settings.base_url)


def wandb_unreachable(url: str, timeout: float = WANDB_PROBE_TIMEOUT) -> str | None:
    """Why the W&B server at `url` gives no answer within `timeout` seconds, or None when it answers
    (HTTP(S)_PROXY from the environment is used, as wandb does). Any HTTP status counts as an
    answer except those a proxy or gateway gives for a server it cannot reach (407, 502-504)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        if err.code in (407, 502, 503, 504):
            return f"HTTP {err.code} {err.reason} from a proxy or gateway"
        return None  # the server answered, if only with an error status
    except urllib.error.URLError as err:
        return str(err.reason)
    except (OSError, ValueError) as err:  # a timeout, a reset connection, a malformed URL
        return str(err) or type(err).__name__


def wandb_mode(requested: str | None, save_dir: str | Path) -> str:
    """The W&B mode a run uses. requested=None (the default): WANDB_MODE when it says offline or
    disabled, else online when logged in and the server answers within seconds, else offline. A node
    with a key but without network (common on clusters) then logs offline at once, saying so, instead
    of wandb retrying for minutes and failing; requested="online" with no answer is a ConfigError."""
    if requested is None:
        env = os.environ.get("WANDB_MODE", "").lower()
        if env in ("offline", "dryrun", "disabled"):
            return "offline" if env == "dryrun" else env
        if not wandb_logged_in():
            return "offline"
    if requested not in (None, "online"):
        return str(requested)
    url = wandb_base_url()
    reason = wandb_unreachable(url)
    if reason is None:
        return "online"
    if requested == "online":
        raise ConfigError(
            f"logger.wandb.mode=online, but the W&B server {url} does not answer ({reason}); log offline "
            "with logger.wandb.mode=offline and sync later with `wandb sync`, or check the network"
        )
    runs = Path(save_dir, "wandb")
    log.warning(
        "W&B: %s does not answer (%s); logging offline to %s instead. Sync later with: wandb sync %s",
        url,
        reason,
        runs,
        runs / "offline-run-*",
    )
    return "offline"


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
            node["mode"] = wandb_mode(node.get("mode"), node.get("save_dir") or ".")
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
        if kept_rows is not None:
            with warnings.catch_warnings():
                # Lightning warns that the old metrics.csv will be deleted; its rows are written back
                warnings.filterwarnings("ignore", message=r".*Previous log files in this directory")
                writer = logger.experiment  # creating the writer clears the old file
            writer.metrics = kept_rows
            writer.save()
        if getattr(logger, "_wandb_init", {}).get("anonymous", "") is None:
            # Lightning passes anonymous=None, which wandb >= 0.19 warns about on every run
            del logger._wandb_init["anonymous"]
        loggers.append(logger)
    return loggers


def finish_loggers(loggers: list[Any], failed: bool = False) -> list[str]:
    """End this training run's W&B run and return one line per offline W&B run: where it is and how
    to sync it. Lightning leaves the W&B run open, so without this the next run in the same process
    (a sweep trial, a notebook) would log into it. `failed`: the run raised; W&B marks it failed
    (exit code 1) instead of finished."""
    lines = []
    for logger in loggers:
        run = getattr(logger, "_experiment", None)  # only a W&B run that was started
        if run is None or not hasattr(run, "finish"):
            continue
        offline, disabled = (
            bool(getattr(run, "offline", False)),
            bool(getattr(run, "disabled", False)),
        )
        where = str(run.settings.sync_dir) if offline and not disabled else None
        run.finish(exit_code=1 if failed else None)
        if where is not None:
            lines.append(f"W&B offline run: {where}; sync it with: wandb sync {where}")
    return lines
