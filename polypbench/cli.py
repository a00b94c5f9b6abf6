"""The ``polypbench`` command: one short function per verb, each calling one library function.

Each command's docstring is its ``--help``. Library errors (:class:`PolypbenchError`) become one
``Error:`` line and a non-zero exit.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from polypbench import datasets, schema
from polypbench.errors import PolypbenchError, missing_dependency
from polypbench.fileio import quick_exit
from polypbench.load.common import DEFAULT_MARGIN, DEFAULT_SIZE


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors become one ``Error:`` line; a missing optional package names the extra that installs it; an
    unexpected exception is reported in one line too (its traceback only with -vv), never as a raw traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PolypbenchError as exc:
            raise click.ClickException(str(exc)) from None
        except ModuleNotFoundError as exc:
            missing = missing_dependency(exc)
            if missing is None:
                raise
            raise click.ClickException(str(missing)) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback by default
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            what = " ".join(str(exc).split())[:300]
            raise click.ClickException(f"internal error ({type(exc).__name__}: {what}); rerun with -vv for the "
                                       "traceback and report it") from None

    return wrapper


def _write_predictions(df: Any, out: Path) -> None:
    """A prediction file as its suffix says: ``.csv``, else Parquet."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)


_VERBOSITY_KEY = "polypbench.verbosity"


def configure_logging(verbosity: int) -> None:
    """Log levels for a verbosity: 0 warnings plus progress lines, 1 (-v) info, 2 (-vv) debug, -1 (-q) errors only.

    Progress (``polypbench.progress``) goes to stderr as plain lines, on by default, off with -q.
    """
    level = logging.ERROR if verbosity < 0 else logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    progress = logging.getLogger("polypbench.progress")
    progress.handlers.clear()
    progress.propagate = False
    progress.setLevel(logging.INFO if verbosity >= 0 else logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)


def _verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """-v/-q anywhere on the line (before or after the subcommand) add up."""
    if not value:
        return
    root = ctx.find_root()
    root.meta[_VERBOSITY_KEY] = root.meta.get(_VERBOSITY_KEY, 0) + (value if param.name == "verbose" else -value)
    configure_logging(root.meta[_VERBOSITY_KEY])


def _verbosity_options() -> list[click.Parameter]:
    return [
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_verbosity,
                     help="More log output (-v info, -vv debug, with tracebacks)."),
        click.Option(["-q", "--quiet"], count=True, expose_value=False, callback=_verbosity,
                     help="Less output: no progress, errors only."),
    ]


