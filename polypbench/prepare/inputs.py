"""Reading raw inputs under one policy, shared by every converter.

- Numbers are range-checked before they reach Arrow or an int conversion: finite, an integer within int32 (floats
  are rounded, as the owners' code does), and not below a minimum where one applies (:func:`parse_int`).
- Paths resolve inside the raw root only (:meth:`RawRoot.resolve`, the one rule of prepare, verify and export): an
  absolute path or one leading up out of the root (``..``) is an ``outside_root`` problem; a symlink is followed
  when its target lies inside the root; a dangling link, a loop or a link leading outside is a ``bad_symlink``
  problem; a directory, FIFO, socket or device where a
  file is expected (or the reverse) is ``not_a_file``; a permission or I/O error is ``unreadable``
  (:meth:`RawRoot.resolve`). Callers keep a set of real paths so that each real file is read once.
- A unit's fingerprint hashes the names, sizes and modification times of the inputs it read (:class:`Fingerprint`),
  so a resumed run reuses a finished part only when its inputs are unchanged.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from polypbench.prepare.problems import Problem, ProblemError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_MAX_DIGITS = 40
"""Longer number texts are refused before any conversion (Python refuses int() of over 4,300 digits)."""


class BadValue(ValueError):
    """A value that is not a usable number; the message names the field (callers prefix the file)."""


def parse_int(value: object, field: str, *, minimum: int | None = None) -> int:
    """``value`` (text, bytes, int or float) as an int within int32 and >= ``minimum``; floats are rounded.

    Raises :class:`BadValue` naming ``field`` for text that is not a number, a non-finite number (``inf``,
    ``1e400``, ``NaN``) or one out of range. Booleans (JSON ``true``) are not numbers.
    """
    expected = f"an integer in [{INT32_MIN if minimum is None else minimum}, {INT32_MAX}]"
    if isinstance(value, bool) or not isinstance(value, str | bytes | int | float):
        raise BadValue(f"{field}: {value!r} is not a number; expected {expected}")
    if isinstance(value, int):
        number = value
    else:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            text = value.strip()
            if len(text) > _MAX_DIGITS:
                raise BadValue(f"{field}: {text[:_MAX_DIGITS]!r}... is too long for a number; expected {expected}")
            try:
                value = float(text)
            except ValueError:
                raise BadValue(f"{field}: {text!r} is not a number; expected {expected}") from None
        if not math.isfinite(value):
            raise BadValue(f"{field}: {value!r} is not finite; expected {expected}")
        number = int(round(value))
    if not INT32_MIN <= number <= INT32_MAX or (minimum is not None and number < minimum):
        raise BadValue(f"{field}: {number} is out of range; expected {expected}")
    return number


def check_size(value: object, field: str, *, maximum: float = 1000.0) -> float:
    """A polyp size in mm: a finite number in [0, ``maximum``]; raises :class:`BadValue` naming ``field``."""
    try:
        size = float(value)  # type: ignore[arg-type]  # anything float() refuses is reported below
    except (TypeError, ValueError):
        raise BadValue(f"{field}: {value!r} is not a number; expected a size in mm") from None
    if not math.isfinite(size) or not 0 <= size <= maximum:
        raise BadValue(f"{field}: {value!r} is out of range; expected a size in mm in [0, {maximum:g}]")
    return size


@dataclass(frozen=True)
class RawRoot:
    """The raw dump's root, for resolving paths under the symlink policy."""

    path: Path
    real: str

    @classmethod
    def of(cls, path: Path) -> RawRoot:
        return cls(Path(path), os.path.realpath(path))

    def inside(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)

    def check_relative(self, rel: str) -> None:
        """Raise an ``outside_root`` :class:`ProblemError` for an absolute path or one leading up out of the root
        (``..``), before anything is opened; symlinks are checked by :meth:`resolve`."""
        if os.path.isabs(rel) or os.path.normpath(rel).split(os.sep)[0] == os.pardir:
            what = "an absolute path" if os.path.isabs(rel) else f"a path leading up out of the raw root {self.path}"
            raise ProblemError("outside_root", f"{rel}: {what}; expected a path relative to the raw root, inside it")

    def resolve(self, rel: str, *, want: str = "file") -> str | None:
        """The real path of ``rel`` (relative to the root), or None when nothing exists there.

        ``want`` is ``"file"`` (a regular file), ``"dir"`` or ``"any"``. Raises :class:`ProblemError`
        (``outside_root``, ``bad_symlink``, ``not_a_file``, ``unreadable``) with a line naming ``rel``.
        """
        self.check_relative(rel)
        full = os.path.join(self.path, rel)
        try:
            info = os.stat(full)
        except FileNotFoundError:
            if os.path.islink(full):
                raise ProblemError("bad_symlink", f"{rel}: dangling symlink (to {os.readlink(full)!r}); "
                                   "expected a link to an existing file or folder inside the raw root") from None
            return None
        except OSError as exc:
            raise os_problem(rel, exc) from None
        real = os.path.realpath(full)
        if not self.inside(real):
            raise ProblemError("bad_symlink", f"{rel}: symlink leads outside the raw root (to {real}); expected "
                               "links inside the raw root only (mount or copy the data under it)")
        if want == "dir" and not stat.S_ISDIR(info.st_mode):
            raise ProblemError("not_a_file", f"{rel}: not a folder ({file_type(info.st_mode)}); expected a folder")
        if want == "file" and not stat.S_ISREG(info.st_mode):
            raise ProblemError("not_a_file", f"{rel}: not a regular file ({file_type(info.st_mode)}); expected a file")
        return real


    def distinct(self, folder: str, names: Iterable[str], problems: list[Problem], *, want: str = "file",
                 what: str = "input") -> list[str]:
        """The ``names`` (entries of the folder ``folder``, relative to the root) that lead to distinct real paths
        under the symlink policy, sorted; real entries come before links, so that a link to an entry already kept is
        the counted ``duplicate_input``, and every refused link is a counted problem."""
        def rel(name: str) -> str:
            return f"{folder}/{name}" if folder else name

        entries = sorted((os.path.islink(os.path.join(self.path, rel(n))), n) for n in names)
        found: dict[str, str] = {}  # real path -> name
        for _, name in entries:
            try:
                real = self.resolve(rel(name), want=want)
            except ProblemError as exc:
                problems.append(exc.problem)
                continue
            if real is None:
                continue
            if real in found:
                problems.append(Problem("duplicate_input", f"{rel(name)}: a second path to {found[real]} (a "
                                        f"symlink); expected each {what} once"))
                continue
            found[real] = name
        return sorted(found.values())


