"""One process trains a run folder at a time. `zoo train` holds an exclusive lock on the folder's
`train.lock` while it runs: an advisory flock, which the kernel drops when the process ends, however it
ends (a kill leaves no stale lock). A second `zoo train` into the folder is refused in one sentence that
names the process, instead of two processes overwriting one checkpoint; `zoo runs` asks the same lock
which runs are training now. Where flock does not exist (Windows) nothing is locked."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from zoo.errors import ZooError

try:
    import fcntl
except ImportError:  # pragma: no cover  (not a POSIX system)
    fcntl = None

LOCK = "train.lock"


def hold(folder: Path) -> IO | None:
    """Lock `folder` for this process, recording who holds it; ZooError naming the holder if taken."""
    if fcntl is None:
        return None
    f = open(folder / LOCK, "a+")  # noqa: SIM115  (held open for the run's whole life)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        who = _parsed(f.read())
        f.close()
        raise ZooError(busy(folder, who)) from None
    f.seek(0)
    f.truncate()
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n")
    f.flush()
    return f


def busy(folder: Path, who: dict[str, Any]) -> str:
    """The sentence that refuses a folder `who` (as `holder` returns it) trains now."""
    pid = who.get("pid") or "?"
    since = f" since {who['since']}" if who.get("since") else ""
    return (
        f"{folder} is being trained by process {pid} on {who.get('host') or 'this machine'}{since}; "
        f"let it finish, or stop it (`kill {pid}`) and continue with --resume."
    )


def release(handle: IO | None) -> None:
    if handle is not None and not handle.closed:
        handle.close()  # closing the file drops its flock; the file stays (its contents are stale then)


def holder(folder: Path) -> dict[str, Any] | None:
    """Who trains `folder` now ({"pid", "host", "since"}), or None when no process holds its lock."""
    path = folder / LOCK
    if fcntl is None or not path.is_file():
        return None
    try:
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parsed(f.read()) or {"pid": None}
    except OSError:  # unreadable: nobody we can name
        return None
    return None


def _parsed(text: str) -> dict[str, Any]:
    try:
        who = json.loads(text)
    except ValueError:
        return {}
    return who if isinstance(who, dict) else {}
