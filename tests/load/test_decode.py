"""DCT-domain decoding of the crop window: the same region as a full decode, fewer pixels, one-line errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from polypbench import load_split
from polypbench.errors import InputError
from polypbench.load import crop_window
from polypbench.load.decode import dct_scale, decode_crop, decode_jpeg_batch, decode_window
from polypbench.manifest import Manifest
from tests.helpers import link_copy, replace_file


def _resized(image: torch.Tensor, size: int = 64) -> torch.Tensor:
    return F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True)[0]


@pytest.mark.parametrize(("side", "target", "k"), [(800, 384, 2), (767, 384, 1), (1536, 384, 4), (5000, 384, 8),
                                                   (100, 384, 1), (800, None, 1), (96, 24, 4)])
def test_dct_scale_keeps_the_window_at_least_target_pixels(side: int, target: int | None, k: int) -> None:
    assert dct_scale(side, target) == k


def test_dct_decode_gives_the_full_decode_crop_at_a_smaller_scale(prepared) -> None:
    raw, out = prepared["real-colon"].raw, prepared["real-colon"].out
    rows = Manifest.open(out).select("test")
    scales = set()
    for row in rows.itertuples():
        box = (row.xmin, row.ymin, row.xmax, row.ymax)
        full, full_box = decode_crop(raw / row.frame_path, box)
        small, small_box = decode_crop(raw / row.frame_path, box, target=48)
        left, top, right, bottom = crop_window(box, row.width, row.height)
        assert full.shape[1:] == (bottom - top, right - left)
        assert full_box == (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
        k = round(full.shape[2] / small.shape[2])
        scales.add(k)
        assert k == 1 or min(small.shape[1:]) >= 48
        # same region: the window's corner moves by at most half a decoded pixel, the box is exact in the crop
        sl, st = round(box[0] / k - small_box[0]), round(box[1] / k - small_box[1])
        assert abs(sl * k - left) <= k / 2 and abs(st * k - top) <= k / 2
        # same pixels: the DCT-domain decode is the full decode averaged over k x k blocks, within JPEG tolerance
        with Image.open(raw / row.frame_path) as frame:
            reduced = np.asarray(frame.convert("RGB").reduce(k)).astype(int)
        expected = reduced[st:st + small.shape[1], sl:sl + small.shape[2]]
        assert np.abs(small.permute(1, 2, 0).numpy().astype(int) - expected).mean() < 3
    assert {1, 2, 4} <= scales, "the test split no longer has windows for every scale"


def test_decode_size_none_is_the_full_resolution_crop(prepared) -> None:
    raw, out = prepared["sun"].raw, prepared["sun"].out
    row = Manifest.open(out).select("test").iloc[0]
    box = (row["xmin"], row["ymin"], row["xmax"], row["ymax"])
    crop, _ = decode_crop(raw / row["frame_path"], box)
    left, top, right, bottom = crop_window(box, row["width"], row["height"])
    with Image.open(raw / row["frame_path"]) as frame:
        expected = np.asarray(frame.convert("RGB"))[top:bottom, left:right]
    assert np.array_equal(crop.permute(1, 2, 0).numpy(), expected)


def test_load_split_decode_size_scales_image_and_box_together(prepared) -> None:
    out = prepared["real-colon"].out
    full, small = load_split(out, "train", size=None), load_split(out, "train", decode_size=24, size=None)
    assert type(small).__name__ == "PolypFrames" and len(full) == len(small)
    for i in range(0, len(full), 17):
        a, b = full[i], small[i]
        assert a.keys() == b.keys() and b["image"].dtype == torch.uint8
        k = a["image"].shape[2] / b["image"].shape[2]
        assert torch.allclose(a["boxes"] / k, b["boxes"].as_subclass(torch.Tensor), atol=1.0)
        assert tuple(b["boxes"].canvas_size) == tuple(b["image"].shape[1:])


def test_decode_window_crops_and_scales_an_encoded_image() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    pixels = np.kron(pixels, np.ones((4, 4, 1), dtype=np.uint8))  # 256 x 384, smooth enough for JPEG
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    whole, k = decode_window(buffer.getvalue())
    assert k == 1 and whole.shape == (3, 256, 384)
    part, k = decode_window(buffer.getvalue(), (64, 32, 256, 224), target=96)
    assert k == 2 and part.shape == (3, 96, 96)
    assert (_resized(whole[:, 32:224, 64:256]) - _resized(part)).abs().mean() < 6


def test_corrupt_frame_is_a_one_line_error_naming_the_file(prepared, tmp_path) -> None:
    raw = link_copy(prepared["real-colon"].raw, tmp_path / "raw")
    ds = load_split(prepared["real-colon"].out, "test", raw_root=raw, decode_size=64)
    bad = raw / ds.rows["frame_path"].iloc[0]
    replace_file(bad, b"\xff\xd8\xff\xe0 not a jpeg at all")
    with pytest.raises(InputError) as info:
        ds[0]
    assert str(bad) in str(info.value) and "\n" not in str(info.value) and "unreadable frame" in str(info.value)
    with pytest.raises(InputError, match="<bytes>: unreadable frame"):
        decode_window(b"garbage", name="<bytes>")


def _jpeg(seed: int) -> tuple[bytes, np.ndarray]:
    pixels = np.kron(np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8),
                     np.ones((8, 8, 1), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue(), pixels


def test_decode_jpeg_batch_on_cpu_matches_pillow_without_warnings() -> None:
    # the same function as the GPU path (device="cuda"); on the CPU it proves the batch API and that torchvision's
    # deprecation warning (an error under this suite's filterwarnings) is contained
    batch = [_jpeg(0), _jpeg(1)]
    decoded = decode_jpeg_batch([b for b, _ in batch], device="cpu")
    for (data, _), image in zip(batch, decoded, strict=True):
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert image.shape == (3, 96, 128) and image.dtype == torch.uint8
        assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).mean() < 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (nvJPEG); none on this machine")
def test_decode_jpeg_batch_on_the_gpu() -> None:
    batch = [_jpeg(0), _jpeg(1)]
    decoded = decode_jpeg_batch([b for b, _ in batch], device="cuda")
    for (data, _), image in zip(batch, decoded, strict=True):
        expected = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1)
        assert image.is_cuda and image.shape == expected.shape
        assert (image.cpu().int() - expected.int()).abs().float().mean() < 3
