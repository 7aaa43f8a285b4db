"""TrainClock counts training time only (evaluations excluded) and continues across a resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dml.training.callbacks import train_clock as timing
from dml.training.callbacks.train_clock import KEY, TrainClock


class _Module:
    def __init__(self):
        self.logged = []

    def log(self, key, value, **kwargs):
        self.logged.append((key, value))


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 100.0}
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now["t"])
    return now


def _epoch(cb, trainer, module, clock, train_s, eval_s):
    clock["t"] += train_s
    cb.on_validation_start(trainer, module)
    clock["t"] += eval_s
    cb.on_validation_epoch_end(trainer, module)
    cb.on_validation_end(trainer, module)


def test_logs_training_seconds_without_evaluations_and_resumes(clock):
    trainer, module = SimpleNamespace(sanity_checking=False), _Module()
    cb = TrainClock()
    cb.on_train_start(trainer, module)
    _epoch(cb, trainer, module, clock, train_s=10, eval_s=5)
    _epoch(cb, trainer, module, clock, train_s=12, eval_s=5)
    assert module.logged == [(KEY, 10.0), (KEY, 22.0)]
    state = cb.state_dict()
    assert state == {"train_seconds": 22.0}

    resumed, module2 = TrainClock(), _Module()  # a new process, from the checkpoint
    resumed.load_state_dict(state)
    resumed.on_train_start(trainer, module2)
    _epoch(resumed, trainer, module2, clock, train_s=8, eval_s=5)
    assert module2.logged == [(KEY, 30.0)]


def test_state_saved_during_an_evaluation_leaves_it_out(clock):
    trainer, module = SimpleNamespace(sanity_checking=False), _Module()
    cb = TrainClock()
    cb.on_train_start(trainer, module)
    clock["t"] += 7
    cb.on_validation_start(trainer, module)
    clock["t"] += 3
    assert cb.state_dict() == {"train_seconds": 7.0}


def test_building_the_training_data_is_not_training_time(clock, tmp_path):
    """In a real fit the train loader (a frozen trunk's feature cache) is built before the clock starts."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            clock["t"] += 1.0  # one second per step
            return self.layer(batch[0]).sum()

        def validation_step(self, batch, batch_idx):
            clock["t"] += 100.0  # evaluations do not count either

        def train_dataloader(self):
            clock["t"] += 1000.0  # building the data: not training
            return DataLoader(TensorDataset(torch.zeros(3, 2)), batch_size=1)

        def val_dataloader(self):
            return DataLoader(TensorDataset(torch.zeros(1, 2)), batch_size=1)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    cb = TrainClock()
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Tiny())
    assert cb.seconds() == pytest.approx(6.0)  # 2 epochs x 3 steps
