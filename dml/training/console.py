"""Narrow filters for third-party console messages that are noise in every dml run.

Each filter names one known message; nothing is silenced by category or by package, so a warning
that matters still reaches the console. Installed once per process by `quiet_known_noise()`.
"""

from __future__ import annotations

import logging
import warnings


class DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


# Lightning's adverts: for its cloud logger (every Trainer without a LitLogger) and for its model
# registry (a Trainer with checkpointing on but no ModelCheckpoint callback, e.g. callbacks=none)
_LIGHTNING_TIPS = DropMessages(
    "💡 Tip: For seamless cloud logging", "💡 Tip: For seamless cloud uploads"
)


def quiet_known_noise() -> None:
    """Filter the messages that every run printed and no user can act on:

    - Lightning's "💡 Tip: ... litlogger" and "... litmodels" adverts (INFO on
      pytorch_lightning.utilities.rank_zero);
    - torch's FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated", which Lightning's own
      pytree code (pytorch_lightning/utilities/_pytree.py) triggers on every fit.
    """
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _LIGHTNING_TIPS not in logger.filters:
        logger.addFilter(_LIGHTNING_TIPS)
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