class _Command(click.Command):
    """Every command accepts -v/-q."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += _verbosity_options()


class _Group(click.Group):
    """Subcommands and subgroups accept -v/-q too."""

    command_class = _Command
    group_class = type  # subgroups are _Group as well

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params += _verbosity_options()


@click.group(cls=_Group)
@click.version_option(package_name="polypbench")
@click.pass_context
def main(ctx: click.Context) -> None:
    """polypbench: reproducible polyp-size estimation benchmarks.

    \b
    Example:
      polypbench synth real-colon --out raw/real-colon
      polypbench prepare real-colon --raw raw/real-colon --out prepared/real-colon
      polypbench splits verify prepared/real-colon
    """
    configure_logging(ctx.find_root().meta.get(_VERBOSITY_KEY, 0))
    quick_exit()


@main.command()
@click.argument("dataset", type=click.Choice(datasets.synth_names()))
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
@click.argument("dataset", type=click.Choice(datasets.names()))
@click.option("--raw", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="Root of the raw dump, exactly as the dataset's owners distribute it.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the manifest.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--strict", is_flag=True, help="Fail on the first bad input instead of skipping and counting it.")
@click.option("--overwrite", is_flag=True,
              help="Replace a manifest in OUT prepared from another dataset or raw folder (never deleting another "
                   "dataset's materialized crops).")
@_one_line_errors
def prepare(dataset: str, raw: Path, out: Path, workers: int | None, strict: bool, overwrite: bool) -> None:
    """Convert a raw DATASET dump into a Parquet manifest with the published split.

    `misawa` is the SUN database cited through its journal paper: it runs the `sun` converter.
    Each bad input is counted and named in one line (docs/manifest.md); the manifest appears complete at the end
    or not at all. Resumable: re-run the same command after an interruption (or after the dump changed) and it
    reuses the units whose inputs did not change. A manifest of another dataset or raw folder in OUT is replaced
    only with --overwrite.

    \b
    Example:
      polypbench prepare real-colon --raw /data/real-colon --out prepared/real-colon --workers 8
    """
    from polypbench.fileio import sigterm_exits
    from polypbench.prepare import prepare as run_prepare

    with sigterm_exits():
        report = run_prepare(dataset, raw, out, workers=workers, strict=strict, overwrite=overwrite)
    click.echo(report.describe())


MAX_PROBLEM_LINES = 100
"""Bad frames listed by `verify` (all of them are in verify.failed.json)."""


@main.command()
@click.argument("prepared", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Raw dump folder [default: the one recorded at prepare time].")
@click.option("--hash", "hash_frames", is_flag=True,
              help="Also compute each frame's sha256 and a Merkle root per split (reads every byte).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@_one_line_errors
def verify(prepared: Path, raw_root: Path | None, hash_frames: bool, workers: int | None) -> None:
    """Check that every frame PREPARED references exists and is a complete JPEG of the manifest's size.

    No decode: the start and end markers and the header size. Each bad frame is one line; the exit status is 1
    when any is bad. Writes PREPARED/verify.json; with --hash also PREPARED/frame_hashes.parquet and a Merkle
    root per split, so two labs can prove they hold identical frames. A run that finds bad frames writes
    PREPARED/verify.failed.json instead and never replaces a passing record; a --raw holding none of the frames
    is one error line.

    \b
    Example:
      polypbench verify prepared/real-colon --raw /data/real-colon --hash --workers 8
    """
    from polypbench.fileio import sigterm_exits
    from polypbench.prepare.problems import summarize
    from polypbench.verify import verify_frames

    with sigterm_exits():
        report = verify_frames(prepared, raw_root, hash_frames=hash_frames, workers=workers)
    for problem in report.problems[:MAX_PROBLEM_LINES]:
        click.echo(f"{problem.kind}: {problem.message}")
    if len(report.problems) > MAX_PROBLEM_LINES:
        more = len(report.problems) - MAX_PROBLEM_LINES
        click.echo(f"... and {more} more (all in {prepared / schema.VERIFY_FAILED_FILE})")
    click.echo(report.describe())
    if report.problems:
        counts = ", ".join(f"{kind} {info['count']}" for kind, info in summarize(report.problems).items())
        raise PolypbenchError(f"{len(report.problems)} of {report.frames} frames failed ({counts}); "
                              f"expected every frame present and complete")


@main.command()
@click.argument("prepared", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--size", type=click.IntRange(16), default=DEFAULT_SIZE, show_default=True,
              help="Pixels a side of the stored crop window (the training img_size, or more).")
@click.option("--margin", type=click.FloatRange(0), default=DEFAULT_MARGIN, show_default=True,
              help="Crop margin around the box, as the training config's `margin`.")
@click.option("--context", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Extra real pixels kept on each side, as a fraction of the window (for turned crops).")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG quality.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Raw dump folder [default: the one recorded at prepare time].")
@click.option("--depth-weights", default=None, metavar="PATH",
              help="Write the depth maps of `depth: shards` instead of crops: MiDaS v2.1's midas_v21_384.pt "
                   "(`random`: random weights, tests and smoke runs), with the seed's normalisation and mask.")
@_one_line_errors
def materialize(prepared: Path, size: int, margin: float, context: float, quality: int, workers: int | None,
                raw_root: Path | None, depth_weights: str | None) -> None:
    """Pre-cut every box's crop of PREPARED into JPEG shards, which training then reads instead of raw frames.

    Resumable (finished videos are kept) and deterministic. Training and `load_split(..., decode_size=N)` use the
    shards automatically when their margin matches and their size is at least N.

    \b
    Example:
      polypbench materialize prepared/real-colon --size 384 --margin 0.5 --workers 8
    """
    if depth_weights is not None:
        import torch

        from polypbench.shards import materialize_depth
        from polypbench.train.data import depth_network

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        root = materialize_depth(prepared, depth_network(depth_weights, device), size=size, weights=depth_weights,
                                 raw_root=raw_root, device=device)
        click.echo(f"wrote {root}")
        return
    from polypbench.shards import materialize as run

    root = run(prepared, size=size, margin=margin, context=context, quality=quality, workers=workers,
               raw_root=raw_root)
    click.echo(f"wrote {root}")


@main.command("export-hf")
@click.argument("prepared", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Raw dump folder [default: the one recorded at prepare time].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the Hugging Face dataset (README.md card + data/*.parquet).")
@click.option("--size", type=click.IntRange(16), default=DEFAULT_SIZE, show_default=True,
              help="Pixels a side of the embedded crops.")
@click.option("--margin", type=click.FloatRange(0), default=DEFAULT_MARGIN, show_default=True,
              help="Crop margin around the box, as load_split's `margin`.")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG quality.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--i-hold-redistribution-rights", "hold_rights", is_flag=True,
              help="Export a dataset whose licence forbids redistributing its frames (SUN, SUN-SEG): you declare "
                   "that you hold that right; the card states the licence and the declaration.")
@_one_line_errors
def export_hf(prepared: Path, raw_root: Path | None, out: Path, size: int, margin: float, quality: int,
              workers: int | None, hold_rights: bool) -> None:
    """Write PREPARED as a self-contained Hugging Face dataset: the crops embedded as images, with box, size,
    size classes (named) and ids, a dataset card (licence, citation, one configuration per fold). It loads with
    `datasets.load_dataset(OUT)` without polypbench and uploads to the Hub as it is.

    Refuses a dataset whose licence forbids redistributing its frames unless --i-hold-redistribution-rights.

    \b
    Example:
      polypbench export-hf prepared/real-colon --raw /data/real-colon --out hf/real-colon --size 384
    """
    from polypbench.export import export_hf as run
    from polypbench.fileio import sigterm_exits

    with sigterm_exits():
        report = run(prepared, out, raw_root, size=size, margin=margin, quality=quality, workers=workers,
                     hold_rights=hold_rights)
    click.echo(report.describe())


@main.command()
@click.argument("prepared", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--raw", "raw_roots", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Raw dump folder, once per PREPARED in the same order [default: the ones recorded at prepare "
                   "time, where they still exist].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the site (replaced as a whole; open OUT/index.html).")
@click.option("--frames", "frames_per_polyp", type=click.IntRange(1), default=8, show_default=True,
              help="Most frames shown per polyp (evenly spaced).")
@click.option("--thumb-size", type=click.IntRange(32, 1024), default=160, show_default=True,
              help="Side of a frame's picture, in pixels.")
@_one_line_errors
def browse(prepared: tuple[Path, ...], raw_roots: tuple[Path, ...], out: Path, frames_per_polyp: int,
           thumb_size: int) -> None:
    """Write a static dataset browser of PREPARED folders into OUT (open OUT/index.html; no server).

    One overview per dataset (class balance per split and fold, sizes, frames per polyp, patients, the problems
    prepare counted) and one page per polyp (its frames with the box, size, class, split, fold, patient,
    histology, video); the index searches and filters the polyps. REAL-Colon gets thumbnails in OUT; SUN and
    SUN-SEG frames are never copied: their pages show your own raw frames through file:// links.

    \b
    Example:
      polypbench browse prepared/real-colon prepared/sun --raw /data/real-colon --raw /data/SUN --out site
    """
    from polypbench.browse import browse as run

    click.echo(run(prepared, out, raw_roots, frames_per_polyp=frames_per_polyp, size=thumb_size).describe())


@main.command()
@_one_line_errors
def configs() -> None:
    """List the packaged training configs (use one with `polypbench train --config NAME`).

    \b
    Example:
      polypbench configs
    """
    from polypbench.train.config import packaged_summary

    click.echo(packaged_summary())


@main.group()
def splits() -> None:
    """The fixed public splits (split_manifests/): show, verify, regenerate; and the paper's protocol."""


