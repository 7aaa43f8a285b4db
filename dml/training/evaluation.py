"""Embed eval splits and score them: one path for validation, the final table and dml-eval."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dml.metrics import evaluate_embeddings, verification_metrics


@torch.no_grad()
def embed(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
    desc: str = "embedding",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings [N, D] (float32, CPU) and labels [N] of every item of `loader`, in order.

    progress: a progress bar with images per second (None: only when stderr is a terminal).
    """
    was_training = model.training
    model.eval()
    embs, labels = [], []
    total = len(loader.dataset) if hasattr(loader.dataset, "__len__") else None
    with tqdm(total=total, desc=desc, unit="img", leave=False, disable=None if progress is None else not progress) as bar:
        for x, y in loader:
            embs.append(model(x.to(device)).float().cpu())
            labels.append(torch.as_tensor(y))
            bar.update(len(labels[-1]))
    model.train(was_training)
    return torch.cat(embs), torch.cat(labels)


def raw_pixels(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened, L2-normalised input images: the no-learning baseline on small images."""
    xs, ys = [], []
    for x, y in loader:
        xs.append(F.normalize(x.flatten(1).float(), dim=1))
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)


def metric_options(cfg: Any) -> tuple[tuple[int, ...], bool]:
    """(Recall@K's ks, whether to compute NMI/F1) that a run config's `dataset.metrics` asks for."""
    metrics = cfg.dataset.get("metrics", {}) or {}
    return tuple(int(k) for k in metrics.get("ks", (1, 2, 4, 8))), bool(metrics.get("nmi", True))


def score(
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    ks: Iterable[int] = (1, 2, 4, 8),
    nmi: bool = True,
    pairs: tuple[Any, Any, Any] | None = None,
    levels: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Metrics of `{"test": (emb, labels)}` or `{"query": .., "gallery": ..}`.

    pairs: (index pairs [N, 2], same [N], fold [N]) into the test split for verification
    (LFW protocol); their metrics come as `verification/accuracy`, ... beside retrieval's.
    A `val` split (a class-disjoint training fold's held-out classes, dml.data.folds) is scored
    by self-retrieval too, its metrics prefixed `val/`.
    levels: {split: {level: labels in the split's order}} (dml.data.levels): the same embeddings
    scored with each level's labels too, metrics prefixed `<level>/`.
    """
    if "query" in splits:
        (q, ql), (g, gl) = splits["query"], splits["gallery"]
        out: dict[str, Any] = evaluate_embeddings(q, ql, g, gl, ks=tuple(ks), nmi=nmi)
        for level in (levels or {}).get("query", {}):
            ql_, gl_ = _level(levels, "query", level, len(ql)), _level(levels, "gallery", level, len(gl))
            scored = evaluate_embeddings(q, ql_, g, gl_, ks=tuple(ks), nmi=nmi)
            out.update({f"{level}/{k}": v for k, v in scored.items()})
    else:
        e, lab = splits["test"]
        out = evaluate_embeddings(e, lab, ks=tuple(ks), nmi=nmi)
        if pairs is not None:
            out.update(verification_scores(e, *pairs))
        for level in (levels or {}).get("test", {}):
            scored = evaluate_embeddings(e, _level(levels, "test", level, len(lab)), ks=tuple(ks), nmi=nmi)
            out.update({f"{level}/{k}": v for k, v in scored.items()})
    if "val" in splits:
        e, lab = splits["val"]
        out.update({f"val/{k}": v for k, v in evaluate_embeddings(e, lab, ks=tuple(ks), nmi=nmi).items()})
    return {k: float(v) for k, v in out.items()}


def _level(levels: Mapping[str, Mapping[str, Any]], split: str, level: str, n: int) -> torch.Tensor:
    """The `level` labels of `split` as a tensor, checked to be one per embedded item."""
    labels = torch.as_tensor(levels[split][level], dtype=torch.long)
    if len(labels) != n:
        raise ValueError(f"label level {level!r} of the {split} split has {len(labels)} labels for {n} embeddings")
    return labels


def verification_scores(embeddings: torch.Tensor, pairs: Any, same: Any, fold: Any | None = None) -> dict[str, float]:
    """LFW-style verification of index `pairs` into `embeddings`, keys prefixed `verification/`."""
    idx = torch.as_tensor(pairs, dtype=torch.long)
    folds = int(len(set(map(int, fold)))) if fold is not None else 10
    out = verification_metrics(embeddings[idx[:, 0]], embeddings[idx[:, 1]], same, folds=folds)
    return {f"verification/{k}": float(v) for k, v in out.items()}


def lfw_verification(
    model: nn.Module, root: str, transform: Any, batch_size: int = 256, device: torch.device | str = "cpu"
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
            cells.append("" if v is None else (f"{v:.4f}" if isinstance(v, float) and not v.is_integer() else f"{v:g}"))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])
