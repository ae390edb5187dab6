"""Live progress on the long steps of a command (export, calibration, parity, eval, bench, doctor): one
line per running step on standard error with its name, a bar where the step is counted, and the time it
has taken, as Ultralytics and pip show theirs. Drawn only where a person watches: when standard error is
a terminal and the command was not asked for --json; elsewhere (a pipe, a log file, CI, the Python API
called from a script) nothing is drawn and the commands' own log lines are all there is.

    with step("parity on 10,000 images", total=10_000) as advance:
        for batch in batches:
            ...
            advance(len(batch))

Steps nest: an inner step is another line under the outer one's, removed when it ends."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_state: dict[str, Any] = {"quiet": False, "progress": None, "depth": 0}


def quiet(on: bool = True) -> None:
    """No progress for the rest of this process (the CLI's --json, where standard error may be parsed)."""
    _state["quiet"] = on


def shown() -> bool:
    """Whether progress is drawn here: a terminal on standard error, not --json, not ZOO_PROGRESS=0."""
    if _state["quiet"] or os.environ.get("ZOO_PROGRESS", "") == "0":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed standard error
        return False


def _nothing(_n: float = 1) -> None:
    pass


@contextmanager
def step(description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
    """A running step: yields `advance(n=1)`; its line shows the description, a bar and count where
    `total` is given, and the elapsed time; it disappears when the step ends."""
    if not shown():
        yield _nothing
        return
    progress = _state["progress"]
    outer = progress is None
    if outer:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
            refresh_per_second=8,
        )
        progress.start()
        _state["progress"] = progress
    task = progress.add_task(description, total=total)
    try:
        yield lambda n=1: progress.advance(task, n)
    finally:
        progress.remove_task(task)
        if outer:
            progress.stop()
            _state["progress"] = None
