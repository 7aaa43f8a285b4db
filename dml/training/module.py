"""The LightningModule: embed a batch, sample tuples on one shared distance matrix, apply the loss."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from dml.distances import pairwise_distance
from dml.losses.memory import CrossBatchMemory, memory_loss
from dml.training.checkpointing import restore_rng_states, training_state
from dml.training.distributed import (
    all_gather_uneven,
    all_gather_with_grad,
    broadcast_object,
    share_sampler_seed,
    world,
)
from dml.training.evaluation import score
from dml.training.guards import NonFiniteGuard


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
    Under DDP the sampler and loss see the global batch (`gather_batch`). `memory_size` > 0 adds
    a cross-batch memory (XBM) of past embeddings as extra candidates, started after
    `memory_start` steps.
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
        nonfinite: str = "skip",
        nonfinite_patience: int = 20,
        memory_size: int = 0,
        memory_start: int = 0,
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
        # (index pairs, same, fold) into the test split when it is scored for verification (LFW)
        self.verification_pairs: tuple[Any, Any, Any] | None = None
        # {split: {level: labels}} when the eval split is also scored at other label levels (dml.data.levels)
        self.label_levels: dict[str, Any] | None = None
        # kept for the diagnostics callbacks (dml.training.diagnostics): the last eval's embeddings
        # and labels per split, and the last training batch's (detached distances, labels)
        self.last_eval_splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.last_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        # a step with NaN/inf embeddings, loss or gradients is skipped and counted, or stops the run
        self.nonfinite = NonFiniteGuard(nonfinite, nonfinite_patience)
        self._rng_to_restore: dict[str, Any] | None = None
        self.memory = CrossBatchMemory(memory_size, start=memory_start) if int(memory_size) > 0 else None
        self._memory_stats: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ---- training -------------------------------------------------------------------------
    def gather_batch(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch the sampler sees: this process's, or under DDP every rank's in rank order, with
        gradients flowing back to their owners (see dml.training.distributed for the factor)."""
        return all_gather_with_grad(embeddings), all_gather_uneven(labels)

    def on_fit_start(self) -> None:
        share_sampler_seed(self.sampler)

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One distance matrix, shared by sampler (detached) and loss (with gradients).

        Runs in float32 with autocast off, so bf16/fp16 training keeps exact sampling and loss.
        """
        with torch.autocast(embeddings.device.type, enabled=False):
            return self._compute_loss(embeddings.float(), labels)

    def _compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.memory is not None:
            loss, self._memory_stats = memory_loss(self.loss, self.sampler, embeddings, labels, self.memory)
            self.memory.enqueue(embeddings, labels)
            return loss
        distances = pairwise_distance(embeddings) if (self._loss_takes_distances or self._sampler_takes_distances) else None
        self.last_batch = None if distances is None else (distances.detach(), labels.detach())
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
        if self._nonfinite("embeddings", batch_idx, embeddings):
            return self.nonfinite.zero_loss(self.parameters())
        loss = self.compute_loss(embeddings, labels)
        if self._nonfinite("loss", batch_idx, loss):
            return self.nonfinite.zero_loss(self.parameters())
        self.log("train/nonfinite_steps", float(self.nonfinite.skipped), batch_size=len(y))
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(y))
        stats = (lambda: self._memory_stats) if self.memory is not None else getattr(self.loss, "log_stats", None)
        if callable(stats):
            for k, v in stats().items():
                # detached tensors: no host sync per step on a GPU
                self.log(f"train/{k}", v.float() if torch.is_tensor(v) else float(v), batch_size=len(y))
        return loss

    def _nonfinite(self, what: str, batch_idx: int, value: torch.Tensor) -> bool:
        """True when `value` holds NaN/inf on any rank (the step is then skipped); raises with nonfinite=stop."""
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        strategy = self._trainer.strategy if self._trainer is not None else None
        any_rank = (lambda bad: strategy.reduce_boolean_decision(bad, all=False)) if strategy is not None else None
        return self.nonfinite.check(what, where, value, any_rank=any_rank)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # a skipped step, or one whose gradients are NaN/inf, leaves every weight as it is; with a
        # fp16 GradScaler the scaler already skips inf gradients (and lowers its scale), so it decides
        scaler = getattr(self._trainer.precision_plugin, "scaler", None) if self._trainer is not None else None
        where = f"global step {self.global_step} (epoch {self.current_epoch})"
        self.nonfinite.before_optimizer_step(self.parameters(), where, check_grads=scaler is None)

    # ---- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states, the tuple sampler's generators and the skipped-step count (dml.training.checkpointing)
        checkpoint["dml"] = training_state(self.sampler, self.nonfinite.skipped)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("dml") or {}
        if state.get("sampler") is not None and callable(getattr(self.sampler, "load_state_dict", None)):
            self.sampler.load_state_dict(state["sampler"])
        self.nonfinite.skipped = int(state.get("nonfinite_steps", 0))
        self._rng_to_restore = state.get("rng")

    def on_train_start(self) -> None:
        # the RNG states go back last, right before the first resumed step
        if self._rng_to_restore is not None:
            restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    def on_train_epoch_start(self) -> None:
        # each epoch draws its own batch plan, also when limit_train_batches ends an epoch early
        batch_sampler = getattr(getattr(self._trainer, "datamodule", None), "batch_sampler", None)
        if callable(getattr(batch_sampler, "set_epoch", None)):
            batch_sampler.set_epoch(self.current_epoch)

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
        """Embeddings and labels of each eval split collected this epoch, on CPU.

        Under DDP each rank embedded its contiguous shard (DMLDataModule's EvalShardSampler); the
        shards are gathered in rank order, which restores the dataset order with every item once.
        """
        out = {}
        for idx, name in enumerate(self.eval_split_names):
            parts = self._eval_outputs.get(idx, [])
            if parts:
                emb, labels = torch.cat([e for e, _ in parts]), torch.cat([y for _, y in parts]).to(self.device)
            else:  # nothing embedded (a rank whose shard is empty)
                emb = torch.empty(0, int(getattr(self.model, "embedding_dim", 0)), device=self.device)
                labels = torch.empty(0, dtype=torch.long, device=self.device)
            if world()[0] > 1:
                emb, labels = all_gather_uneven(emb), all_gather_uneven(labels)
                self._check_no_duplicates(idx, len(labels))
            if len(labels):
                out[name] = (emb.cpu(), labels.cpu())
        return out

    def _check_no_duplicates(self, idx: int, total: int) -> None:
        """A gathered eval split larger than its dataset means ranks embedded overlapping shares."""
        loaders = self.trainer.val_dataloaders if self._trainer is not None else None
        loader = loaders[idx] if isinstance(loaders, (list, tuple)) else loaders
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__") and total > len(dataset):
            raise RuntimeError(
                f"eval split {self.eval_split_names[idx]!r}: {total} embeddings gathered from {world()[0]} ranks "
                f"for {len(dataset)} items; under DDP each rank's eval loader must hold a disjoint share "
                "(DMLDataModule shards with EvalShardSampler)"
            )

    def on_validation_epoch_end(self) -> None:
        splits = self.eval_embeddings()
        self._eval_outputs = {}
        if not splits:
            return
        self.last_eval_splits = splits
        # scored once, on rank 0, and broadcast: every rank logs the same numbers (the loggers
        # write on rank 0 only), so checkpoint callbacks decide alike on every rank; the mean
        # that sync_dist takes over identical values leaves them unchanged
        metrics = broadcast_object(score(splits, ks=self.ks, nmi=self.nmi, pairs=self.verification_pairs, levels=self.label_levels) if world()[1] == 0 else None)
        self.last_metrics = metrics
        for k, v in metrics.items():
            self.log(f"eval/{k}", v, sync_dist=world()[0] > 1)
