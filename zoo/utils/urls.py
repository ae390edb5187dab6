"""Reading a URL, bounded: in size (the announced length, else a limit) and in time for the whole transfer
(a server that trickles bytes never trips a read timeout), so that neither an endless body nor a slow
server fills the disk or holds a command forever. The weights' downloads and `zoo predict URL` read
through here."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from zoo.errors import ZooError

READ_TIMEOUT_S = 60.0
# what reading a URL can raise besides ZooError: no connection, a refused one, a broken response
NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def stream(url: str, max_bytes: int, deadline_s: float) -> Iterator[bytes]:
    """The body of `url`, chunk by chunk as it arrives; ZooError when it is (or announces) more than
    `max_bytes`, or takes longer than `deadline_s` in all. NETWORK_ERRORS pass through."""
    start, size = time.monotonic(), 0
    with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as resp:
        announced = resp.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > max_bytes:
            raise ZooError(f"{url} announces {int(announced):,} bytes, more than the {max_bytes:,} expected.")
        while chunk := resp.read1(1 << 20):  # what has arrived: a trickle cannot block the deadline
            size += len(chunk)
            if size > max_bytes:
                raise ZooError(f"{url} sent more than the {max_bytes:,} bytes expected; it was discarded.")
            if time.monotonic() - start > deadline_s:
                raise ZooError(
                    f"reading {url} took longer than {deadline_s:.0f} s ({size:,} bytes so far); "
                    "it was discarded: try again later."
                )
            yield chunk


def fetch(url: str, max_bytes: int, deadline_s: float) -> bytes:
    """The whole body of `url` in memory, bounded as `stream` is; one sentence when it cannot be read."""
    try:
        return b"".join(stream(url, max_bytes, deadline_s))
    except NETWORK_ERRORS as e:
        raise ZooError(
            f"cannot read {url} ({getattr(e, 'reason', None) or f'{type(e).__name__}: {e}'})."
        ) from None
