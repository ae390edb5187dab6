"""torch.onnx.export without its narration: the exporter prints its steps on stdout, warns, and logs one
line per torchvision operator it skips when torchvision is absent (the zoo needs none), so a user's
screen would carry words that are not the zoo's. One context manager for every caller of the exporter."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

REGISTRATION = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    registration = logging.getLogger(REGISTRATION)
    level = registration.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        registration.setLevel(logging.ERROR)
        try:
            yield
        finally:
            registration.setLevel(level)
