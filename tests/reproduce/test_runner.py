"""Resuming a reproduction: finished runs are never run again, unfinished ones are (re)started with
resume=true, one multirun per method over its unfinished seeds, and a failing seed cannot block the others."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from dml.reproduce.grids import RunSpec
from dml.reproduce.runner import DONE, NEW, PARTIAL, execute, groups, run_state, train_command

# stands in for `python -m dml.cli.train -m ...`: logs its arguments, then writes each seed's results.json
# unless <sweep dir>/FAIL_<seed> exists (then it leaves that run half-written and exits 2)
FAKE = """#!{python}
import json, pathlib, sys
args = sys.argv[1:]
log = pathlib.Path({calls!r})
with open(log, "a") as fh:
    fh.write(" ".join(args) + "\\n")
opts = dict(a.split("=", 1) for a in args if "=" in a)
sweep = pathlib.Path(opts["hydra.sweep.dir"])
for seed in opts["seed"].split(","):
    run = sweep / f"seed_{{seed}}"
    run.mkdir(parents=True, exist_ok=True)
    if (sweep / f"FAIL_{{seed}}").exists():
        (run / "checkpoints").mkdir(exist_ok=True)
        sys.exit(2)
    (run / "results.json").write_text(json.dumps({{"metrics": {{"map@r": 0.5}}, "resume": opts.get("resume")}}))
"""


@pytest.fixture
def fake_python(tmp_path) -> tuple[str, Path]:
    calls = tmp_path / "calls.log"
    script = tmp_path / "fake_python"
    script.write_text(FAKE.format(python=sys.executable, calls=str(calls)))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), calls


def _calls(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


def _spec(root: Path, method: str, seed: int) -> RunSpec:
    return RunSpec(("dataset=digits",), (f"loss={method}",), seed, root)


def _finish(spec: RunSpec) -> None:
    spec.folder.mkdir(parents=True)
    (spec.folder / "results.json").write_text(json.dumps({"metrics": {"map@r": 0.4}}))


def test_run_state(tmp_path):
    spec = _spec(tmp_path, "margin", 0)
    assert run_state(spec.folder) == NEW
    (spec.folder / "checkpoints").mkdir(parents=True)
    assert run_state(spec.folder) == PARTIAL  # killed before results.json
    (spec.folder / "results.json").write_text("{not json")
    assert run_state(spec.folder) == PARTIAL
    (spec.folder / "results.json").write_text(json.dumps({"metrics": {}}))
    assert run_state(spec.folder) == PARTIAL  # a run that evaluated nothing is not finished
    (spec.folder / "results.json").write_text(json.dumps({"metrics": {"map@r": 0.5}}))
    assert run_state(spec.folder) == DONE


def test_train_command_is_one_resumable_multirun_per_method(tmp_path):
    specs = [_spec(tmp_path, "margin", s) for s in (0, 3)]
    cmd = train_command(specs, python="py")
    assert cmd[:5] == ["py", "-m", "dml.cli.train", "-m", "dataset=digits"]
    assert "loss=margin" in cmd and "seed=0,3" in cmd and cmd[-1] == "resume=true"
    assert (
        f"hydra.sweep.dir={specs[0].folder.parent}" in cmd
        and "hydra.sweep.subdir=seed_${seed}" in cmd
    )
    with pytest.raises(ValueError, match="one method"):
        train_command([_spec(tmp_path, "margin", 0), _spec(tmp_path, "triplet", 1)])


def test_finished_runs_are_skipped_and_the_rest_resumed(tmp_path, fake_python):
    python, calls = fake_python
    done = _spec(tmp_path, "margin", 0)
    _finish(done)
    killed = _spec(tmp_path, "margin", 1)
    (killed.folder / "checkpoints").mkdir(parents=True)  # a run killed mid-way
    new = _spec(tmp_path, "margin", 2)
    other = _spec(tmp_path, "triplet", 0)
    attempts = execute(
        [done, killed, new, other, new], jobs=2, python=python
    )  # `new` twice: claims share runs

    assert [a.spec for a in attempts] == [done, killed, new, other]
    assert attempts[0].returncode is None and attempts[0].state_before == DONE
    assert attempts[1].state_before == PARTIAL and attempts[2].state_before == NEW
    assert not any(a.failed for a in attempts)
    lines = sorted(_calls(calls))
    assert len(lines) == 2  # one multirun per method
    assert "seed=1,2" in lines[0] and "loss=margin" in lines[0] and lines[0].endswith("resume=true")
    assert "seed=0" in lines[1] and "loss=triplet" in lines[1]
    assert all(run_state(s.folder) == DONE for s in (killed, new, other))

    # a second invocation finds everything finished and starts nothing
    again = execute([done, killed, new, other], python=python)
    assert all(a.returncode is None for a in again) and len(_calls(calls)) == 2


def test_a_failing_seed_does_not_block_the_others(tmp_path, fake_python):
    python, calls = fake_python
    specs = [_spec(tmp_path, "margin", s) for s in range(3)]
    specs[0].folder.parent.mkdir(parents=True)
    (specs[0].folder.parent / "FAIL_0").touch()  # seed 0 fails before seeds 1 and 2 ran
    attempts = execute(specs, jobs=1, python=python)
    assert [a.failed for a in attempts] == [True, False, False]
    assert attempts[0].log is not None and attempts[0].log.is_file()
    assert run_state(specs[0].folder) == PARTIAL
    lines = _calls(calls)
    assert "seed=0,1,2" in lines[0] and {"seed=0", "seed=1", "seed=2"} <= {
        w for line in lines[1:] for w in line.split()
    }


def test_groups_split_by_everything_but_the_seed(tmp_path):
    a0, a1, b0 = _spec(tmp_path, "a", 0), _spec(tmp_path, "a", 1), _spec(tmp_path, "b", 0)
    assert groups([a0, b0, a1, a0]) == [[a0, a1], [b0]]


def test_threads_reach_the_runs(tmp_path, monkeypatch, fake_python):
    from dml.reproduce import runner

    seen = {}
    real = runner.subprocess.run

    def spy(cmd, **kwargs):
        seen.update(kwargs["env"])
        return real(cmd, **kwargs)

    monkeypatch.setattr(runner.subprocess, "run", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    execute([_spec(tmp_path, "margin", 0)], threads=3, python=fake_python[0])
    assert seen["OMP_NUM_THREADS"] == "3" and seen["MKL_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "7"  # this process's own environment is left alone


def test_bad_jobs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        execute([_spec(tmp_path, "margin", 0)], jobs=0)
