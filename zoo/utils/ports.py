"""Ports a server of the zoo listens on: one chosen by the system, or one a user named, checked before the
server starts (Gradio and Triton would fail on it later, in words about their own internals)."""

from __future__ import annotations

import errno
import socket

from zoo.errors import ZooError


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_listen(host: str, port: int) -> None:
    """One sentence unless a server can listen on host:port now: a port outside 1-65535, a host name that
    does not resolve or is not this machine's, a port another server holds."""
    if not 1 <= port <= 65535:
        raise ZooError(f"--port must be a whole number from 1 to 65535, not {port}.")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        why = e.strerror if isinstance(e, socket.gaierror) else "not a host name"
        raise ZooError(f"cannot listen on --host {host!r}: {str(why).lower()}.") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: a closed port is free
        try:
            s.bind(address)
        except OSError as e:
            why = {
                errno.EADDRINUSE: "another server listens there; choose another --port",
                errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
            }.get(e.errno, (e.strerror or str(e)).lower())
            raise ZooError(f"cannot listen on {host}:{port}: {why}.") from None
