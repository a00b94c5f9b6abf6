"""Progress into a log file (not a terminal): a line every POLYPBENCH_PROGRESS_SECONDS, a closing line, running
values, and nothing when disabled; synth reports through it."""

from __future__ import annotations

import logging

import pytest

from polypbench.progress import Progress, note
from polypbench.synth.common import run_jobs


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """Progress lines as a log file gets them (stderr is not a terminal under pytest)."""
    logger = logging.getLogger("polypbench.progress")
    monkeypatch.setattr(logger, "propagate", True)  # the CLI stops propagation; caplog listens at the root
    monkeypatch.setenv("POLYPBENCH_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO, logger="polypbench.progress")
    return caplog


def test_log_lines_with_counts_eta_and_postfix(lines: pytest.LogCaptureFixture) -> None:
    with Progress(4, "epoch 0/2", unit="batch") as bar:
        bar.update()
        bar.set_postfix("loss 0.5")
        bar.update()
    got = [r.getMessage() for r in lines.records]
    assert got[0].startswith("epoch 0/2: 1/4 batch (25%), ") and "ETA" in got[0]
    assert got[1].startswith("epoch 0/2: 2/4 batch (50%), ") and got[1].endswith(", loss 0.5")
    assert got[-1].startswith("epoch 0/2: 2/4 batch (50%)") and len(got) == 3  # the closing line


def test_no_closing_line_when_asked_and_nothing_when_disabled(lines: pytest.LogCaptureFixture) -> None:
    with Progress(2, "validate", summary=False) as bar:
        bar.update()
    with Progress(2, "rank 1", enabled=False) as bar:
        bar.update()
    note("epoch 0/0: train_loss 1")
    assert [r.getMessage().split(":")[0] for r in lines.records] == ["validate", "epoch 0/0"]


def test_run_jobs_reports_progress(lines: pytest.LogCaptureFixture) -> None:
    assert run_jobs(str, [1, 2, 3], 1, "synth sun", "case") == ["1", "2", "3"]
    got = [r.getMessage() for r in lines.records]
    assert got[0].startswith("synth sun: 1/3 case (33%)") and got[-1].startswith("synth sun: 3/3 case (100%)")
