"""Guards of a training run: never step on NaN/inf, and keep secrets out of what a run writes.

``NonFiniteGuard`` checks a step's embeddings, loss and gradients. With ``action="skip"`` a bad
step changes no weight (its gradients are dropped before the optimizer runs) and is counted;
``action="stop"`` ends the run with an error naming the step. ``redact_secrets`` masks config
values whose key names a secret (W&B key, tokens, passwords) before a config is saved or logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger("dml")

ACTIONS = ("skip", "stop")


class NonFiniteError(RuntimeError):
    """A step produced NaN or inf and the run was told to stop (or skipped too many steps in a row)."""


class NonFiniteGuard:
    """Detects non-finite embeddings, loss or gradients; skips and counts the step, or stops.

    patience: with ``skip``, stop anyway after this many skipped steps in a row (a diverged run
    would otherwise skip forever); 0 never stops.
    """

    def __init__(self, action: str = "skip", patience: int = 20) -> None:
        if action not in ACTIONS:
            raise ValueError(f"nonfinite={action!r} is not valid: choose skip or stop")
        if int(patience) < 0:
            raise ValueError(
                f"nonfinite_patience={patience} is not valid: expected an integer >= 0 (0: never stop)"
            )
        self.action = action
        self.patience = int(patience)
        self.skipped = 0  # steps skipped in the whole run (restored on resume)
        self.in_a_row = 0
        self._skip_pending = False

    @staticmethod
    def all_finite(*tensors: Tensor) -> bool:
        """True when every element of every tensor is finite (one device sync)."""
        flags = [torch.isfinite(t).all() for t in tensors if t is not None]
        return bool(torch.stack(flags).all()) if flags else True

    def check(self, what: str, where: str, *tensors: Tensor, any_rank: Any = None) -> bool:
        """True when the step must be skipped because `tensors` hold NaN/inf; raises with ``stop``.

        any_rank: optional ``callable(bool) -> bool`` that ORs the decision over devices, so every
        rank skips the same step.
        """
        bad = not self.all_finite(*tensors)
        if any_rank is not None:
            bad = bool(any_rank(bad))
        if not bad:
            return False
        self._register(what, where)
        return True

    def _register(self, what: str, where: str) -> None:
        if self.action == "stop":
            raise NonFiniteError(
                f"non-finite {what} at {where}; the run stops (nonfinite=stop). Set nonfinite=skip to skip such "
                "steps, or lower optimizer.lr / check the input data"
            )
        self.skipped += 1
        self.in_a_row += 1
        self._skip_pending = True
        log.warning(
            "non-finite %s at %s: step skipped (%d skipped so far)", what, where, self.skipped
        )
        if self.patience and self.in_a_row > self.patience:
            raise NonFiniteError(
                f"non-finite {what} at {where}, the {self.in_a_row}th skipped step in a row: the run has diverged "
                f"(nonfinite_patience={self.patience}). Lower optimizer.lr, check the input data, or raise "
                "nonfinite_patience"
            )

    def before_optimizer_step(
        self, params: Iterable[torch.nn.Parameter], where: str, check_grads: bool = True
    ) -> None:
        """Drop every gradient (the optimizer then leaves the weights alone) for a skipped or non-finite step."""
        params = [p for p in params if p.grad is not None]
        skip, self._skip_pending = self._skip_pending, False
        if not skip and check_grads and params:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params], error_if_nonfinite=False)
            if not torch.isfinite(norm):
                self._register("gradient", where)
                self._skip_pending = False
                skip = True
        if skip:
            for p in params:
                p.grad = None
        else:
            self.in_a_row = 0

    @staticmethod
    def zero_loss(params: Iterable[torch.nn.Parameter]) -> Tensor:
        """A loss of 0 that reaches every trainable parameter (so multi-device gradient sync still runs)."""
        terms = [p.sum() for p in params if p.requires_grad]
        return torch.stack(terms).sum() * 0.0 if terms else torch.zeros(())


_SECRET = re.compile(r"(api[_-]?key|token|secret|password|passwd|credential)", re.IGNORECASE)


def redact_secrets(node: Any) -> Any:
    """A copy of a plain config (dicts/lists) with values under secret-looking keys replaced by ``"***"``."""
    if isinstance(node, Mapping):
        return {
            k: ("***" if _SECRET.search(str(k)) and v not in (None, "") else redact_secrets(v))
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return type(node)(redact_secrets(v) for v in node)
    return node
