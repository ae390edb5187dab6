"""The command line, through Typer's CliRunner and as a real subprocess of the installed `zoo`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zoo.cli import app

runner = CliRunner()


def run_zoo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_list_json_has_every_architecture_with_its_size_and_accuracy():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"resnet18", "resnet152", "resnet20", "resnet1202", "plain20", "plain34"} <= set(by_name)
    assert {"name", "params", "gmacs", "dataset", "top1"} <= set(rows[0])
    assert by_name["resnet50"]["params"] == 25_557_032  # torchvision's published num_params
    assert by_name["resnet50"]["top1"] == 80.858 and by_name["resnet50"]["dataset"] == "imagenet1k"


def test_list_pretrained_and_a_pattern(zoo_cache):
    result = runner.invoke(app, ["list", "resnet50", "--pretrained", "--json"])
    assert [r["name"] for r in json.loads(result.stdout)] == ["resnet50.tv_in1k", "resnet50.tv2_in1k"]
    table = runner.invoke(app, ["list", "resnet1*"])
    assert table.exit_code == 0 and "resnet101" in table.stdout and "resnet20 " not in table.stdout


def test_info_json_describes_weights_and_preprocessing():
    result = runner.invoke(app, ["info", "resnet50.tv_in1k", "--json"])
    info = json.loads(result.stdout)
    assert info["weights"]["preprocess"]["resize"] == 256 and info["weights"]["metrics"]["top5"] == 92.862
    assert info["gmacs"] == pytest.approx(4.09, abs=0.01)
    human = runner.invoke(app, ["info", "plain20"])
    assert human.exit_code == 0 and "params 269,722" in human.stdout and "tags: none yet" in human.stdout


def test_doctor_json_reports_versions_backends_and_places():
    result = runner.invoke(app, ["doctor", "--json"])
    doc = json.loads(result.stdout)
    assert doc["versions"]["torch"] and {b["name"] for b in doc["backends"]} >= {
        "pytorch",
        "onnxruntime",
        "tensorrt",
    }
    trt = next(b for b in doc["backends"] if b["name"] == "tensorrt")
    assert trt["usable"] or "pip install" in trt["detail"]


def test_errors_are_one_sentence_and_a_nonzero_exit_never_a_traceback():
    result = run_zoo("info", "resnet05")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: unknown model 'resnet05'")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = run_zoo("import-weights", "/nonexistent.pth", "resnet18.x")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "error:" in missing.stderr


def test_help_and_list_do_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from zoo.cli import app; "
        "r = CliRunner().invoke(app, ['list', '--json']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_the_installed_console_script_answers_help():
    exe = os.path.join(os.path.dirname(sys.executable), "zoo")
    if not os.path.exists(exe):
        pytest.skip("the `zoo` console script is not installed next to this Python")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "export" not in result.stderr and "list" in result.stdout
