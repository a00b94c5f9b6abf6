"""Human reports of a :class:`Result`: a self-contained HTML page and a Markdown twin.

Both hold the headline table (per polyp), the frame views, the confusion matrices and a predicted-vs-true size
plot (matplotlib Agg, embedded as base64 PNG in the HTML; a PNG file beside the Markdown). Both are rendered from
the same :func:`sections` with the templates ``report.html.j2`` (autoescaped) and ``report.md.j2``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from polypbench.evaluate.format import LABELS, LEGEND, format_count, format_notes, format_p, format_stat, format_support
from polypbench.evaluate.keys import SIZE_TASK, candidate_keys, group_key, metric_key
from polypbench.evaluate.metrics import CLASS_METRICS, SIZE_METRICS
from polypbench.evaluate.result import VIEW_TITLES, Result, lookup
from polypbench.sizes import DIMINUTIVE_MAX_MM, LARGE_MIN_MM, TASKS
from polypbench.templating import render

Table: TypeAlias = tuple[list[str], list[list[str]]]
"""(header, rows) of formatted cells."""

_METRICS = ("macro_f1", "weighted_f1", "balanced_accuracy", "accuracy", "kappa_quadratic", "kappa_linear")


def size_plot_png(result: Result) -> bytes | None:
    """Predicted vs true size per polyp (PNG bytes), or None without size predictions."""
    table = result.polyp_table
    if table is None or table["pred_size_mm"].isna().all():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = float(max(table["size_mm"].max(), table["pred_size_mm"].max(), LARGE_MIN_MM)) * 1.08
    for name, part in table.groupby("dataset", sort=True):
        ax.scatter(part["size_mm"], part["pred_size_mm"], s=18, alpha=0.7, label=f"{name} ({len(part)})")
    ax.plot([0, top], [0, top], color="grey", lw=1, label="predicted = true")
    for t in (DIMINUTIVE_MAX_MM, LARGE_MIN_MM):
        ax.axvline(t, color="grey", lw=0.6, ls=":")
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="true size (mm)", ylabel="predicted size (mm, per-polyp median)",
           title="Predicted vs true size, per polyp")
    ax.legend(loc="upper left", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


@dataclass(frozen=True)
class Section:
    """One heading of the report with a paragraph or a table (header, rows of formatted cells)."""

    level: int
    heading: str
    text: str | None = None
    table: Table | None = None


def _metric_table(result: Result, source: Result | Mapping[str, Any], view: str, task: str,
                  names: Sequence[str]) -> Table | None:
    """Datasets x ``names`` of one view and task, from ``source``; columns without any value are left out."""
    unit = "polyps" if view == "polyp" else "frames"
    grid = {ds: {m: lookup(source, metric_key(view, task, ds, m)) for m in names} for ds in result.datasets}
    shown = [m for m in names if any(grid[ds][m] is not None for ds in grid)]
    if not shown:
        return None
    rows = [[ds, str(result.counts[ds][f"n_{unit}"]), str(result.counts[ds]["n_patients"]),
             *[format_stat(grid[ds][m], m) for m in shown]] for ds in result.datasets]
    return ["dataset", f"n {unit}", "patients", *[LABELS[m] for m in shown]], rows


def _class_table(result: Result, view: str, task: str, dataset: str) -> Table:
    """Per class: its true polyps / patients (the support of its sensitivity), then every per-class metric."""
    rows = [[cls, format_support(lookup(result, metric_key(view, task, dataset, "sensitivity", cls))),
             *[format_stat(lookup(result, metric_key(view, task, dataset, m, cls)), m) for m in CLASS_METRICS]]
            for cls in TASKS[task]]
    return ["class", "true polyps / patients", *[LABELS[m] for m in CLASS_METRICS]], rows


def _notes_table(result: Result, view: str) -> Table | None:
    """Every number of ``view`` whose interval is flagged or withheld: key, the number, what it rests on, why."""
    rows = []
    for task in [*TASKS, SIZE_TASK]:
        for ds in result.datasets:
            for key in candidate_keys(view, task, ds):
                stat = lookup(result, key)
                note = format_notes(stat)
                if stat is not None and stat.value is not None and note:
                    rows.append([key, format_stat(stat, key), format_support(stat), note])
    return (["metric key", "value [95% CI]", "polyps / patients", "why"], rows) if rows else None


def _comparison_table(result: Result, view: str) -> Table | None:
    """This file and the other side by side, the paired difference with its interval and P(this > other)."""
    assert result.comparison is not None
    rows = []
    for task in [*TASKS, SIZE_TASK]:
        names = SIZE_METRICS if task == SIZE_TASK else _METRICS
        for ds in result.datasets:
            for m in names:
                key = metric_key(view, task, ds, m)
                diff = lookup(result.comparison, key)
                if diff is not None:
                    rows.append([task, ds, LABELS[m], format_stat(lookup(result, key), m),
                                 format_stat(result.comparison["other_metrics"].get(key), m), format_stat(diff, m),
                                 format_p(diff)])
    return (["task", "dataset", "metric", "this", "other", "this - other", "P(this > other)"], rows) if rows else None


def _confusion_table(result: Result, view: str, task: str, dataset: str) -> Table | None:
    cm = result.confusion_matrices.get(group_key(view, task, dataset))
    if cm is None:
        return None
    classes = TASKS[task]
    rows = [[cls, *[format_count(v) for v in row]] for cls, row in zip(classes, cm.tolist(), strict=True)]
    return ["true \\ predicted", *classes], rows


def _view_sections(result: Result, source: Result | Mapping[str, Any], view: str, prefix: str = "") -> list[Section]:
    """The task tables and the size-error table of one view."""
    out = []
    for task in TASKS:
        table = _metric_table(result, source, view, task, _METRICS)
        if table:
            out.append(Section(3, f"{prefix}{task}", table=table))
    sizes = _metric_table(result, source, view, SIZE_TASK, SIZE_METRICS)
    if sizes:
        out.append(Section(3, f"{prefix}size errors", table=sizes))
    return out


def sections(result: Result) -> list[Section]:
    """The report's sections in order: summary, manifests, every view, per-class tables, the comparison."""
    b = result.bootstrap
    n = result.counts["pooled"]
    intro = (f"{result.predictions['name']}: {result.predictions['level']}-level predictions, split "
             f"{result.split}; {n['n_polyps']} polyps, {n['n_patients']} patients, {n['n_frames']} frames. Class "
             f"metrics from {result.predictions['class_source']}. 95% CIs from {b['replicates']} bootstrap "
             f"replicates resampling patients within each dataset (seed {b['seed']}): expanded BCa intervals "
             "(MAE and bias: bootstrap-t), docs/scoring.md. 'undefined' = a denominator is zero (e.g. a class "
             f"absent); such values are never replaced by 0 or 1. {LEGEND}.")
    out = [Section(2, "Summary", text=intro)]
    manifests = [[m["dataset"], m["split_version"], m["split_sha256"]] for m in result.manifests]
    out.append(Section(3, "Manifests", table=(["dataset", "split version", "split sha256"], manifests)))
    for view, description in result.views.items():
        out.append(Section(2, VIEW_TITLES[view], text=description))
        out += _view_sections(result, result, view)
    headline = "polyp"
    notes = _notes_table(result, headline)
    if notes:
        out.append(Section(3, "Per polyp: flagged and withheld intervals", text=LEGEND, table=notes))
    for task in TASKS:
        for ds in result.datasets:
            per_class = _class_table(result, headline, task, ds)
            out.append(Section(3, f"Per polyp, {task}, {ds}: per class", table=per_class))
            cm = _confusion_table(result, headline, task, ds)
            if cm:
                out.append(Section(4, "confusion matrix (polyps; rows true, columns predicted)", table=cm))
    if result.comparison:
        other = result.comparison["other"]["name"]
        out.append(Section(2, f"Comparison: {result.predictions['name']} (this) and {other} (other)",
                           text=result.comparison["definition"]))
        for view in result.views:
            table = _comparison_table(result, view)
            if table:
                out.append(Section(3, f"{VIEW_TITLES[view]}: this, other, this - other", table=table))
    return out


