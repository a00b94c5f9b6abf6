"""The public track over two datasets: /api/info, per-dataset tracks plus pooled, paired replicates, the compare and
rank-stability pages, and the split-hash check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from polypbench.leaderboard.app import create_app
from polypbench.leaderboard.auth import add_team
from polypbench.leaderboard.db import Database
from polypbench.manifest import Manifest

from .conftest import parquet_bytes, post, predictions


@pytest.fixture
def two(prepared, sqlite_db: str, options: dict[str, Any]) -> Any:
    labels = [prepared["real-colon"].out, prepared["sun"].out]
    app = create_app(sqlite_db, labels, **options)
    with Database(sqlite_db) as database:
        tokens = [add_team(database, name) for name in ("alpha", "beta")]
    yield TestClient(app), labels, tokens
    app.state.server.db.dispose()


def test_per_dataset_tracks_plus_pooled_with_paired_replicates(two) -> None:
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

    cmp = client.get(f"/api/compare?a={a['id']}&b={b['id']}&scope=sun").json()["metrics"]
    assert cmp["macro_f1"]["difference"] == 0 and cmp["macro_f1"]["n"] == 20  # paired: identical replicates
    assert cmp["macro_f1"]["ci95"] == [0.0, 0.0] and cmp["macro_f1"]["p_a_better"] == 0.0
    page = client.get(f"/compare?a={a['id']}&b={b['id']}&scope=sun")
    assert page.status_code == 200 and "P(A better)" in page.text and "sun-only" in page.text
    missing = client.get(f"/api/compare?a={a['id']}&b={b['id']}&scope=pooled")
    assert missing.status_code == 400 and "has no public result in scope 'pooled'" in missing.json()["error"]
    stability = client.get("/api/stability?scope=sun").json()
    assert stability["replicates"] == 20 and len(stability["rank_distribution"]) == 2
    assert all(abs(sum(row) - 1) < 1e-6 for row in stability["rank_distribution"])
    assert client.get("/stability?scope=sun").status_code == 200
    board = client.get("/?scope=sun").text
    assert 'action="/compare"' in board and "rank 95%" in board and "P(1st)" in board and "declared" in board

    wrong = post(client, alpha, parquet_bytes(predictions(sun)), split_hashes=f"sun:{'0' * 64}")
    assert wrong.status_code == 400 and "is not the split this server scores" in wrong.json()["error"]
    stranger = predictions(sun).assign(polyp_id=lambda d: "nowhere/" + d["polyp_id"])
    res = post(client, alpha, parquet_bytes(stranger))
    assert res.status_code == 422 and "unknown polyp id" in "\n".join(res.json()["problems"])


def test_the_private_part_never_shows_per_class_or_per_dataset_numbers(prepared, tmp_path: Path) -> None:
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
