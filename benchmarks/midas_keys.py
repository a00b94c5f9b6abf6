"""Derive MiDaS v2.1's parameter names and shapes from the isl-org/MiDaS code, and check ours against it.

``tests/data/midas_v21_384_keys.csv`` (``name,shape``; shape as ``AxBxCxD``, empty for a scalar) is the state
dict of the reference ``MidasNet()`` -- the network ``hubconf.py``'s ``MiDaS`` entry loads ``midas_v21_384.pt``
into -- built from a MiDaS checkout with its ``torch.hub`` backbone download replaced by torchvision's
``resnext101_32x8d(weights=None)`` (the same architecture as WSL's ``resnext101_32x8d_wsl``). Nothing is
downloaded. ``--compare`` also copies the weights of a random reference network into
``polypbench.models.midas.build_midas`` (through a saved file, as a user loads the release) and prints the
largest output difference on random inputs (0.0 when the two compute the same thing).

The project does not depend on MiDaS: this script is run by hand, outside the tests, with timm installed (MiDaS's
``midas/blocks.py`` imports its transformer backbones)::

    git clone https://github.com/isl-org/MiDaS /tmp/MiDaS
    PYTHONPATH=. .venv/bin/python benchmarks/midas_keys.py /tmp/MiDaS --out tests/data/midas_v21_384_keys.csv --compare

Recorded (MiDaS commit 4545977, torch 2.14.1 CPU): 666 tensors, 105,565,929 values; ``--compare`` on
(1, 3, 64, 64) and (2, 3, 96, 128): max |difference| 0.0.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path
from typing import cast

import torch
import torchvision


def reference_midas(checkout: Path) -> torch.nn.Module:
    """MiDaS's own ``MidasNet()`` (random weights) from a checkout, with no network access."""
    sys.path.insert(0, str(checkout))
    torch.hub.load = lambda *_a, **_k: torchvision.models.resnext101_32x8d(weights=None)  # the WSL backbone
    from midas.midas_net import MidasNet

    return MidasNet().eval()


def write_keys(state: dict[str, torch.Tensor], out: Path) -> None:
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "shape"])
        for name, tensor in state.items():
            writer.writerow([name, "x".join(str(n) for n in tensor.shape)])


def compare(reference: torch.nn.Module) -> tuple[float, float]:
    """Largest |difference| between the reference and ours on the same weights (loaded from a saved file), and
    the largest |output|. With random weights the final ReLU gives all zeros, so both networks are compared
    without it (it is the last layer and has no parameters)."""
    from polypbench.models.midas import MIDAS_MEAN, MIDAS_STD, SEED_MIDAS_MEAN, SEED_MIDAS_STD, build_midas

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "midas_v21_384.pt"
        torch.save(reference.state_dict(), path)
        ours = build_midas(path)
    cast(torch.nn.Sequential, reference.get_submodule("scratch.output_conv"))[5] = torch.nn.Identity()
    ours.scratch.output_conv[5] = torch.nn.Identity()
    worst = scale = 0.0
    g = torch.Generator().manual_seed(0)
    # RGB in [0, 1] normalised as the MiDaS release does, and as the seed does
    cases = (((1, 3, 64, 64), MIDAS_MEAN, MIDAS_STD), ((2, 3, 96, 128), SEED_MIDAS_MEAN, SEED_MIDAS_STD))
    for shape, mean, std in cases:
        x = (torch.rand(*shape, generator=g) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        with torch.no_grad():
            expected = reference(x.clone())  # MiDaS's in-place ReLUs may write into their input
            got = ours(x)
        assert got.shape == expected.shape == (shape[0], *shape[2:]), (got.shape, expected.shape)
        worst = max(worst, (got - expected).abs().max().item())
        scale = max(scale, expected.abs().max().item())
    return worst, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a clone of github.com/isl-org/MiDaS")
    parser.add_argument("--out", type=Path, help="write the name,shape list here")
    parser.add_argument("--compare", action="store_true", help="compare outputs with polypbench's MiDaS")
    args = parser.parse_args()
    torch.manual_seed(0)
    reference = reference_midas(args.checkout)
    state = reference.state_dict()
    print(f"{len(state)} tensors, {sum(t.numel() for t in state.values()):,} values")
    if args.out:
        write_keys(state, args.out)
        print(f"wrote {args.out}")
    if args.compare:
        worst, scale = compare(reference)
        print(f"max |ours - reference| = {worst} (max |reference| = {scale:.4g}, final ReLU left out)")


if __name__ == "__main__":
    main()
