"""A small progress bar with rate and ETA for long runs, written to stderr (no tqdm dependency).

It draws only in a terminal or a notebook (or when forced), redraws at most ten times a second, and
rewrites one line with a carriage return, which both terminals and Jupyter honour.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

_MIN_INTERVAL = 0.1
_WIDTH = 24


def in_notebook() -> bool:
    """True inside a Jupyter kernel (stderr is not a TTY there, yet `\\r` redraws work)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def should_show(progress: bool | str, stream: TextIO) -> bool:
    """`progress=True` shows the bar in a terminal or notebook only; "always" forces it; False hides it."""
    if progress == "always":
        return True
    if not progress:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or in_notebook()


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """`bar.update(done, **stats)` redraws (rate-limited); `bar.close()` draws the final line."""

    def __init__(self, total: int, label: str = "evaluate", enabled: bool = True, stream: TextIO | None = None,
                 clock: Any = time.monotonic) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self.started = clock()
        self._last_draw = -1.0
        self.done = 0
        self.stats: dict[str, str] = {}
        self.draws = 0

    def line(self) -> str:
        """The text of the bar as it stands."""
        elapsed = self._clock() - self.started
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * _WIDTH))
        bar = "█" * filled + "░" * (_WIDTH - filled)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.done and self.done < self.total:
            eta = f"ETA {format_seconds((self.total - self.done) / rate)}" if rate > 0 else "ETA ?"
        elif self.done >= self.total:
            eta = f"took {format_seconds(elapsed)}"
        else:
            eta = "ETA ?"
        extra = "".join(f"  {k} {v}" for k, v in self.stats.items())
        return (f"{self.label} {self.done}/{self.total} {bar} {frac:4.0%}{extra}  "
                f"{rate:.1f}/s  {eta}")

    def update(self, done: int, **stats: Any) -> None:
        self.done = done
        self.stats = {k: str(v) for k, v in stats.items()}
        now = self._clock()
        if self.enabled and now - self._last_draw >= _MIN_INTERVAL:
            self._draw()
            self._last_draw = now

    def _draw(self, end: str = "") -> None:
        self.draws += 1
        self.stream.write("\r" + self.line() + "\x1b[K" * bool(self._is_tty()) + end)
        self.stream.flush()

    def _is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def close(self, note: str = "") -> None:
        if self.enabled:
            if note:
                self.stats["note"] = note
            self._draw(end="\n")
