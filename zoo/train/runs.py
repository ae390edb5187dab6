"""A training run's folder: the files `zoo train` writes into it, reading them back, and `zoo runs`,
which says of every run under a folder what it trains, how far it got and how to continue it.

Runs outlive the process that trains them (a session ends, a machine is handed on): this is how the next
person finds out what is there without reading logs."""

from __future__ import annotations

import inspect
import json
import math
import os
import shlex
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, reading
from zoo.train.lock import holder
from zoo.utils import files

CHECKPOINT = "last.pt"  # weights, optimiser, EMA and counters: after an epoch, or saved inside one
METRICS = "metrics.jsonl"  # one row per finished epoch; test metrics on the epochs evaluated
SUMMARY = "summary.json"  # written when the process ends normally (finished or stopped by --max-steps)
RUN = "run.json"  # written when a run starts: architecture, recipe, planned epochs, the command
WEIGHTS = "weights.safetensors"  # the final weights (the EMA's when the recipe has one)
CURVES = "training_curves.png"


MAX_RECORD_BYTES = 64 << 20


def read_json(path: Path) -> dict[str, Any] | None:
    """A run's JSON record (None when absent); one sentence when it is not a JSON object."""
    if not path.exists():
        return None
    doc = files.read_json(path, MAX_RECORD_BYTES, "run record")
    if not isinstance(doc, dict):
        raise ZooError(f"{path} is not a JSON object: the run's record is damaged.")
    return doc


def metrics(folder: Path) -> list[dict[str, Any]]:
    """The run's log, one dict per finished epoch (empty when nothing was logged yet); a row without a
    whole epoch number, or not the next epoch, is refused in one sentence."""
    path = folder / METRICS
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(files.read_text(path, MAX_RECORD_BYTES, "training log").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if (
            not isinstance(row, dict)
            or isinstance(row.get("epoch"), bool)
            or not isinstance(row.get("epoch"), int)
        ):
            raise ZooError(f"{path}, line {n}, is not an epoch record (a JSON object with an `epoch`).")
        if row["epoch"] != len(rows) + 1:  # what every figure read from the log counts on
            raise ZooError(
                f"{path}, line {n}, logs epoch {row['epoch']} where epoch {len(rows) + 1} comes: a log's "
                "epochs run 1, 2, 3, ... (the log is damaged)."
            )
        rows.append(row)
    return rows


SUMMARY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "arch": str,
    "dataset": str,
    "recipe": str,
    "complete": bool,
    "epochs_done": int,
    "steps": int,
    "train_images": int,
    "test_images": int,
    "top1": (int, float),
    "top5": (int, float),
    "wall_s": (int, float),
    "hardware": dict,
    "recipe_doc": dict,
}


def check_summary(summary: dict[str, Any], path: Path) -> dict[str, Any]:
    """A finished run's summary with every field `zoo publish` reads, of its type; one sentence otherwise."""
    for key, kind in SUMMARY_FIELDS.items():
        value = summary.get(key)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ZooError(f"{path} has no usable `{key}` ({value!r}): the run's record is damaged.")
    return summary


def state(folder: Path) -> dict[str, Any]:
    """What `folder` trains, how far it got, its last test figure, and the command that continues it."""
    record = read_json(folder / RUN) or {}
    summary = read_json(folder / SUMMARY) or {}
    rows = metrics(folder)
    tested = [r for r in rows if isinstance(r.get("test_top1"), int | float)]
    held = [r for r in rows if isinstance(r.get("val_top1"), int | float)]  # training images held out
    complete = bool(summary.get("complete"))
    touched = [
        p.stat().st_mtime for p in (folder / METRICS, folder / CHECKPOINT, folder / RUN) if p.is_file()
    ]
    return {
        "folder": str(folder),
        "arch": record.get("arch") or summary.get("arch"),
        "recipe": record.get("recipe") or summary.get("recipe"),
        "epochs_done": rows[-1]["epoch"] if rows else 0,
        "epochs_planned": record.get("epochs") or (summary.get("epochs_done") if complete else None),
        "steps_saved_after": None
        if complete
        else steps_saved_after(folder, rows[-1]["epoch"] if rows else 0),
        "test_top1": tested[-1]["test_top1"] if tested else None,
        "test_epoch": tested[-1]["epoch"] if tested else None,
        "val_top1": held[-1]["val_top1"] if held else None,
        "val_epoch": held[-1]["epoch"] if held else None,
        "complete": complete,
        "last_update": _stamp(max(touched)) if touched else None,
        **_time_left(rows, record.get("epochs"), complete),
        "continue_with": None if complete else continue_command(*_started(record, summary), folder=folder),
        "training_now": holder(folder),  # {"pid", "host", "since"} of the process training it, else None
    }


