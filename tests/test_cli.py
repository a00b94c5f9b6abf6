"""The CLI: every command documents an example; errors are one `Error:` line; splits show/verify."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from polypbench.cli import main


def all_commands(group=main, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from all_commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.mark.parametrize("command", list(all_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output, result.output


def test_splits_show_prints_class_counts() -> None:
    result = CliRunner().invoke(main, ["splits", "show", "sun"])
    assert result.exit_code == 0
    assert "diminutive" in result.output and "test" in result.output and " 20 " in result.output


def test_splits_verify_catches_a_tampered_manifest(prepared, tmp_path) -> None:
    src = prepared["sun"].out / "frames.parquet"
    table = pq.read_table(src)
    folds = table["fold"].to_numpy().copy()
    first_train = int((table["split"].to_numpy() == "train").nonzero()[0][0])
    folds[first_train] = (folds[first_train] % 4) + 1 if folds[first_train] != 4 else 1
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    column = table.schema.get_field_index("fold")
    pq.write_table(table.set_column(column, "fold", pa.array(folds, pa.int8())), tampered / "frames.parquet")
    ok = CliRunner().invoke(main, ["splits", "verify", str(prepared["sun"].out)])
    assert ok.exit_code == 0 and ok.output.startswith("OK")
    bad = CliRunner().invoke(main, ["splits", "verify", str(tampered)])
    assert bad.exit_code != 0 and bad.output.startswith("Error: ") and "disagree" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_splits_verify_refuses_a_repeated_frame_key(prepared, tmp_path) -> None:
    """Two rows of one (polyp_id, frame_index), e.g. a SUN-SEG clip in two subsets: the key of a frame prediction
    is no longer unique, so the manifest is refused."""
    table = pq.read_table(prepared["sun-seg"].out / "frames.parquet")
    repeated = tmp_path / "repeated"
    repeated.mkdir()
    pq.write_table(pa.concat_tables([table, table.slice(3, 1)]), repeated / "frames.parquet")
    bad = CliRunner().invoke(main, ["splits", "verify", str(repeated)])
    assert bad.exit_code != 0 and bad.output.startswith("Error: ") and len(bad.output.strip().splitlines()) == 1
    assert "(polyp_id, frame_index)" in bad.output and table["polyp_id"][3].as_py() in bad.output, bad.output


def test_prepare_refuses_an_unknown_dataset_with_the_valid_names(tmp_path) -> None:
    result = CliRunner().invoke(main, ["prepare", "kvasir", "--raw", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "real-colon" in result.output and "sun-seg" in result.output


def test_a_command_freezes_what_is_alive_at_exit_and_still_runs_the_exit_handlers(tmp_path) -> None:
    """`polypbench` calls :func:`polypbench.fileio.quick_exit`: the objects alive at exit are frozen before Python's
    exit-time collections (a process that imported torch ends 1-2 s sooner: benchmarks/exit_time.py), and an exit
    handler registered before the command still runs, after the freeze."""
    import subprocess
    import sys

    out = tmp_path / "frozen.txt"
    script = (f"import atexit, gc, pathlib\n"
              f"atexit.register(lambda: pathlib.Path({str(out)!r}).write_text(str(gc.get_freeze_count())))\n"
              "from polypbench.cli import main\n"
              "main(['splits', 'show', 'sun'], standalone_mode=False)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train" in done.stdout  # the command ran
    assert int(out.read_text()) > 10_000  # every module's objects, frozen
