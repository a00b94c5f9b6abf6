"""Converters from raw dumps to Parquet manifests (DESIGN.md section 2), one per dataset layout.

Which converter a dataset uses is a fact of its registry entry (:mod:`polypbench.datasets`). The engine is
imported on first use, so that a worker process importing one helper module (``inputs``, ``problems``) stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polypbench import datasets
from polypbench.lazy import lazy_exports

if TYPE_CHECKING:
    from polypbench.prepare.engine import PrepareReport


def prepare(dataset: str, raw: str | Path, out: str | Path, *, workers: int | None = None,
            strict: bool = False, overwrite: bool = False) -> PrepareReport:
    """Convert the raw ``dataset`` dump at ``raw`` into a manifest directory ``out`` (resumable).

    ``dataset`` is a registered name or an alias (``misawa``): the manifest then carries the name as given. A
    finished manifest in ``out`` is updated only when it was prepared from the same dataset and raw root; replacing
    any other takes ``overwrite``, which still never deletes another dataset's materialized crops.
    """
    from polypbench.prepare.engine import Engine

    spec = datasets.get(dataset)  # the one registry look-up of a run: everything below receives the spec
    return Engine(spec.converter_class()(dataset), spec, Path(raw), Path(out), workers, strict, overwrite).run()


__getattr__ = lazy_exports(__name__, {"PrepareReport": "polypbench.prepare.engine"})
__all__ = ["PrepareReport", "prepare"]
