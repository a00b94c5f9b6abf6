"""How much of a shard-fed training run waits on data: the fraction of wall time spent blocked on the loader.

Builds (or reuses) a synthetic REAL-Colon dump, prepares and materializes it at ``--size``, then trains a model on
the shards for ``--seconds`` with the real training loader and step (``device_augment`` and ``device_decode`` on by
default) and times, per step, the wait for the next batch and the step itself (the device synchronised around
each). Prints one Markdown table and, with ``--json``, writes the numbers. Not a test.

GPU: python benchmarks/data_wait.py --device cuda --size 384 --batch 128 --workers 8 --seconds 120 --bf16
CPU (smoke): python benchmarks/data_wait.py --device cpu --size 64 --batch 16 --seconds 10 --no-device-decode
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from polypbench.load.spec import PixelSpec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepared_shards(root: Path, spec: PixelSpec, frames_per_polyp: int, workers: int) -> Path:
    """A prepared synthetic REAL-Colon manifest (``root/prepared``) with its crops materialized at the size and
    margin of ``spec`` (reused when present)."""
    from polypbench.prepare import prepare
    from polypbench.shards import find_materialized, materialize
    from polypbench.synth import synthesize

    raw, prepared = root / "raw", root / "prepared"
    if not (raw / "lesion_info.csv").is_file():
        synthesize("real-colon", raw, frames_per_polyp=frames_per_polyp, negatives_per_video=0, workers=workers)
    if not (prepared / "frames.parquet").is_file():
        prepare("real-colon", raw, prepared, workers=workers)
    if find_materialized(prepared, spec.margin, spec.size) is None:
        materialize(prepared, size=spec.size, margin=spec.margin, workers=workers)
    return prepared


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp/pb_data_wait"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet18-hag")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers (and prepare/materialize processes)")
    p.add_argument("--frames-per-polyp", type=int, default=24)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-device-decode", action="store_true", help="decode on the CPU workers instead (nvJPEG off)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    from polypbench.models import create_model
    from polypbench.train import build_optimizers, load_config, train_step
    from polypbench.train.data import build_data, model_input
    from polypbench.train.device_augment import DeviceAugment

    device = torch.device(args.device)
    # the demo's settings with the model's own margin (the reference 0.5), at --size
    cfg = load_config("demo", changes={
        "prepared": [str(args.dir / "prepared")], "img_size": args.size, "margin": None, "batch_size": args.batch,
        "num_workers": args.workers, "device": args.device, "augment": True, "device_augment": True,
        "device_decode": not args.no_device_decode, "task": "regression", "model": args.model, "gr_mode": "gr",
        "frames_per_polyp_per_epoch": 1000, "balance_classes": False})
    pixels = cfg.pixel_spec(augment=True)
    prepared_shards(args.dir, pixels, args.frames_per_polyp, args.workers)
    data = build_data(cfg)
    model = create_model(cfg.model, 1).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    main_opt, gate_opt = build_optimizers(model, 1e-4, 1e-3, gr_mode="gr")
    augment = DeviceAugment.for_spec(pixels, cfg.seed)
    dtype = torch.bfloat16 if args.bf16 else None

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.smooth_l1_loss(out[:, 0].float(), target)

    wait = step = 0.0
    images = steps = 0
    start = time.perf_counter()
    epoch = 0
    while time.perf_counter() - start < args.seconds:
        data.sampler.set_epoch(epoch)
        it = iter(data.train)
        while time.perf_counter() - start < args.seconds:
            _sync(device)
            t0 = time.perf_counter()
            try:
                batch = next(it)
                x = model_input(batch, pixels, device, non_blocking=True, augment=augment)
                y = batch.target("size_mm").to(device, non_blocking=True)
            except StopIteration:
                break
            _sync(device)
            t1 = time.perf_counter()
            train_step(model, x, y, loss, main_opt, gate_opt, gr_mode="gr", clip_main=8.0, clip_gate=8.0,
                       autocast_dtype=dtype, channels_last=args.channels_last)
            _sync(device)
            t2 = time.perf_counter()
            if steps >= 3:  # the first batches pay for worker start-up and cudnn autotuning
                wait, step, images = wait + (t1 - t0), step + (t2 - t1), images + len(batch)
            steps += 1
        epoch += 1
    total = wait + step
    out = {"device": str(device), "model": args.model, "size": args.size, "batch": args.batch,
           "workers": args.workers, "device_decode": not args.no_device_decode, "bf16": args.bf16,
           "timed_steps": max(0, steps - 3), "images_per_s": images / total if total else math.nan,
           "data_wait_fraction": wait / total if total else math.nan, "wait_s": wait, "step_s": step}
    print("| device | model | size | batch | workers | device decode | images/s | time waiting on data |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    print(f"| {out['device']} | {args.model} | {args.size} | {args.batch} | {args.workers} | {out['device_decode']} | "
          f"{out['images_per_s']:.1f} | {100 * out['data_wait_fraction']:.1f}% |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
