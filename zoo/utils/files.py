"""Files written whole or not at all: a temporary name beside the destination, renamed over it only when
the writing succeeded, with the permissions the umask gives any new file or folder. Every artifact,
manifest, card, checkpoint and report of the zoo is written this way."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, shortened


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_dir(parent: Path, name: str) -> Path:
    """A new hidden `.NAME.*.tmp` folder in `parent`, with the permissions the umask gives any folder
    (mkdtemp alone makes it 0700, which a later rename would keep)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    tmp.chmod(0o777 & ~_umask())
    return tmp


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest` that becomes `dest` only if the block succeeds; the file gets
    the permissions the umask gives any new file (mkstemp alone makes it 0600)."""
    output_dir(dest.parent, "folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def swap_dir_into_place(tmp: Path, dest: Path) -> None:
    """Rename the complete folder `tmp` to `dest`; an old `dest` disappears only once the new one is there."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def exists(path: str | os.PathLike) -> bool:
    """Whether a path exists; False for a name the file system refuses (too long, a NUL): no file has it."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def read_bytes(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; one sentence otherwise, before reading: a
    FIFO, a device (/dev/zero) or a folder would block or never end, a huge file would fill the memory."""
    path = Path(path)
    try:
        st = path.stat()
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise ZooError(f"cannot read the {what} {path}: {getattr(e, 'strerror', None) or e}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ZooError(f"the {what} {path} is a folder, not a file.")
    if not stat.S_ISREG(st.st_mode):
        raise ZooError(
            f"the {what} {path} is not a regular file (a pipe, socket or device); the zoo reads files."
        )
    if st.st_size > limit:
        raise ZooError(f"the {what} {path} is {st.st_size:,} bytes, more than the {limit:,} the zoo reads.")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ZooError(f"cannot read the {what} {path}: {e.strerror or e}.") from None
    if len(data) > limit:  # grew while read
        raise ZooError(f"the {what} {path} is more than the {limit:,} bytes the zoo reads.")
    return data


def read_text(path: Path, limit: int, what: str = "file") -> str:
    """`read_bytes` decoded as UTF-8, with one sentence when it is not."""
    try:
        return read_bytes(path, limit, what).decode("utf-8")
    except UnicodeDecodeError:
        raise ZooError(f"the {what} {path} is not UTF-8 text.") from None


def read_json(path: Path, limit: int, what: str = "file") -> Any:
    """`read_text` parsed as JSON, with one sentence when it is not."""
    try:
        return json.loads(read_text(path, limit, what))
    except json.JSONDecodeError as e:
        raise ZooError(f"the {what} {path} is not valid JSON ({e.msg}, line {e.lineno}).") from None


def output_dir(path: Path, what: str = "output folder", create: bool = True) -> Path:
    """`path` as a folder the zoo can write into (created when missing, unless not `create`); one sentence
    when it is a file, a file stands above it, or it cannot be made. Commands check it before their work,
    not after an hour of it."""
    path = Path(path)
    if exists(path) and not path.is_dir():
        raise ZooError(f"the {what} {path} is a file, not a folder; name a folder.")
    above = next((p for p in path.parents if exists(p)), None)  # the nearest thing that is there
    if above is not None and not above.is_dir():
        raise ZooError(f"cannot create the {what} {shortened(str(path))}: {above} is a file, not a folder.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as e:  # too long a name, a NUL in it, no permission
            raise ZooError(
                f"cannot create the {what} {shortened(str(path))}: {getattr(e, 'strerror', None) or e}."
            ) from None
    return path
