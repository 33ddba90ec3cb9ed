"""Progress of long commands, on stderr (stdout keeps the command's own lines).

In a terminal, a bar with the count, the rate and the time left (rich); otherwise a
plain line every five seconds or every tenth of the work, whichever comes first (at
most one a second: work done in a moment prints no line but the last); at the end, one
summary line either way. Interrupted (Ctrl-C), the command stops at once: the
unit of work under way rolls back whole (the work already committed stays), one line
says what was done and how to resume, and the exit status is 130.

    with Progress("keys rotate", total=1200, unit="data keys",
                  interrupted=lambda done: f"{done} committed; run it again") as bar:
        for batch in batches:
            ...
            bar.advance(len(batch))

The total may come later (``set_total``) or never (a count without a bar's end). A
command whose last line is its own verdict (``audit verify``) asks for no summary and
says ``summary()`` itself when it has nothing worse to say: a failing command's stderr
is its one error line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

import typer

INTERRUPTED = 130  # the shell's status for a command ended by SIGINT


def _seconds(exact: float) -> str:
    if exact < 10:
        return f"{max(0.0, exact):.1f} s"
    value = round(exact)
    if value < 60:
        return f"{value} s"
    minutes, seconds = divmod(value, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """A long command's progress (see the module). ``console``: a rich console to draw
    the bar on (tests pass ``Console(force_terminal=True)``); default: stderr, a bar only
    if it is a terminal. ``every``: seconds between plain lines."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "items",
        interrupted: Callable[[int], str] | None = None,
        stream: IO[str] | None = None,
        console: Any = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        summarise: bool = True,
    ) -> None:
        self.label = label
        self.summarise = summarise
        self.unit = unit
        self.total = total
        self.done = 0
        self.interrupted = interrupted
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.clock = clock
        self.started = clock()
        self._last_line = self.started
        self._last_tenth = 0
        self._bar: Any = None
        self._task: Any = None
        self._console = console
        if console is None and _tty(self.stream):
            from rich.console import Console

            self._console = Console(file=self.stream, stderr=self.stream is sys.stderr)
        self.terminal = self._console is not None and bool(self._console.is_terminal)

    # -- the work's side ---------------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        return self

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, rate=self._rate())
            return
        now = self.clock()
        tenth = self._tenths()
        since = now - self._last_line
        # A tenth more, at most once a second: work done in a moment says only its summary.
        if since >= self.every or (tenth > self._last_tenth and since >= 1.0):
            self._last_line, self._last_tenth = now, tenth
            self._line(self.status())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop()
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            said = self.interrupted(self.done) if self.interrupted else f"{self.done} done"
            self._line(f"hippocrate: interrupted: {self.label}: {said}")
            raise typer.Exit(INTERRUPTED) from None
        if kind is None and self.summarise:
            self.say_summary()

    # -- what is said -------------------------------------------------------------------------

    def _rate(self) -> str:
        elapsed = self.clock() - self.started
        return f"{self.done / elapsed:.1f}/s" if elapsed > 0 else ""

    def _tenths(self) -> int:
        if not self.total:
            return 0
        return min(10, self.done * 10 // self.total)

    def status(self) -> str:
        """The plain line: the count, the share done, the rate, the time left."""
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} {self.unit} ({self.done * 100 // self.total}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:.1f}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"about {_seconds((self.total - self.done) / rate)} left")
        return ", ".join(parts)

    def summary(self) -> str:
        elapsed = self.clock() - self.started
        rate = f" ({self.done / elapsed:.1f}/s)" if elapsed > 0 and self.done else ""
        return f"{self.label}: {self.done} {self.unit} in {_seconds(elapsed)}{rate}"

    def say_summary(self) -> None:
        """Write the summary line (at the end; by itself when ``summarise`` is off)."""
        self._line(self.summary())

    def _line(self, text: str) -> None:
        if self._console is not None and self.terminal:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
