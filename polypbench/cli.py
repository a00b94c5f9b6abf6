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

from polypbench import datasets
from polypbench.errors import PolypbenchError, missing_dependency


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


@main.command()
@click.argument("prepared", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--size", type=click.IntRange(16), default=384, show_default=True,
              help="Pixels a side of the stored crop window (the training img_size, or more).")
@click.option("--margin", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Crop margin around the box, as the training config's `margin`.")
@click.option("--context", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Extra real pixels kept on each side, as a fraction of the window (for turned crops).")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG quality.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Raw dump folder [default: the one recorded at prepare time].")
@_one_line_errors
def materialize(prepared: Path, size: int, margin: float, context: float, quality: int, workers: int | None,
                raw_root: Path | None) -> None:
    """Pre-cut every box's crop of PREPARED into JPEG shards, which training then reads instead of raw frames.

    Resumable (finished videos are kept) and deterministic. Training and `load_split(..., decode_size=N)` use the
    shards automatically when their margin matches and their size is at least N.

    \b
    Example:
      polypbench materialize prepared/real-colon --size 384 --margin 0.5 --workers 8
    """
    from polypbench.shards import materialize as run

    root = run(prepared, size=size, margin=margin, context=context, quality=quality, workers=workers,
               raw_root=raw_root)
    click.echo(f"wrote {root}")


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
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel processes [default: CPU count].")
@click.option("--no-train", is_flag=True, help="Stop after the data summary (skip train, predict, score).")
@_one_line_errors
def demo(out: Path, frames_per_polyp: int, workers: int | None, no_train: bool) -> None:
    """Run the toolkit end to end on synthetic data: synth, prepare, verify splits, train the demo model
    (about a CPU minute), predict the test split and score it next to the majority-class baseline.

    \b
    Example:
      polypbench demo --out demo_out
    """
    from polypbench.demo import run_demo

    result = run_demo(out, frames_per_polyp=frames_per_polyp, workers=workers, train=not no_train)
    click.echo(result.describe())


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
              help="A second prediction file: its numbers side by side, PREDICTIONS minus it with a paired 95% CI, "
                   "and P(PREDICTIONS > it), all from the same patient resamples.")
