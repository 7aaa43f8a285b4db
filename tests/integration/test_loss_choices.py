"""Every loss of the Reality Check (+ ProxyAnchor) as `loss=<name>`: trains two steps on digits, its
own parameters sit in the optimizer group "loss" with optim.loss_lr / optim.loss_weight_decay, and
a run resumed after step 1 ends bit-identical to the uninterrupted one. A pytorch-metric-learning
loss named only by `loss._target_` trains too.

Each case is two tiny in-process runs (debug=tiny); a few run by default, the rest with -m slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dml.config import ConfigError
from dml.training.checkpointing import read_checkpoint
from dml.training.run import build_run, train
from tests.composing import compose_train

# loss -> (class, whether it has learnable parameters of its own)
LOSSES = {
    "contrastive": ("dml.losses.ContrastiveLoss", False),
    "triplet": ("dml.losses.TripletLoss", False),
    "ntxent": ("pytorch_metric_learning.losses.NTXentLoss", False),
    "proxy_nca": ("pytorch_metric_learning.losses.ProxyNCALoss", True),
    "margin": ("dml.losses.MarginLoss", True),
    "margin_per_class": ("dml.losses.MarginLoss", True),
    "normalized_softmax": ("pytorch_metric_learning.losses.NormalizedSoftmaxLoss", True),
    "cosface": ("pytorch_metric_learning.losses.CosFaceLoss", True),
    "arcface": ("pytorch_metric_learning.losses.ArcFaceLoss", True),
    "fastap": ("pytorch_metric_learning.losses.FastAPLoss", False),
    "snr_contrastive": ("pytorch_metric_learning.losses.SignalToNoiseRatioContrastiveLoss", False),
    "multi_similarity": ("dml.losses.MultiSimilarityLoss", False),
    "multi_similarity_miner": ("dml.losses.MultiSimilarityLoss", False),
    "soft_triple": ("pytorch_metric_learning.losses.SoftTripleLoss", True),
    "proxy_anchor": ("pytorch_metric_learning.losses.ProxyAnchorLoss", True),
}
# run by default: a PML proxy loss and dml's per-class beta; the others with -m slow
FAST = {"proxy_anchor", "margin_per_class"}
LOSS_LR, LOSS_WD = 0.0123, 0.0005
TINY = (
    "debug=tiny",
    "trainer.max_steps=2",
    "scheduler=none",  # the group's lr stays optim.loss_lr, so the saved one can be compared
    f"optim.loss_lr={LOSS_LR}",
    f"optim.loss_weight_decay={LOSS_WD}",
    # bit-identical resumes need deterministic inputs (tests/integration/test_resume.py)
    "dataset.transform.train.affine=null",
)


def _keep_every_step(out: Path) -> str:
    node = (
        "{_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:"
        + str(out / "steps")
        + ",filename:'s{step}',auto_insert_metric_name:false,save_top_k:-1,every_n_train_steps:1}"
    )
    return f"+callbacks.keep_all={node}"


def _loss_state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in read_checkpoint(path)["state_dict"].items() if k.startswith("loss.")}


@pytest.mark.parametrize(
    "name",
    [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in LOSSES],
)
def test_loss_trains_in_its_own_group_and_resumes_bit_identical(name, tmp_path):
    target, learnable = LOSSES[name]
    out = tmp_path / "full"
    cfg = compose_train(out, [f"loss={name}", *TINY, _keep_every_step(out)])
    assert cfg.loss._target_ == target
    run = build_run(cfg)
    loss = run.module.loss
    assert type(loss).__name__ == target.rsplit(".", 1)[1]
    own = (
        [p for p in loss.parameters() if p.requires_grad]
        if isinstance(loss, torch.nn.Module)
        else []
    )
    assert bool(own) == learnable
    if (
        learnable and name != "margin"
    ):  # class weights sized by digits' 40 train classes (x10 centres)
        assert any({40, 400} & set(p.shape) for p in own)
    if name == "multi_similarity_miner":
        assert type(run.module.sampler).__name__ == "MultiSimilaritySampler"
    groups = run.module.configure_optimizers()
    groups = (groups["optimizer"] if isinstance(groups, dict) else groups).param_groups
    loss_groups = [g for g in groups if g.get("name") == "loss"]
    if learnable:
        (group,) = loss_groups
        assert group["lr"] == LOSS_LR and group["weight_decay"] == LOSS_WD
        assert {id(p) for p in group["params"]} == {id(p) for p in own}
        assert all(g["lr"] != LOSS_LR for g in groups if g is not group)
    else:
        assert not loss_groups

    result = train(cfg)
    assert result["global_step"] == 2
    final = read_checkpoint(out / "checkpoints" / "last.ckpt")
    saved = [g for g in final["optimizer_states"][0]["param_groups"] if g.get("name") == "loss"]
    assert len(saved) == int(learnable)
    if not learnable:
        return
    assert saved[0]["lr"] == LOSS_LR and saved[0]["weight_decay"] == LOSS_WD
    start, end = (
        _loss_state(out / "steps" / "s1.ckpt"),
        _loss_state(out / "checkpoints" / "last.ckpt"),
    )
    assert start and any(not torch.equal(start[k], end[k]) for k in start)  # they trained

    again = tmp_path / "resumed"
    resumed = train(
        compose_train(again, [f"loss={name}", *TINY, f"ckpt_path={out / 'steps' / 's1.ckpt'}"])
    )
    assert resumed["global_step"] == 2
    ref = read_checkpoint(out / "checkpoints" / "last.ckpt")
    new = read_checkpoint(again / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ref["state_dict"][k], new["state_dict"][k]) for k in ref["state_dict"])
    ref_opt, new_opt = ref["optimizer_states"][0]["state"], new["optimizer_states"][0]["state"]
    assert ref_opt.keys() == new_opt.keys()
    for k in ref_opt:
        assert all(
            torch.equal(torch.as_tensor(ref_opt[k][s]), torch.as_tensor(new_opt[k][s]))
            for s in ref_opt[k]
        )


def test_a_pml_loss_named_by_target_alone_runs(tmp_path):
    # on top of the default loss=margin: its beta, learn_beta, nu are left out, its margin 0.2 is
    # the margin file's choice (ProxyAnchor keeps its own 0.1), num_classes/embedding_size come
    # from the run, the proxies train in the loss group
    cfg = compose_train(
        tmp_path, ["loss._target_=pytorch_metric_learning.losses.ProxyAnchorLoss", *TINY]
    )
    run = build_run(cfg)
    loss = run.module.loss
    assert type(loss).__name__ == "ProxyAnchorLoss"
    assert (
        loss.margin == 0.1
        and loss.num_classes == 40
        and loss.proxies.shape == (40, cfg.embedding_dim)
    )
    result = train(cfg)
    assert result["global_step"] == 2 and result["metrics"]["map@r"] > 0


def test_a_value_set_for_the_new_class_is_kept(compose_cfg):
    from dml.losses.build import build_loss

    cfg = compose_cfg(
        "loss._target_=pytorch_metric_learning.losses.ProxyAnchorLoss", "loss.margin=0.3"
    )
    loss = build_loss(cfg.loss, num_classes=7, embedding_dim=16)
    assert loss.margin == 0.3 and loss.proxies.shape == (7, 16)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=proxy_anchor", "xbm.memory_size=64"], "set xbm.memory_size=0"),
        (["loss=fastap", "xbm.memory_size=64"], "set xbm.memory_size=0"),
        (["loss=proxy_anchor", "loss.num_classes=5"], "drop loss.num_classes"),
        (["loss=arcface", "loss.embedding_size=3"], "drop loss.embedding_size"),
        (["loss._target_=nope.Nothing"], "loss._target_=nope.Nothing is not an importable class"),
    ],
)
def test_loss_config_mistakes_name_the_fix(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_run(compose_train(tmp_path, [*overrides, "debug=tiny"]))
