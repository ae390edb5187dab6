"""The arguments the `zoo` command was given in this process: sys.argv when it is the process's own
command, the list it was invoked with when it runs in-process (a test's CliRunner, a notebook), where
sys.argv is another program's. A long job records them so that it can be continued."""

from __future__ import annotations

import sys
from contextvars import ContextVar

GIVEN: ContextVar[tuple[str, ...] | None] = ContextVar("zoo_arguments", default=None)


def zoo_arguments() -> list[str]:
    """The arguments after `zoo` of the command running now."""
    given = GIVEN.get()
    return list(sys.argv[1:] if given is None else given)
