"""The one error type users see: a sentence that says what went wrong and what to do."""


class ZooError(Exception):
    """A user-facing error. The CLI prints its message and exits non-zero, without a traceback."""
