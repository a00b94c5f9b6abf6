"""Fixtures of the evaluate tests: the tiny manifests of tests/evaluate/helpers.py, each in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import SMALL, SUN, WIDE, write_manifest


@pytest.fixture
def small_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "real-colon", "real-colon", SMALL)


@pytest.fixture
def sun_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "sun", "sun", SUN)


@pytest.fixture
def wide_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "wide" / "real-colon", "real-colon", WIDE)
