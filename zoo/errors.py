"""The one error type users see: a sentence that says what went wrong and what to do; and `reading`, which
names what was being read when something the zoo did not foresee went wrong, for the CLI's last word."""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager


class ZooError(Exception):
    """A user-facing error. The CLI prints its message and exits non-zero, without a traceback."""


def at_least_one(**counts: int | None) -> None:
    """Refuse, in one sentence, a count option (`train_limit=0` reads --train-limit) below 1; None is unset.
    A slice with a negative or zero count would silently read the wrong images, or none."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ZooError(f"--{name.replace('_', '-')} must be at least 1, not {value}.")


def positive_number(option: str, value: object, unit: str, most: float | None = None) -> None:
    """Refuse, in one sentence, an amount option (--seconds, --save-every) that is not a finite number above
    0 (and at most `most`): nan and inf pass a plain `> 0` test, or never end."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0 and (most is None or value <= most)):
        shown = f"{value:g}" if number else repr(value)
        bound = f" (at most {most:g})" if most is not None else ""
        raise ZooError(f"{option} must be a positive number of {unit}{bound}, not {shown}.")


def device_choice(value: str, auto: bool = True) -> str:
    """A --device value: cpu, cuda or cuda:N (and auto, where the command chooses); one sentence otherwise,
    not PyTorch's list of twenty device types it was not built for."""
    if value in ("cpu", "cuda") or (auto and value == "auto") or re.fullmatch(r"cuda:[0-9]+", value):
        return value
    raise ZooError(f"--device must be {'auto, ' if auto else ''}cpu, cuda or cuda:N, not {value!r}.")


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Name what a block reads ("the card artifacts/x/onnx/card.json"): an unexpected exception leaving
    it carries the innermost such name, which the CLI's last-resort handler puts in its sentence."""
    try:
        yield
    except ZooError:
        raise
    except Exception as e:
        if not hasattr(e, "zoo_reading"):
            e.zoo_reading = what  # type: ignore[attr-defined]
        raise


def shortened(text: str, most: int = 200) -> str:
    """A name for a sentence: a hostile one (thousands of characters) cut to its start and its end."""
    return text if len(text) <= most else f"{text[: most // 2]}…{text[-most // 2 :]}"


def path_mistake(e: BaseException) -> str | None:
    """The sentence for an OS error that is the user's path, not the zoo (a name longer than the file
    system takes), wherever a command met it first; None for any other error."""
    if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
        name = shortened(str(e.filename)) if e.filename is not None else "a path given"
        return f"{name} is longer than this file system allows for a path (File name too long); name a shorter one."
    return None


def unexpected(e: BaseException) -> str:
    """One sentence for an exception no check foresaw: its type, what was being read, its first line."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    where = getattr(e, "zoo_reading", None)
    return (
        f"unexpected {type(e).__name__}{f' while reading {where}' if where else ''}"
        f"{f': {first}' if first else ''}. This input is not one the zoo checks yet; "
        "run with --debug (or ZOO_DEBUG=1) for the traceback."
    )