@_one_line_errors
def evaluate(predictions: Path, manifests: tuple[Path, ...], split: str, fold: int | None, json_path: Path | None,
             report_path: Path | None, bootstrap: int, seed: int, other: Path | None) -> None:
    """Score a PREDICTIONS file (Parquet or CSV) against the SPLIT of the prepared manifests.

    Headline numbers are per polyp (frame predictions aggregated per polyp); frame-level numbers follow.
    Every number has its 95% patient-bootstrap interval; a dagger flags one resting on little support, and
    "(no CI: reason)" replaces one that no resampling can give honestly (docs/scoring.md).
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


@main.command()
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat for several datasets.")
@click.option("--split", type=click.Choice(("train", "validation", "test")), default="test", show_default=True)
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


@main.group()
def leaderboard() -> None:
    """The public leaderboard: serve it, add teams, export and render the board."""


@leaderboard.command("serve")
@click.option("--db", default="leaderboard.db", show_default=True,
              help="SQLite file, or a database URL (postgresql://...) passed to SQLAlchemy as is.")
@click.option("--labels", multiple=True, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Prepared directory with the hidden test labels; repeat for several datasets (pooled).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--daily-cap", type=click.IntRange(1), default=5, show_default=True,
              help="Scored submissions per team per UTC day.")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True), default=50.0, show_default=True)
@click.option("--rate-limit", type=click.IntRange(0), default=60, show_default=True,
              help="Requests per minute per token or IP (0: off).")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True,
              help="Patient-bootstrap replicates for the 95% CIs.")
@_one_line_errors
def leaderboard_serve(db: str, labels: tuple[Path, ...], host: str, port: int, daily_cap: int, max_upload_mb: float,
                      rate_limit: int, bootstrap: int) -> None:
    """Serve the leaderboard (board at /, JSON at /api/leaderboard, uploads at POST /api/submissions).

    \b
    Example:
      polypbench leaderboard serve --db leaderboard.db --labels prepared/real-colon --labels prepared/sun
    """
    import uvicorn

    from polypbench.leaderboard.app import create_app

    app = create_app(db, list(labels), daily_cap=daily_cap, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                     rate_limit=rate_limit, n_bootstrap=bootstrap)
    uvicorn.run(app, host=host, port=port, log_level="info")


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
    from polypbench.leaderboard.db import session_factory

    token = add_team(session_factory(db), name)
    click.echo(f"team {name!r} added; its token (shown once, store it now):")
    click.echo(token)


@leaderboard.command("export")
@click.option("--db", default="leaderboard.db", show_default=True, help="SQLite file or database URL.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("leaderboard"),
              show_default=True)
@_one_line_errors
def leaderboard_export(db: str, out: Path) -> None:
    """Write OUT/entries/<id>.json (each team's best entry) and the rendered OUT/README.md table.

    \b
    Example:
      polypbench leaderboard export --db leaderboard.db --out leaderboard/
    """
    from polypbench.leaderboard.board import export
    from polypbench.leaderboard.db import session_factory

    for path in export(session_factory(db), out):
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
@click.argument("predictions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--server", required=True, help="Leaderboard URL, e.g. https://leaderboard.example.org")
@click.option("--token", required=True, envvar="POLYPBENCH_TOKEN", help="Team API token [env: POLYPBENCH_TOKEN].")
@click.option("--method", required=True, help="Method name shown on the board.")
@click.option("--paper", default=None, help="Link to the paper (http/https).")
@click.option("--code", default=None, help="Link to the code (http/https).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Prepared directory to validate against locally first; repeat for several datasets.")
@_one_line_errors
def submit(predictions: Path, server: str, token: str, method: str, paper: str | None, code: str | None,
           manifests: tuple[Path, ...]) -> None:
    """Upload PREDICTIONS to a leaderboard server and print the scored result.

    With --manifest the file is first validated locally (every problem listed, nothing uploaded).

    \b
    Example:
      polypbench submit preds.parquet --server https://lb.example.org --token $TOKEN --method "ResNet-50" \\
        --manifest prepared/sun
    """
    from polypbench.leaderboard.client import describe, validate_locally
    from polypbench.leaderboard.client import submit as upload

    if manifests:
        validate_locally(predictions, manifests)
        click.echo(f"{predictions}: valid against the local manifest(s)")
    else:
        click.echo("no --manifest given: skipping local validation (the server validates)")
    click.echo(describe(upload(predictions, server, token, method, paper_url=paper, code_url=code), server))


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
    from polypbench.train import fit, load_config
    from polypbench.train.tasks import implied_task

    if config is None:
        if not (resume and (out / "config.yaml").is_file()):
            raise ConfigError("--config is missing; expected a YAML file or a packaged config name (only --resume "
                              "of a run folder with a config.yaml can leave it out)")
        config = str(out / "config.yaml")
    extra = [f"prepared=[{','.join(map(str, manifests))}]"] if manifests else []
    if dataset is not None:
        extra.append(f"dataset={dataset}")
        task = implied_task(dataset)
        if task is not None and not any(o.strip().startswith("task=") for o in overrides):
            extra.append(f"task={task}")
    if data_root is not None:
        extra.append(f"data_root={data_root}")
    summary = fit(load_config(config, [*overrides, *extra]), out, resume=resume, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(summary.describe())


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="A best.pt written by `polypbench train`.")
@click.option("--manifest", "manifests", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, required=True, help="Prepared directory; repeat for several datasets.")
@click.option("--split", type=click.Choice(("train", "validation", "test")), default="test", show_default=True)
@click.option("--fold", type=click.IntRange(0), default=None, help="Cross-validation fold k (with --split validation).")
@click.option("--raw-root", "raw_roots", type=click.Path(path_type=Path, exists=True, file_okay=False),
              multiple=True, help="Raw root per --manifest [default: the roots recorded at prepare time].")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--device", type=click.Choice(("cpu", "cuda")), default="cpu", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Prediction file to write (.parquet, or .csv).")
@_one_line_errors
def predict(checkpoint: Path, manifests: tuple[Path, ...], split: str, fold: int | None,
            raw_roots: tuple[Path, ...], batch_size: int, device: str, out: Path) -> None:
    """Write frame-level predictions of CHECKPOINT for SPLIT (the file `polypbench evaluate` scores).

    \b
    Example:
      polypbench predict --checkpoint runs/r18-hag/best.pt --manifest prepared/sun --split test --out preds.parquet
    """
    from polypbench.predict import predict as run_predict

    df = run_predict(checkpoint, list(manifests), split, raw_root=list(raw_roots) or None, fold=fold,
                     batch_size=batch_size, device=device)
    _write_predictions(df, out)
    click.echo(f"wrote {out} ({len(df)} frames)")
