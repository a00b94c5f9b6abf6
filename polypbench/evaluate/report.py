"""Human reports of a :class:`Result`: a self-contained HTML page and a Markdown twin.

Both hold the headline table (per polyp), the frame views, the confusion matrices and a predicted-vs-true size
plot (matplotlib Agg, embedded as base64 PNG in the HTML; a PNG file beside the Markdown).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from polypbench.evaluate.result import VIEW_TITLES, Result, fmt
from polypbench.sizes import DIMINUTIVE_MAX_MM, LARGE_MIN_MM, TASKS

_METRICS = (("macro_f1", "macro F1"), ("weighted_f1", "weighted F1"), ("balanced_accuracy", "balanced accuracy"),
            ("accuracy", "accuracy"), ("kappa_quadratic", "kappa (quadratic)"), ("kappa_linear", "kappa (linear)"))
_PER_CLASS = (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("precision", "precision"),
              ("f1", "F1"))
_SIZE = (("mae_mm", "MAE (mm)"), ("median_ae_mm", "median AE (mm)"), ("bias_mm", "bias (mm)"))


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


def _metric_rows(result: Result, view: str, task: str) -> tuple[list[str], list[list[str]]]:
    body = result.views[view]["tasks"][task]
    names = [(m, label) for m, label in _METRICS if m in next(iter(body["datasets"].values()))]
    header = ["dataset", "n polyps", *[label for _, label in names]]
    rows = [[ds, str(result.counts[ds]["n_polyps"]), *[fmt(metrics[m]) for m, _ in names]]
            for ds, metrics in body["datasets"].items()]
    return header, rows


def _class_rows(result: Result, view: str, task: str, dataset: str) -> tuple[list[str], list[list[str]]]:
    metrics = result.views[view]["tasks"][task]["datasets"][dataset]
    header = ["class", *[label for _, label in _PER_CLASS]]
    rows = [[cls, *[fmt(metrics[m][cls]) for m, _ in _PER_CLASS]] for cls in TASKS[task]]
    return header, rows


def _confusion_rows(result: Result, view: str, task: str, dataset: str) -> tuple[list[str], list[list[str]]]:
    cm = result.views[view]["tasks"][task]["datasets"][dataset]["confusion_matrix"]
    classes = TASKS[task]
    header = ["true \\ predicted", *classes]
    rows = [[cls, *[f"{v:g}" if isinstance(v, float) else str(v) for v in row]]
            for cls, row in zip(classes, cm.tolist())]
    return header, rows


def _size_rows(result: Result, view: str) -> tuple[list[str], list[list[str]]] | None:
    size = result.views[view]["size"]
    if not size:
        return None
    header = ["dataset", *[label for _, label in _SIZE]]
    return header, [[ds, *[fmt(m[k], 2) for k, _ in _SIZE]] for ds, m in size["datasets"].items()]


def _sections(result: Result) -> list[tuple[int, str, Any]]:
    """(level, heading, table or text) in report order; tables are (header, rows)."""
    b = result.bootstrap
    n = result.counts["pooled"]
    intro = (f"{result.predictions['name']}: {result.predictions['level']}-level predictions, split "
             f"{result.split}; {n['n_polyps']} polyps, {n['n_patients']} patients, {n['n_frames']} frames. Class "
             f"metrics from {result.predictions['class_source']}. 95% CIs: percentile intervals over {b['replicates']} "
             f"bootstrap replicates resampling patients within each dataset (seed {b['seed']}). 'undefined' = a "
             "denominator is zero (e.g. a class absent); such values are never replaced by 0 or 1.")
    out: list[tuple[int, str, Any]] = [(2, "Summary", intro)]
    manifests = [[m["dataset"], m["split_version"], m["split_sha256"]] for m in result.manifests]
    out.append((3, "Manifests", (["dataset", "split version", "split sha256"], manifests)))
    for view in result.views:
        out.append((2, VIEW_TITLES[view], result.views[view]["description"]))
        for task in result.views[view]["tasks"]:
            out.append((3, f"{task}", _metric_rows(result, view, task)))
        sizes = _size_rows(result, view)
        if sizes:
            out.append((3, "size errors", sizes))
    headline = "polyp"
    for task in TASKS:
        for ds in result.views[headline]["tasks"][task]["datasets"]:
            out.append((3, f"Per polyp, {task}, {ds}: per class", _class_rows(result, headline, task, ds)))
            out.append((4, "confusion matrix (polyps; rows true, columns predicted)",
                        _confusion_rows(result, headline, task, ds)))
    if result.comparison:
        other = result.comparison["other"]["name"]
        out.append((2, f"Paired difference: {result.predictions['name']} minus {other}",
                    result.comparison["definition"]))
        for view, body in result.comparison["views"].items():
            for task, entry in body["tasks"].items():
                rows = [[ds, *[fmt(m.get(k)) for k, _ in _METRICS if k in m]] for ds, m in entry["datasets"].items()]
                labels = [label for k, label in _METRICS if k in next(iter(entry["datasets"].values()))]
                out.append((3, f"{view}, {task}", (["dataset", *labels], rows)))
    return out


def _html_table(table: tuple[list[str], list[list[str]]]) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(table: tuple[list[str], list[list[str]]]) -> str:
    header, rows = table
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc[1:]])


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right;font-variant-numeric:tabular-nums}td:first-child,th:first-child{text-align:left}"
        "th{background:#f3f3f3}")


def render_html(result: Result, png: bytes | None = None) -> str:
    """The self-contained HTML report (``png``: the size plot, drawn here when not given)."""
    title = f"polypbench evaluation: {result.predictions['name']}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for level, heading, content in _sections(result):
        parts.append(f"<h{level}>{html.escape(heading)}</h{level}>")
        parts.append(f"<p>{html.escape(content)}</p>" if isinstance(content, str) else _html_table(content))
    png = png if png is not None else size_plot_png(result)
    parts.append("<h2>Predicted vs true size</h2>")
    if png is None:
        parts.append("<p>No size_mm predictions: no size plot.</p>")
    else:
        parts.append(f"<img alt='predicted vs true size per polyp' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'>")
    return "".join(parts) + "</body></html>\n"


def render_markdown(result: Result, plot_name: str | None = None) -> str:
    """The Markdown report; ``plot_name`` is the size plot's file name beside it (None: no plot)."""
    lines = [f"# polypbench evaluation: {result.predictions['name']}", ""]
    for level, heading, content in _sections(result):
        lines += ["#" * level + " " + heading, "", content if isinstance(content, str) else _md_table(content), ""]
    if plot_name:
        lines += ["## Predicted vs true size", "", f"![predicted vs true size per polyp]({plot_name})", ""]
    return "\n".join(lines)


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
