"""Embed eval splits and score them: one Evaluator for validation, the baseline columns and dml-eval."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from dml.config import ConfigError
from dml.metrics import evaluate_embeddings, verification_metrics
from dml.models.embed import embed


def raw_pixels(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened, L2-normalised input images: the no-learning baseline on small images."""
    xs, ys = [], []
    for x, y in loader:
        xs.append(F.normalize(x.flatten(1).float(), dim=1))
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)


def metric_options(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dataset config's `metrics` block as plain keyword arguments of `evaluate_embeddings`.

    The block passes through as one mapping (`ks`, `nmi`, ...): a new option of
    `evaluate_embeddings` is usable from every dataset config without touching the training code.
    An unknown key is an error that names the known ones.
    """
    if metrics is None:
        return {}
    if isinstance(metrics, DictConfig):
        metrics = OmegaConf.to_container(metrics, resolve=True)
    known = [
        name
        for name, p in inspect.signature(evaluate_embeddings).parameters.items()
        if p.default is not inspect.Parameter.empty and name not in ("gallery", "gallery_labels")
    ]
    unknown = sorted(set(metrics) - set(known))
    if unknown:
        raise ConfigError(
            f"dataset.metrics.{unknown[0]} is not a metric option; the options are {', '.join(known)}"
        )
    return dict(metrics)


def score(
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    pairs: tuple[Any, Any, Any] | None = None,
    levels: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> dict[str, float]:
    """Metrics of `{"test": (emb, labels)}` or `{"query": .., "gallery": ..}`.

    options: keyword arguments of `dml.metrics.evaluate_embeddings` (`ks`, `nmi`, ...), e.g. a
    dataset config's `metrics` block. pairs: (index pairs [N, 2], same [N], fold [N]) into the
    test split for verification (LFW protocol); their metrics come as `verification/accuracy`,
    ... beside retrieval's. A `val` split (a class-disjoint training fold's held-out classes,
    dml.data.folds) is scored by self-retrieval too, its metrics prefixed `val/`.
    levels: {split: {level: labels in the split's order}} (`dataset.eval_levels`, dml.data.levels):
    the same embeddings scored with each level's labels too, metrics prefixed `<level>/`.
    """
    levels = levels or {}
    if "query" in splits:
        (q, ql), (g, gl) = splits["query"], splits["gallery"]
        out: dict[str, Any] = evaluate_embeddings(q, ql, g, gl, **options)
        for level in levels.get("query", {}):
            ql_, gl_ = (
                _level(levels, "query", level, len(ql)),
                _level(levels, "gallery", level, len(gl)),
            )
            scored = evaluate_embeddings(q, ql_, g, gl_, **options)
            out.update({f"{level}/{k}": v for k, v in scored.items()})
    else:
        e, lab = splits["test"]
        out = evaluate_embeddings(e, lab, **options)
        if pairs is not None:
            out.update(verification_scores(e, *pairs))
        for level in levels.get("test", {}):
            scored = evaluate_embeddings(e, _level(levels, "test", level, len(lab)), **options)
            out.update({f"{level}/{k}": v for k, v in scored.items()})
    if "val" in splits:
        e, lab = splits["val"]
        out.update({f"val/{k}": v for k, v in evaluate_embeddings(e, lab, **options).items()})
    return {k: float(v) for k, v in out.items()}


def _level(levels: Mapping[str, Mapping[str, Any]], split: str, level: str, n: int) -> torch.Tensor:
    """The `level` labels of `split` as a tensor, checked to be one per embedded item."""
    labels = torch.as_tensor(levels[split][level], dtype=torch.long)
    if len(labels) != n:
        raise ValueError(
            f"label level {level!r} of the {split} split has {len(labels)} labels for {n} embeddings"
        )
    return labels


@dataclass(frozen=True)
class EvalRecord:
    """What one evaluation produced: each split's embeddings and labels (CPU) and the metrics."""

    epoch: int
    step: int
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    metrics: Mapping[str, float]


class Evaluator:
    """Scores a run's eval splits as its dataset config asks; built once, used by the training
    module (each evaluation), the baseline columns (raw pixels, the backbone's own features, the
    untrained network) and dml-eval.

    metrics: the `dataset.metrics` mapping (keyword arguments of evaluate_embeddings);
    pairs: the test split's verification pairs (LFW), if any; split_names: the eval splits in
    the order of the datamodule's eval loaders; levels: {split: {level: labels}} to score the
    same embeddings at more label levels (`dataset.eval_levels`, metrics `<level>/<name>`).
    """

    def __init__(
        self,
        metrics: Mapping[str, Any] | None = None,
        pairs: tuple[Any, Any, Any] | None = None,
        split_names: Iterable[str] = ("test",),
        levels: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.options = metric_options(metrics)
        self.pairs = pairs
        self.split_names = list(split_names)
        self.levels = levels

    @classmethod
    def from_config(cls, cfg: Any, datamodule: Any) -> Evaluator:
        """The run config's `dataset.metrics` over a set-up datamodule's eval splits."""
        return cls(
            cfg.dataset.get("metrics"),
            pairs=datamodule.verification_pairs(),
            split_names=list(datamodule.eval_sets),
            levels=datamodule.label_levels(),
        )

    @property
    def ks(self) -> tuple[int, ...]:
        """The K of the Recall@K metrics (the recall curve marks them)."""
        return tuple(int(k) for k in self.options.get("ks", _DEFAULT_KS))

    def score(self, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Metrics of embedded splits ({name: (embeddings, labels)})."""
        return score(splits, pairs=self.pairs, levels=self.levels, **self.options)

    def score_model(
        self,
        model: nn.Module,
        loaders: Mapping[str, DataLoader],
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """Embed every loader with `model` and score the splits."""
        return self.score({name: embed(model, dl, device=device) for name, dl in loaders.items()})

    def score_backbone(
        self,
        model: nn.Module,
        loaders: Mapping[str, DataLoader],
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """The backbone's own pooled features (L2-normalised), without the head: for a pretrained
        backbone, the network before fine-tuning, the number training must beat."""
        return self.score_model(PooledFeatures(model.backbone), loaders, device=device)

    def score_raw_pixels(self, loaders: Mapping[str, DataLoader]) -> dict[str, float]:
        """The no-learning baseline: flattened, L2-normalised input images scored as embeddings."""
        return self.score({name: raw_pixels(dl) for name, dl in loaders.items()})


class PooledFeatures(nn.Module):
    """A backbone's pooled features [B, F], L2-normalised: the embedding the backbone alone gives."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(x).flatten(1).float(), dim=1)


_DEFAULT_KS = inspect.signature(evaluate_embeddings).parameters["ks"].default


def verification_scores(
    embeddings: torch.Tensor, pairs: Any, same: Any, fold: Any | None = None
) -> dict[str, float]:
    """LFW-style verification of index `pairs` into `embeddings`, keys prefixed `verification/`."""
    idx = torch.as_tensor(pairs, dtype=torch.long)
    folds = int(len(set(map(int, fold)))) if fold is not None else 10
    out = verification_metrics(embeddings[idx[:, 0]], embeddings[idx[:, 1]], same, folds=folds)
    return {f"verification/{k}": float(v) for k, v in out.items()}


def lfw_verification(
    model: nn.Module,
    root: str,
    transform: Any,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """LFW's 6,000 pairs scored with `model`: the extra verification any run can add (eval.lfw_root)."""
    from dml.data import LFW

    dataset = LFW(root=root, split="pairs", transform=transform)
    emb, _ = embed(model, DataLoader(dataset, batch_size=batch_size), device=device, desc="LFW")
    scores = verification_scores(emb, dataset.pairs, dataset.same, dataset.fold)
    return {"lfw/" + k.split("/", 1)[1]: v for k, v in scores.items()}


def format_table(columns: Mapping[str, Mapping[str, float]], first: str | None = None) -> str:
    """Markdown table: one row per metric, one column per evaluated model (e.g. raw, untrained, trained)."""
    names = list(dict.fromkeys(k for col in columns.values() for k in col))
    if first in names:
        names.remove(first)
        names.insert(0, first)
    header = "| metric | " + " | ".join(columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    rows = []
    for name in names:
        cells = []
        for col in columns.values():
            v = col.get(name)
            cells.append(
                ""
                if v is None
                else (f"{v:.4f}" if isinstance(v, float) and not v.is_integer() else f"{v:g}")
            )
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])
