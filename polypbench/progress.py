"""Progress of long work, on a terminal and in a log file alike.

On a terminal (stderr is a TTY) a tqdm bar with rate and ETA; otherwise (SLURM, nohup, CI) one log line every
``POLYPBENCH_PROGRESS_SECONDS`` seconds (default 10) and one at the end, so a log shows the work moving. Both go
through the ``polypbench.progress`` logger at INFO: the CLI shows them by default and ``-q`` silences them; a
library user who configures no logging sees nothing. :func:`note` sends a one-off line (a per-epoch summary, a
"resuming" notice) the same way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger("polypbench.progress")
DEFAULT_SECONDS = 10.0


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("POLYPBENCH_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 07 s``, ``2 h 05 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def note(message: str) -> None:
    """A line shown wherever progress is shown (stderr by default in the CLI, silenced by -q)."""
    log.info("%s", message)


class Progress:
    """``with Progress(total, "prepare sun", unit="video") as bar: ... bar.update()``.

    ``total`` None: an open-ended count (no percentage or ETA). ``initial``: work already done (a resumed run).
    ``enabled`` False shows nothing (e.g. DDP ranks other than 0). ``summary`` False: no closing log line (when
    the caller logs its own, such as a training epoch's). :meth:`set_postfix` adds a running value
    (``loss 0.231``) to the bar and to the log lines.
    """

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", initial: int = 0,
                 enabled: bool = True, summary: bool = True) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.start = self.last = time.monotonic()
        self.every = _every()
        self.postfix = ""
        self.summary = summary
        enabled = enabled and log.isEnabledFor(logging.INFO)
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=sys.stderr,
                            dynamic_ncols=True)
        self.lines = enabled and self.bar is None

    def status(self) -> str:
        """``prepare sun: 12/60 video (20%), 35 s, 0.34 video/s, ETA 2 min 21 s``."""
        elapsed = time.monotonic() - self.start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.n}" + (f"/{self.total} {self.unit}" if self.total is not None else f" {self.unit}")
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {duration(elapsed)}, {rate:.3g} {self.unit}/s"
        if self.total is not None and rate > 0 and self.n < self.total:
            text += f", ETA {duration((self.total - self.n) / rate)}"
        return text + (f", {self.postfix}" if self.postfix else "")

    def set_postfix(self, text: str) -> None:
        """A running value shown after the counts (on the bar at its next refresh; in the next log line)."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            log.info("%s", self.status())

    def write(self, message: str) -> None:
        """A line that does not break the bar (e.g. a per-epoch summary)."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            log.info("%s", message)

    def close(self, final: bool = True) -> None:
        """End the bar; without a terminal, log the final status line unless ``final`` is False (the work failed:
        its error line is then the last word)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines:
            self.lines = False
            if final and self.summary:
                log.info("%s", self.status())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, _kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close(final=exc is None)
