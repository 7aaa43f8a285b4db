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
    cb.on_fit_start(trainer, module)
    _epoch(cb, trainer, module, clock, train_s=10, eval_s=5)
    _epoch(cb, trainer, module, clock, train_s=12, eval_s=5)
    assert module.logged == [(KEY, 10.0), (KEY, 22.0)]
    state = cb.state_dict()
    assert state == {"train_seconds": 22.0}

    resumed, module2 = TrainClock(), _Module()  # a new process, from the checkpoint
    resumed.load_state_dict(state)
    resumed.on_fit_start(trainer, module2)
    _epoch(resumed, trainer, module2, clock, train_s=8, eval_s=5)
    assert module2.logged == [(KEY, 30.0)]


def test_state_saved_during_an_evaluation_leaves_it_out(clock):
    trainer, module = SimpleNamespace(sanity_checking=False), _Module()
    cb = TrainClock()
    cb.on_fit_start(trainer, module)
    clock["t"] += 7
    cb.on_validation_start(trainer, module)
    clock["t"] += 3
    assert cb.state_dict() == {"train_seconds": 7.0}
