"""Batched device-side augmentation (``device_augment: true``): geometry, boxes, colour, and a training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from polypbench.load import PixelSpec, load_split
from polypbench.train import fit, load_config
from polypbench.train.data import collate, model_input
from polypbench.train.device_augment import DeviceAugment, WindowScale

TWO_STREAMS = PixelSpec(size=48, augment="device", streams=("rgb", "masked"))
STILL = {"degrees": 0.0, "flip": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def _batch(n: int = 3, size: int = 16, pad: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``size + 2 * pad`` whose centre ``size`` x ``size`` is the window."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size + 2 * pad, size + 2 * pad), generator=g, dtype=torch.uint8)
    window = torch.tensor([[pad, pad, pad + size, pad + size]] * n, dtype=torch.float32)
    return images, window


def test_without_augmentation_the_output_is_the_window() -> None:
    images, window = _batch()
    out, box = DeviceAugment(16, **STILL)(images, window, torch.tensor([[6.0, 5.0, 10.0, 12.0]] * 3))
    assert torch.allclose(out, images[:, :, 4:20, 4:20].float() / 255, atol=1e-5)
    assert torch.allclose(box, torch.tensor([[2.0, 1.0, 6.0, 8.0]] * 3))  # window coordinates


def test_flips_move_pixels_and_boxes_together() -> None:
    images, window = _batch()
    out, box = DeviceAugment(16, **dict(STILL, flip=1.0))(images, window, torch.tensor([[6.0, 5.0, 10.0, 12.0]] * 3))
    assert torch.allclose(out, images[:, :, 4:20, 4:20].flip(-1, -2).float() / 255, atol=1e-5)
    assert torch.allclose(box, torch.tensor([[10.0, 8.0, 14.0, 15.0]] * 3))


def test_turns_fill_corners_from_context_and_jitter_changes_colour() -> None:
    images, window = _batch(n=8, pad=8)
    aug = DeviceAugment(16, seed=3)
    out, box = aug(images, window, torch.tensor([[14.0, 14.0, 18.0, 18.0]] * 8))  # centred in the window
    assert out.shape == (8, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert (out[:, :, 0, 0] > 0).any()  # a turned corner reads real context, not black padding
    assert ((box[:, 2] - box[:, 0]) >= 4 - 1e-4).all()
    assert torch.allclose((box[:, 0] + box[:, 2]) / 2, torch.full((8,), 8.0))
    again, _ = DeviceAugment(16, seed=3)(images, window)
    assert torch.equal(out, again)  # seeded
    still, _ = DeviceAugment(16, **STILL)(images, window)
    assert not torch.allclose(out, still, atol=0.05)


def test_window_scale_keeps_context_and_collate_pads(prepared: dict) -> None:
    data = load_split(prepared["sun"].out, "train", transform=WindowScale(48))
    batch = collate([data[i] for i in range(4)])
    assert batch.image is not None and batch.window is not None
    assert batch.image.dtype == torch.uint8 and batch.window.shape == (4, 4)
    assert torch.allclose(batch.window[:, 2] - batch.window[:, 0], torch.full((4,), 48.0), atol=1.0)
    x = model_input(batch, TWO_STREAMS, torch.device("cpu"), augment=DeviceAugment(48, seed=0))
    assert x["rgb"].shape == x["masked"].shape == (4, 3, 48, 48)
    sample = WindowScale(20)({"image": tv_tensors.Image(torch.zeros(3, 30, 40, dtype=torch.uint8)),
                              "window": torch.tensor([5.0, 5.0, 15.0, 15.0])})
    assert sample["image"].shape == (3, 60, 80) and sample["window"].tolist() == [10.0, 10.0, 30.0, 30.0]


@pytest.mark.slow
def test_fit_with_device_augment_is_reproducible(prepared: dict, tmp_path: Path) -> None:
    overrides = ["img_size=48", "epochs=1", "batch_size=8", "frames_per_polyp_per_epoch=1", "n_bootstrap=0",
                 "augment=true", "device_augment=true", "model=tiny-hag", "model_kwargs={streams: [rgb, masked]}",
                 f"prepared=[{prepared['sun'].out}]"]
    a = fit(load_config("demo", overrides), tmp_path / "a")
    b = fit(load_config("demo", overrides), tmp_path / "b")
    assert a.model is not None and b.model is not None
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                     strict=True))
    loader = DataLoader(load_split(prepared["sun"].out, "train", transform=WindowScale(48)), batch_size=4,
                        collate_fn=collate)
    assert next(iter(loader)).window is not None


@pytest.mark.slow
def test_device_decode_trains_from_encoded_shards(prepared: dict, tmp_path: Path) -> None:
    import shutil

    from polypbench.errors import ConfigError, InputError
    from polypbench.shards import materialize
    from polypbench.train.data import build_data

    out = Path(shutil.copytree(prepared["sun"].out, tmp_path / "sun"))
    base = ["img_size=48", "margin=0.5", "epochs=1", "batch_size=8", "frames_per_polyp_per_epoch=1", "n_bootstrap=0",
            "augment=true", "device_augment=true", "device_decode=true", "model=tiny-hag",
            "model_kwargs={streams: [rgb, masked]}", f"prepared=[{out}]"]
    with pytest.raises(InputError, match="materializ"):  # no shards yet: device_decode needs them
        build_data(load_config("demo", base))
    with pytest.raises(ConfigError, match="needs device_augment: true"):
        load_config("demo", [*base, "device_augment=false"])
    materialize(out, size=48, workers=1)
    batch = next(iter(build_data(load_config("demo", base)).train))
    assert batch.image is None and batch.jpeg is not None and batch.window is not None
    assert len(batch.jpeg) == 8 and batch.window.shape == (8, 4)
    x = model_input(batch, TWO_STREAMS, torch.device("cpu"), augment=DeviceAugment(48, seed=0))
    assert x["rgb"].shape == x["masked"].shape == (8, 3, 48, 48)
    summary = fit(load_config("demo", base), tmp_path / "run")  # decode_jpeg on the CPU here, nvJPEG on a GPU
    assert summary.checkpoint.is_file()
