"""A grid file: configs x folds x seeds under one evaluation protocol, and the runs it expands to.

```yaml
name: paper                 # a label for the results table
protocol: paper             # paper: the seed code's per-object folds (test fold k, validation k+1 mod 6)
                            # public: the published per-patient split (fold null = train / validation / test)
configs: [resnet18-paper, resnet18-hag-paper]   # packaged config names or YAML paths
folds: [0, 1, 2, 3, 4, 5]   # paper: the test fold of each run; public: null, or cross-validation folds
seeds: [0]
set: [epochs=40]            # --set overrides applied to every run (the command line's come after)
```

Packaged grids live in ``polypbench/configs/grids/`` (``paper``, ``public``); ``polypbench sweep NAME`` finds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from polypbench.errors import ConfigError, choice_error
from polypbench.fileio import read_text
from polypbench.schema import PROTOCOLS
from polypbench.train.config import CONFIG_DIR, TrainConfig, load_config

GRID_DIR = CONFIG_DIR / "grids"
GRID_KEYS = ("name", "protocol", "configs", "folds", "seeds", "set")


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: what to train and where (picklable, for process pools and SLURM jobs)."""

    config: str
    fold: int | None
    seed: int
    protocol: str
    run_dir: Path
    manifests: tuple[str, ...]
    overrides: tuple[str, ...] = ()

    def changes(self) -> dict[str, Any]:
        """The config values the grid sets for this run (typed, applied after the overrides)."""
        return {"prepared": list(self.manifests), "seed": self.seed, "protocol": self.protocol, "fold": self.fold}

    def train_config(self) -> TrainConfig:
        """The run's validated config: its file, the grid's and the command line's overrides, then
        :meth:`changes`."""
        return load_config(self.config, self.overrides, self.changes())

    @property
    def label(self) -> str:
        """``<config> fold <k> seed <s>`` (fold omitted for the default split)."""
        fold = "" if self.fold is None else f" fold {self.fold}"
        return f"{Path(self.config).stem}{fold} seed {self.seed}"


@dataclass(frozen=True)
class Grid:
    """A parsed grid file (see the module docstring)."""

    name: str
    protocol: str
    configs: tuple[str, ...]
    folds: tuple[int | None, ...] = (None,)
    seeds: tuple[int, ...] = (0,)
    overrides: tuple[str, ...] = field(default=())

    def runs(self, out: Path, manifests: tuple[str, ...], extra: tuple[str, ...] = ()) -> list[RunSpec]:
        """Every run, config by config, then fold, then seed; each in ``out/runs/<config>/<fold-seed>``."""
        specs = []
        for config in self.configs:
            for fold in self.folds:
                for seed in self.seeds:
                    where = out / "runs" / model_label(config) / run_label(fold, seed)
                    specs.append(RunSpec(config, fold, seed, self.protocol, where, manifests,
                                         (*self.overrides, *extra)))
        return specs


def model_label(config: str) -> str:
    """A config's name as a folder name: the packaged name, or a YAML file's stem."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(config).stem)


def run_label(fold: int | None, seed: int) -> str:
    """``fold3-seed0``, or ``default-seed0`` for the default split."""
    return f"{'default' if fold is None else f'fold{fold}'}-seed{seed}"


def packaged_grids() -> list[str]:
    """Names of the packaged grids."""
    return sorted(p.stem for p in GRID_DIR.glob("*.yaml"))


def _ints(value: Any, key: str, source: str, *, nullable: bool) -> tuple[Any, ...]:
    items = value if isinstance(value, list) else [value]
    out: list[int | None] = []
    for item in items:
        if item is None and nullable:
            out.append(None)
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            out.append(item)
        else:
            raise ConfigError(f"{source}: {key}: {item!r} is not a non-negative integer"
                              + (" or null" if nullable else ""))
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"{source}: {key}: expected a non-empty list without repeats")
    return tuple(out)


def load_grid(name_or_path: str | Path) -> Grid:
    """A grid from a YAML path or a packaged grid name; one-line errors naming the file and key."""
    path = Path(name_or_path)
    if not path.is_file():
        packaged = GRID_DIR / f"{name_or_path}.yaml"
        if path.suffix or not packaged.is_file():
            raise ConfigError(f"grid {str(name_or_path)!r} is neither a file nor a packaged grid; expected a YAML "
                              f"path or one of: {', '.join(packaged_grids())}")
        path = packaged
    source = str(path)
    try:
        doc = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(doc) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; expected one of: {', '.join(GRID_KEYS)}")
    protocol = doc.get("protocol", "public")
    if protocol not in PROTOCOLS:
        raise choice_error("protocol", protocol, PROTOCOLS)
    configs = doc.get("configs")
    if not isinstance(configs, list) or not configs or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"{source}: configs: expected a non-empty list of config names or YAML paths")
    overrides = doc.get("set") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ConfigError(f"{source}: set: expected a list of key=value overrides")
    folds = _ints(doc.get("folds", [None]), "folds", source, nullable=True)
    if protocol == "paper" and None in folds:
        raise ConfigError(f"{source}: folds: the paper protocol needs a test fold per run (0..5), not null")
    labels = [model_label(c) for c in configs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{source}: configs: two configs share the name {labels[0]!r}; expected distinct names")
    return Grid(str(doc.get("name") or path.stem), protocol, tuple(configs), folds,
                _ints(doc.get("seeds", [0]), "seeds", source, nullable=False), tuple(overrides))
