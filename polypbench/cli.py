"""The ``polypbench`` command: one short function per verb, each calling one library function.

Each command's docstring is its ``--help``. Library errors (:class:`PolypbenchError`) become one
``Error:`` line and a non-zero exit.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable

import click

from polypbench.errors import PolypbenchError

SYNTH_DATASETS = ("real-colon", "sun", "sun-seg")
PREPARE_DATASETS = ("real-colon", "sun", "misawa", "sun-seg")


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PolypbenchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
@click.version_option(package_name="polypbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """polypbench: reproducible polyp-size estimation benchmarks.

    \b
    Example:
      polypbench synth real-colon --out raw/real-colon
      polypbench prepare real-colon --raw raw/real-colon --out prepared/real-colon
      polypbench splits verify prepared/real-colon
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("dataset", type=click.Choice(SYNTH_DATASETS))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the raw dump into.")
@click.option("--frames-per-polyp", type=click.IntRange(1), default=4, show_default=True)
@click.option("--negatives-per-video", type=click.IntRange(0), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True)
@_one_line_errors
def synth(dataset: str, out: Path, frames_per_polyp: int, negatives_per_video: int, seed: int, workers: int) -> None:
    """Write a synthetic raw dump in DATASET's exact on-disk layout.

    Real ids, sizes and clinical fields from the shipped metadata; rendered endoscopic JPEG frames at the real
    per-video resolutions. Raise --frames-per-polyp to scale up.

    \b
    Example:
      polypbench synth sun --out raw/sun --frames-per-polyp 8
    """
    from polypbench.synth import synthesize

    summary = synthesize(
        dataset,
        out,
        frames_per_polyp=frames_per_polyp,
        negatives_per_video=negatives_per_video,
        seed=seed,
        workers=workers,
    )
    click.echo(summary.describe())


@main.command()
@click.argument("dataset", type=click.Choice(PREPARE_DATASETS))
@click.option("--raw", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Root of the raw dump, exactly as the dataset's owners distribute it.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the manifest.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Fail on the first bad input instead of skipping and counting it.")
@_one_line_errors
def prepare(dataset: str, raw: Path, out: Path, workers: int | None, strict: bool) -> None:
    """Convert a raw DATASET dump into a Parquet manifest with the published split.

    `misawa` is the SUN database cited through its journal paper: it runs the `sun` converter.
    Resumable: re-run the same command after an interruption and it continues.

    \b
    Example:
      polypbench prepare real-colon --raw /data/real-colon --out prepared/real-colon --workers 8
    """
    from polypbench.prepare import prepare as run_prepare

    report = run_prepare(dataset, raw, out, workers=workers, strict=strict)
    click.echo(report.describe())


@main.group()
def splits() -> None:
    """The fixed public splits (split_manifests/): show, verify, regenerate; and the paper's protocol."""


@splits.command("show")
@click.argument("dataset", type=click.Choice(PREPARE_DATASETS))
@click.option("--split-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of split files [default: the published split_manifests/].")
@_one_line_errors
def splits_show(dataset: str, split_dir: Path | None) -> None:
    """Print the size-class counts (polyps, and patients) per split and fold of DATASET's published split.

    \b
    Example:
      polypbench splits show real-colon
    """
    from polypbench.splits import class_counts

    click.echo(class_counts(dataset, split_dir=split_dir).to_string())


@splits.command("verify")
@click.argument("prepared", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_one_line_errors
def splits_verify(prepared: Path) -> None:
    """Prove that the manifest in PREPARED uses the published split (hash and every row's split/fold).

    \b
    Example:
      polypbench splits verify prepared/sun
    """
    from polypbench.splits import verify

    click.echo(verify(prepared))


@splits.command("generate")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write <dataset>/v1.csv into (the repository's split_manifests/ to regenerate).")
@_one_line_errors
def splits_generate(out: Path) -> None:
    """Regenerate the public split files from the shipped metadata, byte for byte.

    \b
    Example:
      polypbench splits generate --out split_manifests
    """
    from polypbench.splits import write_public_splits

    for path in write_public_splits(out):
        click.echo(f"wrote {path}")


@splits.command("paper")
@click.argument("prepared", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--folds", type=click.IntRange(2), default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@_one_line_errors
def splits_paper(prepared: tuple[Path, ...], out: Path, folds: int, seed: int) -> None:
    """Write the HAG/GR paper's protocol for PREPARED manifests: per-object StratifiedKFold folds (CSV).

    Not the public split: polyps of one patient can sit on both sides. For reproducing the paper's numbers
    only (test fold k, validation fold k+1 mod folds).

    \b
    Example:
      polypbench splits paper prepared/real-colon prepared/sun --out paper_folds.csv
    """
    from polypbench.splits import paper_folds

    df = paper_folds(list(prepared), n_folds=folds, seed=seed)
    df.to_csv(out, index=False)
    click.echo(f"wrote {out} ({len(df)} polyps, {folds} folds)")


@main.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("demo_out"), show_default=True)
@click.option("--frames-per-polyp", type=click.IntRange(1), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@_one_line_errors
def demo(out: Path, frames_per_polyp: int, workers: int | None) -> None:
    """Run the toolkit end to end on synthetic data: synth, prepare, verify splits, summary.

    \b
    Example:
      polypbench demo --out demo_out
    """
    from polypbench.demo import run_demo

    summary = run_demo(out, frames_per_polyp=frames_per_polyp, workers=workers)
    click.echo(summary.to_string())


@main.command()
@click.argument("predictions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat to score several datasets pooled.")
@click.option("--split", type=click.Choice(("train", "validation", "test")), default="test", show_default=True)
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Cross-validation fold k: --split validation scores fold k, train the other folds.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the versioned JSON result here.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the HTML report here (plus a Markdown twin .md and the size plot .png beside it).")
@click.option("--bootstrap", type=click.IntRange(0), default=2000, show_default=True,
              help="Patient-bootstrap replicates for the 95% CIs (0: no CIs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--compare", "other", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A second prediction file: report PREDICTIONS minus it, with paired CIs (same resamples).")
@_one_line_errors
def evaluate(predictions: Path, manifests: tuple[Path, ...], split: str, fold: int | None, json_path: Path | None,
             report_path: Path | None, bootstrap: int, seed: int, other: Path | None) -> None:
    """Score a PREDICTIONS file (Parquet or CSV) against the SPLIT of the prepared manifests.

    Headline numbers are per polyp (frame predictions aggregated per polyp); frame-level numbers follow.
    An invalid file is refused with every problem on its own line, and nothing is scored.

    \b
    Example:
      polypbench evaluate preds.parquet --manifest prepared/real-colon --json result.json --report report.html
      polypbench evaluate a.parquet --manifest prepared/sun --compare b.parquet
    """
    from polypbench.evaluate import compare, score
    from polypbench.evaluate.report import write_report

    if other is None:
        result = score(predictions, list(manifests), split=split, fold=fold, n_bootstrap=bootstrap, seed=seed)
    else:
        result = compare(predictions, other, list(manifests), split=split, fold=fold, n_bootstrap=bootstrap,
                         seed=seed)
    click.echo(result.summary_table())
    if json_path is not None:
        result.to_json(json_path)
        click.echo(f"wrote {json_path}")
    if report_path is not None:
        for path in write_report(result, report_path):
            click.echo(f"wrote {path}")
