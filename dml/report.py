"""Paper-style result tables from the results.json files that dml-train writes.

Runs are grouped by their resolved config minus the seed and the class-disjoint training fold
(dataset.fold, Musgrave et al. 2020), and minus settings that do not change the method (paths,
loggers, workers, ...), so a group's runs are repeats of one method over seeds or folds;
each group becomes a row with the mean and standard deviation of every metric, in percent as the
papers print them. An experiment's `published` node (its paper's numbers, carried in the run's
config) becomes a row beside ours. One table per dataset, in markdown, LaTeX or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

FORMATS = ("markdown", "latex", "csv")

# the keys whose runs are repeats of one method: a row averages over them
REPEATS = ("seed", "dataset.fold")
# config keys (dotted, fnmatch patterns) that do not change what a run measures
IGNORED = (
    *REPEATS,
    "*.seed",
    "published",
    "published.*",
    "paths.*",
    "hydra.*",
    "logger",
    "logger.*",
    "callbacks",
    "callbacks.*",
    "eval.*",
    "ckpt_path",
    "resume",
    "task_name",
    "compile",
    "channels_last",
    "nonfinite*",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "dataset.num_workers",
    "*.root",
    "*.cache_dir",
    "*.cache_size",
    "*.draft",
    "*.skip_bad_images",
)
# metrics that are not scores in [0, 1] (counts, a verification threshold): left out of the tables
_COUNTS = re.compile(r"(^|/)(num_|queries_|threshold$)")
# a training fold's validation metrics (val/map@r, ...): in results.json, not in the test tables
_VALIDATION = "val/"
_ORDER = ("map@r", "r_precision", "nmi", "f1")
_HEADERS = {"map@r": "MAP@R", "r_precision": "RP", "nmi": "NMI", "f1": "F1"}


class ReportError(ValueError):
    """A path or file the report cannot use; the message names it."""


@dataclass
class RunResult:
    """One run: its results.json, the run's command-line overrides (when Hydra saved them)."""

    path: Path
    dataset: str
    metrics: dict[str, float]
    config: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    overrides_known: bool = False  # the run folder has .hydra/overrides.yaml
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # results.json's baselines

    @property
    def run_dir(self) -> Path:
        return self.path.parent


@dataclass
class Row:
    method: str
    source: str  # "ours", "published" or "baseline" (an untrained network, raw pixels)
    n: int | None
    values: dict[str, tuple[float, float | None]]  # metric -> (mean, std) in percent
    config: str
    runs: list[Path] = field(default_factory=list)
    best: bool = False  # the best of our rows by the table's sort metric


@dataclass
class Table:
    dataset: str
    columns: list[str]
    rows: list[Row]
    common: str = ""  # the overrides every row shares (a row's command: common + its own config)
    sorted_by: str | None = None  # the metric our rows are sorted by (best first), if several