@splits.command("show")
@click.argument("dataset", type=click.Choice(datasets.names()))
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
@_one_line_errors
def splits_paper(prepared: tuple[Path, ...], out: Path) -> None:
    """Write the HAG/GR paper's per-object fold of every polyp of the PREPARED manifests (CSV).

    The folds are the seed code's (split_manifests/paper/v1.csv, docs/splits.md), whatever the order of the
    manifests and whether SUN was prepared as `sun`, `misawa` or `sun-seg`. Not the public split: polyps of one
    patient can sit in different folds. For reproducing the paper only (test fold k, validation fold k+1 mod 6).

    \b
    Example:
      polypbench splits paper prepared/real-colon prepared/sun --out paper_folds.csv
    """
    from polypbench.splits import paper_folds

    df = paper_folds(list(prepared))
    df.to_csv(out, index=False)
    click.echo(f"wrote {out} ({len(df)} polyps, {df['paper_fold'].nunique()} folds)")


@main.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("demo_out"), show_default=True)
@click.option("--frames-per-polyp", type=click.IntRange(1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the synthetic dumps and training.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="Torch CPU threads for training and prediction (the last digits of a float sum depend on it).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--no-train", is_flag=True, help="Stop after the data summary (skip train, predict, score).")
@_one_line_errors
def demo(out: Path, frames_per_polyp: int, seed: int, threads: int, workers: int | None, no_train: bool) -> None:
    """Run the toolkit end to end on synthetic data: synth, prepare, verify splits, train the demo model (the
    `demo` config: about half a minute on one CPU thread), predict the test split and score it next to the
    majority-class baseline. Seed and thread count fix the result (README.md quotes its spread).

    \b
    Example:
      polypbench demo --out demo_out
    """
    from polypbench.demo import run_demo

    result = run_demo(out, frames_per_polyp=frames_per_polyp, seed=seed, workers=workers, train=not no_train,
                      threads=threads)
    click.echo(result.describe())


@main.command()
@click.argument("predictions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat to score several datasets pooled.")
@click.option("--split", type=click.Choice(schema.SELECTIONS), default="test", show_default=True,
              help="The split to score; all: every polyp (e.g. out-of-fold predictions).")
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Cross-validation fold k: --split validation scores fold k, train the other folds; with "
                   "--protocol paper, the paper's test fold k.")
@click.option("--protocol", type=click.Choice(schema.PROTOCOLS), default="public", show_default=True,
              help="public: the published per-patient split; paper: the HAG/GR paper's per-object folds.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the versioned JSON result here.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the HTML report here (plus a Markdown twin .md and the size plot .png beside it).")
@click.option("--bootstrap", type=click.IntRange(0), default=2000, show_default=True,
              help="Patient-bootstrap replicates for the 95% CIs (0: no CIs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--compare", "other", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A second prediction file: its numbers side by side, PREDICTIONS minus it with a paired 95% CI, "
                   "and P(PREDICTIONS > it), all from the same patient resamples.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="The run folder behind PREDICTIONS (`polypbench train --out`): the report's header names its "
                   "model, config and code, and plots its training curves.")
