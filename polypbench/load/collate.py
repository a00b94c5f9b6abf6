"""Batching the per-sample dicts of :func:`~polypbench.load.load_split` and :func:`~polypbench.load.load_polyps`.

Samples of fixed-size crops (``load_split``'s default) go through torch's default collate as they are. For crops
at their native size (``size=None``) or per-polyp items with different numbers of frames, :func:`pad_collate`
zero-pads instead. Torch's default collate refuses crops of mixed sizes with one line that says so (the crops'
own tensor types, :class:`CropImage` and :class:`PolypVideo`, are registered with it), instead of torch's
``stack expects each tensor to be equal size``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate
from torch.utils.data._utils.collate import collate_tensor_fn, default_collate_fn_map
from torchvision import tv_tensors

from polypbench.errors import ConfigError


class CropImage(tv_tensors.Image):
    """The ``image`` of a sample at its native crop size (uint8 CHW): a :class:`tv_tensors.Image` in every
    respect (transforms v2 keep the type), whose default collate refuses mixed sizes in one line."""


class PolypVideo(tv_tensors.Video):
    """The ``image`` of a per-polyp item (uint8 TCHW, T frames): a :class:`tv_tensors.Video` (transforms v2 apply
    one random draw to every frame), whose default collate refuses mixed frame counts or sizes in one line."""


def pad_stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors stacked on a new first dimension, each zero-padded at the end of every dimension to the largest
    (CHW images: at the bottom and right) when their shapes differ."""
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) == 1:
        return torch.stack([t.as_subclass(torch.Tensor) for t in tensors])
    if len({len(s) for s in shapes}) > 1:
        raise ConfigError(f"cannot pad tensors of {len(next(iter(shapes)))} and another number of dimensions; "
                          "expected samples of one kind")
    largest = [max(sizes) for sizes in zip(*shapes, strict=True)]
    padded = []
    for t in tensors:
        pad: list[int] = []
        for dim in reversed(range(t.dim())):  # F.pad takes (last dim start, end, previous dim start, end, ...)
            pad += [0, largest[dim] - t.shape[dim]]
        padded.append(torch.nn.functional.pad(t.as_subclass(torch.Tensor), pad))
    return torch.stack(padded)


def pad_collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One batch of per-sample dicts, as torch's default collate makes it, except that tensors whose shapes differ
    between samples are zero-padded to the largest (:func:`pad_stack`) and the batch gains ``<key>_shape``, the
    (B, ndim) int64 shapes before padding. Native-size crops (``load_split(..., size=None)``) give ``image``
    (B, 3, H, W) padded at the bottom and right and ``image_shape``; per-polyp items (:func:`load_polyps`) with
    different frame counts give ``image`` (B, T, 3, S, S) padded with empty frames at the end, ``boxes`` and
    ``frame_index`` padded likewise, and their shapes (``n_frames`` says it too). Strings stay lists.

    ``DataLoader(load_split(prepared, "train", size=None), batch_size=8, collate_fn=pad_collate)``
    """
    if not samples:
        raise ConfigError("an empty batch; expected at least one sample")
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) > 1:
            out[key] = pad_stack(values)
            out[f"{key}_shape"] = torch.tensor([list(v.shape) for v in values], dtype=torch.int64)
        else:
            out[key] = default_collate(values)
    return out


CollateMap = dict[type | tuple[type, ...], Callable[..., Any]]


def _refuse_mixed_sizes(batch: Sequence[torch.Tensor], *, collate_fn_map: CollateMap | None = None) -> torch.Tensor:
    """Torch's tensor collate, after checking that the crops have one size (one line otherwise)."""
    shapes = sorted({tuple(t.shape) for t in batch})
    if len(shapes) > 1:
        seen = ", ".join("x".join(map(str, s)) for s in shapes[:3]) + (", ..." if len(shapes) > 3 else "")
        raise ConfigError(f"crops of different sizes in one batch ({seen}); expected load_split(..., size=N) or "
                          "load_polyps(..., max_frames=N) for fixed sizes, or "
                          "DataLoader(..., collate_fn=polypbench.load.pad_collate)")
    return collate_tensor_fn(batch, collate_fn_map=collate_fn_map)


# Keyed on polypbench's own types (exact types: torch looks those up first), so no other tensor's collate changes.
default_collate_fn_map[CropImage] = _refuse_mixed_sizes
default_collate_fn_map[PolypVideo] = _refuse_mixed_sizes
