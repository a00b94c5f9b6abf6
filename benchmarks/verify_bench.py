"""Benchmark `polypbench verify` against plainly reading the frames' bytes.

Writes a synthetic REAL-Colon dump (rendered JPEG frames at the real per-video sizes, about 300 KB each), prepares
it, then measures side by side, on a warm page cache (every contender reads the same files once first):

- read bytes: open and read every frame the manifest references, whole, nothing checked (the floor of --hash);
- verify: the complete-JPEG check (head and tail reads, no decode), with 1 and with all worker processes;
- verify --hash: the same plus each frame's sha256 and the Merkle roots, with 1 and with all workers;
- decode: a full PIL decode of each frame, the check `verify` avoids (on a prefix of the frames).

The verify rows are the whole command (open the manifest, start the pool, write verify.json), so a small dump
understates its per-frame rate: the pool's start-up (about a second for spawned workers importing pyarrow) is paid
once per run.

Usage: python benchmarks/verify_bench.py [--frames-per-polyp 30] [--dir /tmp/pb_verify_bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from PIL import Image

from polypbench.prepare import prepare
from polypbench.synth import synthesize
from polypbench.verify import verify_frames


def read_bytes(raw: Path, paths: list[str]) -> int:
    total = 0
    for rel in paths:
        with open(raw / rel, "rb") as fh:
            total += len(fh.read())
    return total


def decode(raw: Path, paths: list[str]) -> int:
    for rel in paths:
        with Image.open(raw / rel) as image:
            image.load()
    return len(paths)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-polyp", type=int, default=30)
    parser.add_argument("--decode-frames", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pb_verify_bench"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    raw, out = args.dir / "raw", args.dir / "prepared"
    cpus = os.cpu_count() or 1
    t_gen, _ = timed(lambda: synthesize("real-colon", raw, frames_per_polyp=args.frames_per_polyp,
                                        negatives_per_video=1, workers=cpus))
    prepare("real-colon", raw, out, workers=cpus)
    paths = sorted(pd.read_parquet(out / "frames.parquet")["frame_path"].unique())
    size = read_bytes(raw, paths)  # warm the page cache for every contender alike
    print(f"generated and prepared {len(paths)} frames ({size / 1e6:.0f} MB) in {t_gen:.1f} s under {raw}")
    rows = []
    t, _ = timed(lambda: read_bytes(raw, paths))
    rows.append(("read bytes (open + read each frame whole, nothing checked)", len(paths), size, t))
    for hash_frames in (False, True):
        for workers in sorted({1, cpus}):
            start = time.perf_counter()
            report = verify_frames(out, raw, hash_frames=hash_frames, workers=workers)
            t = time.perf_counter() - start
            assert not report.problems, report.problems
            name = f"polypbench verify{' --hash' if hash_frames else ''} --workers {workers}"
            rows.append((name, len(paths), size, t))
    prefix = paths[: args.decode_frames]
    t, _ = timed(lambda: decode(raw, prefix))
    rows.append((f"full decode with PIL (first {len(prefix)} frames)", len(prefix), sum(
        (raw / p).stat().st_size for p in prefix), t))
    floor = rows[0][1] / rows[0][3]
    print("\n| approach | frames | seconds | frames/s | MB/s of frames | time vs read bytes |")
    print("|---|---|---|---|---|---|")
    for name, n, covered, t in rows:
        print(f"| {name} | {n} | {t:.2f} | {n / t:,.0f} | {covered / 1e6 / t:,.0f} | {floor / (n / t):.2f}x |")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
