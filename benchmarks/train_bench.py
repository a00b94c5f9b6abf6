"""Benchmark the gradient-routing step against the plain step: training images/s, side by side in one run.

For each model (default resnet18-hag and vit-tiny-hag) and each gr_mode (default: off = one ordinary step,
gr = polypbench's two-pass step, paper = the reference code's two full backward passes), it builds one copy of
the same randomly initialised model per mode, runs warm-up steps, then times N steps with the modes interleaved
(so drift hits all of them alike) and reports the median step time, images/s and the ratio to the plain step.
Not a test. Random tensors, no data loading: the cost measured is the optimisation step.

CPU (default): python benchmarks/train_bench.py                      (res 128, batch 8, 2 threads)
GPU:           python benchmarks/train_bench.py --device cuda --res 384 --batch 128 --bf16 --channels-last
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from polypbench.models import create_model
from polypbench.train import build_optimizers, train_step

TARGET_RATIO = 1.7


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, list[float]]:
    """Per-mode lists of step times (seconds) for model ``name``."""
    torch.manual_seed(0)
    kw = {"img_size": args.res} if name.startswith("vit") else {}
    base = create_model(name, 1, **kw).to(device).train()
    if args.channels_last:
        base = base.to(memory_format=torch.channels_last)

    def compile_model(model: torch.nn.Module) -> torch.nn.Module:
        return torch.compile(model) if args.compile else model  # type: ignore[return-value]  # a compiled Module

    x = torch.randn(args.batch, 3, args.res, args.res, device=device)
    y = torch.randn(args.batch, 1, device=device)
    dtype = torch.bfloat16 if args.bf16 else None
    runs = {}
    for mode in args.modes:
        model = copy.deepcopy(base)
        main_opt, gate_opt = build_optimizers(model, 1e-4, 1e-3, gr_mode=mode)
        runs[mode] = (compile_model(model), main_opt, gate_opt)

    def step(mode: str) -> float:
        model, main_opt, gate_opt = runs[mode]
        _sync(device)
        t0 = time.perf_counter()
        train_step(model, x, y, F.smooth_l1_loss, main_opt, gate_opt, gr_mode=mode, clip_main=8.0, clip_gate=8.0,
                   autocast_dtype=dtype, channels_last=args.channels_last)
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        for mode in args.modes:
            step(mode)
    times: dict[str, list[float]] = {m: [] for m in args.modes}
    for _ in range(args.steps):
        for mode in args.modes:
            times[mode].append(step(mode))
    return times


def bench_loader(args: argparse.Namespace) -> tuple[float, str]:
    """(images/s, description) of the training loader (``num_workers`` processes, augmentation on) at ``--res``:
    on ``--prepared`` if given, else on a small synthetic SUN dump made here."""
    import tempfile

    from polypbench.train import load_config
    from polypbench.train.data import build_data

    prepared = args.prepared
    if prepared is None:
        from polypbench.prepare import prepare
        from polypbench.synth import synthesize

        tmp = Path(tempfile.mkdtemp(prefix="train_bench_"))
        synthesize("sun", tmp / "raw", frames_per_polyp=4, seed=0)
        prepare("sun", tmp / "raw", tmp / "prepared")
        prepared = tmp / "prepared"
    cfg = load_config("demo", changes={"img_size": args.res, "batch_size": args.batch, "num_workers": args.workers,
                                       "prepared": [str(prepared)], "frames_per_polyp_per_epoch": 64, "augment": True})
    loader = build_data(cfg).train
    it = iter(loader)
    next(it)  # workers started, first batch out
    n, t0 = 0, time.perf_counter()
    for _ in range(args.loader_batches):
        try:
            n += len(next(it))
        except StopIteration:
            break
    boxes = len(loader.dataset)  # type: ignore[arg-type]  # a ConcatDataset of map-style datasets: sized
    return n / (time.perf_counter() - t0), f"{prepared} ({boxes} boxes), {args.workers} workers"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet18-hag", "vit-tiny-hag"])
    p.add_argument("--modes", nargs="+", default=["off", "gr", "paper"], choices=["off", "gr", "paper"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--res", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps per mode (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile each model (the first steps compile)")
    p.add_argument("--prepared", type=Path, default=None,
                   help="prepared folder for the loader measurement [default: a small synthetic SUN dump]")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the loader measurement")
    p.add_argument("--loader-batches", type=int, default=20, help="batches timed for the loader (0: skip)")
    args = p.parse_args()
    if "off" not in args.modes:
        p.error("--modes must include 'off' (the baseline of the ratio)")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"

    print(f"torch {torch.__version__}, {args.device} ({what}), res {args.res}, batch {args.batch}, "
          f"bf16 {args.bf16}, channels_last {args.channels_last}, compile {args.compile}, warmup {args.warmup}, "
          f"median of {args.steps}\n")
    print("| model | gr_mode | step ms (median) | images/s | step time / off |")
    print("|---|---|---:|---:|---:|")
    summary = []
    for name in args.models:
        times = bench_model(name, args, device)
        off = statistics.median(times["off"])
        for mode, ts in times.items():
            med = statistics.median(ts)
            print(f"| {name} | {mode} | {med * 1e3:.1f} | {args.batch / med:.1f} | {med / off:.2f}x |")
        if "gr" in times:
            summary.append((name, statistics.median(times["gr"]) / off))
    print()
    for name, ratio in summary:
        verdict = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
        print(f"{name}: GR/plain step-time ratio {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict})")
    if args.loader_batches:
        rate, what = bench_loader(args)
        print(f"\ntraining data loader at res {args.res}, batch {args.batch}, augmentation on: {rate:.1f} images/s "
              f"({what})")


if __name__ == "__main__":
    main()
