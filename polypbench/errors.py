"""Error types: every user-facing failure is one line naming the file, the row or field, and the expectation."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class PolypbenchError(Exception):
    """Base class: a one-line, user-facing error. The CLI prints it as ``Error: <message>`` and exits non-zero.

    Every subclass pickles (a worker process raises it, the parent reports it): the constructor's own arguments
    are kept and rebuild the error, whatever the subclass's signature.
    """

    _init_args: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> PolypbenchError:
        self = super().__new__(cls, *args)
        self._init_args = (args, kwargs)
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        args, kwargs = self._init_args
        return functools.partial(type(self), **kwargs), tuple(args)


class InputError(PolypbenchError):
    """Bad input in one file: ``<file>[:<row>]: [<field>: ]<problem>; expected <expectation>``."""

    def __init__(
        self,
        path: str | Path,
        problem: str,
        expected: str | None = None,
        *,
        row: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        self.row = row
        self.field = field
        where = self.path if row is None else f"{self.path}:{row}"
        what = problem if field is None else f"{field}: {problem}"
        msg = f"{where}: {what}" if expected is None else f"{where}: {what}; expected {expected}"
        super().__init__(" ".join(msg.split()))  # always one line


class OutputError(PolypbenchError):
    """An output that cannot be written (not a folder, no permission, disk full): names the path being written."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: cannot write ({reason}); expected a writable folder with free space")


OPTIONAL_MODULES = {
    "torch": "torch", "torchvision": "torch", "timm": "train", "safetensors": "train",
    "datasets": "hf", "huggingface_hub": "hf", "tensorboard": "tensorboard", "submitit": "slurm",
    "fastapi": "leaderboard", "uvicorn": "leaderboard", "sqlalchemy": "leaderboard", "alembic": "leaderboard",
    "multipart": "leaderboard", "psycopg": "postgres",
}
"""Module -> the optional dependency group of pyproject.toml that installs it (the base install leaves it out)."""


def missing_dependency(exc: ModuleNotFoundError) -> PolypbenchError | None:
    """The one-line error for an optional module that is not installed, or None for any other missing module."""
    top = (exc.name or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    return PolypbenchError(f"this command needs the optional package {top!r}, which is not installed; "
                           f"expected it installed with: pip install 'polypbench[{extra}]'")


class ConfigError(PolypbenchError):
    """An invalid option value; the message lists the valid values."""


def choice_error(what: str, value: object, valid: Iterable[object]) -> ConfigError:
    """Build the error for an unknown name, listing the valid names (torchvision style)."""
    options = ", ".join(sorted(map(str, valid)))
    return ConfigError(f"unknown {what} {value!r}; expected one of: {options}")