# ---- reading ---------------------------------------------------------------------------------
def find_results(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """results.json files named directly or found (recursively) under folders, in path order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(path.rglob("results.json")))
        else:
            raise ReportError(
                f"{path} does not exist (give run folders, multirun folders or results.json files)"
            )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _overrides(run_dir: Path) -> list[str] | None:
    """The run's command-line overrides, None when Hydra saved none (or they cannot be read)."""
    file = run_dir / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return None
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError:
        return None
    if data is None:
        return []
    return [str(o) for o in data] if isinstance(data, list) else None


def _scores(node: Any) -> dict[str, float]:
    return (
        {k: float(v) for k, v in node.items() if isinstance(v, (int, float))}
        if isinstance(node, dict)
        else {}
    )


def load_run(path: str | os.PathLike) -> RunResult:
    """Read one results.json (and the run's .hydra/overrides.yaml when present)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: not a readable results.json ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ReportError(f"{path}: no `metrics` mapping; is it a dml-train results.json?")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    dataset = str(data.get("dataset") or config.get("dataset", {}).get("name", "unknown"))
    metrics = _scores(data["metrics"])
    baselines = {str(k): _scores(v) for k, v in (data.get("baselines") or {}).items() if _scores(v)}
    overrides = _overrides(path.parent)
    return RunResult(
        path, dataset, metrics, config, overrides or [], overrides is not None, baselines
    )


def load_runs(paths: Iterable[str | os.PathLike]) -> list[RunResult]:
    """Every run under `paths`; runs that never finished an evaluation (no metrics) are left out."""
    files = find_results(paths)
    if not files:
        raise ReportError(f"no results.json under {', '.join(map(str, paths))}")
    return [run for run in map(load_run, files) if run.metrics]


# ---- grouping --------------------------------------------------------------------------------
def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def method_key(run: RunResult, ignore: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """The run's config minus seeds, paths and other settings that leave the method unchanged."""
    patterns = tuple(IGNORED) + tuple(ignore)
    run_dir = str(run.run_dir)
    items = []
    for key, value in flatten(run.config).items():
        if any(fnmatchcase(key, p) for p in patterns):
            continue
        if isinstance(value, str) and run_dir in value:
            continue
        items.append((key, json.dumps(value, sort_keys=True)))
    return (("dataset", run.dataset), *sorted(items))


def _without_seed(overrides: Iterable[str]) -> list[str]:
    """The overrides without the seed and the training fold (the repeats a row averages over)."""
    repeat = re.compile(r"^[+~]*(" + "|".join(map(re.escape, REPEATS)) + ")=")
    return [o for o in overrides if not repeat.match(o) and not o.startswith("hydra.")]


def _override_key(override: str) -> str:
    """`+loss.margin=0.2` -> `loss.margin`."""
    return override.partition("=")[0].lstrip("+~")


def _short(value: str) -> str:
    value = json.loads(value)
    if (
        isinstance(value, str)
        and value.count(".") >= 1
        and value.split(".")[0] in ("dml", "torch", "pytorch_metric_learning")
    ):
        return value.rsplit(".", 1)[-1]  # a _target_ class path: its class name
    return json.dumps(value) if not isinstance(value, str) else value


def _pretty(override: str) -> str:
    """`loss.margin=0.2526224207` -> `loss.margin=0.2526` (labels only; configs stay exact)."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}{sep}{number:.4g}" if "." in value or "e" in value.lower() else override


def _group_overrides(group: list[RunResult]) -> list[str]:
    """The overrides every run of a group shares, seed left out, in command-line order."""
    shared = set.intersection(*(set(_without_seed(r.overrides)) for r in group))
    return [o for o in _without_seed(group[0].overrides) if o in shared]


def _labels(
    groups: list[list[RunResult]], keys: list[dict[str, str]], distinct: list[list[str]]
) -> list[str]:
    """A short name per group: its experiment's method, else what sets it apart from the other rows."""
    methods = [str((g[0].config.get("published") or {}).get("method") or "") for g in groups]
    if all(methods) and len(set(methods)) == len(methods):
        return methods
    if len(groups) == 1:
        return ["ours"]
    labels = [" ".join(_pretty(o) for o in d) for d in distinct]
    known = all(r.overrides_known for g in groups for r in g)
    if known and len(set(labels)) == len(labels):
        # separate runs: what was typed beyond the overrides all rows share; none = the defaults
        return [label or "(defaults)" for label in labels]
    if all(labels) and len(set(labels)) == len(labels):
        return labels
    shared = set.intersection(*(set(k.items()) for k in keys))

    def describe(k: dict[str, str], collapse: bool) -> str:
        differing = sorted(item for item in k.items() if item not in shared)
        targets = [(key, v) for key, v in differing if key.endswith("._target_")]
        # with `collapse`, a node set to another class is named by its class alone
        swapped = tuple(key.removesuffix("_target_") for key, _ in targets) if collapse else ()
        rest = [
            (key, v)
            for key, v in differing
            if not key.endswith("._target_") and not (swapped and key.startswith(swapped))
        ]
        parts = [f"{key.removesuffix('._target_')}={_short(v)}" for key, v in targets]
        parts += [_pretty(f"{key}={_short(v)}") for key, v in rest]
        return " ".join(parts) or "ours"

    short = [describe(k, collapse=True) for k in keys]
    return short if len(set(short)) == len(short) else [describe(k, collapse=False) for k in keys]


def _metric_order(names: Iterable[str]) -> list[str]:
    names = {n for n in names if not _COUNTS.search(n) and not n.startswith(_VALIDATION)}
    recalls = sorted(
        (n for n in names if n.startswith("recall@")), key=lambda n: int(n.split("@")[1])
    )
    known = [n for n in _ORDER if n in names]
    rest = sorted(names - set(recalls) - set(known))
    return recalls + known + rest


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _sort_metric(groups: list[list[RunResult]], columns: list[str]) -> str | None:
    """The metric rows are ranked by: the runs' common `monitor` when they report it, else the
    table's first column."""
    monitors = {str(r.config.get("monitor")) for g in groups for r in g if r.config.get("monitor")}
    if len(monitors) == 1:
        (monitor,) = monitors
        if all(monitor in r.metrics for g in groups for r in g):
            return monitor
    return columns[0] if columns else None


def summarize(
    runs: Sequence[RunResult],
    ignore: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    baselines: bool = False,
) -> list[Table]:
    """One table per dataset: a row per method (mean ± std over its runs), published rows beside.

    With several rows of ours, they are sorted best first by the runs' `monitor` (else the first
    column) and the best is marked. `baselines` adds, under each row, its runs' baseline columns
    (the untrained network, raw pixels) as rows of their own.
    """
    by_dataset: dict[str, dict[tuple, list[RunResult]]] = {}
    for run in runs:
        by_dataset.setdefault(run.dataset, {}).setdefault(method_key(run, ignore), []).append(run)
    tables = []
    for dataset, grouped in by_dataset.items():
        groups = list(grouped.values())
        keys = [dict(k) for k in grouped]
        overrides = [_group_overrides(g) for g in groups]
        common = [o for o in overrides[0] if all(o in other for other in overrides[1:])]
        distinct = [[o for o in ov if o not in common] for ov in overrides]
        # a row's name leaves out overrides of settings that do not split rows (eval.*, logger, ...)
        patterns = tuple(IGNORED) + tuple(ignore)
        named = [
            [o for o in d if not any(fnmatchcase(_override_key(o), p) for p in patterns)]
            for d in distinct
        ]
        labels = _labels(groups, keys, named)
        # per group: its ours row, its baseline rows, the identity of its published numbers
        blocks: list[tuple[Row, list[Row], str | None]] = []
        papers: dict[str, Row] = {}  # published numbers -> their row (shown once)
        for label, group, own in zip(labels, groups, distinct, strict=True):
            config = " ".join(own)
            published = group[0].config.get("published") or {}
            numbers = {k: float(v) for k, v in (published.get("metrics") or {}).items()}
            ident = json.dumps(published, sort_keys=True) if numbers else None
            if ident is not None and ident not in papers:
                name = f"{published.get('paper', 'published')} (published)"
                papers[ident] = Row(
                    name, "published", None, {k: (v, None) for k, v in numbers.items()}, config
                )
            ours = Row(
                label,
                "ours",
                len(group),
                _aggregate([r.metrics for r in group]),
                config,
                [r.run_dir for r in group],
            )
            extra = []
            if baselines:
                for name in dict.fromkeys(b for r in group for b in r.baselines):
                    scores = [r.baselines[name] for r in group if name in r.baselines]
                    extra.append(
                        Row(
                            f"{label}: {name}",
                            "baseline",
                            len(scores),
                            _aggregate(scores),
                            config,
                            [r.run_dir for r in group if name in r.baselines],
                        )
                    )
            blocks.append((ours, extra, ident))
        reported = set().union(*(row.values for ours, extra, _ in blocks for row in (ours, *extra)))
        reported |= set().union(*(p.values for p in papers.values()))
        columns = _metric_order(reported)
        if metrics:  # validation metrics only when asked for by name
            unknown = [
                m
                for m in metrics
                if m not in columns and not (m.startswith(_VALIDATION) and m in reported)
            ]
            if unknown:
                raise ReportError(
                    f"--metrics {','.join(unknown)}: not reported for {dataset}; available: {', '.join(columns)}"
                )
            columns = list(metrics)
        sorted_by = _sort_metric(groups, columns) if len(blocks) > 1 else None
        if sorted_by is not None:
            blocks = sorted(blocks, key=lambda block: _rank(block[0], sorted_by))  # stable for ties
            if _rank(blocks[0][0], sorted_by) < math.inf:
                blocks[0][0].best = True
        rows: list[Row] = []
        for ours, extra, ident in blocks:
            if ident is not None and ident in papers:  # before the first row that carries it
                rows.append(papers.pop(ident))
            rows += [ours, *extra]
        tables.append(Table(dataset, columns, rows, " ".join(common), sorted_by))
    return tables


def _rank(row: Row, metric: str) -> float:
    """Sort key, best first: minus the row's mean of `metric` (a row without it goes last)."""
    value = row.values.get(metric)
    return -value[0] if value is not None else math.inf


def _aggregate(scores: list[dict[str, float]]) -> dict[str, tuple[float, float | None]]:
    """metric -> (mean, std) in percent over the runs that report it."""
    return {
        name: _mean_std([100.0 * s[name] for s in scores if name in s])
        for name in dict.fromkeys(n for s in scores for n in s)
    }


# ---- rendering -------------------------------------------------------------------------------
def header(metric: str) -> str:
    if metric.startswith("recall@"):
        return "R@" + metric.split("@", 1)[1]
    return _HEADERS.get(metric, metric)


def _cell(value: tuple[float, float | None] | None, pm: str = " ± ") -> str:
    if value is None:
        return "–"
    mean, std = value
    return f"{mean:.1f}" if std is None else f"{mean:.1f}{pm}{std:.1f}"


def _markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        head = ["method", "n", *map(header, t.columns), "config"]
        out.append(f"### {t.dataset}\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|---|---:|" + "---:|" * len(t.columns) + "---|")
        for r in t.rows:
            method = r.method.replace("|", "\\|")
            cells = [f"**{method}** (best)" if r.best else method, "–" if r.n is None else str(r.n)]
            cells += [_cell(r.values.get(c)) for c in t.columns]
            cells.append(f"`{r.config}`" if r.config else "")
            out.append("| " + " | ".join(cells) + " |")
        if t.sorted_by:
            out.append(f"\nRows best first by {header(t.sorted_by)} (mean).")
        if t.common:
            out.append(f"\nEvery row: `{t.common}` (plus its own config).")
        out.append("")
    out.append(
        "Percent; mean ± standard deviation over the n runs (seeds or training folds) of each row."
    )
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append("% dml-report: percent, mean $\\pm$ std over the n runs of each row")
        out.append("\\begin{table}[t]\n\\centering")
        out.append(f"\\caption{{{_tex(t.dataset)}}}")
        out.append("\\begin{tabular}{ll" + "r" * len(t.columns) + "}\n\\toprule")
        out.append(
            " & ".join(["Method", "n", *(_tex(header(c)) for c in t.columns)]) + " \\\\\n\\midrule"
        )
        for r in t.rows:
            cells = [
                f"\\textbf{{{_tex(r.method)}}}" if r.best else _tex(r.method),
                "--" if r.n is None else str(r.n),
            ]
            cells += [_cell(r.values.get(c), " $\\pm$ ").replace("–", "--") for c in t.columns]
            out.append(" & ".join(cells) + " \\\\")
        out.append("\\bottomrule\n\\end{tabular}")
        configs = [
            f"{_tex(r.method)}: \\texttt{{{_tex(r.config)}}}" for r in t.rows if r.source == "ours"
        ]
        out.append("% configs: " + "; ".join(configs))
        if t.common:
            out.append(f"% every row: {_tex(t.common)}")
        out.append("\\end{table}\n")
    return "\n".join(out)


def _csv(tables: list[Table]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    writer.writerow(
        [
            "dataset",
            "method",
            "source",
            "n",
            *[f"{c}{s}" for c in columns for s in ("", "_std")],
            "config",
            "best",
        ]
    )
    for t in tables:
        for r in t.rows:
            cells: list[Any] = [t.dataset, r.method, r.source, "" if r.n is None else r.n]
            for c in columns:
                mean, std = r.values.get(c, (None, None))
                cells += [
                    "" if mean is None else round(mean, 4),
                    "" if std is None else round(std, 4),
                ]
            command = " ".join(x for x in (t.common, r.config) if x)  # the row's whole command
            writer.writerow([*cells, command, "best" if r.best else ""])
    return buffer.getvalue()


def render(tables: list[Table], fmt: str = "markdown") -> str:
    """The tables as markdown, LaTeX (booktabs) or CSV text."""
    renderers = {"markdown": _markdown, "latex": _latex, "csv": _csv}
    if fmt not in renderers:
        raise ReportError(f"--format {fmt!r} is not one of {FORMATS}")
    return renderers[fmt](tables)


def report(
    paths: Iterable[str | os.PathLike],
    fmt: str = "markdown",
    metrics: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    baselines: bool = False,
) -> str:
    """Read the runs under `paths` and render their tables (the whole of `dml-report`'s table)."""
    return render(
        summarize(load_runs(paths), ignore=ignore, metrics=metrics, baselines=baselines), fmt
    )