def render_html(result: Result, png: bytes | None = None) -> str:
    """The self-contained HTML report (``png``: the size plot, drawn here when not given)."""
    png = png if png is not None else size_plot_png(result)
    return render("report.html.j2", title=f"polypbench evaluation: {result.predictions['name']}",
                  sections=sections(result), png=base64.b64encode(png).decode() if png is not None else None)


def render_markdown(result: Result, plot_name: str | None = None) -> str:
    """The Markdown report; ``plot_name`` is the size plot's file name beside it (None: no plot)."""
    return render("report.md.j2", title=f"polypbench evaluation: {result.predictions['name']}",
                  sections=sections(result), plot_name=plot_name)


def write_report(result: Result, path: str | Path) -> list[Path]:
    """Write ``path`` (HTML), the Markdown twin (``.md``) and, with size predictions, the plot (``.png``)."""
    path = Path(path)
    html_path = path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")
    written = [html_path]
    html_path.parent.mkdir(parents=True, exist_ok=True)
    png = size_plot_png(result)
    html_path.write_text(render_html(result, png))
    plot = None
    if png is not None:
        plot = html_path.with_suffix(".png")
        plot.write_bytes(png)
        written.append(plot)
    md = html_path.with_suffix(".md")
    md.write_text(render_markdown(result, plot.name if plot else None))
    written.append(md)
    return written