@click.option("--raw", "raw_roots", type=click.Path(path_type=Path, exists=True, file_okay=False), multiple=True,
              help="Raw dump folder, one per --manifest in the same order: the report's failure gallery shows the "
                   "crops of the polyps most wrong [default: a materialized prepared folder's shards, if any].")
@_one_line_errors
def evaluate(predictions: Path, manifests: tuple[Path, ...], split: str, fold: int | None, protocol: str,
             json_path: Path | None, report_path: Path | None, bootstrap: int, seed: int, other: Path | None,
             run_dir: Path | None, raw_roots: tuple[Path, ...]) -> None:
    """Score a PREDICTIONS file (Parquet or CSV) against the SPLIT of the prepared manifests.

    Headline numbers are per polyp (frame predictions aggregated per polyp); frame-level numbers follow.
    Every number has its 95% patient-bootstrap interval; a dagger flags one resting on little support, and
    "(no CI: reason)" replaces one that no resampling can give honestly (docs/scoring.md).
    An invalid file is refused with every problem on its own line, and nothing is scored.

    The report (--report) leads with the board's primary metric, its interval and support, the majority
    baseline on the same polyps and, with --compare, the paired difference and P(A > B); then plots, the failure
    gallery (frames from --raw or materialized shards) and the full tables. With --compare the terminal gets one
    compact table of the board's metrics.

    \b
    Example:
      polypbench evaluate preds.parquet --manifest prepared/real-colon --json result.json --report report.html
      polypbench evaluate a.parquet --manifest prepared/sun --compare b.parquet
      polypbench evaluate preds.parquet --manifest prepared/sun --report report.html --run runs/r18-hag --raw /data/sun
    """
    from polypbench.evaluate import compare, score
    from polypbench.leaderboard.columns import COLUMNS, PRIMARY

    if other is None:
        result = score(predictions, list(manifests), split=split, fold=fold, protocol=protocol,
                       n_bootstrap=bootstrap, seed=seed)
        click.echo(result.summary_table())
    else:
        result = compare(predictions, other, list(manifests), split=split, fold=fold, protocol=protocol,
                         n_bootstrap=bootstrap, seed=seed)
        click.echo(result.compact_comparison([key for _, key, _ in COLUMNS.values()]))
    if json_path is not None:
        result.to_json(json_path)
        click.echo(f"wrote {json_path}")
    if report_path is not None:
        from polypbench.evaluate.gallery import frames_at_hand
        from polypbench.evaluate.headline import baseline_result
        from polypbench.evaluate.report import Extras, evaluation_meta, run_history, write_report

        meta = evaluation_meta(predictions, manifests, split=split, fold=fold, protocol=protocol, other=other,
                               run_dir=run_dir)
        extras = Extras(baseline_result(manifests, split=split, fold=fold, protocol=protocol, n_bootstrap=bootstrap,
                                        seed=seed),
                        run_history(run_dir) if run_dir is not None else None,
                        frames_at_hand(manifests, raw_roots))
        for path in write_report(result, report_path, meta, primary=PRIMARY, extras=extras):
            click.echo(f"wrote {path}")


@main.command()
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat for several datasets.")
@click.option("--split", type=click.Choice(schema.SPLITS), default="test", show_default=True)
@click.option("--fold", type=click.IntRange(0), default=None, help="Cross-validation fold k.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Prediction file to write (.parquet, or .csv).")
@_one_line_errors
def baseline(manifests: tuple[Path, ...], split: str, fold: int | None, out: Path) -> None:
    """Write the majority baseline's predictions for SPLIT: the training split's most frequent size class and
    median size, for every frame (no model, no torch). Every method should beat it.

    \b
    Example:
      polypbench baseline --manifest prepared/sun --out majority.parquet
      polypbench evaluate majority.parquet --manifest prepared/sun
    """
    from polypbench.baselines import majority_baseline

    df = majority_baseline(list(manifests), split, fold)
    _write_predictions(df, out)
    click.echo(f"wrote {out} ({len(df)} frames)")


@main.command()
@click.argument("grid")
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory trained and scored on (repeatable).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Sweep folder: runs/<config>/<fold-seed>/, results.md/.csv/.json, entries/.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override for every run, after the grid's own (repeatable), e.g. --set epochs=2.")
@click.option("--launcher", type=click.Choice(("local", "slurm", "submitit-local")), default="local",
              show_default=True, help="local: this machine; slurm: one SLURM job per run (submitit); "
                                      "submitit-local: submitit's local executor (tests the SLURM code path).")
@click.option("--parallel", type=click.IntRange(1), default=1, show_default=True,
              help="local: runs at once (on a GPU machine, one per visible GPU).")
@click.option("--partition", default=None, help="slurm: the partition.")
@click.option("--time", "time_min", type=click.IntRange(1), default=240, show_default=True,
              help="slurm/submitit: time limit per run, minutes.")
