"""`polypbench demo` end to end: the small gated model trained on the synthetic data beats the majority class."""

from __future__ import annotations

from pathlib import Path

import pytest

from polypbench.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_model_beats_the_majority_baseline(tmp_path: Path) -> None:
    demo = run_demo(tmp_path, workers=2)
    model = demo.result.stat("polyp/triclass/pooled/balanced_accuracy").value  # type: ignore[union-attr]
    base = demo.baseline.stat("polyp/triclass/pooled/balanced_accuracy").value  # type: ignore[union-attr]
    assert base == pytest.approx(1 / 3)
    assert model > base + 0.2, f"demo model {model:.3f} vs majority {base:.3f}"
    assert "majority baseline" in demo.describe()
    assert (tmp_path / "runs" / "demo" / "best.pt").is_file()
