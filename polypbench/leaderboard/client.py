"""``polypbench submit``: check a prediction file against what the server scores (``GET /api/info``), upload it
with an idempotency key (retried on a lost connection: the server answers a repeated key with the first
attempt's submission), and summarize the score. ``--model RUN_DIR`` submits a model to the private track instead,
``--checkpoint RUN_DIR`` adds the run's checkpoint to a public submission for the verified badge.

Base install only (httpx, pandas, pyarrow, yaml): no server package is imported here. Converting a ``best.pt`` to
safetensors needs torch and safetensors (``polypbench[train]``); a run folder with ``model.safetensors`` does not.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import yaml

from polypbench import schema
from polypbench.errors import PolypbenchError
from polypbench.evaluate import SubmissionError, format_stat, lookup, read_predictions, validate_predictions
from polypbench.evaluate.format import LEGEND, format_support
from polypbench.evaluate.keys import with_dataset
from polypbench.fileio import file_sha256
from polypbench.inference.spec import META_OFFSET
from polypbench.leaderboard.columns import COLUMNS, Track, parse_track

log = logging.getLogger(__name__)

RETRY_STATUS = (502, 503, 504)
PUBLIC_FLAGS = {"file": "PREDICTIONS", "method": "--method", "declaration": "--declare", "paper_url": "--paper",
                "code_url": "--code", "split_hashes": "--manifest", "config": "--checkpoint (its config.yaml)",
                "checkpoint_sha256": "--checkpoint (its checkpoint)"}
"""The form fields of a public-track upload -> the `polypbench submit` flag (or argument) each comes from."""
MODEL_FLAGS = {"weights": "--model (its weights)", "architecture": "--model (its config.yaml's model)",
               "config": "--model (its config.yaml)", "method": "--method", "paper_url": "--paper",
               "code_url": "--code"}
"""The same for a private-track model upload (``--model RUN_DIR``)."""
CHECKPOINT_FLAGS = {"weights": "--checkpoint (its weights)", "architecture": "--checkpoint (its config.yaml's model)",
                    "config": "--checkpoint (its config.yaml)"}
"""The same for the checkpoint behind a public submission (``--checkpoint RUN_DIR``)."""
_FORM_FIELD = re.compile(r"form field '(\w+)'")


def in_flags(message: str, flags: dict[str, str]) -> str:
    """A server message with each ``form field 'x'`` that ``flags`` knows named by the flag the user set instead."""
    return _FORM_FIELD.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def validate_locally(path: Path, manifests: Sequence[str | Path]) -> None:
    """Raise :class:`SubmissionError` listing every problem of ``path`` against the test split of ``manifests``."""
    validate_predictions(read_predictions(path), [Path(m) for m in manifests], name=str(path))
    log.info("%s: valid against %d manifest(s)", path, len(manifests))


def split_hashes(manifests: Sequence[str | Path]) -> str:
    """``dataset:sha256,...`` of the published splits the local manifests use (a reproducibility field)."""
    pairs = []
    for m in manifests:
        meta = schema.read_metadata(Path(m) / schema.FRAMES_FILE)
        pairs.append(f"{meta[schema.META_DATASET]}:{meta.get(schema.META_SPLIT_HASH, '')}")
    return ",".join(sorted(pairs))


def _url(server: str, path: str) -> str:
    return server.rstrip("/") + path


def _answer(response: httpx.Response, url: str, flags: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON of a 2xx answer; otherwise one line (form fields named by their ``flags``), or the
    :class:`SubmissionError` of the file's problems."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 422 and body.get("problems"):
        raise SubmissionError(body["problems"])
    if response.status_code >= 400:
        message = in_flags(" ".join(str(body.get("error") or response.text[:200]).split()), flags or {})
        raise PolypbenchError(f"{url}: HTTP {response.status_code}: {message}")
    result: dict[str, Any] = body
    return result


def server_info(server: str, timeout: float = 30.0) -> dict[str, Any]:
    """``GET /api/info``: the tracks, datasets, splits and limits the server scores."""
    url = _url(server, "/api/info")
    try:
        return _answer(httpx.get(url, timeout=timeout), url)
    except httpx.HTTPError as exc:
        raise PolypbenchError(f"{url}: request failed ({type(exc).__name__}: {exc}); expected a reachable "
                              "polypbench leaderboard") from exc


def _ids(path: Path) -> list[str]:
    if path.suffix.lower() in (".parquet", ".pq"):
        names = pq.read_schema(path).names
        if "polyp_id" not in names:
            return []
        column = pq.read_table(path, columns=["polyp_id"]).column("polyp_id")
        return [str(v) for v in column.unique().to_pylist()]
    frame = read_predictions(path)
    return [str(v) for v in frame["polyp_id"].unique()] if "polyp_id" in frame else []


def check_against(path: Path, info: dict[str, Any]) -> list[str]:
    """The served datasets ``path`` covers; :class:`PolypbenchError` when the server would refuse the file
    outright (no public track, wrong format, too large, ids of datasets it does not score)."""
    public = info.get("tracks", {}).get(Track.PUBLIC.value)
    if public is None:
        raise PolypbenchError("the server has no public track; expected --model RUN_DIR (a private-track model)")
    if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise PolypbenchError(f"{path}: {path.suffix or 'no'} suffix; expected one of {', '.join(public['formats'])}")
    size = path.stat().st_size
    if size > public["max_upload_bytes"]:
        raise PolypbenchError(f"{path}: {size} bytes; the server takes at most {public['max_upload_bytes']}")
    served = [d["name"] for d in public["datasets"]]
    prefixes = {i.split("/", 1)[0] for i in _ids(path)}
    unknown = sorted(prefixes - set(served))
    if unknown:
        raise PolypbenchError(f"{path}: polyp ids of {', '.join(unknown)}, which the server does not score; expected "
                              f"ids of {', '.join(served)}")
    covered = [d for d in served if d in prefixes]
    if not covered:
        raise PolypbenchError(f"{path}: no polyp id of a served dataset; expected ids of {', '.join(served)}")
    return covered


def _post(url: str, token: str, data: dict[str, str], files: dict[str, Path], *, key: str | None,
          timeout: float, retry_for: float, flags: dict[str, str]) -> dict[str, Any]:
    """POST a multipart form; on a lost connection or 502/503/504, retry with the same idempotency key for up to
    ``retry_for`` seconds."""
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}
    deadline = time.monotonic() + retry_for
    delays = backoff()
    while True:
        try:
            with ExitStack() as stack:
                parts = {name: (p.name, stack.enter_context(p.open("rb")), "application/octet-stream")
                         for name, p in files.items()}
                response = httpx.post(url, headers=headers, data=data, files=parts, timeout=timeout)
            if response.status_code not in RETRY_STATUS or time.monotonic() > deadline:
                return _answer(response, url, flags)
            reason = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise PolypbenchError(f"{url}: request failed ({type(exc).__name__}: {exc}); expected a reachable "
                                      "server") from exc
            reason = type(exc).__name__
        delay = next(delays)
        log.warning("%s: %s; retrying in %.1f s with the same idempotency key", url, reason, delay)
        time.sleep(delay)


def submit(path: str | Path, server: str, token: str, method: str, *, declaration: bool = False,
           paper_url: str | None = None, code_url: str | None = None, config: str | None = None,
           checkpoint_sha256: str | None = None, split_hashes: str | None = None, key: str | None = None,
           timeout: float = 600.0, retry_for: float = 120.0) -> dict[str, Any]:
    """Upload a prediction file to the public track; the server's JSON (the scored, aggregate result per scope)."""
    fields = {"method": method, "declaration": "true" if declaration else "false", "paper_url": paper_url,
              "code_url": code_url, "config": config, "checkpoint_sha256": checkpoint_sha256,
              "split_hashes": split_hashes}
    data = {k: v for k, v in fields.items() if v}
    return _post(_url(server, "/api/submissions"), token, data, {"file": Path(path)},
                 key=key or uuid.uuid4().hex, timeout=timeout, retry_for=retry_for, flags=PUBLIC_FLAGS)


