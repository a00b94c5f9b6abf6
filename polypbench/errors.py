"""Error types: every user-facing failure is one line naming the file, the row or field, and the expectation."""

from __future__ import annotations

from pathlib import Path


class PolypbenchError(Exception):
    """Base class: a one-line, user-facing error. The CLI prints it as ``Error: <message>`` and exits non-zero."""


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


class ConfigError(PolypbenchError):
    """An invalid option value; the message lists the valid values."""


def choice_error(what: str, value: object, valid: object) -> ConfigError:
    """Build the error for an unknown name, listing the valid names (torchvision style)."""
    options = ", ".join(sorted(map(str, valid)))  # type: ignore[arg-type]
    return ConfigError(f"unknown {what} {value!r}; expected one of: {options}")
