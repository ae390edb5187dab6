"""Files written whole or not at all: a temporary name beside the destination, renamed over it only when
the writing succeeded, with the permissions the umask gives any new file or folder. Every artifact,
manifest, card, checkpoint and report of the zoo is written this way."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    dest.parent.mkdir(parents=True, exist_ok=True)
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
