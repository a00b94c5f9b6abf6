"""The reference grid: configs x folds x seeds trained and predicted one run per folder, on this machine or a SLURM
cluster, then aggregated the paper's way and ours (``polypbench sweep``; docs/training.md)."""

from __future__ import annotations

from polypbench.sweep.grid import Grid, RunSpec, load_grid, packaged_grids
from polypbench.sweep.run import LAUNCHERS, Outcome, launch, run_one

__all__ = ["LAUNCHERS", "Grid", "Outcome", "RunSpec", "launch", "load_grid", "packaged_grids", "run_one"]