# -- models -------------------------------------------------------------------------------------------------------
def model_files(run_dir: str | Path, work: Path) -> tuple[str, str, Path]:
    """(architecture, config JSON, safetensors path) of a training run folder: ``config.yaml`` and either
    ``model.safetensors`` or ``best.pt`` (converted here: needs torch and safetensors)."""
    run = Path(run_dir)
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise PolypbenchError(f"{run}: no config.yaml; expected a run folder written by `polypbench train`")
    config = yaml.safe_load(cfg_path.read_text()) or {}
    if not isinstance(config, dict) or "model" not in config:
        raise PolypbenchError(f"{cfg_path}: no 'model' key; expected a resolved training config")
    weights = run / "model.safetensors"
    if not weights.is_file():
        weights = work / "model.safetensors"
        _convert(run / "best.pt", weights)
    return str(config["model"]), json.dumps(config, default=str), weights


def _convert(checkpoint: Path, out: Path) -> None:
    if not checkpoint.is_file():
        raise PolypbenchError(f"{checkpoint.parent}: neither model.safetensors nor best.pt; expected a run folder")
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        raise PolypbenchError("converting best.pt to safetensors needs torch and safetensors; run "
                              "`pip install 'polypbench[train]'`, or put model.safetensors in the run folder") from None
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = {k: v.contiguous() for k, v in ckpt["state_dict"].items()}
    save_file(state, str(out), metadata={META_OFFSET: repr(float(ckpt.get("size_offset_mm", 0.0)))})