@click.option("--gpus-per-run", type=click.IntRange(0), default=1, show_default=True, help="slurm: GPUs per run.")
@click.option("--cpus-per-run", type=click.IntRange(1), default=8, show_default=True, help="slurm: CPUs per run.")
@click.option("--mem-gb", type=click.IntRange(1), default=32, show_default=True, help="slurm: memory per run.")
@click.option("--bootstrap", type=click.IntRange(0), default=2000, show_default=True,
              help="Patient-bootstrap replicates for the pooled per-polyp intervals.")
@click.option("--aggregate-only", is_flag=True, help="Do not launch: aggregate the runs already in --out.")
@_one_line_errors
def sweep(grid: str, manifests: tuple[Path, ...], out: Path, overrides: tuple[str, ...], launcher: str,
          parallel: int, partition: str | None, time_min: int, gpus_per_run: int, cpus_per_run: int, mem_gb: int,
          bootstrap: int, aggregate_only: bool) -> None:
    """Run the reference GRID (a YAML file, or a packaged grid: paper, public): every config x fold x seed is a
    normal train + predict in its own folder; finished runs are skipped, a failed run is reported and the others
    go on. Then score every model the paper's way (per frame, mean +- sd over runs) and ours (per polyp, pooled,
    95% patient-bootstrap CIs) into OUT/results.md, .csv and .json, and write OUT/entries/ for the leaderboard.

    \b
    Example:
      polypbench sweep paper --manifest prepared/real-colon --manifest prepared/sun --out runs/paper
      polypbench sweep public --manifest prepared/sun --out runs/public --launcher slurm --partition gpu
    """
    from polypbench.sweep import launch, load_grid
    from polypbench.sweep.aggregate import aggregate, load_outcomes, summary

    spec = load_grid(grid)
    specs = spec.runs(out.resolve(), tuple(str(Path(m).resolve()) for m in manifests), overrides)
    for run in specs:  # every config error before anything is launched
        run.train_config()
    if aggregate_only:
        outcomes = load_outcomes(specs)
    else:
        slurm = {"timeout_min": time_min, "gpus_per_node": gpus_per_run, "cpus_per_task": cpus_per_run,
                 "mem_gb": mem_gb, "name": f"polypbench-{spec.name}"}
        if partition:
            slurm["slurm_partition"] = partition
        outcomes = launch(specs, launcher, folder=out / "jobs", parallel=parallel, slurm=slurm)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "missing")}
    click.echo(f"{len(specs)} runs: {counts['done']} trained, {counts['skipped']} already done, "
               f"{counts['failed']} failed" + (f", {counts['missing']} not run" if counts["missing"] else ""))
    for o in outcomes:
        if o.status == "failed":
            click.echo(f"  failed: {o.label}: {o.error} ({o.run_dir}/failed.json)")
    results = aggregate(spec, specs, outcomes, out, n_bootstrap=bootstrap)
    click.echo(summary(results))
    click.echo(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'results.json'}")


@main.group()
def leaderboard() -> None:
    """The leaderboard: serve it (both tracks), run its job worker, add teams, migrate, close a phase, export."""


