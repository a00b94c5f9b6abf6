"""The flat metric keys, the one lookup (Result and JSON alike), Stat's JSON form and the one number formatter."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from polypbench.evaluate import Note, NoteKind, Stat, compare, format_stat, lookup, metric_key, parse_key, score
from polypbench.evaluate.keys import TASKS, candidate_keys, class_slug, class_slugs, with_dataset
from polypbench.sizes import CLASS_SCHEMES

from .helpers import frames, polyp_level, wide_polyp_level


@pytest.mark.parametrize("task", list(CLASS_SCHEMES))
def test_class_slugs_are_distinct_safe_and_round_trip(task: str) -> None:
    slugs = class_slugs(task)
    assert list(slugs.values()) == list(CLASS_SCHEMES[task])
    for slug, name in slugs.items():
        assert re.fullmatch(r"[a-z0-9.-]+", slug), slug
        assert class_slug(slug) == slug  # idempotent: a slug may be passed where a class name is expected
        key = metric_key("frame", task, "real-colon", "sensitivity", name)
        assert key == f"frame/{task}/real-colon/sensitivity/{slug}"
        assert parse_key(key) == ("frame", task, "real-colon", "sensitivity", slug)
    assert class_slugs("binary10") == {"lt10mm": "<10 mm", "ge10mm": ">=10 mm"}


def test_malformed_keys_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"metric key dataset 'a/b': expected a non-empty name without '/'"):
        metric_key("polyp", "triclass", "a/b", "accuracy")
    for bad in ("polyp.triclass.macro_f1", "polyp/triclass/macro_f1", "polyp//pooled/accuracy", "a/b/c/d/e/f"):
        with pytest.raises(ValueError, match="expected 'view/task/dataset/metric'"):
            parse_key(bad)
    with pytest.raises(ValueError, match="no letters or digits"):
        class_slug("* ?")
    assert with_dataset("polyp/size/pooled/mae_mm", "sun") == "polyp/size/sun/mae_mm"


def test_lookup_reads_the_result_and_its_json_alike(small_manifest: Path, tmp_path: Path) -> None:
    result = compare(frames(size_mm=np.arange(14.0).tolist()), polyp_level(), small_manifest, n_bootstrap=30)
    doc = json.loads(result.to_json(tmp_path / "r.json"))
    assert result.comparison is not None
    assert doc["schema_version"] == "3" and set(doc["views"]) == set(result.views)
    for key, stat in result.metrics.items():
        assert lookup(doc, key) == lookup(result, key) == result.stat(key) == stat, key
    for key, stat in result.comparison["metrics"].items():
        assert lookup(doc["comparison"], key) == lookup(result.comparison, key) == stat, key
    # every key the scorer writes is one the readers enumerate (nothing hidden from the report and the board)
    enumerated = {k for v in result.views for t in TASKS for d in result.datasets
                  for k in candidate_keys(v, t, d)}
    assert set(result.metrics) <= enumerated
    assert lookup(doc, "polyp/binary5/pooled/kappa_quadratic") is None  # absent, not an error
    with pytest.raises(KeyError, match="metric key 'polyp/binary5/pooled/kappa_quadratic': not in this result"):
        result.stat("polyp/binary5/pooled/kappa_quadratic")
    with pytest.raises(ValueError, match="expected 'view/task/dataset/metric'"):
        lookup(doc, "polyp.triclass.macro_f1")  # a typo is an error, never a silent '-'
    with pytest.raises(ValueError, match="schema_version '2': expected '3'"):
        lookup({**doc, "schema_version": "2"}, "polyp/triclass/pooled/accuracy")  # old intervals: re-score


def test_stat_json_form_follows_its_fields() -> None:
    plain = Stat(0.5, (0.25, 0.75))
    assert plain.to_dict() == {"value": 0.5, "ci95": [0.25, 0.75]}  # defaults are left out
    full = Stat(None, None, undefined_replicates=7, reason="no units")
    assert full.to_dict() == {"value": None, "ci95": None, "undefined_replicates": 7, "reason": "no units"}
    for stat in (plain, full, Stat(1.0, (1.0, 1.0), 2)):
        assert Stat.from_dict(json.loads(json.dumps(stat.to_dict()))) == stat
    assert Stat.from_dict({"value": 1, "ci95": [1, 1], "metric": "ignored"}) == Stat(1.0, (1.0, 1.0))
    assert {f.name for f in fields(Stat)} >= {"value", "ci95"}


def test_the_verdict_is_written_in_words_and_read_back_as_data() -> None:
    flagged = Stat(0.98, (0.949, 1.0), 729, flags=(Note(NoteKind.CLASS_POLYPS, "large", polyps=3),
                                                   Note(NoteKind.PARTLY_UNDEFINED, undefined=729, replicates=2000)),
                   replicates=1271)
    doc = flagged.to_dict()
    assert doc["flags"] == ["large: 3 polyps", "1,271 of 2,000 resamples"]  # the words, as the JSON always gave them
    assert doc["verdict"] == {"flags": [{"kind": "class_polyps", "class": "large", "polyps": 3},
                                        {"kind": "partly_undefined", "undefined": 729, "replicates": 2000}]}
    withheld = Stat(0.5, None, ci_reason=Note(NoteKind.CLASS_PATIENTS, "large", polyps=1, patients=1))
    assert withheld.to_dict()["ci_reason"] == "large: 1 polyp"
    assert withheld.to_dict()["verdict"] == {"ci_reason": {"kind": "class_patients", "class": "large", "polyps": 1,
                                                           "patients": 1}}
    for stat in (flagged, withheld):
        assert Stat.from_dict(json.loads(json.dumps(stat.to_dict()))) == stat
    edited = {**doc, "flags": ["words are never read back"]}
    assert Stat.from_dict(edited) == flagged  # the data is read, not the words
    old = {"value": 0.5, "ci95": None, "ci_reason": "large: 1 polyp", "flags": []}  # written by polypbench 0.2
    assert Stat.from_dict(old).ci_reason == Note(NoteKind.TEXT, text="large: 1 polyp")
    assert format_stat(Stat.from_dict(old)) == "0.500 (no CI: large: 1 polyp)"  # shown as it was written


def test_one_formatter_for_every_number() -> None:
    stat = Stat(0.7123, (0.65, 0.7704))
    assert format_stat(stat) == "0.712 [0.650, 0.770]"
    assert format_stat(stat, "polyp/triclass/pooled/macro_f1") == "0.712 [0.650, 0.770]"
    assert format_stat(Stat(1.234, (0.5, 2.0)), "mae_mm") == "1.23 [0.50, 2.00]"  # sizes: 2 decimals
    assert format_stat(Stat(-1.0, None), "frame/size/sun/bias_mm") == "-1.00"
    assert format_stat(Stat(None, None, reason="no units")) == "undefined"
    assert format_stat(None) == "-"
    assert format_stat(Stat.from_dict(stat.to_dict())) == format_stat(stat)  # the JSON form reads the same


def test_a_real_result_formats_in_the_summary(wide_manifest: Path) -> None:
    result = score(wide_polyp_level(), wide_manifest, n_bootstrap=20)
    table = result.summary_table()
    for key in ("polyp/triclass/real-colon/macro_f1", "polyp/size/pooled/mae_mm", "polyp/binary10/pooled/accuracy"):
        assert format_stat(result.stat(key), key) in table, key
    assert "1.00 [1.00, 1.00]" in table  # every size is 1 mm too large: MAE 1.00 mm in every replicate
