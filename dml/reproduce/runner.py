"""Run a reproduction's grid as normal `dml-train` Hydra multiruns, each run in its own folder, resumable.

The runs of one method (one setting + method overrides) over its seeds are one multirun,
`dml-train -m <overrides> seed=0,1,... hydra.sweep.dir=<out>/runs/<key> hydra.sweep.subdir=seed_<seed>`,
so Python and torch start once per method instead of once per run. A run is finished when its
folder holds a results.json with metrics: it is never run again, and a multirun is only started
for the seeds that are not finished. Every run gets `resume=true`, so one that was killed
continues from its last checkpoint (dml-train's own resume) and one that never started begins at
step 0: an interrupted reproduction started again redoes nothing that finished. When a multirun
fails, each of its seeds that is still unfinished gets one more try in a multirun of its own, so a
run that fails cannot keep the others of its method from running. Multiruns go `jobs` at a time,
each with `threads` torch threads (on a small CPU one thread per process wastes the least).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from dml.reproduce.grids import RunSpec

DONE, PARTIAL, NEW = "done", "partial", "new"


def run_state(folder: Path) -> str:
    """`done` (results.json with metrics), `partial` (a folder without them: killed, or failed) or `new`."""
    results = folder / "results.json"
    if results.is_file():
        try:
            if json.loads(results.read_text()).get("metrics"):
                return DONE
        except (OSError, ValueError):
            pass  # a results.json that cannot be read is not a finished run
    return PARTIAL if folder.exists() else NEW


def unique(specs: Iterable[RunSpec]) -> list[RunSpec]:
    """Specs without repeats (claims share runs), in first-seen order."""
    seen: dict[Path, RunSpec] = {}
    for spec in specs:
        seen.setdefault(spec.folder, spec)
    return list(seen.values())


def train_command(specs: Sequence[RunSpec], python: str = sys.executable) -> list[str]:
    """The dml-train multirun of runs that differ only in their seed: one folder seed_<seed> each, resume=true."""
    first = specs[0]
    if any(
        (s.setting, s.method, s.root) != (first.setting, first.method, first.root) for s in specs
    ):
        raise ValueError(
            "train_command takes runs of one method (same setting, overrides and root) that differ only in seed"
        )
    seeds = ",".join(str(s.seed) for s in specs)
    return [
        python, "-m", "dml.cli.train", "-m",
        *first.setting, *first.method, f"seed={seeds}",
        f"hydra.sweep.dir={first.folder.parent}", "hydra.sweep.subdir=seed_${seed}", "resume=true",
    ]  # fmt: skip


@dataclass
class Attempt:
    """What happened to a run in this invocation."""

    spec: RunSpec
    state_before: str
    returncode: int | None = None  # None: not started (already done)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def failed(self) -> bool:
        return self.returncode is not None and run_state(self.spec.folder) != DONE


def groups(specs: Iterable[RunSpec]) -> list[list[RunSpec]]:
    """Specs grouped by everything but the seed (one multirun each), in first-seen order."""
    out: dict[Path, list[RunSpec]] = {}
    for spec in unique(specs):
        out.setdefault(spec.folder.parent, []).append(spec)
    return list(out.values())


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("WANDB_MODE", "offline")
    return env


def _launch(specs: Sequence[RunSpec], env: dict[str, str], python: str) -> tuple[int, float, Path]:
    """Run one multirun, its output appended to logs/<key>.log; (exit code, seconds, log)."""
    first = specs[0]
    log = first.root / "logs" / f"{first.key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = train_command(specs, python)
    start = time.time()
    with open(log, "a") as fh:  # a resumed run appends to the log of its earlier attempts
        fh.write(f"\n$ {' '.join(command)}\n")
        fh.flush()
        code = subprocess.run(
            command, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    return code, time.time() - start, log


def _run_group(specs: Sequence[RunSpec], env: dict[str, str], python: str) -> list[Attempt]:
    attempts = [Attempt(s, run_state(s.folder)) for s in specs]
    todo = [a for a in attempts if a.state_before != DONE]
    if not todo:
        return attempts
    code, seconds, log = _launch([a.spec for a in todo], env, python)
    for a in todo:
        a.returncode, a.seconds, a.log = code, seconds / len(todo), log
    if code != 0 and len(todo) > 1:  # one failing seed must not keep the others from running
        for a in todo:
            if run_state(a.spec.folder) != DONE:
                a.returncode, a.seconds, a.log = _launch([a.spec], env, python)
    return attempts


def execute(
    specs: Sequence[RunSpec],
    jobs: int = 2,
    threads: int = 1,
    python: str = sys.executable,
    progress: Callable[[Attempt, int, int], None] | None = None,
) -> list[Attempt]:
    """Run every spec that is not finished, one multirun per method, `jobs` multiruns at a time.

    Returns one Attempt per unique spec, in order; a failed run does not stop the others, and its
    Attempt says where its log is.
    """
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs}, threads={threads}")
    batches = groups(specs)
    total = sum(len(g) for g in batches)
    env = _env(threads)
    done: list[Attempt] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_group, g, env, python) for g in batches]
        for future in as_completed(futures):
            for attempt in future.result():
                done.append(attempt)
                if progress is not None:
                    progress(attempt, len(done), total)
    order = {spec.folder: i for i, spec in enumerate(unique(specs))}
    return sorted(done, key=lambda a: order[a.spec.folder])
