"""The dataset registry is the one owner of the dataset facts: every entry resolves, and every reader follows it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from polypbench import datasets
from polypbench.cli import main
from polypbench.errors import ConfigError
from polypbench.prepare.base import Converter
from polypbench.splits import read_split, split_file


@pytest.mark.parametrize("spec", datasets.SPECS, ids=lambda s: s.name)
def test_every_entry_resolves_its_code_and_files(spec: datasets.DatasetSpec) -> None:
    assert issubclass(spec.converter_class(), Converter)
    if spec.synth is not None:
        assert callable(spec.synth_writer())
    assert split_file(spec.name).is_file()
    polyps = spec.catalog_polyps()
    assert list(polyps.columns) == ["patient_id", "size_mm"] and len(polyps) > 0
    published = read_split(spec.name)
    assert set(polyps["patient_id"]) <= set(published["patient_id"]), "every catalog patient has a split"
    for field in ("title", "description", "homepage", "licence", "citation"):
        assert getattr(spec, field).strip(), f"{spec.name}: {field} is empty"
    assert spec.citation.lstrip().startswith("@")


def test_aliases_name_their_dataset_and_share_its_facts() -> None:
    assert datasets.canonical("misawa") == "sun"
    assert datasets.get("misawa") is datasets.get("sun")
    assert split_file("misawa") == split_file("sun") == split_file("sun-seg")
    with pytest.raises(ConfigError, match="real-colon, sun, sun-seg"):
        datasets.get("kvasir")


def test_split_files_are_owned_once() -> None:
    owners = [spec.split_file for spec in datasets.split_owners()]
    assert sorted(owners) == sorted(set(owners))
    assert {spec.split_file for spec in datasets.SPECS} == set(owners)


def test_sun_seg_is_never_pooled_with_sun() -> None:
    assert "sun-seg" not in datasets.independent_names()
    assert set(datasets.independent_names()) == {"real-colon", "sun"}


@pytest.mark.parametrize(("command", "expected"), [
    (["synth", "--help"], datasets.synth_names()),
    (["prepare", "--help"], datasets.names()),
])
def test_cli_choices_come_from_the_registry(command: list[str], expected: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0
    assert "{" + "|".join(expected) + "}" in result.output


@pytest.mark.slow
def test_an_alias_prepares_under_its_own_name(prepared: dict, tmp_path: Path) -> None:
    from polypbench.prepare import prepare

    report = prepare("misawa", prepared["sun"].raw, tmp_path / "misawa", workers=1)
    frames = pd.read_parquet(tmp_path / "misawa" / "frames.parquet")
    sun = pd.read_parquet(prepared["sun"].out / "frames.parquet")
    assert set(frames["dataset"]) == {"misawa"} and report.rows == len(sun)
    assert frames["polyp_id"].str.replace("misawa/", "sun/", regex=False).tolist() == sun["polyp_id"].tolist()
    assert frames["split"].tolist() == sun["split"].tolist()
