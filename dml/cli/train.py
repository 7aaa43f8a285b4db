"""dml-train: Hydra entry point. `dml-train --help` lists the config groups and their choices.

torch is imported only after the config passed its checks (dml.config.validate), so `--help` and a
mistyped value answer in well under a second."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from dml.config import ConfigError, config_dir, validate, validate_sweep_objective
from dml.io import remove_unstarted_run_dir


def _fail(err: Exception) -> None:
    """The one line a user error ends in, and exit code 2."""
    print(f"dml-train: error: {err}", file=sys.stderr)
    sys.exit(2)


def _sweeper() -> str | None:
    """The sweeper's `_target_` when this run is a trial of a multirun, else None."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return str(hydra_cfg.sweeper.get("_target_") or "")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    try:
        validate(cfg)  # the config alone decides: answer before torch is imported
        validate_sweep_objective(str(cfg.monitor), _sweeper())
    except ConfigError as err:
        remove_unstarted_run_dir(Path(str(cfg.paths.output_dir)))
        _fail(err)

    from dml.data.decode import BadImageError
    from dml.training.guards import NonFiniteError
    from dml.training.run import train

    try:
        result = train(cfg)
    except (ConfigError, BadImageError, NonFiniteError) as err:  # the message says what to fix
        _fail(err)
    # the value an Optuna sweep maximises: a validation metric (validate_sweep_objective)
    return result["metrics"].get(str(cfg.monitor))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
