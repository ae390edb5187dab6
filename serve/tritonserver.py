"""Run a real Triton Inference Server on a model repository: the `tritonserver` on PATH (NVIDIA's
containers), else the one bundled in the `nvidia-pytriton` wheel, whose Python backend needs the stub of
this Python copied into its backend folder (done here, once). Loopback only; stopped on exit."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from zoo.errors import ZooError
from zoo.utils.ports import free_port

MISSING = (
    "no Triton Inference Server here: install the bundled CPU server with "
    "`pip install --no-deps nvidia-pytriton==0.7.0` (its numpy<2 pin would downgrade the zoo's NumPy; the "
    "zoo needs only its tritonserver binary), or run NVIDIA's Triton container."
)


def find_server() -> tuple[Path, Path | None]:
    """(the tritonserver binary, its backend directory or None for the binary's own default)."""
    on_path = shutil.which("tritonserver")
    if on_path:
        return Path(on_path), None

    found = importlib.util.find_spec("pytriton")  # located, not imported: only its binary is needed
    if found is None or not found.submodule_search_locations:
        raise ZooError(MISSING)
    root = Path(found.submodule_search_locations[0]) / "tritonserver"
    binary, backends = root / "bin" / "tritonserver", root / "backends"
    if not binary.is_file():
        raise ZooError(MISSING)
    _install_stub(root)
    return binary, backends


def _install_stub(root: Path) -> None:
    """The Python backend runs models in `triton_python_backend_stub`, which the wheel ships per Python
    version: the one of this interpreter goes into backends/python (idempotent)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    source = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    dest = root / "backends" / "python" / "triton_python_backend_stub"
    if not source.is_file():
        raise ZooError(f"the bundled Triton server has no Python backend for Python {version}.")
    if not dest.is_file() or dest.read_bytes() != source.read_bytes():
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            shutil.copy2(source, tmp)
            os.replace(tmp, dest)
        except OSError as e:
            raise ZooError(
                f"cannot set up the bundled Triton server's Python backend in {dest.parent}: {e}."
            ) from None


class TritonServer:
    """`with TritonServer(repo) as server:` starts the server on loopback and waits until every model
    is ready; `server.url` is its HTTP endpoint. A server that fails to start raises ZooError with the
    lines of its log that say why."""

    def __init__(self, repository: Path, http_port: int | None = None, timeout: float = 120.0) -> None:
        self.repository, self.timeout = Path(repository), timeout
        self.http_port = http_port or free_port()
        self.grpc_port, self.metrics_port = free_port(), free_port()
        self.url = f"127.0.0.1:{self.http_port}"
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None

    def command(self) -> list[str]:
        binary, backends = find_server()
        args = [str(binary), "--model-repository", str(self.repository.resolve())]
        args += ["--backend-directory", str(backends)] if backends else []
        args += ["--http-address", "127.0.0.1", "--http-port", str(self.http_port)]
        args += ["--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port)]
        return args + ["--metrics-port", str(self.metrics_port), "--exit-timeout-secs", "5"]

    def start(self) -> TritonServer:
        if not self.repository.is_dir():
            raise ZooError(
                f"{self.repository} is not a model repository folder; write one with `zoo triton`."
            )
        command = self.command()

        fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
        os.close(fd)
        self.log = Path(name)
        with open(self.log, "wb") as log:
            # its own process group (with its Python-backend stubs), ended as one by stop(); and a server
            # whose zoo died without stopping it (SIGKILL) is sent SIGTERM by the kernel
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_until_ready()
        except BaseException:  # a failure, or Ctrl-C while it starts: no server is left running
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ZooError(f"the Triton server stopped while starting: {self._why()}")
            if self._ready():
                return
            time.sleep(0.25)
        raise ZooError(f"the Triton server was not ready after {self.timeout:.0f} s: {self._why()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def _why(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log and self.log.is_file() else []
        failed = [line.strip("| ") for line in lines if "UNAVAILABLE" in line]  # the table of models
        errors = [line for line in lines if line.startswith("E") or "error" in line.lower()]
        return " | ".join(failed or (errors or lines or ["no output"])[-3:])

    def stop(self) -> None:
        """Stop the server and everything it started (its process group): SIGTERM, 30 s to exit, then
        SIGKILL; and SIGKILL to whatever of the group outlived the server (a stub that ignores SIGTERM)."""
        if self.process is not None:
            group = self.process.pid  # start_new_session: the group's id is the server's pid
            if self.process.poll() is None:
                _signal_group(group, signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _signal_group(group, signal.SIGKILL)
                    self.process.wait()
            _signal_group(group, signal.SIGKILL)
        if self.log is not None:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Terminated(Exception):
    """SIGTERM or SIGHUP (systemd, `docker stop`, Kubernetes, a closed terminal): stop as on Ctrl-C."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise _Terminated(signal.Signals(signum).name)


def serve_until_interrupted(repo: Path, port: int, say=print) -> None:
    """`zoo serve --triton`: start the server, say where it listens and what it serves, run until Ctrl-C,
    SIGTERM or SIGHUP (or until the server stops by itself, which is an error); the server and its
    stubs stop with it whatever ended it."""
    server = TritonServer(repo, http_port=port)
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        server.start()
        models = sorted(p.name for p in Path(repo).iterdir() if (p / "config.pbtxt").is_file())
        say(f"Triton is serving {len(models)} models of {repo}:")
        say(f"  HTTP http://{server.url}   gRPC 127.0.0.1:{server.grpc_port}")
        say(f"  models: {', '.join(models)}")
        say("Ctrl-C stops it.")
        while server.process.poll() is None:
            time.sleep(0.5)
    except (KeyboardInterrupt, _Terminated):  # while it starts or serves
        say("stopping ...")
        return
    finally:
        server.stop()  # waits for it to exit (30 s at most, then kills it)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    raise ZooError(f"the Triton server stopped by itself (exit code {server.process.returncode}).")
