"""How far `depth: shards` is from `depth: online` (the seed code's way), and what each costs.

For the first N validation frames of a prepared manifest at --size, without augmentation and with the seed recipe
(the same draws for both: the loader's generator is seeded alike), it builds the ``depth`` stream both ways and
prints the mean absolute difference of the [0, 1] maps, their mean per-map correlation, and the seconds per batch
of each stream (the shards' once-only materialization is timed apart). Needs polypbench.models.midas; --weights
random uses random MiDaS weights (the geometry's share of the difference only).

    python benchmarks/depth_shards.py PREPARED --size 384 --frames 32 --weights midas_v21_384.pt
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from polypbench.load import load_split
from polypbench.shards import materialize_depth
from polypbench.train import load_config
from polypbench.train.batch import collate
from polypbench.train.data import depth_network, model_input


def _streams(prepared: Path, spec, frames: int, batch: int, device: torch.device, seed: int):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    data = load_split(prepared, "validation", spec=spec)
    maps, seconds = [], 0.0
    for start in range(0, min(frames, len(data)), batch):
        b = collate([data[i] for i in range(start, min(start + batch, frames, len(data)))])
        torch.manual_seed(seed + start)
        t = time.perf_counter()
        x = model_input(b, spec, device)
        assert isinstance(x, dict)
        maps.append(x["depth"].cpu())
        seconds += time.perf_counter() - t
    return torch.cat(maps), seconds / max(1, len(maps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--weights", default="random")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        shutil.copytree(args.prepared, prepared, ignore=shutil.ignore_patterns("materialized"))
        t = time.perf_counter()
        materialize_depth(prepared, depth_network(args.weights, device), size=args.size, weights=args.weights,
                          device=device)
        once = time.perf_counter() - t
        cfg = load_config("fsg-r18-loc-paper", [f"img_size={args.size}", f"depth_weights={args.weights}",
                                                f"prepared=[{prepared}]"])
        for name, augment in (("no augmentation", False), ("seed augmentation", True)):
            online = cfg.pixel_spec(augment).replace(augment="loader" if augment else "none")
            stored = online.replace(depth="shards")
            a, t_online = _streams(prepared, online, args.frames, args.batch, device, 0)
            b, t_stored = _streams(prepared, stored, args.frames, args.batch, device, 0)
            x, y = (m.flatten(1) - m.flatten(1).mean(1, keepdim=True) for m in (a, b))
            corr = ((x * y).sum(1) / (x.norm(dim=1) * y.norm(dim=1)).clamp(min=1e-12)).mean()
            print(f"{name}: mean |online - shards| {(a - b).abs().mean():.4f} (maps in [0, 1]), mean correlation "
                  f"{corr:.3f}; depth stream {t_online:.3f} s/batch online, {t_stored:.4f} s/batch shards "
                  f"(batch {args.batch}, {device})")
        print(f"materialize --depth-weights: {once:.1f} s for the manifest's boxes")


if __name__ == "__main__":
    main()
