"""Converters from raw dumps to Parquet manifests (DESIGN.md section 2), one per dataset layout."""

from __future__ import annotations

from pathlib import Path

from polypbench.errors import choice_error
from polypbench.prepare.base import Converter
from polypbench.prepare.engine import PrepareReport
from polypbench.prepare.real_colon import RealColonConverter
from polypbench.prepare.sun import MisawaConverter, SunConverter
from polypbench.prepare.sun_seg import SunSegConverter

CONVERTERS: dict[str, type[Converter]] = {
    "real-colon": RealColonConverter,
    "sun": SunConverter,
    "misawa": MisawaConverter,
    "sun-seg": SunSegConverter,
}
"""Dataset name -> converter. ``misawa`` is the SUN database cited through its journal paper."""


def prepare(dataset: str, raw: str | Path, out: str | Path, *, workers: int | None = None, strict: bool = False) -> PrepareReport:
    """Convert the raw ``dataset`` dump at ``raw`` into a manifest directory ``out`` (resumable)."""
    from polypbench.prepare.engine import Engine

    if dataset not in CONVERTERS:
        raise choice_error("dataset", dataset, CONVERTERS)
    return Engine(CONVERTERS[dataset](), Path(raw), Path(out), workers, strict).run()


__all__ = ["CONVERTERS", "PrepareReport", "prepare"]