def steps_saved_after(folder: Path, epochs_done: int) -> int | None:
    """The steps of the next epoch that the checkpoint holds beyond `epochs_done` (it is saved inside an
    epoch every few minutes and where --max-steps stops), so the run continues from there; None when it
    holds none or cannot be read (`--resume` says why)."""
    if not (folder / CHECKPOINT).is_file():
        return None
    from zoo.train.trainer import read_train_checkpoint

    try:
        saved = read_train_checkpoint(folder / CHECKPOINT, "cpu")
    except ZooError:
        return None
    partial = saved.get("partial")
    batches = partial.get("batches") if isinstance(partial, dict) else None
    inside = saved.get("epoch") == epochs_done - 1 and type(batches) is int and batches > 0
    return batches if inside else None


def epoch_seconds_now(rows: list[dict[str, Any]], last: int = 10) -> float | None:
    """Seconds an epoch takes now: the median wall time of the last `last` epochs trained with the thread
    count of the latest one (a stretch paused or shared with another job moves no median); None before
    an epoch is logged. An epoch's time is its row's `wall_s` less the previous epoch's."""
    timed = []
    before: dict[str, Any] = {"epoch": 0, "wall_s": 0.0}
    for row in rows:
        gap = _number(row.get("wall_s")) - _number(before.get("wall_s"))
        if row["epoch"] == before["epoch"] + 1 and math.isfinite(gap) and gap > 0:
            timed.append((row.get("threads"), gap))
        before = row
    threads = rows[-1].get("threads") if rows else None
    recent = [t for n, t in timed if n == threads][-last:]
    return statistics.median(recent) if recent else None


