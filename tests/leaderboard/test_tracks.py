"""The public track over two datasets: /api/info, per-dataset tracks plus pooled, paired replicates, the compare and
rank-stability pages, and the split-hash check."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from polypbench.evaluate import Note, NoteKind, Stat, format_stat
from polypbench.evaluate.keys import class_slugs
from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database
from polypbench.leaderboard.scoring import private_stat
from polypbench.manifest import Manifest
from polypbench.sizes import CLASS_SCHEMES
from tests.helpers import Prepared

from .helpers import parquet_bytes, post, predictions


@pytest.fixture
def two(prepared: dict[str, Prepared], sqlite_db: str, options: dict[str, Any]) -> Any:
    labels = [prepared["real-colon"].out, prepared["sun"].out]
    app = create_app(sqlite_db, labels, **options)
    with Database(sqlite_db) as database:
        tokens = [add_team(database, name) for name in ("alpha", "beta")]
    yield TestClient(app), labels, tokens
    app.state.server.db.dispose()


@pytest.mark.slow
def test_per_dataset_tracks_plus_pooled_with_paired_replicates(two: Any) -> None:
    client, (rc, sun), (alpha, beta) = two
    info = client.get("/api/info").json()
    public = info["tracks"]["public"]
    assert [d["name"] for d in public["datasets"]] == public["pooled"] == ["real-colon", "sun"]
    hashes = {d["name"]: d["split_sha256"] for d in public["datasets"]}
    assert all(len(h) == 64 for h in hashes.values()) and public["max_rows"] > public["datasets"][0]["n_frames"]
    assert "private" not in info["tracks"] and info["bootstrap"]["replicates"] == 20

    sun_only = post(client, alpha, parquet_bytes(predictions(sun, 2.0, seed=1)), method="sun-only",
                    split_hashes=f"sun:{hashes['sun']}")
    assert sun_only.status_code == 200, sun_only.text
    assert sun_only.json()["scopes"] == ["sun"]
    assert sun_only.json()["primary"]["metric"].startswith("polyp/triclass/sun")
    both = pd.concat([predictions(rc, 2.0, seed=1), predictions(sun, 2.0, seed=1)], ignore_index=True)
    res = post(client, beta, parquet_bytes(both), method="both")
    assert res.status_code == 200 and res.json()["scopes"] == ["real-colon", "sun", "pooled"]
    a, b = sun_only.json(), res.json()
    assert a["results"]["sun"]["metrics"] == b["results"]["sun"]["metrics"]  # same sun rows, same resamples

    pooled = client.get("/api/leaderboard?scope=pooled").json()["entries"]
    assert [e["method"] for e in pooled] == ["both"]
    on_sun = client.get("/api/leaderboard?scope=sun").json()["entries"]
    assert sorted(e["method"] for e in on_sun) == ["both", "sun-only"] and {e["rank"] for e in on_sun} == {1}
    assert on_sun[1]["p_vs_above"] == 1.0  # tied with the entry above on every replicate: one rank
    f1_key = "polyp/triclass/sun/macro_f1"

    cmp = client.get(f"/api/compare?a={a['id']}&b={b['id']}&scope=sun").json()
    f1 = cmp["metrics"]["macro_f1"]
    assert cmp["replicates"] == 20 and f1["a"] == f1["b"] == a["results"]["sun"]["metrics"][f1_key]
    # paired on identical replicates: a zero difference, every replicate a tie (counted half)
    diff = f1["difference"]
    assert (diff["value"], diff["ci95"], diff["p_greater"], diff["p_value"]) == (0.0, [0.0, 0.0], 0.5, 1.0)
    assert f1["p_a_better"] == 0.5
    # the entries' own flags (a class of few polyps) and the group's size carry over to their difference
    assert set(f1["a"]["flags"]) <= set(diff["flags"]) and "20 patients" in diff["flags"]
    page = client.get(f"/compare?a={a['id']}&b={b['id']}&scope=sun")
    assert page.status_code == 200 and "P(A better)" in page.text and "sun-only" in page.text
    assert f"<td>{html.escape(format_stat(Stat.from_dict(f1['difference']), f1_key))}</td><td>0.500</td>" in page.text
    missing = client.get(f"/api/compare?a={a['id']}&b={b['id']}&scope=pooled")
    assert missing.status_code == 400 and "has no public result in scope 'pooled'" in missing.json()["error"]
    stability = client.get("/api/stability?scope=sun").json()
    assert stability["replicates"] == 20 and len(stability["rank_distribution"]) == 2
    assert stability["entries"] == [e["id"] for e in on_sun] and stability["kendall_tau"] is not None
    assert all(abs(sum(row) - 1) < 1e-6 for row in stability["rank_distribution"])
    assert client.get("/stability?scope=sun").status_code == 200
    board = client.get("/?scope=sun").text
    assert 'action="/compare"' in board and "rank 95%" in board and "P(1st)" in board and "declared" in board

    wrong = post(client, alpha, parquet_bytes(predictions(sun)), split_hashes=f"sun:{'0' * 64}")
    assert wrong.status_code == 400 and "is not the split this server scores" in wrong.json()["error"]
    stranger = predictions(sun).assign(polyp_id=lambda d: "nowhere/" + d["polyp_id"])
    res = post(client, alpha, parquet_bytes(stranger))
    assert res.status_code == 422 and "unknown polyp id" in "\n".join(res.json()["problems"])


def test_the_private_part_never_shows_per_class_or_per_dataset_numbers(prepared: dict[str, Prepared],
                                                                       tmp_path: Path) -> None:
    from polypbench.evaluate import parse_key, score
    from polypbench.leaderboard.scoring import private_view
    from polypbench.leaderboard.tracks import PrivateTrack

    labels = [prepared["real-colon"].out, prepared["sun"].out]
    track = PrivateTrack(labels, tmp_path, public_fraction=0.5, seed=0)
    public, private = (set(track.truths[p].patients["patient_id"]) for p in ("public", "private"))
    assert public and private and not public & private
    n = sum(len(Manifest.open(p).select("test", table="polyps")) for p in labels)
    assert track.truths["public"].n_polyps + track.truths["private"].n_polyps == n
    frames = pd.concat([predictions(p) for p in labels], ignore_index=True)
    doc = private_view(score(frames[frames["polyp_id"].isin(track.polyps["public"])], track.truths["public"],
                             n_bootstrap=5))
    keys = [parse_key(k) for k in doc["metrics"]]
    assert keys and all(k.dataset == "pooled" and k.cls is None for k in keys)
    assert list(doc["counts"]) == ["pooled"] and doc["manifests"] == []
    stats = [Stat.from_dict(v) for v in doc["metrics"].values()]
    assert all(s.class_polyps is None for s in stats)  # no per-class polyp counts
    notes = [n for s in stats for n in (*s.flags, *filter(None, [s.ci_reason]))]
    assert notes and all(n.cls is None and n.polyps is None and n.undefined is None for n in notes)
    names = {name for task in CLASS_SCHEMES for name in class_slugs(task).values()}
    words = [w for v in doc["metrics"].values() for w in (*v.get("flags", ()), *filter(None, [v.get("ci_reason")]))]
    assert not [w for w in words if any(w.startswith(f"{name}:") for name in names)]  # no class named in words


def test_the_private_part_keeps_the_scorers_verdict_without_naming_a_class() -> None:
    patients = Note(NoteKind.PATIENTS, patients=12)
    flagged = Stat(0.8, (0.7, 0.9), flags=(patients, Note(NoteKind.CLASS_POLYPS, "large", polyps=3),
                                           Note(NoteKind.CLASS_POLYPS, "small", polyps=4)),
                   n_polyps=30, n_patients=12, class_polyps=(20, 7, 3))
    hidden = private_stat(flagged)  # class notes first, once, without the class or its count
    assert hidden == Stat(0.8, (0.7, 0.9), flags=(Note(NoteKind.CLASS_POLYPS), patients), n_polyps=30,
                          n_patients=12)
    assert hidden.to_dict()["flags"] == ["a class: fewer than 5 polyps", "12 patients"]
    withheld = Stat(0.8, None, ci_reason=Note(NoteKind.CLASS_PATIENTS, "large", polyps=1, patients=1), n_polyps=30,
                    n_patients=12, class_polyps=(20, 9, 1))
    assert private_stat(withheld) == Stat(0.8, None, ci_reason=Note(NoteKind.CLASS_PATIENTS), n_polyps=30,
                                          n_patients=12)
    assert private_stat(withheld).to_dict()["ci_reason"] == "a class: polyps of fewer than 2 patients"
    plain = Stat(0.8, None, ci_reason=Note(NoteKind.PATIENTS, patients=3), flags=())
    assert private_stat(plain) == plain
    assert format_stat(private_stat(flagged)).endswith("\u2020")  # still flagged, as the scorer decided


def test_the_board_opens_each_manifest_once(prepared: dict[str, Prepared], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A track opens each prepared folder once and reads every later fact (names, truths of any subset, known
    polyps, the split hash it checks) from that :class:`Manifest`."""
    from polypbench.leaderboard.tracks import PrivateTrack, PublicTrack

    opened: list[Path] = []
    open_ = Manifest.open.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Manifest, "open", classmethod(lambda cls, root: opened.append(Path(root)) or open_(cls, root)))
    labels = [prepared["real-colon"].out, prepared["sun"].out]
    track = PublicTrack(labels)
    track.truth(track.pool)
    assert opened == labels
    assert track.summaries["sun"]["split_sha256"] == track.manifests["sun"].provenance()["split_sha256"]
    opened.clear()
    PrivateTrack(labels, tmp_path, public_fraction=0.5, seed=0)
    assert [p for p in opened if p in labels] == labels  # then each part's derived folder, once