def open_regular(path: str, rel: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading (never blocking on a FIFO) and return ``(fd, stat)``; the caller closes ``fd``.

    Raises :class:`ProblemError` naming ``rel`` unless it is a readable regular file; FileNotFoundError when
    nothing is there (a dangling symlink is a ``bad_symlink`` problem instead).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ProblemError("bad_symlink", f"{rel}: dangling symlink (to {os.readlink(path)!r}); "
                               "expected a link to an existing file or folder inside the raw root") from None
        raise
    except OSError as exc:
        raise os_problem(rel, exc) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ProblemError("not_a_file", f"{rel}: not a regular file ({file_type(info.st_mode)}); expected a file")
    return fd, info


def read_regular(path: str, rel: str) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`); any failure is a :class:`ProblemError`
    naming ``rel``."""
    try:
        fd, info = open_regular(path, rel)
        try:
            return os.read(fd, info.st_size + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_problem(rel, exc) from None


def os_problem(rel: str, exc: OSError) -> ProblemError:
    """The problem for an OSError met while opening or listing ``rel``."""
    if exc.errno == errno.ELOOP:
        return ProblemError("bad_symlink", f"{rel}: symlink loop; expected a link to an existing file inside the "
                            "raw root")
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return ProblemError("not_a_file", f"{rel}: {exc.strerror}; expected a regular file")
    return ProblemError("unreadable", f"{rel}: cannot read ({exc.strerror or type(exc).__name__}); "
                        "expected a readable file (check its permissions)")


def file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "not a file"


class Fingerprint:
    """What a unit was converted from: names, sizes and modification times of its inputs, and folder listings.

    Two fingerprints are equal when the same inputs were fed in the same order; any added, removed, renamed,
    resized or re-written file changes it (a cheap proxy for the content, as ``make`` uses).
    """

    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=16)

    def files(self, names: Iterable[str], sizes: Iterable[int], mtimes: Iterable[int]) -> Fingerprint:
        self.names(names)
        self._hash.update(array("q", sizes).tobytes())
        self._hash.update(array("q", mtimes).tobytes())
        return self

    def stat(self, name: str, info: os.stat_result) -> Fingerprint:
        return self.files([name], [info.st_size], [info.st_mtime_ns])

    def names(self, names: Iterable[str]) -> Fingerprint:
        self._hash.update("\0".join(names).encode("utf-8", "surrogateescape") + b"\1")
        return self

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
