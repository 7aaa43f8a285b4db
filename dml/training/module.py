"""The LightningModule: Lightning's hooks around a training objective and an evaluator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from dml.data.datamodule import DMLDataModule
from dml.training.checkpointing import restore_rng_states, training_state
from dml.training.distributed import (
    all_gather_uneven,
    all_gather_with_grad,
    broadcast_object,
    share_sampler_seed,
)
from dml.training.evaluation import EvalRecord, Evaluator
from dml.training.guards import NonFiniteGuard
from dml.training.objective import TrainingObjective, loss_parameters
from dml.world import world


class DMLModule(pl.LightningModule):
    """Trains `model` with `objective` (sampler + loss, dml.training.objective); validation embeds
    the eval split(s) and scores them with `evaluator` (dml.training.evaluation).

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) taking the parameter groups
    and the optimizer. The loss's own parameters (the margin loss's beta, proxies, class weights) get
    their own group named "loss" with `loss_lr`, `loss_weight_decay` and any other per-group setting
    of the optimizer in `loss_options` (e.g. {"momentum": 0.0}); the backbone's learning rate is the optimizer's times `backbone_lr_mult`.
    Under DDP the objective sees the global batch (`gather_batch`). The objective's loss and
    cross-batch memory are submodules (`loss`, `memory`): trained, moved and saved with the model.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: TrainingObjective,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_lr: float = 0.01,
        backbone_lr_mult: float = 1.0,
        loss_weight_decay: float = 0.0,
        loss_options: Mapping[str, Any] | None = None,
        evaluator: Evaluator | None = None,
        config: Mapping[str, Any] | None = None,
        nonfinite: str = "skip",
        nonfinite_patience: int = 20,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.loss = objective.loss
        self.memory = objective.memory
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_lr = float(loss_lr)
        self.loss_weight_decay = float(loss_weight_decay)
        self.loss_options = dict(loss_options or {})
        self.backbone_lr_mult = float(backbone_lr_mult)
        # scores each evaluation (dataset.metrics over the datamodule's eval splits)
        self.evaluator = evaluator if evaluator is not None else Evaluator()
        # the resolved run config travels in every checkpoint, so dml-eval can rebuild the run
        self.save_hyperparameters({"config": dict(config or {})})
        self._eval_outputs: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        # the last evaluation (embeddings, metrics, the step whose weights they scored): what the run
        # reports and the eval plots draw
        self.last_eval: EvalRecord | None = None
        # a step with NaN/inf embeddings, loss or gradients is skipped and counted, or stops the run
        self.nonfinite = NonFiniteGuard(nonfinite, nonfinite_patience)
        self._rng_to_restore: dict[str, Any] | None = None

    @property
    def sampler(self) -> Any:
        """The objective's tuple sampler (None: the loss uses every valid tuple)."""
        return self.objective.sampler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ---- training -------------------------------------------------------------------------
    def gather_batch(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch the sampler sees: this process's, or under DDP every rank's in rank order, with
        gradients flowing back to their owners (see dml.training.distributed for the factor)."""
        return all_gather_with_grad(embeddings), all_gather_uneven(labels)

    def on_fit_start(self) -> None:
        share_sampler_seed(self.sampler)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        embeddings, labels = self.gather_batch(self.model(x), y)
        if self._nonfinite("embeddings", batch_idx, embeddings):
            return self.nonfinite.zero_loss(self.parameters())
        loss = self.objective(embeddings, labels)
        if self._nonfinite("loss", batch_idx, loss):
            return self.nonfinite.zero_loss(self.parameters())
        self.log("train/nonfinite_steps", float(self.nonfinite.skipped), batch_size=len(y))
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(y))
        for k, v in self.objective.last_step.stats.items():
            # detached tensors: no host sync per step on a GPU
            self.log(f"train/{k}", v.float() if torch.is_tensor(v) else float(v), batch_size=len(y))
        return loss

    def _nonfinite(self, what: str, batch_idx: int, value: torch.Tensor) -> bool:
        """True when `value` holds NaN/inf on any rank (the step is then skipped); raises with nonfinite=stop."""
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        strategy = self._trainer.strategy if self._trainer is not None else None
        any_rank = (
            (lambda bad: strategy.reduce_boolean_decision(bad, all=False))
            if strategy is not None
            else None
        )
        return self.nonfinite.check(what, where, value, any_rank=any_rank)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # a skipped step, or one whose gradients are NaN/inf, leaves every weight as it is; with a
        # fp16 GradScaler the scaler already skips inf gradients (and lowers its scale), so it decides
        scaler = (
            getattr(self._trainer.precision_plugin, "scaler", None)
            if self._trainer is not None
            else None
        )
        where = f"global step {self.global_step} (epoch {self.current_epoch})"
        self.nonfinite.before_optimizer_step(self.parameters(), where, check_grads=scaler is None)

    # ---- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states, the tuple sampler's generators and the skipped-step count (dml.training.checkpointing)
        checkpoint["dml"] = training_state(self.sampler, self.nonfinite.skipped)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("dml") or {}
        if state.get("sampler") is not None and callable(
            getattr(self.sampler, "load_state_dict", None)
        ):
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
        if isinstance(self.trainer.datamodule, DMLDataModule):
            self.trainer.datamodule.set_epoch(self.current_epoch)

    # ---- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        lr = (
            self.optimizer_factory.keywords.get("lr")
            if hasattr(self.optimizer_factory, "keywords")
            else None
        )
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
        loss_params = loss_parameters(self.loss)
        if loss_params:
            groups.append(
                {
                    **self.loss_options,
                    "params": loss_params,
                    "lr": self.loss_lr,
                    "weight_decay": self.loss_weight_decay,
                    "name": "loss",
                }
            )
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }

    # ---- evaluation -----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_outputs = {}

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        x, y = batch
        self._eval_outputs.setdefault(dataloader_idx, []).append(
            (self.model(x).float().detach(), y.detach())
        )

    def eval_embeddings(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Embeddings and labels of each eval split collected this epoch, on CPU.

        Under DDP each rank embedded its contiguous shard (DMLDataModule's EvalShardSampler); the
        shards are gathered in rank order, which restores the dataset order with every item once.
        """
        out = {}
        for idx, name in enumerate(self.evaluator.split_names):
            parts = self._eval_outputs.get(idx, [])
            if parts:
                emb, labels = (
                    torch.cat([e for e, _ in parts]),
                    torch.cat([y for _, y in parts]).to(self.device),
                )
            else:  # nothing embedded (a rank whose shard is empty)
                emb = torch.empty(
                    0, int(getattr(self.model, "embedding_dim", 0)), device=self.device
                )
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
                f"eval split {self.evaluator.split_names[idx]!r}: {total} embeddings gathered from {world()[0]} ranks "
                f"for {len(dataset)} items; under DDP each rank's eval loader must hold a disjoint share "
                "(DMLDataModule shards with EvalShardSampler)"
            )

    def on_validation_epoch_end(self) -> None:
        splits = self.eval_embeddings()
        self._eval_outputs = {}
        if not splits:
            return
        # scored once, on rank 0, and broadcast: every rank logs the same numbers (the loggers
        # write on rank 0 only), so checkpoint callbacks decide alike on every rank; the mean
        # that sync_dist takes over identical values leaves them unchanged
        metrics = broadcast_object(self.evaluator.score(splits) if world()[1] == 0 else None)
        self.last_eval = EvalRecord(int(self.current_epoch), int(self.global_step), splits, metrics)
        for k, v in metrics.items():
            self.log(f"eval/{k}", v, sync_dist=world()[0] > 1)
