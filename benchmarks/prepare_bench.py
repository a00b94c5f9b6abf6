"""Benchmark `polypbench prepare real-colon` against the reference approach and the I/O floor.

Writes a REAL-Colon-layout dump with N annotation XML files (default 204,000 over the 60 real videos, about
12.5% with a box, like the real release) whose frames are hard links to one tiny JPEG (the cost measured is
annotation parsing), then measures, side by side in one run, on a warm page cache:

- io-floor: list the folders and read every XML file's bytes, nothing parsed;
- polypbench: the real converter (`polypbench.prepare.prepare`), with 1 and with all worker processes;
- reference: the HAG/GR code's approach (per-file ElementTree parse, a metadata lookup per object and one
  pandas concat per file, flushed every 5,000 rows), timed on a prefix of the files because it is quadratic
  within each window; its rate is reported for that prefix.

Usage: python benchmarks/prepare_bench.py [--files 204000] [--reference-files 20000] [--dir /tmp/pb_bench]
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from polypbench import catalog
from polypbench.prepare import prepare

T = TypeVar("T")

XML = (
    "<annotation>\n\t<version_fmt>1.0</version_fmt>\n\t<folder>{vid}_frames</folder>\n\t<filename>{vid}_{t}.jpg</filename>\n"
    "\t<source>\n\t\t<database>cosmoimd</database>\n\t\t<release>v1.0_20230228</release>\n\t</source>\n"
    "\t<size>\n\t\t<width>1352</width>\n\t\t<height>1080</height>\n\t\t<depth>3</depth>\n\t</size>\n{objects}</annotation>\n"
)
OBJECT = (
    "\t<object>\n\t\t<name>lesion</name>\n\t\t<unique_id>{uid}</unique_id>\n\t\t<box_id>1</box_id>\n\t\t<bndbox>\n"
    "\t\t\t<xmin>{x0}</xmin>\n\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
)


def generate(root: Path, n_files: int, seed: int = 0) -> int:
    """Write the dump; return the number of boxes."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for name in ("lesion_info.csv", "video_info.csv"):
        shutil.copyfile(catalog.shipped_path("real-colon", name), root / name)
    lesions = catalog.read_real_colon_lesions()
    by_video = lesions.groupby("unique_video_name")["unique_object_id"].apply(list).to_dict()
    videos = catalog.read_real_colon_videos()["unique_video_name"].tolist()
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    per_video, boxes = n_files // len(videos), 0
    for vid in videos:
        (root / f"{vid}_frames").mkdir()
        (root / f"{vid}_annotations").mkdir()
        ids = by_video.get(vid, [])
        tiny = root / f".tiny_{vid}.jpg"  # one link target per video: ext4 caps a file at 65,000 links
        tiny.write_bytes(jpeg.getvalue())
        suffix = ".0" if vid == "001-012" else ""
        positive = rng.random(per_video) < (0.25 if ids else 0.0)  # about 12.5% of all files carry a box
        for t in range(per_video):
            objects = ""
            if positive[t]:
                x0, y0 = (int(v) for v in rng.integers(0, 900, 2))
                objects = OBJECT.format(uid=ids[t % len(ids)], x0=x0, x1=x0 + 200, y0=y0, y1=y0 + 150)
                boxes += 1
            stem = f"{vid}_{t}{suffix}"
            (root / f"{vid}_annotations" / f"{stem}.xml").write_text(XML.format(vid=vid, t=t, objects=objects))
            os.link(tiny, root / f"{vid}_frames" / f"{stem}.jpg")
    return boxes


def io_floor(root: Path) -> int:
    n = 0
    for entry in os.scandir(root):
        if entry.name.endswith("_annotations"):
            for f in os.scandir(entry.path):
                with open(f.path, "rb") as fh:
                    fh.read()
                n += 1
    return n


def reference(root: Path, limit: int) -> int:
    """The HAG/GR code's loop: ET parse per file, .loc lookup per object, pd.concat per file, flush at 5000."""
    lesions = pd.read_csv(root / "lesion_info.csv").set_index("unique_object_id")
    df, n = pd.DataFrame(), 0
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.name.endswith("_annotations"):
            continue
        for f in sorted(os.scandir(entry.path), key=lambda e: int(float(e.name[:-4].rsplit("_", 1)[1]))):
            if n >= limit:
                return n
            n += 1
            tree = ET.parse(f.path).getroot()

            def text(node: ET.Element, path: str) -> str:
                return node.findtext(path) or ""  # the reference code assumes every field is there

            new = []
            for obj in tree.findall("object"):
                uid = text(obj, "unique_id")
                new.append({"unique_id": uid, "frame_id": f.name[:-4].rsplit("_", 1)[1],
                            **{f"bbox_{c}": int(text(obj, f"bndbox/{c}")) for c in ("xmin", "xmax", "ymin", "ymax")},
                            "width": int(text(tree, "size/width")), "height": int(text(tree, "size/height")),
                            "gt": float(lesions.loc[uid, "size [mm]"])})
            df = pd.concat([df, pd.DataFrame(new)]).drop_duplicates()
            if len(df) >= 5000:
                df = pd.DataFrame()  # the reference writes these rows to a CSV part here (not timed)
    return n


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=204_000)
    parser.add_argument("--reference-files", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pb_prepare_bench"))
    args = parser.parse_args()
    raw = args.dir / "raw"
    shutil.rmtree(args.dir, ignore_errors=True)
    t_gen, boxes = timed(generate, raw, args.files)
    print(f"generated {args.files} XML files ({boxes} boxes) in {t_gen:.1f} s under {raw}")
    io_floor(raw)  # warm the page cache for every contender alike
    t_io, n = timed(io_floor, raw)
    rows = [("io-floor (list + read bytes)", n, t_io)]
    for workers in (1, os.cpu_count() or 1):
        out = args.dir / f"out{workers}"
        t, report = timed(functools.partial(prepare, "real-colon", raw, out, workers=workers))
        assert report.rows == boxes, (report.rows, boxes)
        rows.append((f"polypbench prepare --workers {workers}", report.files, t))
    t_ref, n_ref = timed(reference, raw, args.reference_files)
    rows.append((f"reference (ET + concat per file; first {n_ref} files)", n_ref, t_ref))
    print("\n| approach | files | seconds | annotations/s | vs io-floor |\n|---|---|---|---|---|")
    floor_rate = rows[0][1] / rows[0][2]
    for name, n, t in rows:
        print(f"| {name} | {n} | {t:.2f} | {n / t:,.0f} | {floor_rate / (n / t):.2f}x slower |")
    best = max(r[1] / r[2] for r in rows[1:3])
    print(f"\nprojected for the real 2,757,723 XML files: {2_757_723 / best / 60:.1f} min with the best polypbench "
          f"setting; reference {2_757_723 / (n_ref / t_ref) / 3600:.1f} h at its prefix rate (slower on longer runs)")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
