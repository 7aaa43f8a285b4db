"""dml-train: Hydra entry point. `dml-train --help` lists the config groups and their choices."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from dml.config import ConfigError, config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    from dml.data.decode import BadImageError
    from dml.training.guards import NonFiniteError
    from dml.training.run import train

    try:
        result = train(cfg)
    except (ConfigError, BadImageError, NonFiniteError) as err:  # the message says what to fix
        print(f"dml-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    return result["metrics"].get(str(cfg.monitor))  # the value an Optuna sweep maximises


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
