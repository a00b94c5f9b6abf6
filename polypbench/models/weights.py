"""Load a local backbone checkpoint (torchvision or timm state dict) strictly, with one-line errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
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
    try:
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
