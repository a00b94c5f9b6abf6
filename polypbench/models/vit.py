"""ViT-Tiny/16 (timm ``vit_tiny_patch16_384``), plain (``vit-tiny``) and gated (``vit-tiny-hag``).

timm builds the ViT (``pretrained=False`` always); the gated variant assigns a :class:`Gate` over the 192 token
features to each block's ``ls1`` and ``ls2`` slot (the LayerScale slots, ``nn.Identity`` in this model), so that
``x = x + attn(norm1(x)) * sigmoid(g1)`` and ``x = x + mlp(norm2(x)) * sigmoid(g2)``, as in the reference code:
two gates per block, 24 in all. The head is the shared :class:`Head` on the pooled embedding (ungated).
``img_size`` defaults to the model's registered input size (:data:`VIT_INPUT`, the reference 384).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polypbench.errors import ConfigError
from polypbench.load.streams import single_stream
from polypbench.models.gates import Gate
from polypbench.models.heads import Head
from polypbench.models.registry import REFERENCE_INPUT, register_model
from polypbench.models.weights import CachedWeights, load_backbone

VIT_TINY_IMAGENET = CachedWeights(hf_repo="timm/vit_tiny_patch16_384.augreg_in21k_ft_in1k",
                                  url="https://huggingface.co/timm/vit_tiny_patch16_384.augreg_in21k_ft_in1k")
"""timm's default ``vit_tiny_patch16_384`` weights (ImageNet-21k, fine-tuned on ImageNet-1k at 384), in the
Hugging Face cache. The seed ships its own ViT-T ImageNet-1k file (``gr_checkpoints/miccai24_FSG_GR_vit.zip``):
give that as ``weights: PATH``."""
VIT_INPUT = REFERENCE_INPUT
"""The ViT-Tiny models' input defaults (their ``img_size``; a timm checkpoint at another size is resampled)."""


class ViTModel(nn.Module):
    """timm ViT-Tiny/16 backbone (no classifier) -> :class:`Head`. Input (B, 3, img_size, img_size): one
    3-channel stream, ``rgb`` unless ``streams`` names another one (e.g. ``("box_crop",)``: the seed code's RGB
    input; :func:`~polypbench.load.streams.single_stream`); ``img_size`` None: :data:`VIT_INPUT`'s size."""

    def __init__(self, num_outputs: int, *, gated: bool = False, weights: str | Path | None = None,
                 img_size: int | None = None, head_hidden: int = 256, dropout: float = 0.35,
                 streams: Sequence[str] | None = None) -> None:
        super().__init__()
        from timm.models.vision_transformer import checkpoint_filter_fn, vit_tiny_patch16_384

        stream = single_stream(streams)
        if stream.channels != 3:
            raise ConfigError(f"stream {stream.name!r} has {stream.channels} channel(s); the ViT models take one "
                              "3-channel stream (a 1-channel stream: resnet18 or multistream)")

        size = VIT_INPUT.size if img_size is None else img_size
        vit = vit_tiny_patch16_384(pretrained=False, num_classes=0, img_size=size)
        if weights is not None:
            # timm's own filter converts its checkpoints (e.g. resamples pos_embed to img_size).
            load_backbone(vit, weights, drop_prefixes=("head.",), adapt=lambda s: checkpoint_filter_fn(s, vit),
                          expected="a timm vit_tiny_patch16_384 state dict")
        if gated:
            for block in vit.blocks:
                block.ls1 = Gate(vit.embed_dim, dim=-1)
                block.ls2 = Gate(vit.embed_dim, dim=-1)
        self.backbone = vit
        self.head = Head(vit.num_features, num_outputs, head_hidden, dropout, gated=False)

    def reference_parameters(self) -> list[nn.Parameter]:
        """The parameters in the seed FSGViT's order (what the ``paper`` step's joint clip sums in): its two gates
        are parameters of each block itself, listed before the block's layers; everything else in module order."""
        blocks = {id(p): block for block in self.backbone.blocks for p in block.parameters()}
        order: list[nn.Parameter] = []
        seen: set[int] = set()
        for p in self.parameters():
            block = blocks.get(id(p))
            group = [p] if block is None else [
                *(g.logit for g in (block.ls1, block.ls2) if isinstance(g, Gate)), *block.parameters()]
            for q in group:
                if id(q) not in seen:
                    seen.add(id(q))
                    order.append(q)
        return order

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled (class-token) embedding, (B, 192)."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model("vit-tiny", VIT_INPUT, VIT_TINY_IMAGENET)
def vit_tiny(num_outputs: int, **kw: Any) -> ViTModel:
    """timm ViT-Tiny/16 (random init) with the shared head; no gates."""
    return ViTModel(num_outputs, gated=False, **kw)


@register_model("vit-tiny-hag", VIT_INPUT, VIT_TINY_IMAGENET)
def vit_tiny_hag(num_outputs: int, **kw: Any) -> ViTModel:
    """ViT-Tiny/16 with a gate in each block's ls1 and ls2 slot (24 gates)."""
    return ViTModel(num_outputs, gated=True, **kw)
