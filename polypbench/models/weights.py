"""Load a local backbone checkpoint (torchvision or timm state dict) strictly, with one-line errors; find a
backbone's published ImageNet weights in the local torch hub or Hugging Face cache (:class:`CachedWeights`,
the config key ``weights: imagenet``). Nothing here downloads."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from polypbench.errors import InputError

log = logging.getLogger(__name__)


def _short(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (``torch.load`` with ``weights_only=True``; a ``state_dict``/``model``
    wrapper is unwrapped). Missing or unreadable files raise :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found", "a local torchvision/timm state-dict file")
    obj: object
    try:
        if path.suffix == ".safetensors":  # timm's files on the Hugging Face hub
            from safetensors.torch import load_file

            obj = load_file(path)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or non-tensor pickles
        raise InputError(path, f"cannot read weights ({type(exc).__name__})", "a torch state dict") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state dict of tensors", "a torchvision/timm state dict")
    return dict(obj)


def load_backbone(
    module: nn.Module,
    path: str | Path,
    *,
    drop_prefixes: tuple[str, ...] = (),
    adapt: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    expected: str = "a matching state dict",
    assign: bool = False,
) -> None:
    """Load ``path`` into ``module`` strictly (keys and shapes must match).

    ``drop_prefixes`` removes the checkpoint's own classifier (e.g. ``fc.``, ``head.``), which the model replaces;
    ``adapt`` may rewrite tensors first (e.g. the 1-channel depth stem). Any mismatch is one :class:`InputError`.
    ``assign=True`` adopts the file's tensors instead of copying them (for a module built on the meta device).
    """
    state = read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    if adapt is not None:
        state = adapt(state)
    own = module.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    if missing or unexpected:
        problem = f"keys do not match: missing [{_short(missing)}], unexpected [{_short(unexpected)}]"
        raise InputError(path, problem, expected)
    bad = [k for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        k = sorted(bad)[0]
        problem = f"shape mismatch for {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)} ({len(bad)} tensors)"
        raise InputError(path, problem, expected)
    module.load_state_dict(state, strict=True, assign=assign)
    log.info("loaded %d tensors from %s", len(state), path)


@dataclass(frozen=True)
class CachedWeights:
    """Where a backbone's published ImageNet weights lie once downloaded by their own library: torchvision's file
    ``hub_file`` in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``),
    or timm's ``hf_repo`` in the Hugging Face cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``).
    ``url``: where the file comes from, for the message when it is missing."""

    hub_file: str | None = None
    hf_repo: str | None = None
    url: str = ""

    def locate(self) -> Path:
        """The cached file, or an :class:`InputError` naming the file looked for (never a download)."""
        if self.hub_file is not None:
            path = Path(torch.hub.get_dir()) / "checkpoints" / self.hub_file
            if path.is_file():
                return path
        else:
            assert self.hf_repo is not None
            from huggingface_hub import constants, try_to_load_from_cache

            for name in ("model.safetensors", "pytorch_model.bin"):
                found = try_to_load_from_cache(self.hf_repo, name)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
            folder = "models--" + self.hf_repo.replace("/", "--")
            path = Path(constants.HF_HUB_CACHE) / folder / "snapshots" / "*" / "model.safetensors"
        raise InputError(path, "ImageNet weights not in the local cache (nothing is downloaded)",
                         f"that file (from {self.url}), or weights: PATH naming a local copy")


def resolve_weights(weights: str, model: str, imagenet: CachedWeights | None) -> Path | None:
    """The backbone file the config key ``weights`` names for ``model`` (whose ImageNet file is ``imagenet``,
    None where it has none): None for ``none``, the cached file for ``imagenet``, else the path itself (checked
    when loaded)."""
    if weights == "none":
        return None
    if weights == "imagenet":
        if imagenet is None:
            from polypbench.errors import ConfigError

            raise ConfigError(f"config key 'weights': model {model!r} has no published ImageNet weights; expected "
                              "none or a PATH")
        return imagenet.locate()
    return Path(weights)
