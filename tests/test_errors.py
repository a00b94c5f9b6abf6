"""Errors are one line, and survive the trip back from a worker process (pickling) with their fields."""

from __future__ import annotations

import pickle

import pytest

from polypbench.errors import ConfigError, InputError, OutputError, PolypbenchError
from polypbench.evaluate import SubmissionError


@pytest.mark.parametrize("error", [
    InputError("frames/a.jpg", "truncated", "a complete JPEG", row=3, field="jpeg"),
    InputError("x.csv", "bad\nvalue"),
    OutputError("/out/frames.parquet", "No space left on device"),
    ConfigError("unknown model 'x'; expected one of: a, b"),
    SubmissionError(["p.csv: row 2: size_mm: -1; expected >= 0", "p.csv: missing rows"]),
    PolypbenchError("plain"),
])
def test_errors_pickle_with_their_message_and_fields(error: PolypbenchError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)
    assert "\n" not in str(InputError("x.csv", "bad\nvalue"))