def _number(value: Any) -> float:
    """A logged number as a float; NaN for anything else (a string, a bool, an int past a float's range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


def _time_left(rows: list[dict[str, Any]], planned: Any, complete: bool) -> dict[str, float | None]:
    """The epoch time now and the hours the planned epochs still need at it (None where unknown)."""
    per_epoch = epoch_seconds_now(rows)
    left = None
    if not complete and per_epoch:  # a planned count that is no number gives NaN: no estimate
        left = round(max(_number(planned) - rows[-1]["epoch"], 0.0) * per_epoch / 3600, 1)
        left = left if math.isfinite(left) else None
    return {
        "epoch_s": round(per_epoch, 1) if per_epoch else None,
        "threads": rows[-1].get("threads") if rows else None,
        "hours_left": left,
    }


def own_command() -> str:
    """This process's command as a user types it: `zoo` and its arguments, quoted for a shell (those the
    `zoo` command was given, also when it runs in-process)."""
    from zoo.utils.argv import zoo_arguments

    return shlex.join(["zoo", *zoo_arguments()])


def zoo_command(
    name: str,
    fn: Callable[..., Any],
    arguments: dict[str, Any],
    positional: Sequence[str] = (),
    leave_out: Sequence[str] = ("command", "progress", "log"),
) -> str:
    """The `zoo NAME ...` line that makes the call `fn(**arguments)` of the Python API, so a run started
    from Python records a command its user (or `zoo runs`) can give: the `positional` arguments in order,
    then every option whose value is not `fn`'s default, spelt as the CLI spells it (`--batch-size 64`, a
    flag for True, `--depths 20,56` for a pair), without the API's own parameters (`leave_out`: no option
    spells them); quoted for a shell."""
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
    words = ["zoo", name, *(str(arguments[p]) for p in positional)]
    for key, value in arguments.items():
        if key in positional or key in leave_out or value is None or value is False:
            continue
        if key in defaults and value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, tuple | list):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def invocation(data: str | None = None, command: str | None = None) -> dict[str, str | None]:
    """What a long job records so it can be continued by someone else: its command (this process's
    `zoo ...` by default), the folder it ran in (its paths may be relative to it) and its data root."""
    return {
        "command": command or own_command(),
        "cwd": os.getcwd(),
        "data": data or os.environ.get("ZOO_DATA"),
    }


def start_command(command: str | None, cwd: str | None = None, data: str | None = None) -> str | None:
    """The command that trains a run (or builds a teacher table) from its start, from the folder it was
    started in and with the dataset it read from $ZOO_DATA; without the --resume of a later invocation
    and the --max-steps / --stop-after that stopped one."""
    if not command:
        return None
    words = _without_option(_without_option(_words(command), "--max-steps"), "--stop-after")
    words = [w for w in words if w != "--resume"]
    command = shlex.join(words)
    if data and "--data" not in words:
        command = f"ZOO_DATA={shlex.quote(data)} {command}"
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command


def continue_command(
    command: str | None, cwd: str | None = None, data: str | None = None, folder: Path | None = None
) -> str | None:
    """The command that continues a run: `zoo train ...` resumes with --resume (and without the
    --max-steps that stopped it, which would stop it again); `zoo degradation` continues its unfinished
    nets when given again. A `zoo train` run's `folder` that is not where it was started (a copy carried
    elsewhere, a moved folder) is the one its command resumes: --out names it."""
    if command and folder is not None and _words(command)[:2] == ["zoo", "train"]:
        command = _resuming(command, cwd, folder)
    start = start_command(command, cwd, data)
    if start is None or _words(command)[:2] != ["zoo", "train"]:
        return start
    return f"{start} --resume"


def _resuming(command: str, cwd: str | None, folder: Path) -> str:
    """`command` with --out naming `folder` when the --out it was started with (relative to `cwd`) is
    another folder; unchanged when it is that folder."""
    words = _words(command)
    given = [w.split("=", 1)[1] for w in words if w.startswith("--out=")]
    given += [b for a, b in zip(words, words[1:], strict=False) if a == "--out"]
    base = Path(cwd or os.getcwd())
    started = base / Path(given[-1]).expanduser() if given else base / "runs" / folder.name  # the default
    here = folder.resolve()
    if started.resolve() == here:
        return command
    return shlex.join([*_without_option(words, "--out"), "--out", str(here)])


def run_command(folder: Path) -> str | None:
    """The command that trains `folder`'s run from its start."""
    return start_command(*_started(read_json(folder / RUN) or {}, read_json(folder / SUMMARY) or {}))


def _started(record: dict[str, Any], summary: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The command, folder and $ZOO_DATA a run started with (run.json), else its last command (summary.json);
    None for any that is not text (a record edited by hand)."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    return (
        text(record.get("command")) or text(summary.get("command")),
        text(record.get("cwd")),
        text(record.get("data")),
    )


def _words(command: str) -> list[str]:
    """A recorded command's words as a shell splits them (an unbalanced quote: at the spaces)."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _without_option(words: list[str], option: str) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == option:
            skip = True  # and its value
        elif not word.startswith(f"{option}="):
            kept.append(word)
    return kept


def find(root: Path, listing: bool = False) -> list[dict[str, Any]]:
    """Every run folder under `root` (itself included), sorted by path. A folder whose records are damaged
    is one sentence; `listing` (`zoo runs`), a row that says so instead, so the other runs stay in view."""
    if not root.is_dir():
        raise ZooError(
            f"{root} is not a folder: `zoo runs` reads ./runs unless given one, e.g. `zoo runs ~/zoo-runs`."
        )
    folders = {p.parent for name in (METRICS, CHECKPOINT, RUN) for p in root.rglob(name)}
    states = []
    for folder in sorted(folders):
        with reading(f"the run folder {folder}"):
            try:
                states.append(state(folder) | {"damaged": None})
            except ZooError as e:
                if not listing:
                    raise
                states.append(damaged(folder, str(e)))
    return states


def damaged(folder: Path, why: str) -> dict[str, Any]:
    """`state`'s row for a folder whose records cannot be read: nothing known but the folder and why."""
    keys = ("arch", "recipe", "epochs_done", "epochs_planned", "steps_saved_after", "test_top1", "test_epoch")
    keys += ("val_top1", "val_epoch", "last_update", "epoch_s", "threads", "hours_left", "continue_with")
    return {
        "folder": str(folder),
        **dict.fromkeys(keys),
        "complete": False,
        "training_now": holder(folder),
        "damaged": why,
    }