def submit_model(run_dir: str | Path, server: str, token: str, method: str, *, paper_url: str | None = None,
                 code_url: str | None = None, key: str | None = None, timeout: float = 600.0,
                 retry_for: float = 120.0) -> dict[str, Any]:
    """Queue a private-track model (architecture + config + safetensors weights); the job as the server sees it."""
    with tempfile.TemporaryDirectory(prefix="polypbench-submit-") as tmp:
        architecture, config, weights = model_files(run_dir, Path(tmp))
        data = {k: v for k, v in (("method", method), ("architecture", architecture), ("config", config),
                                  ("paper_url", paper_url), ("code_url", code_url)) if v}
        return _post(_url(server, "/api/models"), token, data, {"weights": weights}, key=key or uuid.uuid4().hex,
                     timeout=timeout, retry_for=retry_for, flags=MODEL_FLAGS)


def upload_checkpoint(submission_id: int, run_dir: str | Path, server: str, token: str, *,
                      timeout: float = 600.0, retry_for: float = 120.0) -> dict[str, Any]:
    """Queue the re-run of a run's checkpoint behind public submission ``submission_id`` (the verified badge)."""
    with tempfile.TemporaryDirectory(prefix="polypbench-submit-") as tmp:
        architecture, config, weights = model_files(run_dir, Path(tmp))
        return _post(_url(server, f"/api/submissions/{int(submission_id)}/checkpoint"), token,
                     {"architecture": architecture, "config": config}, {"weights": weights}, key=None,
                     timeout=timeout, retry_for=retry_for, flags=CHECKPOINT_FLAGS)


def checkpoint_fields(run_dir: str | Path) -> dict[str, str]:
    """The reproducibility fields of a run folder: its config (JSON) and its checkpoint's sha256."""
    run = Path(run_dir)
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    ckpt = run / "model.safetensors" if (run / "model.safetensors").is_file() else run / "best.pt"
    return {"config": json.dumps(config, default=str), "checkpoint_sha256": file_sha256(ckpt)}


def job(server: str, token: str, job_id: int, timeout: float = 30.0) -> dict[str, Any]:
    url = _url(server, f"/api/jobs/{int(job_id)}")
    try:
        return _answer(httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout), url)
    except httpx.HTTPError as exc:
        raise PolypbenchError(f"{url}: request failed ({type(exc).__name__}); expected a reachable server") from exc


def backoff(first: float = 0.5, cap: float = 5.0) -> Iterator[float]:
    """Seconds to wait before each next try: ``first``, doubling up to ``cap`` (0.5, 1, 2, 4, 5, 5, ...), so a
    quick answer comes quickly and a long wait costs few requests."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def wait_job(server: str, token: str, job_id: int, *, wait_s: float = 3600.0) -> dict[str, Any]:
    """Poll a job (at :func:`backoff`'s intervals) until it is done or failed (or ``wait_s`` passes)."""
    deadline, delays = time.monotonic() + wait_s, backoff()
    while True:
        state = job(server, token, job_id)
        if state["status"] in ("done", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(next(delays))


def describe(body: dict[str, Any], server: str) -> str:
    """A short terminal summary of a scored submission: the board metrics per scope, with their 95% CIs (as
    :func:`~polypbench.evaluate.format_stat` writes them) and the polyps and patients each rests on; the legend
    when an interval is flagged or withheld."""
    lines = [f"submission {body['id']} by {body['team']} ({body['method']}): {server.rstrip('/')}{body['url']}"]
    width = max(len(label) for label, _, _ in COLUMNS.values())
    private = parse_track(body.get("track", Track.PUBLIC), "the server's track") is Track.PRIVATE  # pooled keys
    legend = False
    for scope, result in body["results"].items():
        lines.append(f"  {scope}:  (n polyps / patients)")
        for label, key, _ in COLUMNS.values():
            full = key if private else with_dataset(key, scope)
            stat = lookup(result, full)
            legend = legend or (stat is not None and bool(stat.ci_reason or (stat.flags and stat.ci95)))
            lines.append(f"    {label.ljust(width)}  {format_stat(stat, full)}  ({format_support(stat)})")
    return "\n".join([*lines, f"  {LEGEND}"] if legend else lines)
