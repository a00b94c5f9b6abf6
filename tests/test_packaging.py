"""The wheel is what a user installs: it carries the published split files, equal to split_manifests/."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import polypbench
from polypbench.splits import published_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout: the one `make test` built (``POLYPBENCH_DIST``; .ci/wheel_smoke installs that very
    file), else one built here."""
    dist = os.environ.get("POLYPBENCH_DIST")
    if not dist:
        dist = str(tmp_path_factory.mktemp("dist"))
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, str(REPO)],
                       check=True, capture_output=True)
    (found,) = Path(dist).glob("polypbench-*.whl")
    return found


def test_the_wheel_carries_split_manifests_byte_for_byte(wheel: Path) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert wheel.name.startswith(f"polypbench-{declared}-")  # this version's wheel, not a stale one
    canonical = {p.relative_to(REPO / "split_manifests").as_posix(): p.read_bytes()
                 for p in (REPO / "split_manifests").rglob("*.csv")}
    assert {"real-colon/v1.csv", "sun/v1.csv"} <= set(canonical)
    with zipfile.ZipFile(wheel) as zf:
        prefix = "polypbench/split_manifests/"
        packaged = {n[len(prefix):]: zf.read(n) for n in zf.namelist() if n.startswith(prefix) and n.endswith(".csv")}
        assert "polypbench/configs/demo.yaml" in zf.namelist()
        assert {"polypbench/configs/demo-regression.yaml", "polypbench/templates/browse_polyp.html.j2"} <= set(
            zf.namelist())
        assert "polypbench/catalog/sun/cases.csv" in zf.namelist()
    assert packaged == canonical


def test_no_symlink_in_the_package_and_one_version() -> None:
    package = Path(polypbench.__file__).parent
    assert not [p for p in package.rglob("*") if p.is_symlink()]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert polypbench.__version__ == declared
    assert published_dir() == REPO / "split_manifests"  # the checkout's files, in an editable install
