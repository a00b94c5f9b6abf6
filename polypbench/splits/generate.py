"""Regenerate every published split file (``polypbench splits generate``): the public splits and the paper's folds.

Above both :mod:`~polypbench.splits.public` and :mod:`~polypbench.splits.paper`, so that neither imports the other
to write the whole set.
"""

from __future__ import annotations

import io
from pathlib import Path

from polypbench import datasets
from polypbench.splits.paper import generate_paper_split, paper_split_file
from polypbench.splits.public import SPLIT_VERSION, to_csv_bytes


def write_public_splits(out: str | Path) -> list[Path]:
    """Regenerate every ``<out>/<dataset>/v1.csv`` and the paper's ``<out>/paper/v1.csv``; the result is
    byte-identical to the committed files."""
    paper = paper_split_file(out)
    paper.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    generate_paper_split().to_csv(buf, index=False, lineterminator="\n")
    paper.write_bytes(buf.getvalue().encode())
    written = [paper]
    for spec in datasets.split_owners():
        path = Path(out) / spec.split_file / f"{SPLIT_VERSION}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_csv_bytes(spec.generate_split()))
        written.append(path)
    return written
