"""One HTML or markdown page showing the plots of several run folders side by side (`dml-report --plots`).

Rows are pictures (retrieval grid, projection, ...), columns are runs; images are linked by
paths relative to the page, so the page stays valid when moved together with the run folders.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from dml.io import atomic_write_bytes

#: pictures in the order a reader wants them; any other PNG of plots/ follows, sorted by name
PLOT_ORDER = (
    "retrieval_grid",
    "projection",
    "pair_distances",
    "recall_curve",
    "sampled_distances",
    "training_curves",
)
FORMATS = ("html", "md")
SUMMARY_METRICS = ("recall@1", "map@r", "r_precision", "nmi")


def run_plots(run_dir: Path) -> dict[str, Path]:
    """{picture name: PNG} of a run's final plots (`<run>/plots/*.png`, not the per-epoch folders)."""
    found = {p.stem: p for p in sorted((run_dir / "plots").glob("*.png"))}
    order = [n for n in PLOT_ORDER if n in found] + [n for n in found if n not in PLOT_ORDER]
    return {n: found[n] for n in order}


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """The shortest trailing part of each run path that tells the runs apart."""
    for depth in range(1, max(len(p.parts) for p in run_dirs) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in run_dirs]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in run_dirs]


def _overrides(run_dir: Path) -> str:
    """The run's command-line overrides (`.hydra/overrides.yaml`), what tells the runs of a sweep apart."""
    try:
        items = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    except (FileNotFoundError, OSError, ValueError):
        return ""
    return " ".join(str(o) for o in items) if isinstance(items, ListConfig) else ""


def _summary(run_dir: Path) -> str:
    """'loss=margin sampler=hard · digits · recall@1 0.901 · map@r 0.512' from the run's overrides and
    results.json ('' when it has neither)."""
    parts = [_overrides(run_dir)]
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        results = {}
    metrics = results.get("metrics") or {}
    parts += [str(results.get("dataset", ""))] + [
        f"{k} {metrics[k]:.3f}" for k in SUMMARY_METRICS if k in metrics
    ]
    return " · ".join(p for p in parts if p)


def write_plots_page(
    run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, fmt: str | None = None
) -> Path:
    """Write a page with the plots of `run_dirs` to `out` and return its path.

    fmt: "html" or "md"; None picks "md" for an `.md` file name and "html" otherwise.
    A run folder without plots gets an empty column; a folder that does not exist is an error.
    """
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() in (".md", ".markdown") else "html")
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not one of {FORMATS}")
    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise ValueError("write_plots_page needs at least one run folder")
    missing = [str(r) for r in runs if not r.is_dir()]
    if missing:
        raise FileNotFoundError(f"run folder(s) not found: {', '.join(missing)}")
    plots = [run_plots(r) for r in runs]
    names = list(
        dict.fromkeys(
            n
            for order in (PLOT_ORDER, *[list(p) for p in plots])
            for n in order
            if any(n in p for p in plots)
        )
    )
    labels = _labels([r.resolve() for r in runs])
    summaries = [_summary(r) for r in runs]

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), out.parent.resolve())).as_posix()

    text = (_html if fmt == "html" else _markdown)(
        names, labels, summaries, [{n: rel(p) for n, p in ps.items()} for ps in plots]
    )
    atomic_write_bytes(out, text.encode())
    return out


def _markdown(
    names: list[str], labels: list[str], summaries: list[str], links: list[dict[str, str]]
) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["# Plots", ""]
    lines.append(
        "| | "
        + " | ".join(
            f"**{cell(lab)}**<br>{cell(s)}" for lab, s in zip(labels, summaries, strict=True)
        )
        + " |"
    )
    lines.append("|---|" + "---|" * len(labels))
    for name in names:
        cells = [f"[![{name}]({ln[name]})]({ln[name]})" if name in ln else "—" for ln in links]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not names:
        lines.append("")
        lines.append("No plots found (a run writes them into `<run>/plots/`).")
    return "\n".join(lines) + "\n"


def _html(
    names: list[str], labels: list[str], summaries: list[str], links: list[dict[str, str]]
) -> str:
    e = html.escape
    head = "".join(
        f"<th>{e(lab)}<br><small>{e(s)}</small></th>"
        for lab, s in zip(labels, summaries, strict=True)
    )
    rows = []
    for name in names:
        cells = "".join(
            f'<td><a href="{e(ln[name])}"><img src="{e(ln[name])}" alt="{e(name)}"></a></td>'
            if name in ln
            else "<td>—</td>"
            for ln in links
        )
        rows.append(f"<tr><th>{e(name)}</th>{cells}</tr>")
    empty = (
        ""
        if names
        else "<p>No plots found (a run writes them into <code>&lt;run&gt;/plots/</code>).</p>"
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>dml plots</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.wrap {{ overflow-x: auto; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ddd; padding: 4px; vertical-align: top; }}
td img {{ max-width: 480px; width: 100%; }}
</style></head>
<body><h1>Plots</h1>{empty}
<div class="wrap"><table>
<tr><th></th>{head}</tr>
{chr(10).join(rows)}
</table></div>
</body></html>
"""
