"""Inference: one path from a model to its frame predictions, for ``predict``, ``sweep``, training's validation and
the leaderboard's model runs.

- :mod:`~polypbench.inference.spec` (no torch): :class:`InferenceConfig`, the part of a training config that
  inference reads, derived in one place (:meth:`InferenceConfig.of_training`); :class:`ModelRun`, one sandboxed
  run; the checks of a submitted config and of the weights' size offset.
- :mod:`~polypbench.inference.sandbox` (no torch): the limited child process and its :class:`Limits`.
- :mod:`~polypbench.inference.build`: a model from a run (``best.pt``, ``last.pt``, ``model.safetensors`` +
  ``config.yaml``) or from a config and safetensors weights.
- :mod:`~polypbench.inference.loop`: :func:`run_inference`, the loop.
- :mod:`~polypbench.inference.predict`: :func:`~polypbench.inference.predict.predict` (a run's model) and
  :func:`~polypbench.inference.predict.predict_model` (a loaded one).
- :mod:`~polypbench.inference.child`: ``python -m polypbench.inference SPEC``, the sandboxed child.

Importing this package imports nothing else: the leaderboard's web process uses the torch-free modules only.
"""

from __future__ import annotations

from polypbench.lazy import lazy_exports

_LAZY = {
    "InferenceConfig": "polypbench.inference.spec",
    "ModelRun": "polypbench.inference.spec",
    "ModelError": "polypbench.inference.spec",
    "Limits": "polypbench.inference.sandbox",
    "run_job": "polypbench.inference.sandbox",
    "Model": "polypbench.inference.build",
    "build_model": "polypbench.inference.build",
    "load_run": "polypbench.inference.build",
    "load_weights": "polypbench.inference.build",
    "run_inference": "polypbench.inference.loop",
}
__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
