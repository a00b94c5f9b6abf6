"""The flat key of every number in a scoring result: ``view/task/dataset/metric[/class]``.

One string names one :class:`~polypbench.evaluate.bootstrap.Stat` in a :class:`~polypbench.evaluate.Result`, in its
JSON document and on the leaderboard (in the spirit of WILDS's metric-group keys), e.g.

- ``polyp/triclass/pooled/balanced_accuracy``: a metric over all classes of a task;
- ``polyp/triclass/real-colon/sensitivity/large``: a per-class metric (the class as its slug, see below);
- ``frame/size/sun/mae_mm``: a size error (task ``size``: size errors do not depend on the task);
- ``patient/surveillance/pooled/usmstf2020_later``: a surveillance-interval share (view ``patient``).

Parts never contain ``/``, so a key splits unambiguously on it. Class names (``polypbench.sizes.CLASS_SCHEMES``) contain
spaces and ``<``/``>=``, so keys carry a slug: lower case, ``<=`` -> ``le``, ``>=`` -> ``ge``, ``<`` -> ``lt``,
``>`` -> ``gt``, then every character other than ``a-z 0-9 . -`` dropped (``>=10 mm`` -> ``ge10mm``,
``<=5 mm`` -> ``le5mm``, ``diminutive`` -> ``diminutive``). Confusion matrices are keyed ``view/task/dataset``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from polypbench.evaluate.agreement import AGREEMENT_METRICS
from polypbench.evaluate.metrics import CLASS_METRICS, KAPPA_METRICS, SIZE_METRICS, SUMMARY_METRICS
from polypbench.evaluate.surveillance import SURVEILLANCE_METRICS
from polypbench.sizes import CLASS_SCHEMES

SEP = "/"
SIZE_TASK = "size"
"""The task part of size-error keys (and of the measurement-agreement metrics)."""
SURVEILLANCE_TASK = "surveillance"
"""The task part of the surveillance-interval keys (view ``patient``: :mod:`polypbench.evaluate.surveillance`)."""
TASKS = (*CLASS_SCHEMES, SIZE_TASK, SURVEILLANCE_TASK)
"""Every task part a key may have, in display order: the class tasks, the size errors, the surveillance."""

_SYMBOLS = (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"))
_UNSAFE = re.compile(r"[^a-z0-9.-]+")


class MetricKey(NamedTuple):
    """A key's parts; ``cls`` is the class slug of a per-class metric, else None."""

    view: str
    task: str
    dataset: str
    metric: str
    cls: str | None = None


def class_slug(name: str) -> str:
    """The key form of a class name (idempotent: a slug is its own slug)."""
    text = name.lower()
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word)
    slug = _UNSAFE.sub("", text)
    if not slug:
        raise ValueError(f"class name {name!r}: no letters or digits; expected a name with a non-empty slug")
    return slug


def class_slugs(task: str) -> dict[str, str]:
    """Slug -> class name of ``task``, in label order; refuses a task whose slugs collide."""
    try:
        names = CLASS_SCHEMES[task]
    except KeyError:
        raise ValueError(f"task {task!r}: expected one of {', '.join(CLASS_SCHEMES)}") from None
    slugs = {class_slug(n): n for n in names}
    if len(slugs) != len(names):
        raise ValueError(f"task {task!r}: class names {names} give colliding key slugs; expected distinct slugs")
    return slugs


def _part(name: str, value: str) -> str:
    if not value or SEP in value:
        raise ValueError(f"metric key {name} {value!r}: expected a non-empty name without {SEP!r}")
    return value


def metric_key(view: str, task: str, dataset: str, metric: str, cls: str | None = None) -> str:
    """``view/task/dataset/metric``, or ``.../metric/<class slug>`` when ``cls`` (a class name or slug) is given."""
    parts = [_part("view", view), _part("task", task), _part("dataset", dataset), _part("metric", metric)]
    if cls is not None:
        parts.append(class_slug(cls))
    return SEP.join(parts)


def group_key(view: str, task: str, dataset: str) -> str:
    """``view/task/dataset``: the key of a confusion matrix."""
    return SEP.join([_part("view", view), _part("task", task), _part("dataset", dataset)])


def parse_key(key: str) -> MetricKey:
    """The parts of a metric key; ValueError naming the key when it has neither 4 nor 5 non-empty parts."""
    parts = key.split(SEP)
    if len(parts) not in (4, 5) or not all(parts):
        raise ValueError(f"metric key {key!r}: expected 'view/task/dataset/metric' or 'view/task/dataset/metric/class'")
    return MetricKey(*parts)


def with_dataset(key: str, dataset: str) -> str:
    """The same metric of another dataset (``pooled`` -> ``sun``): how the board filters by dataset."""
    view, task, _, metric, cls = parse_key(key)
    return metric_key(view, task, dataset, metric, cls)


def candidate_keys(view: str, task: str, dataset: str) -> list[str]:
    """Every key a result may hold for one view, task (or ``size``) and dataset, in display order: the summary
    metrics and kappas, then each per-class metric class by class; for ``size`` the size errors and the measurement
    agreement; for ``surveillance`` each guideline's agreement, later and earlier shares."""
    if task == SIZE_TASK:
        return [metric_key(view, task, dataset, m) for m in (*SIZE_METRICS, *AGREEMENT_METRICS)]
    if task == SURVEILLANCE_TASK:
        return [metric_key(view, task, dataset, m) for m in SURVEILLANCE_METRICS]
    keys = [metric_key(view, task, dataset, m) for m in (*SUMMARY_METRICS, *KAPPA_METRICS)]
    return keys + [metric_key(view, task, dataset, m, c) for m in CLASS_METRICS for c in class_slugs(task)]
