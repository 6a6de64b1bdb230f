"""Progress of one long step (a bootstrap, a multi-start fit, a training run) on one line of stderr.

On a terminal the line is redrawn in place (``\\r`` and erase-to-end-of-line); in a log file or a pipe each
update is a plain line of its own, written at most every ``every_s`` seconds and once at the end, so a log
never fills with carriage returns. A step over in under ``min_s`` (1 s) shows nothing at all. A
:class:`ProgressLine` is the ``progress(done, total)`` callback that :meth:`harness.fit.ScalingLaw.bootstrap`
and :meth:`~harness.fit.ScalingLaw.fit` take.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[int, int], None]


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class ProgressLine:
    """``label: done/total (pct), elapsed, ~left`` for a loop of known length; call it as ``p(done, total)``
    (or with a ``detail`` such as the current loss), then :meth:`close`.

    ``stream`` defaults to stderr; ``every_s`` spaces the plain lines written when it is not a terminal (a
    terminal is redrawn at most every ``tty_every_s``). Nothing is shown before ``min_s`` have passed, so a
    quick step stays silent; after that the last update (``done == total``) is always shown.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        every_s: float = 10.0,
        tty_every_s: float = 0.2,
        min_s: float = 1.0,
        unit: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.unit, self.clock = label, unit, clock
        self.stream = sys.stderr if stream is None else stream
        self.tty = is_terminal(self.stream)
        self.every_s = tty_every_s if self.tty else every_s
        self.min_s = min_s
        self.start = clock()
        self._last = None  # time of the last line drawn
        self._drawn = False  # a terminal line is open (needs a newline at close)
        self._finished = False

    def line(self, done: int, total: int, detail: str = "") -> str:
        elapsed = self.clock() - self.start
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.label}: {done:,}/{total:,}{unit}{pct}, {_duration(elapsed)}"
        if 0 < done < total:
            text += f", ~{_duration(elapsed * (total - done) / done)} left"
        return text + (f"  {detail}" if detail else "")

    def __call__(self, done: int, total: int, detail: str = "") -> None:
        if self._finished:
            return
        now = self.clock()
        last = done >= total
        if now - self.start < self.min_s and self._last is None:
            if last:
                self._finished = True  # over before anything was worth showing
            return
        if not last and self._last is not None and now - self._last < self.every_s:
            return
        if not last and self._last is None and not self.tty and now - self.start < self.every_s:
            return  # a step that is over within every_s leaves a log file one line, not two
        self._last = now
        text = self.line(done, total, detail)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        if last:
            self._finish()
        self.stream.flush()

    def _finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
        self._drawn, self._finished = False, True

    def close(self) -> None:
        """End the line (a terminal's cursor goes to the next line); later calls are ignored."""
        if not self._finished:
            self._finish()
            self.stream.flush()

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def no_progress(done: int, total: int, detail: str = "") -> None:
    """The progress callback that shows nothing (``--format json``, quiet audits)."""
