"""Progress of long work (an input's frames, a run's inputs), shown the way its reader can take it.

Why one seam: the same work is watched from a terminal (a bar redrawn in place), through a log, a pipe or CI (plain
lines, never a carriage return), from a notebook (a widget) or not at all; the code doing the work only says
``start(total)``, ``advance(n)`` and ``close()`` to a ``Progress`` and never asks where its output goes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol, TextIO

from fer_batch._text import one_line, plural

LINE_INTERVAL_S = 10.0  # the most often a log gets a line about one piece of work
MIN_COLUMNS = 20  # a terminal narrower than this (0x0: unsized) gets 80x24 bars instead of none


class Display(Enum):
    """Where progress goes. Picklable, so it travels to worker processes with their task."""

    BAR = "bar"  # a terminal: tqdm bars on stderr
    LINES = "lines"  # stderr is a file, a pipe, CI: plain lines, at most every LINE_INTERVAL_S
    NOTEBOOK = "notebook"  # the Python API in Jupyter: tqdm.auto (a widget where ipywidgets is installed)
    SILENT = "silent"

    @classmethod
    def for_stream(cls, stream: TextIO | None = None, quiet: bool = False) -> Display:
        """The command line's choice: nothing with ``--quiet``, bars on a terminal, lines anywhere else."""
        stream = sys.stderr if stream is None else stream
        if quiet or stream is None:  # None: no stderr at all (pythonw, a daemon)
            return cls.SILENT
        return cls.BAR if _isatty(stream) else cls.LINES

    @classmethod
    def for_api(cls, progress: bool) -> Display:
        """The Python API's choice: none unless asked; asked, a notebook bar in Jupyter, else as the CLI would."""
        if not progress:
            return cls.SILENT
        return cls.NOTEBOOK if in_notebook() else cls.for_stream()

    @property
    def is_bar(self) -> bool:
        return self in (Display.BAR, Display.NOTEBOOK)


class Progress(Protocol):
    """One piece of work's progress: ``start`` once (the total where known), ``advance`` as it goes, ``close``."""

    def start(self, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class Silent:
    """No output (``--quiet``, the API by default, a worker process whose driver draws the bar)."""

    def start(self, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """A tqdm bar on stderr (``notebook``: tqdm.auto's), made at ``start`` when the total is known.

    ``leave``: whether the finished bar stays on the screen (a run's bar does; an input's gives its line back)."""

    def __init__(self, name: str, unit: str, *, leave: bool = False, notebook: bool = False) -> None:
        self.name, self.unit, self.leave, self.notebook = name, unit, leave, notebook
        self.bar: Any = None

    def start(self, total: int | None = None) -> None:
        if self.notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        width = {"dynamic_ncols": True} if _columns(sys.stderr) >= MIN_COLUMNS else {"ncols": 80, "nrows": 24}
        self.bar = tqdm(total=total or None, desc=one_line(self.name), unit=f" {self.unit}", leave=self.leave,
                        **width)  # fmt: skip

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Lines:
    """Plain lines for a log: one at start, then at most every ``interval`` seconds (done / total where known,
    rate, elapsed), and one at ``close``. ``first``/``final`` off: no start/end line, where another line says it
    (a run's driver announces each input's end; a webcam session logs its own start and end)."""

    def __init__(self, name: str, unit: str, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float | None = None,
                 first: bool = True, final: bool = True) -> None:  # fmt: skip
        self.name, self.unit, self.clock, self.first, self.final = name, unit, clock, first, final
        self.interval = LINE_INTERVAL_S if interval is None else interval
        self.stream = stream
        self.total: int | None = None
        self.done = 0
        self.t0 = self.last = 0.0
        self.started = False

    def start(self, total: int | None = None) -> None:
        self.total, self.started = total or None, True
        self.t0 = self.last = self.clock()
        if self.first:
            self._say(f"started ({self._units(self.total)})" if self.total else "started")

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._say(self._status(now))

    def close(self) -> None:
        if self.started and self.final:
            self._say("done, " + self._status(self.clock()))
        self.started = False

    def _status(self, now: float) -> str:
        elapsed = now - self.t0
        done = f"{self.done}/{self._units(self.total)}" if self.total else self._units(self.done)
        rate = f"{self.done / elapsed:.1f} {self.unit}s/s" if elapsed > 0 else f"- {self.unit}s/s"
        return f"{done}, {rate}, {elapsed:.0f} s"

    def _units(self, n: int) -> str:
        return plural(n, self.unit)

    def _say(self, text: str) -> None:
        stream = sys.stderr if self.stream is None else self.stream  # looked up late: pytest swaps sys.stderr
        try:
            stream.write(f"{one_line(self.name)}: {text}\n")
            stream.flush()
        except OSError:  # a log that went away (`2>&1 | head`): progress is never worth failing an input for
            pass


def progress(display: Display, name: str, unit: str, *, leave: bool = False, first: bool = True, final: bool = True,
             clock: Callable[[], float] = time.monotonic) -> Progress:  # fmt: skip
    """The ``Progress`` for ``display``: what the work is called (``name``) and counts (``unit``)."""
    if display is Display.BAR or display is Display.NOTEBOOK:
        return Bar(name, unit, leave=leave, notebook=display is Display.NOTEBOOK)
    if display is Display.LINES:
        return Lines(name, unit, clock=clock, first=first, final=final)
    return Silent()


def write_line(text: str) -> None:
    """One line on stderr above any progress bar there (a bar's own line would otherwise be broken by it)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)  # sys.stderr looked up now: pytest swaps it


class LineHandler(logging.Handler):
    """Log records as ``write_line``s, so warnings and notes land above a bar instead of inside it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:  # noqa: BLE001 — logging's own rule: a failing handler reports, never raises
            self.handleError(record)


def in_notebook() -> bool:
    """Running in a Jupyter kernel (not a terminal IPython), where tqdm.auto draws a notebook bar."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 — an odd IPython: no notebook bar, nothing worse
        return False


def _columns(stream: TextIO) -> int:
    """The terminal's width, 0 when it says none: a pseudo-terminal nobody sized (``script`` in CI, a container's
    console) reports 0 columns, and a tqdm bar fitted to that draws nothing at all."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