def tables(cache: Path) -> list[dict[str, Any]]:
    """Every teacher table under `cache`/teacher-tables (a long job of its own, continued like a run): its
    teacher, images done of all, its hash once complete, and the command that continues it."""
    found = []
    for meta_path in sorted((cache / "teacher-tables").glob("*/table.json")):
        with reading(f"the teacher table {meta_path}"):
            meta = read_json(meta_path) or {}
            key = meta.get("key") if isinstance(meta.get("key"), dict) else {}
            complete = bool(meta.get("complete"))
            found.append(
                {
                    "folder": str(meta_path.parent),
                    "teacher": key.get("teacher"),
                    "done": meta.get("done"),
                    "images": key.get("images"),
                    "complete": complete,
                    "sha256": meta.get("sha256"),
                    "last_update": _stamp(meta_path.stat().st_mtime),
                    "continue_with": None if complete else start_command(*_started(meta, {})),
                }
            )
    return found


def _stamp(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _left(s: dict[str, Any]) -> str:
    """ ", ~53 h left at 32 min an epoch on 1 thread", or nothing before an epoch is timed."""
    if s.get("hours_left") is None:
        return ""
    threads = s.get("threads")
    on = f" on {threads} thread{'s' if threads != 1 else ''}" if isinstance(threads, int) else ""
    return f", ~{s['hours_left']:.1f} h left at {s['epoch_s'] / 60:.1f} min an epoch{on}"


def markdown(states: list[dict[str, Any]], teacher_tables: list[dict[str, Any]] = ()) -> str:
    """A table for a closing note or a terminal: one row a run, then one a teacher table."""
    lines = [
        "| run folder | arch | recipe | epochs done / planned | last test top-1 | state |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in states:
        if s.get("damaged"):
            lines.append(f"| `{s['folder']}` | ? | ? | - | - | damaged: {s['damaged']} |")
            continue
        planned = s["epochs_planned"] if s["epochs_planned"] is not None else "?"
        top1 = f"{s['test_top1']:.2f}% (epoch {s['test_epoch']})" if s["test_top1"] is not None else "-"
        if s.get("val_top1") is not None:  # a run that holds images out is compared on them
            top1 = top1.replace(")", f"; held-out {s['val_top1']:.2f}%)", 1)
        live = s.get("training_now")
        status = (
            "finished"
            if s["complete"]
            else f"training now (process {live.get('pid')}){_left(s)}, last update {s['last_update']}"
            if live
            else f"unfinished{_left(s)}, last update {s['last_update']}"
            if s["last_update"]
            else "not started"
        )
        steps = f" (+{s['steps_saved_after']} steps)" if s.get("steps_saved_after") else ""
        lines.append(
            f"| `{s['folder']}` | {s['arch'] or '?'} | {s['recipe'] or '?'} "
            f"| {s['epochs_done']} / {planned}{steps} | {top1} | {status} |"
        )
    if teacher_tables:
        lines += [
            "",
            "| teacher table | teacher | images done / all | state |",
            "| --- | --- | --- | --- |",
        ]
        for t in teacher_tables:
            teacher = ", ".join(t["teacher"]) if isinstance(t["teacher"], list) else "?"
            status = (
                f"complete, sha256 {t['sha256']}"
                if t["complete"]
                else f"unfinished, last update {t['last_update']}"
                + ("" if t["continue_with"] else " (continue with the `zoo teacher-table` that started it)")
            )
            lines.append(f"| `{t['folder']}` | {teacher} | {t['done']} / {t['images']} | {status} |")
    every = [*[s for s in states if not s.get("training_now")], *teacher_tables]  # not a live run's
    commands = list(dict.fromkeys(s["continue_with"] for s in every if s["continue_with"]))  # one each
    if commands:
        lines += ["", "Continue with:", "```", *commands, "```"]
    return "\n".join(lines) + "\n"
