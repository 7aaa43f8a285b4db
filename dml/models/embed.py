"""The one embedding loop: a model's outputs for every item of a loader, in order (eval and feature caches)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


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
    with tqdm(
        total=total,
        desc=desc,
        unit="img",
        leave=False,
        disable=None if progress is None else not progress,
    ) as bar:
        for x, y in loader:
            embs.append(model(x.to(device)).float().cpu())
            labels.append(torch.as_tensor(y))
            bar.update(len(labels[-1]))
    model.train(was_training)
    return torch.cat(embs), torch.cat(labels)
