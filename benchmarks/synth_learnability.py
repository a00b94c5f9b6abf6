"""Numerical check that size in mm is learnable from a synthetic dump, but not from the box alone.

For every box it measures, from the written JPEG only, the texture period in the crop a model sees
(:func:`polypbench.load.crop.crop_window`) and compares two predictors of ``size_mm``: the box diameter in
pixels, and the box diameter divided by the measured texture period (the ruler visible in a resized crop).
Run it with ``python benchmarks/synth_learnability.py <dump root> <dataset>``.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from polypbench.load.crop import crop_window


def texture_period_px(gray: np.ndarray, ignore: tuple[int, int, int, int] | None = None,
                      min_period: float = 3.0) -> float:
    """Dominant period (px) of the fine texture in a grey patch (0-255): high-pass it, blank the ``ignore`` rectangle
    (x0, y0, x1, y1: the polyp), and take the strongest 2D Fourier peak, weighted by frequency to undo the 1/f
    fall-off of natural images, among periods from ``min_period`` to ~0.4 of the patch side."""
    h, w = gray.shape
    if min(h, w) < 8:
        return math.nan
    side = min(h, w) / 2
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8))
    blurred = image.filter(ImageFilter.GaussianBlur(max(1.5, side / 10)))
    patch = gray - np.asarray(blurred, dtype=np.float64)
    if ignore is not None:
        x0, y0, x1, y1 = ignore
        patch[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 0.0
    power = np.abs(np.fft.fft2(patch * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    ok = (radius >= 2.5 / min(h, w)) & (radius <= 1.0 / min_period)
    if not ok.any():
        return math.nan
    score = np.where(ok, power * radius, -1.0)
    return float(1.0 / radius.ravel()[int(np.argmax(score))])


def measure(root: str | Path, boxes: pd.DataFrame) -> pd.DataFrame:
    """Per box (rows of ``SynthSummary.boxes``, or a manifest with ``frame_file``): size_mm, box diameter (px,
    longer side) and the texture period measured in the model's crop around the box, the polyp blanked."""
    root = Path(root)
    rows = []
    for row in boxes.itertuples(index=False):
        box = (int(row.xmin), int(row.ymin), int(row.xmax), int(row.ymax))
        with Image.open(root / row.frame_file) as img:
            left, top, right, bottom = crop_window(box, img.width, img.height)
            gray = np.asarray(img.crop((left, top, right, bottom)).convert("L"), dtype=np.float64)
        ignore = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
        rows.append((float(row.size_mm), max(box[2] - box[0], box[3] - box[1]), texture_period_px(gray, ignore)))
    return pd.DataFrame(rows, columns=["size_mm", "diameter_px", "period_px"])


def report(measured: pd.DataFrame) -> dict[str, float]:
    """Pearson correlations of log size with log box diameter (what a box-only model has) and with
    log(diameter / measured period) (what a crop model can see)."""
    ok = measured.dropna()
    log_size = np.log(ok["size_mm"])
    return {
        "n": float(len(measured)),
        "n_measured": float(len(ok)),
        "corr_log_size_vs_log_box_diameter": float(np.corrcoef(log_size, np.log(ok["diameter_px"]))[0, 1]),
        "corr_log_size_vs_log_diameter_over_period": float(
            np.corrcoef(log_size, np.log(ok["diameter_px"] / ok["period_px"]))[0, 1]),
    }


def main(argv: list[str]) -> None:
    """``learnability ROOT DATASET``: prepare the dump into a temporary manifest and print the correlations."""
    from polypbench.prepare import prepare

    root, dataset = Path(argv[0]), argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        prepare(dataset, root, Path(tmp) / "m", workers=1)
        frames = pd.read_parquet(Path(tmp) / "m" / "frames.parquet")
    result = report(measure(root, frames.rename(columns={"frame_path": "frame_file"})))
    sys.stdout.write("".join(f"{k}: {v:.3f}\n" for k, v in result.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
