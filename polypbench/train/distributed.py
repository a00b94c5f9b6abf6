"""DistributedDataParallel for ``torchrun --nproc_per_node N -m polypbench train ...``.

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads
them and joins the process group (NCCL on CUDA, gloo on CPU). Each rank trains on its own share of every epoch
(:class:`~polypbench.train.data.FramesPerPolyp` with ``rank``/``world_size``); gradients are averaged across
ranks before every optimizer step, so all ranks keep identical weights.

Gradient routing and DDP: DDP averages the gradients of the parameters that require grad when it is built, in
the backward of a forward that went through the DDP wrapper. With ``gr_mode: gr`` the wrapper is built with the
gates frozen, so it owns the main parameters only: pass 2 (main) runs through the wrapper as usual, while pass 1
(gates) runs on the wrapped module directly and its few gate gradients are averaged with one
:func:`all_reduce_mean`. ``paper`` and ``off`` run both passes through the wrapper.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether it set up the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, logs and writes the run's files."""
        return self.rank == 0


def setup(device_type: str) -> DistContext:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1); otherwise a
    single-process context. On CUDA each rank uses GPU ``LOCAL_RANK``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=torch.device(device_type))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(device_type, local_rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    log.info("rank %d of %d on %s", rank, world_size, device)
    return DistContext(rank, world_size, local_rank, device, owns)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext, frozen: Iterable[nn.Parameter] = ()) -> nn.Module:
    """``model`` in DistributedDataParallel (unchanged when not distributed). Parameters in ``frozen`` are left
    out of DDP's gradient averaging (their ``requires_grad`` is off while the wrapper is built)."""
    if not ctx.enabled:
        return model
    frozen = [p for p in frozen if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_mean(params: Iterable[nn.Parameter]) -> None:
    """Average the ``.grad`` of ``params`` across ranks (in one flat buffer); no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def gather_objects(obj: T, ctx: DistContext) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed. A collective: every rank
    calls it."""
    if not ctx.enabled:
        return [obj]
    gathered: list[T | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return [g for g in gathered if g is not None]


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for p in unwrap(model).parameters():
        digest.update(p.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def replica_digests(model: nn.Module, ctx: DistContext) -> list[str]:
    """Every rank's :func:`parameter_digest` (one entry when not distributed)."""
    mine = parameter_digest(model)
    if not ctx.enabled:
        return [mine]
    gathered: list[str | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return [str(d) for d in gathered]
