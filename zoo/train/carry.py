"""Carrying training runs to another machine: the few files that continue each run under a folder, copied
into another folder (a repository's `weights/runs/`, committed at the end of a session) while the runs go
on training, and copied back the same way on the next machine.

An unfinished run needs its checkpoint, its log and its record (`last.pt`, `metrics.jsonl`, `run.json`); a
finished one its log, record and summary (what `zoo curves` and `zoo runs` read). A live run replaces its
checkpoint atomically and then adds a row to its log (also renamed into place), so the checkpoint is copied first and the log cut
to the epochs that checkpoint holds: the copy resumes where the checkpoint ends and logs nothing twice. A
copy never replaces one that is further along (more steps), so carrying back and forth is safe."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, reading
from zoo.train.runs import CHECKPOINT, METRICS, RUN, SUMMARY, find, read_json
from zoo.utils.files import atomic_path

FINISHED = (RUN, METRICS, SUMMARY)


def carry(root: Path, dest: Path) -> list[dict[str, Any]]:
    """Copy what continues every run under `root` into `dest`/<its path under root>; one record a run:
    where it went, its steps, and whether it was copied or kept (the copy there is further along)."""
    root, dest = root.resolve(), dest.resolve()
    if dest == root or dest.is_relative_to(root) or root.is_relative_to(dest):
        raise ZooError(f"carry runs between two separate folders: {dest} and {root} hold one another.")
    states = find(root)
    if dest.exists() and not dest.is_dir():
        raise ZooError(f"{dest} is a file: carry runs into a folder.")
    carried = []
    for state in states:
        folder = Path(state["folder"]).resolve()
        target = dest / (folder.relative_to(root) if folder != root else folder.name)
        with reading(f"the run folder {folder}"):
            try:
                carried.append(_carry_one(folder, target, state["complete"]))
            except OSError as e:  # the destination's, not the run's: a full disk, a folder not ours
                if e.filename is None or not Path(e.filename).resolve().is_relative_to(dest):
                    raise
                raise ZooError(
                    f"cannot write {e.filename} ({e.strerror}); every file already carried is whole "
                    "(each is written to a temporary name and renamed)."
                ) from None
    return carried


def _carry_one(folder: Path, target: Path, complete: bool) -> dict[str, Any]:
    record = {"folder": str(folder), "to": str(target), "complete": complete}
    target.mkdir(parents=True, exist_ok=True)
    if complete:
        steps = _steps(folder)
        if _steps(target) > steps:
            return record | {"steps": steps, "copied": False}
        for name in FINISHED:
            if (folder / name).is_file():
                _copy(folder / name, target / name)
        (target / CHECKPOINT).unlink(missing_ok=True)  # a finished run continues nowhere
        return record | {"steps": steps, "copied": True}
    if not (folder / CHECKPOINT).is_file():  # started, never checkpointed: its record says how to start it
        for name in (RUN, METRICS):
            if (folder / name).is_file():
                _copy(folder / name, target / name)
        return record | {"steps": 0, "copied": True}
    try:
        with atomic_path(target / CHECKPOINT) as tmp:  # renamed into place only if the block ends normally
            shutil.copyfile(folder / CHECKPOINT, tmp)  # one whole version: the trainer replaces it atomically
            state = _checkpoint(tmp, folder / CHECKPOINT)
            if _steps(target) > state["step"]:
                raise _FurtherAlong(state["step"])
            with atomic_path(target / METRICS) as log:
                log.write_text(_rows_until(folder / METRICS, state["epoch"] + 1))
            if (folder / RUN).is_file():
                _copy(folder / RUN, target / RUN)
            (target / SUMMARY).unlink(missing_ok=True)  # a summary of an earlier stop (--max-steps) is stale
    except _FurtherAlong as kept:
        return record | {"steps": kept.steps, "copied": False}
    return record | {"steps": state["step"], "copied": True}


class _FurtherAlong(Exception):
    """The destination's copy of a run has more steps than the run being carried: it stays."""

    def __init__(self, steps: int):
        super().__init__(steps)
        self.steps = steps


def _rows_until(path: Path, epochs: int, wait_s: float = 5.0) -> str:
    """The log's rows of the first `epochs` epochs, as lines. The trainer appends an epoch's row just after
    its checkpoint: a row the checkpoint holds but the log not yet has is waited for (a run stopped between
    the two never writes it; its resumed copy goes on without it, as the run itself would)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = []
        text = path.read_text() if path.is_file() else ""
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a row being appended, or a damaged line: `zoo runs` says which
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= epochs:
                rows.append(line)
        done = json.loads(rows[-1])["epoch"] if rows else 0
        if done >= epochs or time.monotonic() > deadline:
            return "".join(f"{line}\n" for line in rows)
        time.sleep(0.2)


def _steps(folder: Path) -> int:
    """How far a run folder got, in optimiser steps (0 when it holds no run)."""
    summary = read_json(folder / SUMMARY) or {}
    if summary.get("complete") and isinstance(summary.get("steps"), int):
        return summary["steps"]
    return _checkpoint(folder / CHECKPOINT)["step"] if (folder / CHECKPOINT).is_file() else 0


def _checkpoint(path: Path, shown: Path | None = None) -> dict[str, Any]:
    """A checkpoint's state, whose counters say how far it got; one sentence (naming `shown`, the file
    it was copied from) when it is no checkpoint or its counters are not counts."""
    from zoo.train.trainer import read_train_checkpoint

    shown = shown or path
    try:
        state = read_train_checkpoint(path, "cpu")
    except ZooError as e:
        raise ZooError(str(e).replace(str(path), str(shown))) from None
    if not all(type(state[k]) is int and state[k] >= -1 for k in ("epoch", "step")):
        raise ZooError(f"{shown} has no whole-number epoch and step: it is not a `zoo train` checkpoint.")
    return state


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
