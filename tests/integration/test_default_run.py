"""The default run (what `make train` runs): the papers' protocol on the emoji. Fine-tuning the
ImageNet-pretrained EfficientNet-Lite0 on the training emoji must beat, on the unseen emoji, the
pretrained backbone's own features by 0.05 MAP@R or more, and raw pixels (README "The default run").
Measured with seeds 0, 1, 2: 0.243, 0.243, 0.257 against 0.136 (backbone) and 0.096 (raw pixels)."""

from __future__ import annotations

import pytest

from dml.training.run import train


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fine_tuning_beats_the_pretrained_backbone_and_raw_pixels(compose_cfg, seed):
    cfg = compose_cfg(
        "loss=margin",
        "sampler=distance_weighted",
        f"seed={seed}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "callbacks.eval_plots=null",
    )
    result = train(cfg)
    trained, baselines = result["metrics"]["map@r"], result["baselines"]
    assert trained >= baselines["backbone"]["map@r"] + 0.05, (trained, baselines["backbone"])
    assert trained > baselines["raw pixels"]["map@r"], (trained, baselines["raw pixels"])
