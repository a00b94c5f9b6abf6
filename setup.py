"""Build hook: the wheel carries the published split files, copied from the checkout's ``split_manifests/``.

``split_manifests/`` at the top of the repository is the one canonical, human-readable copy; the package data
``polypbench/split_manifests/`` is built from it here (never committed, never a symlink). Everything else about the
package is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPLITS = Path(__file__).resolve().parent / "split_manifests"


class BuildPyWithSplits(build_py):
    """``build_py`` plus a copy of every split file (CSV and README) into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's split_manifests/ directly
            return
        target = Path(self.build_lib) / "polypbench" / "split_manifests"
        files = sorted(p for p in SPLITS.rglob("*") if p.is_file() and p.suffix in (".csv", ".md"))
        if not files:
            raise SystemExit(f"{SPLITS}: no split files; expected split_manifests/<dataset>/v1.csv")
        for src in files:
            dst = target / src.relative_to(SPLITS)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildPyWithSplits})
