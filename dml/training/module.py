"""The LightningModule: embed a batch, sample tuples on one shared distance matrix, apply the loss."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from dml.distances import pairwise_distance
from dml.training.evaluation import score


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class DMLModule(pl.LightningModule):
    """Trains `model` with `sampler` + `loss`; validation embeds the eval split(s) and logs metrics.

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) taking the parameter groups
    and the optimizer. The loss's own parameters (the margin loss's beta) get their own group with
    `loss_lr`; the backbone's learning rate is the optimizer's times `backbone_lr_mult`.
    """

    def __init__(
        self,
        model: nn.Module,
        sampler: Callable | None,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_lr: float = 0.01,
        backbone_lr_mult: float = 1.0,
        ks: Iterable[int] = (1, 2, 4, 8),
        nmi: bool = True,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_lr = float(loss_lr)
        self.backbone_lr_mult = float(backbone_lr_mult)
        self.ks = tuple(int(k) for k in ks)
        self.nmi = bool(nmi)
        # the resolved run config travels in every checkpoint, so dml-eval can rebuild the run
        self.save_hyperparameters({"config": dict(config or {})})
        self._loss_takes_distances = _accepts(loss.forward if isinstance(loss, nn.Module) else loss, "distances")
        self._sampler_takes_distances = sampler is not None and _accepts(sampler, "distances")
        self._eval_outputs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.eval_split_names: list[str] = ["test"]
        self.last_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ---- training -------------------------------------------------------------------------
    def gather_batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch the sampler sees: this process's batch (multi-device training overrides it)."""
        return embeddings, labels

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One distance matrix, shared by sampler (detached) and loss (with gradients)."""
        distances = pairwise_distance(embeddings) if (self._loss_takes_distances or self._sampler_takes_distances) else None
        tuples = None
        if self.sampler is not None:
            if self._sampler_takes_distances:
                tuples = self.sampler(embeddings.detach(), labels, distances=distances.detach())
            else:
                tuples = self.sampler(embeddings.detach(), labels)
        if self._loss_takes_distances:
            return self.loss(embeddings, labels, tuples, distances=distances)
        # a foreign loss (e.g. pytorch-metric-learning) takes a plain tuple of index tensors
        return self.loss(embeddings, labels, None if tuples is None else tuple(tuples))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        embeddings, labels = self.gather_batch(self.model(x), y)
        loss = self.compute_loss(embeddings, labels)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(y))
        stats = getattr(self.loss, "log_stats", None)
        if callable(stats):
            for k, v in stats().items():
                self.log(f"train/{k}", float(v), batch_size=len(y))
        return loss

    # ---- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        lr = self.optimizer_factory.keywords.get("lr") if hasattr(self.optimizer_factory, "keywords") else None
        backbone = getattr(self.model, "backbone", None)
        backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        groups: list[dict[str, Any]] = []
        bb = [p for p in self.model.parameters() if id(p) in backbone_ids and p.requires_grad]
        rest = [p for p in self.model.parameters() if id(p) not in backbone_ids and p.requires_grad]
        if bb:
            group: dict[str, Any] = {"params": bb, "name": "backbone"}
            if lr is not None:
                group["lr"] = lr * self.backbone_lr_mult
            groups.append(group)
        if rest:
            groups.append({"params": rest, "name": "head"})
        loss_params = [p for p in self.loss.parameters() if p.requires_grad] if isinstance(self.loss, nn.Module) else []
        if loss_params:
            groups.append({"params": loss_params, "lr": self.loss_lr, "weight_decay": 0.0, "name": "loss"})
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}

    # ---- evaluation -----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_outputs = {}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y = batch
        self._eval_outputs.setdefault(dataloader_idx, []).append((self.model(x).float().detach(), y.detach()))

    def eval_embeddings(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Embeddings and labels of each eval split collected this epoch (multi-device overrides it)."""
        out = {}
        for idx, parts in sorted(self._eval_outputs.items()):
            out[self.eval_split_names[idx]] = (torch.cat([e for e, _ in parts]).cpu(), torch.cat([y for _, y in parts]).cpu())
        return out

    def on_validation_epoch_end(self) -> None:
        splits = self.eval_embeddings()
        self._eval_outputs = {}
        if not splits:
            return
        metrics = score(splits, ks=self.ks, nmi=self.nmi)
        self.last_metrics = metrics
        for k, v in metrics.items():
            self.log(f"eval/{k}", v, rank_zero_only=True, sync_dist=False)