def _track_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What both the server and the worker must agree on: the database, the tracks, the store, the bootstrap."""
    options = [
        click.option("--db", default="leaderboard.db", show_default=True,
                     help="SQLite file, or a database URL (postgresql://user:pw@host/db)."),
        click.option("--labels", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
                     help="Public track: a prepared folder whose test split is scored; repeat per dataset."),
        click.option("--private-labels", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
                     help="Private track: a prepared folder of hidden test data; repeat per dataset."),
        click.option("--store", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="Folder for uploaded weights and files [default: <db>.store, or ./leaderboard-store]."),
        click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
                     help="Patient-bootstrap replicates (CIs, rank groups)."),
        click.option("--public-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
                     show_default=True, help="Private track: share of test patients in the live board's part."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(db: str, labels: tuple[Path, ...], private_labels: tuple[Path, ...], store: Path | None,
              bootstrap: int, public_fraction: float, **extra: Any) -> Any:
    from polypbench.leaderboard.config import Settings

    return Settings(db=db, labels=[str(p) for p in labels], private_labels=[str(p) for p in private_labels],
                    store=None if store is None else str(store), n_bootstrap=bootstrap,
                    private_public_fraction=public_fraction, **extra)


@leaderboard.command("serve")
@_track_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Server processes; the cap, rate limit and idempotency keys hold across them (in the database).")
@click.option("--daily-cap", type=click.IntRange(1), default=5, show_default=True,
              help="Public track: scored submissions per team per UTC day.")
@click.option("--model-daily-cap", type=click.IntRange(1), default=2, show_default=True,
              help="Private track: model submissions per team per UTC day.")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True), default=50.0, show_default=True)
@click.option("--max-model-mb", type=click.FloatRange(0, min_open=True), default=200.0, show_default=True)
@click.option("--rate-limit", type=click.IntRange(0), default=60, show_default=True,
              help="Requests per minute per team (0: off).")
@click.option("--ip-rate-limit", type=click.IntRange(0), default=300, show_default=True,
              help="Requests per minute per client address, counted before authentication (0: off).")
@_one_line_errors
def leaderboard_serve(host: str, port: int, workers: int, daily_cap: int, model_daily_cap: int, max_upload_mb: float,
                      max_model_mb: float, rate_limit: int, ip_rate_limit: int, **track: Any) -> None:
    """Serve the leaderboard: the board at /, JSON at /api, uploads at /api/submissions and /api/models.

    Migrates the database first. Run `polypbench leaderboard worker` with the same track options beside it to run
    model submissions and checkpoint verifications.

    \b
    Example:
      polypbench leaderboard serve --db leaderboard.db --labels prepared/real-colon --labels prepared/sun
      polypbench leaderboard serve --db postgresql://lb:pw@localhost/lb --labels prepared/sun --workers 4
    """
    from polypbench.leaderboard.app import serve

    settings = _settings(**track, daily_cap=daily_cap, model_daily_cap=model_daily_cap,
                         max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                         max_model_bytes=int(max_model_mb * 1024 * 1024), rate_limit=rate_limit,
                         ip_rate_limit=ip_rate_limit)
    serve(settings, host=host, port=port, workers=workers)


@leaderboard.command("worker")
@_track_options
@click.option("--timeout", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Wall-clock seconds one model run may take.")
@click.option("--memory-mb", type=click.IntRange(256), default=4096, show_default=True,
              help="Memory (heap and anonymous mappings) one model run may use on the CPU.")
@click.option("--device", type=click.Choice(("cpu", "cuda")), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="CPU threads per run.")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit (instead of polling forever).")
@_one_line_errors
def leaderboard_worker(timeout: float, memory_mb: int, device: str, threads: int, once: bool, **track: Any) -> None:
    """Run queued jobs: private-track models and public checkpoints to verify, each in a limited child process.

    \b
    Example:
      polypbench leaderboard worker --db leaderboard.db --private-labels hidden/prepared --labels prepared/sun
    """
    from polypbench.inference.sandbox import Limits
    from polypbench.leaderboard.worker import main as run_worker

    run_worker(_settings(**track), Limits(timeout_s=timeout, memory_mb=memory_mb, device=device, threads=threads),
               once=once)


@leaderboard.command("migrate")
@click.option("--db", default="leaderboard.db", show_default=True, help="SQLite file or database URL.")
@_one_line_errors
def leaderboard_migrate(db: str) -> None:
    """Create or upgrade the database schema to the newest revision (serve does it too).

    \b
    Example:
      polypbench leaderboard migrate --db postgresql://lb:pw@localhost/lb
    """
    from polypbench.leaderboard.db import Database, current_revision

    with Database(db) as database:
        click.echo(f"database schema at revision {current_revision(database.engine)}")


@leaderboard.command("close-phase")
@click.option("--db", default="leaderboard.db", show_default=True, help="SQLite file or database URL.")
@_one_line_errors
def leaderboard_close_phase(db: str) -> None:
    """Close the private track's phase: no more model submissions; the final ranking (private part) is shown.

    \b
    Example:
      polypbench leaderboard close-phase --db leaderboard.db
    """
    from polypbench.leaderboard.db import Database
    from polypbench.leaderboard.jobs import close_phase

    with Database(db) as database:
        click.echo(f"private track closed at {close_phase(database):%Y-%m-%d %H:%M UTC}")


@leaderboard.command("add-team")
@click.argument("name")
@click.option("--db", default="leaderboard.db", show_default=True, help="SQLite file or database URL.")
@_one_line_errors
def leaderboard_add_team(name: str, db: str) -> None:
    """Add team NAME and print its API token (shown once; only its sha256 is stored).

    \b
    Example:
      polypbench leaderboard add-team "Team A" --db leaderboard.db
    """
    from polypbench.leaderboard.auth import add_team
    from polypbench.leaderboard.db import Database

    with Database(db) as database:
        token = add_team(database, name)
    click.echo(f"team {name!r} added; its token (shown once, store it now):")
    click.echo(token)


@leaderboard.command("export")
@click.option("--db", default="leaderboard.db", show_default=True, help="SQLite file or database URL.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("leaderboard"),
              show_default=True)
@_one_line_errors
def leaderboard_export(db: str, out: Path) -> None:
    """Write OUT/entries/<id>.json (each team's best public-track entry) and the rendered OUT/README.md table.

    \b
    Example:
      polypbench leaderboard export --db leaderboard.db --out leaderboard/
    """
    from polypbench.leaderboard.board import export
    from polypbench.leaderboard.db import Database

    with Database(db) as database:
        written = export(database, out)
    for path in written:
        click.echo(f"wrote {path}")


@leaderboard.command("render")
@click.option("--out", type=click.Path(path_type=Path, exists=True, file_okay=False), default=Path("leaderboard"),
              show_default=True)
@_one_line_errors
def leaderboard_render(out: Path) -> None:
    """Rebuild OUT/README.md from the entries in OUT/entries/.

    \b
    Example:
      polypbench leaderboard render --out leaderboard/
    """
    from polypbench.leaderboard.board import render

    click.echo(f"wrote {render(out)}")


@main.command()
@click.argument("predictions", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--server", required=True, help="Leaderboard URL, e.g. http://127.0.0.1:8000")
@click.option("--token", required=True, envvar="POLYPBENCH_TOKEN", help="Team API token [env: POLYPBENCH_TOKEN].")
@click.option("--method", required=True, help="Method name shown on the board.")
@click.option("--declare", is_flag=True,
              help="Public track: declare that the test labels were not used for training or model selection.")
@click.option("--paper", default=None, help="Link to the paper (http/https).")
@click.option("--code", default=None, help="Link to the code (http/https).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Prepared directory to validate against locally first (and to name its split hash); repeatable.")
@click.option("--checkpoint", "run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Public track: the run folder behind PREDICTIONS; its config, checkpoint hash and weights are sent "
                   "and the server re-runs it (the verified badge).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Private track: submit this run folder's model (config.yaml + weights) instead of predictions.")
@click.option("--wait", is_flag=True, help="With --model: wait for the server to run and score it.")
@_one_line_errors
def submit(predictions: Path | None, server: str, token: str, method: str, declare: bool, paper: str | None,
           code: str | None, manifests: tuple[Path, ...], run_dir: Path | None, model_dir: Path | None,
           wait: bool) -> None:
    """Submit PREDICTIONS to a leaderboard's public track, or a model (--model RUN_DIR) to its private track.

    The file is first checked against what the server scores (GET /api/info) and, with --manifest, validated
    locally (every problem listed, nothing uploaded). Uploads carry an idempotency key and are retried on a lost
    connection without ever counting twice.

    \b
    Example:
      polypbench submit preds.parquet --server http://127.0.0.1:8000 --token $TOKEN --method "R18-HAG" \\
        --declare --manifest prepared/sun
      polypbench submit --model runs/r18-hag --server http://127.0.0.1:8000 --token $TOKEN --method "R18-HAG" --wait
    """
    from polypbench.leaderboard import client

    if model_dir is not None:
        if predictions is not None:
            raise PolypbenchError("give PREDICTIONS (public track) or --model RUN_DIR (private track), not both")
        queued = client.submit_model(model_dir, server, token, method, paper_url=paper, code_url=code)
        click.echo(f"job {queued['id']} {queued['status']}: {server.rstrip('/')}{queued.get('page', queued['url'])}")
        if wait:
            state = client.wait_job(server, token, queued["id"])
            click.echo(f"job {state['id']} {state['status']}" + (f": {state['error']}" if state["error"] else "")
                       + (f"; submission {server.rstrip('/')}/submissions/{state['submission_id']}"
                          if state["submission_id"] else ""))
            if state["status"] == "failed":
                raise PolypbenchError(f"job {state['id']} failed: {state['error']}")
        return
    if predictions is None:
        raise PolypbenchError("missing PREDICTIONS; expected a prediction file (or --model RUN_DIR)")
    covered = client.check_against(predictions, client.server_info(server))
    click.echo(f"{predictions}: covers {', '.join(covered)} of the served datasets")
    if manifests:
        client.validate_locally(predictions, manifests)
        click.echo(f"{predictions}: valid against the local manifest(s)")
    else:
        click.echo("no --manifest given: skipping local validation (the server validates)")
    extra = client.checkpoint_fields(run_dir) if run_dir is not None else {}
    body = client.submit(predictions, server, token, method, declaration=declare, paper_url=paper, code_url=code,
                         split_hashes=client.split_hashes(manifests) if manifests else None,
                         config=extra.get("config"), checkpoint_sha256=extra.get("checkpoint_sha256"))
    click.echo(client.describe(body, server))
    if run_dir is not None:
        queued = client.upload_checkpoint(body["id"], run_dir, server, token)
        click.echo(f"checkpoint queued for verification: job {queued['id']} "
                   f"({server.rstrip('/')}{queued.get('page', queued['url'])})")


@main.command()
@click.option("--config", "config", default=None,
              help="A YAML file, or the name of a packaged config (e.g. resnet18-hag, demo, cifar100-vit-tiny-hag); "
                   "with --resume, default: the run's own config.yaml.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config key (repeatable), e.g. --set lr=1e-3 --set prepared=[a,b].")
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, help="Prepared directory to train on (repeatable); replaces the config's `prepared`.")
@click.option("--dataset", type=click.Choice(("polyp", "cifar100")), default=None,
              help="Train on prepared polyp manifests (default) or on CIFAR-100 (implies task=classification).")
@click.option("--data-root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --dataset cifar100: the folder holding cifar-100-python/ (never downloaded).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Run folder: config.yaml, metrics.jsonl/.csv, best.pt, last.pt and summary.json are written here.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last.pt (same config; more epochs allowed); starts it if the "
                   "folder holds no run.")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out (its run files are removed first).")
@_one_line_errors
def train(config: str | None, overrides: tuple[str, ...], manifests: tuple[Path, ...], dataset: str | None,
          data_root: Path | None, out: Path, resume: bool, overwrite: bool) -> None:
    """Train a model; keep the best checkpoint by validation loss and the last one to resume from.

    Prints one line per epoch (train and validation loss, the headline validation metric, ETA) and a progress
    bar on a terminal (a line every 10 s in a log file; -q silences both). A folder that holds a run is refused
    unless --resume or --overwrite. Under torchrun (`torchrun --nproc_per_node N -m polypbench train ...`) it
    trains with DistributedDataParallel, batch_size per process.

    \b
    Example:
      polypbench train --config resnet18-hag --manifest prepared/sun --manifest prepared/real-colon \\
          --set epochs=5 --set device=cuda --out runs/r18-hag
      polypbench train --out runs/r18-hag --resume --set epochs=10
      polypbench train --config cifar100-vit-tiny-hag --dataset cifar100 --data-root data/ --out runs/cifar
    """
    from polypbench.errors import ConfigError
    from polypbench.train.config import in_terms_of

    try:
        _train(config, overrides, manifests, dataset, data_root, out, resume, overwrite)
    except ConfigError as exc:  # name the flag the user typed, not the config key it sets
        raise ConfigError(in_terms_of(str(exc), TRAIN_FLAGS)) from None
    except KeyboardInterrupt as exc:
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(_interrupted(out, exc), err=True)
        raise click.exceptions.Exit(130) from None


TRAIN_FLAGS = {"prepared": "--manifest", "dataset": "--dataset", "data_root": "--data-root"}
"""Config keys that `polypbench train` sets from flags of its own: its errors name the flag."""


def _interrupted(out: Path, exc: KeyboardInterrupt) -> str:
    """What Ctrl-C in `train` prints: how far the run got and the exact command that continues it."""
    import shlex

    from polypbench.train.loop import Interrupted
    from polypbench.train.rundir import BEST, CONFIG, LAST, METRICS_JSONL, run_files

    world = int(os.environ.get("WORLD_SIZE", "1"))
    prog = "polypbench" if world == 1 else \
        f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', world)} -m polypbench"
    folder = shlex.quote(str(out))
    files = run_files(out)
    if isinstance(exc, Interrupted) and exc.last_epoch >= 0:
        done = f"after epoch {exc.last_epoch} of 0-{exc.epochs - 1} ({out / LAST} holds it)"
    elif LAST in files:
        done = f"({out / LAST} holds the epochs trained so far)"
    elif CONFIG in files and (BEST in files or METRICS_JSONL in files):  # stopped between epoch 0's files
        config = shlex.quote(str(out / CONFIG))
        return (f"interrupted before {out / LAST} was written; start the run again with: {prog} train --config "
                f"{config} --out {folder} --overwrite")
    elif CONFIG in files:
        done = "before epoch 0 ended (no last.pt yet: resuming starts it again)"
    else:
        return f"interrupted before the run started; nothing was written to {out}"
    return f"interrupted {done}; continue with: {prog} train --out {folder} --resume"


def _train(config: str | None, overrides: tuple[str, ...], manifests: tuple[Path, ...], dataset: str | None,
           data_root: Path | None, out: Path, resume: bool, overwrite: bool) -> None:
    from polypbench.errors import ConfigError
    from polypbench.train.config import load_config, parse_override
    from polypbench.train.loop import fit
    from polypbench.train.tasks import implied_task

    if config is None:
        if not (resume and (out / "config.yaml").is_file()):
            raise ConfigError("--config is missing; expected a YAML file or a packaged config name (only --resume "
                              "of a run folder with a config.yaml can leave it out)")
        config = str(out / "config.yaml")
    changes: dict[str, Any] = {}  # typed values from the flags, never written as override text
    if manifests:
        changes["prepared"] = [str(m) for m in manifests]
    if dataset is not None:
        changes["dataset"] = dataset
        task = implied_task(dataset)
        if task is not None and "task" not in {parse_override(o)[0] for o in overrides}:
            changes["task"] = task
    if data_root is not None:
        changes["data_root"] = str(data_root)
    summary = fit(load_config(config, overrides, changes), out, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(summary.describe())


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True), required=True,
              help="A best.pt or last.pt written by `polypbench train`, a model.safetensors beside the run's "
                   "config.yaml, or the run folder.")
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat for several datasets.")
@click.option("--split", type=click.Choice(schema.SPLITS), default="test", show_default=True)
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Cross-validation fold k (with --split validation); with --protocol paper, the test fold.")
@click.option("--protocol", type=click.Choice(schema.PROTOCOLS), default="public", show_default=True)
@click.option("--raw-root", "raw_roots", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, help="Raw root per --manifest [default: the roots recorded at prepare time].")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--device", type=click.Choice(("cpu", "cuda")), default="cpu", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Prediction file to write (.parquet, or .csv).")
@_one_line_errors
def predict(checkpoint: Path, manifests: tuple[Path, ...], split: str, fold: int | None, protocol: str,
            raw_roots: tuple[Path, ...], batch_size: int, device: str, out: Path) -> None:
    """Write frame-level predictions of CHECKPOINT for SPLIT (the file `polypbench evaluate` scores).

    \b
    Example:
      polypbench predict --checkpoint runs/r18-hag/best.pt --manifest prepared/sun --split test --out preds.parquet
    """
    from polypbench.inference.predict import predict as run_predict

    df = run_predict(checkpoint, list(manifests), split, raw_root=list(raw_roots) or None, fold=fold,
                     protocol=protocol, batch_size=batch_size, device=device)
    _write_predictions(df, out)
    click.echo(f"wrote {out} ({len(df)} frames)")
