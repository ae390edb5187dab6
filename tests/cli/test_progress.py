"""Live progress (issue #29): drawn on a terminal's standard error during long steps, never under --json
and never when standard error is a pipe or a file. Run through a real pseudo-terminal, as a user's shell
runs the zoo."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest


def _in_a_terminal(args: list[str], cwd: Path, timeout: float = 600) -> tuple[int, str]:
    """`python -m zoo ARGS` with stdin, stdout and stderr on a pseudo-terminal; (exit code, all it drew)."""
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    env.pop("ZOO_PROGRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", *args], stdin=child, stdout=child, stderr=child, cwd=cwd, env=env
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side was closed (the process ended)
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def test_export_shows_each_step_live_in_a_terminal_with_its_time_and_size(tmp_path, cifar_dir):
    code, drawn = _in_a_terminal(
        [
            "export",
            "resnet20.cifar10",
            "--formats",
            "onnx",
            "--artifacts",
            str(tmp_path / "a"),
            "--parity-images",
            "500",
        ],
        tmp_path,
    )
    assert code == 0, drawn[-2000:]
    assert "onnx: ONNX, FP32, dynamic batch" in drawn  # the running step's own line
    assert "parity of 1 artifact(s) on 500 images" in drawn
    assert re.search(r"\d+/500", drawn)  # its count, drawn as it advances
    assert re.search(r"onnx: built in \d+\.\d s, \d+\.\d MB", drawn)  # the step's summary line


@pytest.mark.parametrize("how", ["--json in a terminal", "a pipe"])
def test_nothing_is_drawn_under_json_or_into_a_pipe(tmp_path, cifar_dir, how):
    args = ["eval", "resnet20.cifar10", "--limit", "400"]
    if how == "a pipe":
        done = subprocess.run(
            [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=600
        )
        code, drawn = done.returncode, done.stdout + done.stderr
    else:
        code, drawn = _in_a_terminal([*args, "--json"], tmp_path)
    assert code == 0, drawn[-2000:]
    assert "on 400 images" not in drawn and "\x1b[?25l" not in drawn  # no step line, no hidden cursor
    control, drawn_here = _in_a_terminal(args, tmp_path)  # the same command in a terminal does draw
    assert control == 0 and "eval resnet20.cifar10 on 400 images (single)" in drawn_here
