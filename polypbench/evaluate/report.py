"""Human reports of a :class:`Result`: a self-contained HTML page and a Markdown twin.

Both open with a header (polypbench version, date, the prediction file, and the model and config where the caller
knows them: ``meta``) and a contents list, then one section per view (the headline per-polyp view with its flagged
intervals, per-class tables and confusion matrices), the comparison, and a predicted-vs-true size plot (matplotlib
Agg, embedded as base64 PNG in the HTML; a PNG file beside the Markdown). Every section has an anchor; numbers
with their intervals stay on one line (wide tables scroll sideways). Both are rendered from the same
:func:`sections` with the templates ``report.html.j2`` (autoescaped) and ``report.md.j2``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from polypbench import __version__
from polypbench.errors import InputError
from polypbench.evaluate.agreement import AGREEMENT_METRICS
from polypbench.evaluate.format import LABELS, LEGEND, format_count, format_notes, format_stat, format_support
from polypbench.evaluate.keys import SIZE_TASK, SURVEILLANCE_TASK, TASKS, candidate_keys, group_key, metric_key
from polypbench.evaluate.metrics import CLASS_METRICS, SIZE_METRICS
from polypbench.evaluate.result import VIEW_TITLES, Result, lookup
from polypbench.evaluate.surveillance import GUIDELINES, OUTCOMES
from polypbench.fileio import atomic_write, read_text, writing
from polypbench.sizes import CLASS_SCHEMES, DIMINUTIVE_MAX_MM, LARGE_MIN_MM
from polypbench.templating import render

Table: TypeAlias = tuple[list[str], list[list[str]]]
"""(header, rows) of formatted cells."""

_METRICS = ("macro_f1", "weighted_f1", "balanced_accuracy", "accuracy", "kappa_quadratic", "kappa_linear")
JITTER_MM = 0.3
"""Half-width of the horizontal jitter of the size plot: true sizes are whole millimetres, so polyps of one size
would sit on one line; each point moves by a fixed pseudo-random amount of at most this much."""


def jittered(sizes: Sequence[float] | Any) -> np.ndarray:
    """The plot's x positions: each size moved by at most :data:`JITTER_MM`, the same moves for the same number
    of polyps (a seeded generator), so a report is reproducible."""
    values = np.asarray(sizes, dtype=float)
    return values + np.random.default_rng(0).uniform(-JITTER_MM, JITTER_MM, len(values))


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
    for name, part in table.assign(_x=jittered(table["size_mm"])).groupby("dataset", sort=True):
        ax.scatter(part["_x"], part["pred_size_mm"], s=18, alpha=0.6, label=f"{name} ({len(part)})")
    ax.plot([0, top], [0, top], color="grey", lw=1, label="predicted = true")
    for t in (DIMINUTIVE_MAX_MM, LARGE_MIN_MM):
        ax.axvline(t, color="grey", lw=0.6, ls=":")
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"true size (mm; jittered by up to ±{JITTER_MM:g} mm)",
           ylabel="predicted size (mm, per-polyp median)", title="Predicted vs true size, per polyp")
    ax.legend(loc="upper left", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


@dataclass(frozen=True)
class Section:
    """One heading of the report with a paragraph or a table (header, rows of formatted cells). ``anchor``: its
    id in the page (set by :func:`sections`); ``wrap``: the table columns of free text, which may wrap (every
    other cell, a number with its interval, stays on one line)."""

    level: int
    heading: str
    text: str | None = None
    table: Table | None = None
    anchor: str = ""
    wrap: tuple[int, ...] = ()


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
            for cls in CLASS_SCHEMES[task]]
    return ["class", "true polyps / patients", *[LABELS[m] for m in CLASS_METRICS]], rows


def _notes_table(result: Result, view: str) -> Table | None:
    """Every number of ``view`` whose interval is flagged or withheld: key, the number, what it rests on, why."""
    rows = []
    for task in TASKS:
        for ds in result.datasets:
            for key in candidate_keys(view, task, ds):
                stat = lookup(result, key)
                note = format_notes(stat)
                if stat is not None and stat.value is not None and note:
                    rows.append([key, format_stat(stat, key), format_support(stat), note])
    return (["metric key", "value [95% CI]", "polyps / patients", "why"], rows) if rows else None


def _comparison_table(result: Result, view: str) -> Table | None:
    """This file and the other side by side, the paired difference with its interval and P(this > other)."""
    rows = [row for _, row, _ in result.comparison_rows(view, _METRICS)]
    return (list(Result.COMPARISON_HEADER), rows) if rows else None


def _confusion_table(result: Result, view: str, task: str, dataset: str) -> Table | None:
    cm = result.confusion_matrices.get(group_key(view, task, dataset))
    if cm is None:
        return None
    classes = CLASS_SCHEMES[task]
    rows = [[cls, *[format_count(v) for v in row]] for cls, row in zip(classes, cm.tolist(), strict=True)]
    return ["true \\ predicted", *classes], rows


def _view_sections(result: Result, source: Result | Mapping[str, Any], view: str, prefix: str = "") -> list[Section]:
    """The task tables and the size-error table of one view."""
    out = []
    for task in CLASS_SCHEMES:
        table = _metric_table(result, source, view, task, _METRICS)
        if table:
            out.append(Section(3, f"{prefix}{task}", table=table, anchor=f"{view}-{task}"))
    sizes = _metric_table(result, source, view, SIZE_TASK, SIZE_METRICS)
    if sizes:
        out.append(Section(3, f"{prefix}size errors", table=sizes, anchor=f"{view}-size-errors"))
    return out + _clinical_sections(result, source, view, prefix)


def _clinical_sections(result: Result, source: Result | Mapping[str, Any], view: str, prefix: str = ""
                       ) -> list[Section]:
    """Measurement agreement (per polyp) and the surveillance intervals (per patient), with what they assume."""
    out = []
    agreement = _metric_table(result, source, view, SIZE_TASK, ("bias_mm", *AGREEMENT_METRICS))
    if view == "polyp" and agreement:
        out.append(Section(3, f"{prefix}measurement agreement (Bland-Altman, within, threshold crossings)",
                           text=(result.clinical or {}).get("agreement"), table=agreement,
                           anchor=f"{view}-agreement"))
    rows = []
    for g in GUIDELINES:
        for ds in result.datasets:
            stats = [lookup(source, metric_key(view, SURVEILLANCE_TASK, ds, f"{g.key}_{o}")) for o in OUTCOMES]
            if stats[0] is not None:
                rows.append([g.title, ds, format_support(stats[0]), *[format_stat(st) for st in stats]])
    if rows:
        info = (result.clinical or {}).get("surveillance", {})
        pooled = info.get("patients", {}).get("pooled", {})
        text = (f"{info.get('definition', '')}. Histology from the manifest; {info.get('histology_assumption', '')}"
                f"; assumed for "
                f"{pooled.get('assumed_histology', '?')} of {pooled.get('patients', '?')} patients. Predicted "
                f"intervals from {info.get('predicted_from', '?')}. Not scored: {info.get('not_scored', '')}. "
                f"Not applied: {info.get('not_applied', '')}. "
                + " ".join(f"{g.title}: {g.citation}." for g in GUIDELINES))
        out.append(Section(3, f"{prefix}surveillance intervals", text=text, table=(
            ["guideline", "dataset", "polyps / patients scored", *OUTCOMES[:1], "later (unsafe)", *OUTCOMES[2:]],
            rows), anchor=f"{view}-surveillance"))
    return out


def sections(result: Result) -> list[Section]:
    """The report's sections in order, each with its anchor: summary, manifests, every view (the headline view
    with its flagged intervals, per-class tables and confusion matrices), the comparison."""
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
    headline = "polyp"
    for view, description in result.views.items():
        out.append(Section(2, VIEW_TITLES[view], text=description, anchor=view))
        out += _view_sections(result, result, view)
        if view == headline:
            out += _headline_details(result, headline)
    if result.comparison:
        other = result.comparison["other"]["name"]
        out.append(Section(2, f"Comparison: {result.predictions['name']} (this) and {other} (other)",
                           text=result.comparison["definition"], anchor="comparison"))
        for view in result.views:
            table = _comparison_table(result, view)
            if table:
                out.append(Section(3, f"{VIEW_TITLES[view]}: this, other, this - other", table=table,
                                   anchor=f"comparison-{view}"))
    return _anchored(out)


def _headline_details(result: Result, view: str) -> list[Section]:
    """The flagged and withheld intervals of the headline view, then per task and dataset its per-class table and
    confusion matrix."""
    out = []
    notes = _notes_table(result, view)
    if notes:
        out.append(Section(3, "Per polyp: flagged and withheld intervals", text=LEGEND, table=notes, wrap=(3,)))
    for task in CLASS_SCHEMES:
        for ds in result.datasets:
            out.append(Section(3, f"Per polyp, {task}, {ds}: per class", table=_class_table(result, view, task, ds)))
            cm = _confusion_table(result, view, task, ds)
            if cm:
                out.append(Section(4, "confusion matrix (polyps; rows true, columns predicted)", table=cm))
    return out


PLOT_HEADING = "Predicted vs true size"
PLOT_ANCHOR = "size-plot"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _anchored(out: list[Section]) -> list[Section]:
    """Each section with a unique anchor: the one it was given (a view's name, ``polyp-triclass``), else made of
    its heading (a confusion matrix's of its per-class table's)."""
    seen: dict[str, int] = {PLOT_ANCHOR: 1, "contents": 1}
    anchored = []
    parent = ""
    for section in out:
        base = _slug(section.anchor or (section.heading if section.level < 4 else f"{parent} confusion matrix"))
        if section.level < 4:
            parent = section.heading
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        anchored.append(dataclasses.replace(section, anchor=anchor))
    return anchored


@dataclass(frozen=True)
class Entry:
    """One line of the contents list: a level-2 section and its level-3 subsections."""

    heading: str
    anchor: str
    children: list[Entry]


def contents(parts: Sequence[Section], plot: bool) -> list[Entry]:
    """The contents list: every level-2 section with its level-3 subsections, and the size plot."""
    entries: list[Entry] = []
    for s in parts:
        if s.level == 2:
            entries.append(Entry(s.heading, s.anchor, []))
        elif s.level == 3 and entries:
            entries[-1].children.append(Entry(s.heading, s.anchor, []))
    if plot:
        entries.append(Entry(PLOT_HEADING, PLOT_ANCHOR, []))
    return entries


def header(result: Result, meta: Mapping[str, object] | None = None) -> list[tuple[str, str]]:
    """The header rows: polypbench version, date, predictions and split, then ``meta`` (e.g. the prediction
    file, model, config: what the caller knows; empty values are left out)."""
    rows = [("polypbench", __version__), ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("predictions", str(result.predictions["name"])), ("split", result.split)]
    rows += [(str(k), str(v)) for k, v in (meta or {}).items() if v is not None and str(v) != ""]
    return rows


RUN_KEYS = ("model", "task", "img_size", "epochs", "seed")
"""Keys of a run's ``config.yaml`` the report's header shows."""


def run_meta(run_dir: str | Path) -> dict[str, str]:
    """Header rows naming the run behind a prediction file: its config file, model and main settings, and the
    code that trained it (``provenance``: polypbench version, git commit), from ``run_dir/config.yaml``."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    expected = "the config.yaml `polypbench train` wrote"
    try:
        doc = yaml.safe_load(read_text(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(path, f"unreadable ({type(exc).__name__})", expected) from None
    if not isinstance(doc, dict):
        raise InputError(path, "not a mapping", expected)
    rows = {"config": str(path.resolve())}
    rows.update({k: str(doc[k]) for k in RUN_KEYS if doc.get(k) is not None})
    found = doc.get("provenance")
    code: dict[str, Any] = found if isinstance(found, dict) else {}
    git = code.get("git") if isinstance(code.get("git"), dict) else None
    if code.get("polypbench"):
        rows["trained with"] = f"polypbench {code['polypbench']}" + (
            f", git {str(git.get('commit'))[:12]}{' (modified)' if git.get('dirty') else ''}" if git else "")
    return rows


def evaluation_meta(predictions: str | Path, manifests: Sequence[str | Path], *, split: str, fold: int | None,
                    protocol: str, other: str | Path | None = None, run_dir: str | Path | None = None
                    ) -> dict[str, str]:
    """What ``polypbench evaluate`` knows for the report's header: the prediction file (path and sha256), the
    manifests, the selection, the compared file, and the run behind the predictions (:func:`run_meta`)."""
    from polypbench.fileio import file_sha256

    meta = {"prediction file": str(Path(predictions).resolve()), "prediction sha256": file_sha256(predictions),
            "manifests": ", ".join(str(Path(m).resolve()) for m in manifests),
            "selection": f"{split}, protocol {protocol}" + ("" if fold is None else f", fold {fold}")}
    if other is not None:
        meta["compared with"] = str(Path(other).resolve())
    if run_dir is not None:
        meta.update(run_meta(run_dir))
    return meta


def _context(result: Result, meta: Mapping[str, object] | None, plot: bool) -> dict[str, Any]:
    parts = sections(result)
    return {"title": f"polypbench evaluation: {result.predictions['name']}", "header": header(result, meta),
            "sections": parts, "contents": contents(parts, plot), "plot_heading": PLOT_HEADING,
            "plot_anchor": PLOT_ANCHOR}


def render_html(result: Result, png: bytes | None = None, meta: Mapping[str, object] | None = None) -> str:
    """The self-contained HTML report (``png``: the size plot, drawn here when not given; ``meta``: header rows
    beyond version, date and predictions, see :func:`header`)."""
    png = png if png is not None else size_plot_png(result)
    return render("report.html.j2", **_context(result, meta, True),
                  png=base64.b64encode(png).decode() if png is not None else None)


def render_markdown(result: Result, plot_name: str | None = None, meta: Mapping[str, object] | None = None) -> str:
    """The Markdown report; ``plot_name`` is the size plot's file name beside it (None: no plot)."""
    return render("report.md.j2", **_context(result, meta, plot_name is not None), plot_name=plot_name)


def write_report(result: Result, path: str | Path, meta: Mapping[str, object] | None = None) -> list[Path]:
    """Write ``path`` (HTML), the Markdown twin (``.md``) and, with size predictions, the plot (``.png``).
    ``meta``: extra header rows, e.g. ``{"prediction file": ..., "model": ..., "config": ...}``."""
    path = Path(path)
    html_path = path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")
    written = [html_path]
    with writing(html_path.parent):
        html_path.parent.mkdir(parents=True, exist_ok=True)
    png = size_plot_png(result)
    atomic_write(html_path, render_html(result, png, meta))
    plot = None
    if png is not None:
        plot = html_path.with_suffix(".png")
        atomic_write(plot, png)
        written.append(plot)
    md = html_path.with_suffix(".md")
    atomic_write(md, render_markdown(result, plot.name if plot else None, meta))
    written.append(md)
    return written
