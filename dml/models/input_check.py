"""Whether a model takes the run's images: one forward pass before anything trains.

Backbones have a smallest input they can take (BN-Inception's pooling needs 32 px or more, the small
CNN 4 px), and dataset.image_size or a transform's crop can go below it. Without this check the run
would fail with a tensor-size RuntimeError from deep inside the network, after the baselines were
scored and the run folder written; with it, dml-train stops before anything starts, with the
option to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def check_input_size(model: nn.Module, shape: Sequence[int], backbone: str) -> None:
    """Embed two blank images of `shape` [C, H, W] (eval mode, no gradient); a ValueError naming
    dataset.image_size when the model cannot take them."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape, device=device))
    except (RuntimeError, ValueError) as err:
        side = "x".join(str(s) for s in shape[1:])
        raise ValueError(
            f"the backbone {backbone} cannot take the {side} px images this run feeds it "
            f"({str(err).splitlines()[0]}); choose a larger dataset.image_size (or transform crop), "
            "or another backbone"
        ) from err
    finally:
        model.train(was_training)
