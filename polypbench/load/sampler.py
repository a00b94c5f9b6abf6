"""The polyp-balanced sampler: the same number of frames of every polyp per epoch, seeded, shared out under DDP."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

RULES = ("replacement", "seed", "subset")
"""How a polyp's frames are drawn (``rule``; the config key ``frame_sampler`` takes the first two; ``subset`` is
the seed's rule without the skip, for validation subsets)."""


class FramesPerPolyp(Sampler[int]):
    """Each epoch, ``n`` frames of every polyp (every group of equal ``keys``; without replacement when it has that
    many), shuffled; ``n=None`` takes every sample once. Seeded by ``seed`` and the epoch (call :meth:`set_epoch`),
    so a run is reproducible and epochs differ.

    ``rule="replacement"`` (default): every polyp gives ``n`` frames, drawn with replacement where it has fewer.
    ``rule="seed"``: the HAG/GR seed code's ``InstanceSampler``: min(``n``, available) frames without replacement,
    and polyps with a single frame are skipped (its ``len(available_frames) > 1`` test), counted in
    :attr:`skipped`.

    A polyp of 3,000 frames and one of 30 then weigh the same in training (the training loop uses it with
    ``frames_per_polyp_per_epoch``). ``keys``: one key per sample in dataset order, e.g.
    ``load_split(...).rows["polyp_id"]``; :meth:`for_dataset` reads them from a dataset.

    Under DistributedDataParallel, rank ``rank`` of ``world_size`` takes every ``world_size``-th index of the same
    epoch order (padded by wrapping round to a multiple of ``world_size``): the ranks never overlap and together
    cover the epoch.
    """

    def __init__(self, keys: Sequence[object], n: int | None, seed: int = 0, *, rank: int = 0,
                 world_size: int = 1, rule: str = "replacement") -> None:
        if rule not in RULES:
            from polypbench.errors import choice_error

            raise choice_error("frame_sampler", rule, RULES)
        groups: dict[object, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        self.groups = list(groups.values())
        self.skipped = 0
        """Polyps left out of every epoch (``rule="seed"``: those with a single frame)."""
        if rule == "seed" and n is not None:
            self.skipped = sum(len(g) == 1 for g in self.groups)
            self.groups = [g for g in self.groups if len(g) > 1]
        self.n, self.seed, self.epoch, self.rule = n, seed, 0, rule
        self.rank, self.world_size = rank, world_size
        if n is None:
            self.total = sum(len(g) for g in self.groups)
        else:
            self.total = (sum(min(n, len(g)) for g in self.groups) if rule in ("seed", "subset")
                          else n * len(self.groups))

    @classmethod
    def for_dataset(cls, dataset: object, n: int | None, seed: int = 0, *, rank: int = 0,
                    world_size: int = 1) -> FramesPerPolyp:
        """The sampler over a :func:`~polypbench.load.load_split` dataset (anything with a ``rows`` table holding
        ``dataset`` and ``polyp_id``, one row per sample)."""
        rows = getattr(dataset, "rows", None)
        if rows is None or "polyp_id" not in rows:
            raise TypeError(f"{type(dataset).__name__} has no rows table with polyp_id; expected a load_split dataset")
        keys = list(zip(rows["dataset"].astype(str), rows["polyp_id"].astype(str), strict=True))
        return cls(keys, n, seed, rank=rank, world_size=world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.total // self.world_size)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.n is None:
            order = np.concatenate(self.groups) if self.groups else np.array([], dtype=np.int64)
        else:
            if self.rule in ("seed", "subset"):
                picks = [rng.choice(g, min(self.n, len(g)), replace=False) for g in self.groups]
            else:
                picks = [rng.choice(g, self.n, replace=len(g) < self.n) for g in self.groups]
            order = np.concatenate(picks) if picks else np.array([], dtype=np.int64)
        order = rng.permutation(order)
        if self.world_size > 1 and len(order):
            order = np.resize(order, len(self) * self.world_size)[self.rank::self.world_size]
        return iter(order.tolist())
