"""Mutation testing of the code that guards results and data, one module at a time.

For each module below, mutmut changes one small thing at a time in its code (a `<` into a `<=`,
a constant, a dropped call...) and runs that module's own tests against each change (only the
tests that execute the changed function). A change that no test notices ("survived") is a hole
in the tests or a change that cannot alter any result (an equivalent mutant, which the README's
"How we test" section lists with the reason). Each module runs in its own working copy under
build/mutation/<name>/ (mutmut's cache lives there: a rerun only retests what changed), so the
modules are independent and one can be rerun alone:

    python scripts/mutation.py                       # every module
    python scripts/mutation.py --module dml/metrics  # one (a path or a name from the table)
    make mutation [MODULE=dml/metrics]
    python scripts/mutation.py --module dml/metrics --survivors   # retest the survivors only

Prints killed/total, the score and the time per module, and writes each module's surviving
mutants (name, verdict and diff) to build/mutation/<name>/survivors.txt (mutmut's own output
goes to mutmut.log beside it). Exits 1 when a module scores under --min-score.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """One module under mutation and the tests that are its own."""

    name: str
    source: str  # file or folder under the repository root
    tests: tuple[str, ...]


TARGETS: tuple[Target, ...] = (
    Target("metrics", "dml/metrics", ("tests/metrics",)),
    Target("samplers", "dml/samplers", ("tests/samplers",)),
    Target("losses", "dml/losses", ("tests/losses", "tests/integration/test_loss_choices.py")),
    Target("distances", "dml/distances.py", ("tests/test_distances.py",)),
    Target("download", "dml/data/download.py", ("tests/data/test_download.py",)),
    Target("batch_sampler", "dml/data/batch_sampler.py", ("tests/data/test_batch_sampler.py",)),
    Target(
        "checkpointing",
        "dml/training/checkpointing.py",
        ("tests/training/test_checkpointing.py",),
    ),
)

# what a working copy needs besides the code and tests: configs for compose(), the packaging
# files for pytest's settings
COPIED = ("dml", "tests", "configs", "setup.py", "pyproject.toml")
# mutmut's verdicts that count as noticed: a test failed, the change made the tests hang, or it
# crashed the test process (a segfault: the tests did not pass)
KILLED = ("killed", "timeout", "segfault")
MUTMUT_STATUS = re.compile(r"^\s*(\S+): (\w[\w ]*)$")
# the exit code mutmut records when its worker raised instead of running the tests
MUTMUT_WORKER_ERROR = 255


def find_target(module: str) -> Target:
    """The target named by `module`: a name from TARGETS or its path (a trailing / allowed)."""
    wanted = module.rstrip("/")
    for target in TARGETS:
        if wanted in (target.name, target.source, target.source.removesuffix(".py")):
            return target
    names = ", ".join(t.source for t in TARGETS)
    print(f"mutation: unknown module {module!r}; use one of {names}", file=sys.stderr)
    raise SystemExit(2)


def mutmut_section(target: Target) -> str:
    """The [tool.mutmut] table for one target: mutate only its files, run only its tests."""
    pattern = f"{target.source}/*" if not target.source.endswith(".py") else target.source
    tests = ", ".join(f'"{t}"' for t in target.tests)
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["dml"]\n'
        f'only_mutate = ["{pattern}"]\n'
        'also_copy = ["configs", "setup.py"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        # -p no:timeout keeps pytest-timeout's thread out of the forked workers (mutmut times
        # mutants out itself: a mutant that loops forever counts as detected); the property
        # tests draw the same examples for every mutant (tests/conftest.py)
        'pytest_add_cli_args = ["-p", "no:timeout", "--hypothesis-profile=mutation"]\n'
        # mutmut stops a mutant after 2 x multiplier x (its tests' clean time + constant) of
        # wall-clock time: a generous constant so that a loaded machine (mutation runs at nice 19)
        # does not turn slow workers into "timeouts", a small multiplier so that a mutant that
        # loops forever costs about two minutes
        "timeout_multiplier = 3.0\n"
        "timeout_constant = 20.0\n"
        # dml's tests are torch: fork each mutant from a clean server, not from the process
        # that ran the whole suite (torch's thread pools are not fork-safe)
        'process_isolation = "forkserver"\n'
        "use_git_change_detection = false\n"
    )


def sync(src: Path, dst: Path) -> None:
    """Make `dst` a copy of `src` (a file or folder, without bytecode). A file whose bytes changed
    is written anew, so its time is now: mutmut regenerates the mutants of a source file newer
    than its cached mutants, and a copy keeping the edit's older time would leave the old code's
    mutants in place. Unchanged files keep their time (and mutmut its verdicts)."""
    if src.is_file():
        if not (dst.is_file() and dst.read_bytes() == src.read_bytes()):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        return
    wanted = {
        p.relative_to(src)
        for p in src.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
    }
    if dst.is_dir():
        for old in dst.rglob("*"):
            if old.is_file() and old.relative_to(dst) not in wanted:
                old.unlink()
    for rel in sorted(wanted):
        sync(src / rel, dst / rel)


def prepare(target: Target, work: Path) -> None:
    """Refresh the working copy of the repository for `target` (mutmut's cache is kept)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        sync(ROOT / name, work / name)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + mutmut_section(target))


def mutmut(
    work: Path, *args: str, capture: bool = False, log: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the mutmut next to this interpreter in `work`, with only the working copy importable.

    With `log`, its output (a progress spinner, long) goes to that file instead of the terminal.
    """
    exe = Path(sys.executable).with_name("mutmut")
    if not exe.exists():
        raise SystemExit(
            "mutation: mutmut is not installed; install the dev extras (pip install -e '.[dev]')"
        )
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if log is not None:
        with log.open("w") as sink:
            return subprocess.run(
                [str(exe), *args], cwd=work, env=env, text=True, stdout=sink, stderr=sink
            )
    return subprocess.run(
        [str(exe), *args], cwd=work, env=env, text=True, capture_output=capture, check=False
    )


def run_errors(work: Path) -> set[str]:
    """The mutants whose test run raised inside mutmut instead of running the tests.

    mutmut 3.8 turns an exception in its worker (for instance pytest's "not found" for a test
    id it cannot select again, exit 4) into exit code 255, which `mutmut results` reports as a
    "timeout", that is as detected. Its per-file .meta records keep the exit code; those
    mutants were never tested, so they count as errors here, not as kills.
    """
    errors = set()
    for meta in (work / "mutants").rglob("*.meta"):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        errors |= {name for name, code in codes.items() if code == MUTMUT_WORKER_ERROR}
    return errors


def statuses(work: Path) -> dict[str, str]:
    """Mutant name -> verdict: mutmut's (killed, survived, timeout, no tests, ...) or "error"."""
    out = mutmut(work, "results", "--all", "true", capture=True)
    if out.returncode != 0:
        raise SystemExit(f"mutation: mutmut results failed in {work}:\n{out.stderr}")
    found = {}
    for line in out.stdout.splitlines():
        m = MUTMUT_STATUS.match(line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    for name in run_errors(work) & found.keys():
        found[name] = "error"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", help="one module (path or name); default: all")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument("--min-score", type=float, default=0.90)
    parser.add_argument(
        "--fresh", action="store_true", help="drop mutmut's cached verdicts and test everything"
    )
    parser.add_argument(
        "--only", metavar="GLOB", help="retest only these mutants, e.g. 'dml.metrics.knn.*'"
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="retest only the mutants that survived the last run (after adding tests)",
    )
    args = parser.parse_args(argv)

    targets = [find_target(args.module)] if args.module else list(TARGETS)
    rows, failed = [], False
    for target in targets:
        work = args.out / target.name
        if args.fresh and work.exists():
            shutil.rmtree(work)
        prepare(target, work)
        print(f"== {target.source}: mutating, tests {' '.join(target.tests)}", flush=True)
        log = work / "mutmut.log"
        start = time.monotonic()
        names = [args.only] if args.only else []
        if args.survivors and (work / "mutants").is_dir():
            names = [n for n, v in statuses(work).items() if v not in KILLED]
            if not names:
                print("   no survivors to retest", flush=True)
        run = mutmut(work, "run", "--max-children", str(args.jobs), *names, log=log)
        if args.survivors and names and run.returncode == 0:
            # a source file changed since the last run: mutmut regenerated its mutants while
            # running, after the names above were listed, so the new ones are still untested
            fresh = [n for n, v in statuses(work).items() if v == "not checked"]
            if fresh:
                run = mutmut(work, "run", "--max-children", str(args.jobs), *fresh, log=log)
        seconds = time.monotonic() - start
        if run.returncode != 0:
            print(
                f"mutation: mutmut run failed for {target.source} (exit {run.returncode}); see {log}"
            )
            failed = True
            continue
        verdicts = statuses(work)
        total = len(verdicts)
        killed = sum(v in KILLED for v in verdicts.values())
        survived = sorted(n for n, v in verdicts.items() if v not in KILLED)
        score = killed / total if total else 1.0
        failed |= score < args.min_score
        survivors = work / "survivors.txt"
        survivors.write_text(
            "".join(mutmut(work, "show", name, capture=True).stdout + "\n" for name in survived)
        )
        rows.append((target.source, killed, total, score, seconds, survivors))
        print(f"   {killed} / {total} killed ({score:.1%}) in {seconds:.0f} s", flush=True)
        errors = sum(v == "error" for v in verdicts.values())
        if errors:
            print(
                f"   {errors} mutants not tested: mutmut could not run their tests (a test id it "
                "cannot select, e.g. one with quotes or backslashes: give the parametrized test "
                f"plain ids); they are listed in {survivors}",
                flush=True,
            )

    print("\n| module | killed / total | score | time (s) | survivors |")
    print("| --- | --- | --- | --- | --- |")
    for source, killed, total, score, seconds, survivors in rows:
        print(f"| {source} | {killed} / {total} | {score:.1%} | {seconds:.0f} | {survivors} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
