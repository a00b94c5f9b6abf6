"""Benchmark the training input pipeline: samples/s per CPU core, side by side in one run.

On one synthetic REAL-Colon dump at the real frame resolutions (1158-1352 x 959-1080 JPEG; `polypbench synth
real-colon`, then `prepare`), single process, num_workers=0, one torch thread, it times:

  (a) reference style: Pillow full decode, the whole frame to float (as the HAG/GR code does), RandomRotation(20)
      + flips + ColorJitter on the float full-resolution frame, then crop, resize and normalize;
  (b) polypbench from raw frames: DCT-domain decode of the crop window (`load_split(decode_size=384)`) + the
      training loader's transform, UInt8Augment (turn, flips, colour jitter on uint8; normalization and the box
      mask run batched on the training device);
  (c) polypbench from materialized shards (`polypbench materialize --size 384`), same transform;
  (c-dev) shards with `device_augment: true`: the loader only decodes (WindowScale is a no-op at 384); the
      augmentation runs batched on the device, whose cost on this CPU is timed as a separate row;

and, to show where the time goes, other transforms on the same sources and decoding alone.
Every path draws the same training samples in the same order; the paths take turns for --rounds rounds so that
drift on a shared machine hits them alike. Last, it times each step of the transform on one 384 x 384 sample,
and random single-crop reads of the stored crops as Arrow IPC (the shard format) and as Parquet with row groups
of 16, 64 and 256 rows. Not a test.

Usage: python benchmarks/loader_bench.py [--frames-per-polyp 4] [--seconds 2] [--rounds 3] [--dir /tmp/pb_loader_bench]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from polypbench import load_split
from polypbench.load import crop_window
from polypbench.load.augment import UInt8Augment
from polypbench.load.common import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from polypbench.load.decode import dct_scale
from polypbench.load.spec import PixelSpec
from polypbench.prepare import prepare
from polypbench.shards import materialize, open_shard
from polypbench.synth import synthesize
from polypbench.train.data import SampleTransform, collate, model_input
from polypbench.train.device_augment import DeviceAugment, WindowScale

SIZE = DEFAULT_SIZE  # the reference input
DEVICE_INPUT = PixelSpec(size=SIZE, augment="device", streams=("rgb", "masked"))
TARGET_RAW_RATIO = 10.0
TARGET_SHARDS_RATE = 1200.0


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.machine()


def build(root: Path, frames_per_polyp: int) -> tuple[Path, Path]:
    """Synthetic dump + prepared manifest + two materializations (context 0.15, the default, and 0)."""
    raw, prepared = root / "raw", root / "prepared"
    if not (prepared / "frames.parquet").is_file():
        shutil.rmtree(root, ignore_errors=True)
        synthesize("real-colon", raw, frames_per_polyp=frames_per_polyp, negatives_per_video=0, seed=0,
                   workers=os.cpu_count() or 1)
        prepare("real-colon", raw, prepared)
    no_context = root / "prepared_context0"
    if not no_context.is_dir():
        shutil.copytree(prepared, no_context, ignore=shutil.ignore_patterns("materialized"))
    for folder, context in ((prepared, 0.15), (no_context, 0.0)):
        t0 = time.perf_counter()
        stored = materialize(folder, size=SIZE, context=context)
        seconds = time.perf_counter() - t0
        crops = pa.concat_tables([open_shard(p).select(["width", "jpeg"]) for p in sorted(stored.rglob("*.arrow"))])
        kib = sum(len(b) for b in crops["jpeg"].to_pylist()) / crops.num_rows / 1024
        print(f"materialized {crops.num_rows} crops, context {context}, in {seconds:.1f} s on {os.cpu_count()} "
              f"workers: {kib:.0f} KiB per crop, {max(crops['width'].to_pylist())} px max side")
    return prepared, no_context


class Reference:
    """The reference order of work (HAG/GR's dataset + PairedTCombo1): full decode, the whole frame to float, the
    augmentations on the full-resolution float frame (turn, flips, colour jitter), then the crop, resize and
    normalization."""

    def __init__(self, rows: Any, raw: Path) -> None:
        self.rows, self.raw = rows.reset_index(drop=True), raw
        self.augment = v2.Compose([v2.RandomRotation(20), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
                                   v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02)])
        self.finish = v2.Compose([v2.Resize((SIZE, SIZE), antialias=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index]
        with Image.open(self.raw / row["frame_path"]) as frame:
            image = v2.functional.to_dtype(v2.functional.to_image(frame.convert("RGB")), torch.float32, scale=True)
        height, width = image.shape[1:]
        box = [int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"])]
        sample = self.augment({"image": tv_tensors.Image(image),
                               "boxes": tv_tensors.BoundingBoxes([box], format="XYXY", canvas_size=(height, width))})
        x0, y0, x1, y1 = (int(v) for v in sample["boxes"][0].round().tolist())
        left, top, right, bottom = crop_window((x0, y0, x1, y1), width, height)
        crop = tv_tensors.Image(sample["image"][:, top:bottom, left:right])
        return self.finish({"image": crop, "size_mm": torch.tensor(float(row["size_mm"]))})


class DeviceSide:
    """The device half of ``device_augment``, timed on this CPU: batches of ``batch`` loader samples (WindowScale),
    collated, DeviceAugment + normalize + box mask; reported per sample."""

    def __init__(self, data: Any, batch: int = 32) -> None:
        self.data, self.batch = data, batch
        self.batches = [collate([data[i] for i in range(j, j + batch)]) for j in range(0, 4 * batch, batch)]
        self.augment = DeviceAugment(SIZE, seed=0)

    def __len__(self) -> int:
        return len(self.batches) * self.batch

    def __getitem__(self, index: int) -> None:
        if index % self.batch == 0:
            model_input(self.batches[(index // self.batch) % len(self.batches)], DEVICE_INPUT, torch.device("cpu"),
                        augment=self.augment)


def measure(paths: dict[str, Any], seconds: float, rounds: int) -> dict[str, tuple[int, float]]:
    """(samples, seconds) per path; each round gives every path ``seconds`` of wall time, in turn."""
    done = dict.fromkeys(paths, (0, 0.0))
    cursor = dict.fromkeys(paths, 0)
    for data in paths.values():  # warm-up: page cache, lazy imports, memory maps
        for i in range(3):
            data[i]
    for _ in range(rounds):
        for name, data in paths.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                data[(cursor[name] + n) % len(data)]
                n += 1
            elapsed = time.perf_counter() - start
            cursor[name] += n
            done[name] = (done[name][0] + n, done[name][1] + elapsed)
    return done


def step_costs(sample: dict[str, Any], repeat: int = 200) -> list[tuple[str, float]]:
    """(step, ms) for each step of SampleTransform(384, augment=True) and for UInt8Augment, on one 384 x 384
    uint8 sample from the shards."""
    steps: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("v2 Resize (384 -> 384)", v2.Resize((SIZE, SIZE), antialias=True)),
        ("v2 RandomRotation(20)", v2.RandomRotation(20)),
        ("v2 RandomHorizontalFlip + RandomVerticalFlip",
         v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])),
        ("v2 ColorJitter(0.2, 0.2, 0.2, 0.02)", v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02)),
        ("box mask + float + normalize, two images (SampleTransform(augment=False))", SampleTransform(SIZE, False)),
        ("UInt8Augment: turn + flips + colour matrix", UInt8Augment(SIZE)),
    ]
    out = []
    for name, step in steps:
        step(dict(sample))
        start = time.perf_counter()
        for _ in range(repeat):
            step(dict(sample))
        out.append((name, (time.perf_counter() - start) / repeat * 1e3))
    return out


def format_check(shards: list[Path], out: Path, reads: int = 2000) -> list[tuple[str, float, int]]:
    """(format, microseconds per random single-crop read, bytes) for the stored crops as one Arrow IPC file
    (memory-mapped; what polypbench writes) and as Parquet with row groups of 16, 64 and 256 rows (uncompressed
    binary column; a read decodes the row group's column chunk)."""
    table = pa.concat_tables([open_shard(p).select(["polyp_id", "frame_index", "jpeg"]) for p in shards])
    order = np.random.default_rng(0).integers(0, table.num_rows, reads).tolist()
    out.mkdir(parents=True, exist_ok=True)
    results = []
    ipc_path = out / "all.arrow"
    with pa.ipc.new_file(str(ipc_path), table.schema) as writer:
        writer.write_table(table, max_chunksize=256)
    column = open_shard(ipc_path).column("jpeg")
    start = time.perf_counter()
    for i in order:
        column[i].as_py()
    results.append(("Arrow IPC, memory-mapped", (time.perf_counter() - start) / reads * 1e6, ipc_path.stat().st_size))
    for group in (16, 64, 256):
        path = out / f"all_{group}.parquet"
        pq.write_table(table, path, row_group_size=group, compression={"polyp_id": "zstd", "frame_index": "zstd",
                       "jpeg": "none"}, use_dictionary=["polyp_id"], write_statistics=["polyp_id", "frame_index"])
        parquet = pq.ParquetFile(path, memory_map=True)
        start = time.perf_counter()
        for i in order:
            parquet.read_row_group(i // group, columns=["jpeg"]).column(0)[i % group].as_py()
        results.append((f"Parquet, row groups of {group}", (time.perf_counter() - start) / reads * 1e6,
                        path.stat().st_size))
    shutil.rmtree(out)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp/pb_loader_bench"))
    p.add_argument("--frames-per-polyp", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per path per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the dump and shards in --dir for the next run")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    prepared, no_context = build(args.dir, args.frames_per_polyp)

    augment, fast = SampleTransform(SIZE, augment=True), UInt8Augment(SIZE)
    v2_chain = v2.Compose([v2.Resize((SIZE, SIZE), antialias=True), v2.RandomRotation(20), v2.RandomHorizontalFlip(),
                           v2.RandomVerticalFlip(), v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2,
                                                                   hue=0.02)])
    # size=None: the decoded crops as they are (no transform given would otherwise mean a resize to 384)
    raw = load_split(prepared, "train", decode_size=SIZE, source="raw", size=None)
    shards = load_split(prepared, "train", decode_size=SIZE, source="shards", size=None)
    shards0 = load_split(no_context, "train", decode_size=SIZE, source="shards", size=None)
    assert raw.raw_root is not None
    paths = {
        "(a) reference: full decode, v2 on the float full-resolution frame, crop, resize": Reference(raw.rows,
                                                                                                    raw.raw_root),
        "(b) raw frames: DCT decode + UInt8Augment (the training loader)": load_split(
            prepared, "train", decode_size=SIZE, source="raw", transform=fast),
        "(c) shards + UInt8Augment (the training loader)": load_split(
            prepared, "train", decode_size=SIZE, source="shards", context=True, transform=fast),
        "(c-dev) shards + WindowScale (the loader with device_augment)": load_split(
            prepared, "train", decode_size=SIZE, source="shards", context=True, transform=WindowScale(SIZE)),
        "device side of device_augment on this CPU (batches of 32)": DeviceSide(load_split(
            prepared, "train", decode_size=SIZE, source="shards", context=True, transform=WindowScale(SIZE))),
        "shards, context 0 + UInt8Augment": load_split(no_context, "train", decode_size=SIZE, source="shards",
                                                       transform=fast),
        "shards + UInt8Augment + per-sample mask/normalize (SampleTransform)": load_split(
            prepared, "train", decode_size=SIZE, source="shards", context=True, transform=augment),
        "shards + v2 chain (transforms v2 on uint8: rotation, flips, jitter; the old loader)": load_split(
            prepared, "train", decode_size=SIZE, source="shards", transform=v2_chain),
        "raw frames, DCT decode only": raw,
        "shards, decode only": shards,
        "shards, context 0, decode only": shards0,
    }
    first = paths["(b) raw frames: DCT decode + UInt8Augment (the training loader)"]
    windows = [crop_window((r.xmin, r.ymin, r.xmax, r.ymax), r.width, r.height) for r in first.rows.itertuples()]
    sides = sorted(right - left for left, _, right, _ in windows)
    scales = Counter(dct_scale(side, SIZE) for side in sides)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}; "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}")
    print(f"data: {len(first)} training boxes of a synthetic REAL-Colon dump ({args.frames_per_polyp} frames per "
          f"polyp), crop windows {sides[0]}-{sides[-1]} px (median {sides[len(sides) // 2]}), decoded from raw at "
          f"1/k: {', '.join(f'k={k}: {n}' for k, n in sorted(scales.items()))}; "
          f"{args.rounds} rounds x {args.seconds:.1f} s per path; load average {os.getloadavg()[0]:.2f}\n")
    done = measure(paths, args.seconds, args.rounds)
    rates = {name: n / t for name, (n, t) in done.items()}
    base = rates[next(iter(paths))]
    print("| path | samples | samples/s per core | vs (a) |")
    print("|---|---:|---:|---:|")
    for name, (n, _) in done.items():
        print(f"| {name} | {n} | {rates[name]:,.0f} | {rates[name] / base:.1f}x |")
    b, c, c_dev = (rates[k] for k in list(paths)[1:4])
    print(f"\n(c-dev) = {c_dev:,.0f} samples/s per core on the loader side with device_augment (target >= "
          f"{TARGET_SHARDS_RATE:,.0f}: {'ok' if c_dev >= TARGET_SHARDS_RATE else 'MISSED'})")
    print(f"(b)/(a) = {b / base:.1f}x (target >= {TARGET_RAW_RATIO:.0f}x: "
          f"{'ok' if b / base >= TARGET_RAW_RATIO else 'MISSED'}); (c)/(a) = {c / base:.1f}x; "
          f"(c) = {c:,.0f} samples/s per core (target >= {TARGET_SHARDS_RATE:,.0f}: "
          f"{'ok' if c >= TARGET_SHARDS_RATE else 'MISSED'})")
    print("\n| step, on one 384 x 384 uint8 sample | ms |\n|---|---:|")
    for name, ms in step_costs(shards[0]):
        print(f"| {name} | {ms:.2f} |")
    print("\n| storage of the same crops | us per random crop read | MB |\n|---|---:|---:|")
    for name, micros, size in format_check(shards.paths, args.dir / "formats"):
        print(f"| {name} | {micros:,.1f} | {size / 1e6:.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
