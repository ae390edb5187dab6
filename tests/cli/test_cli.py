"""The command line, through Typer's CliRunner and as a real subprocess of the installed `zoo`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from zoo import ZooError
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
    import tomllib

    manifest = tomllib.loads((Path(__file__).resolve().parents[2] / "weights" / "manifest.toml").read_text())
    entry = manifest["weights"]["resnet50.tv_in1k"]
    assert {k: info["weights"][k] for k in ("arch", "dataset", "labels", "url")} == {
        k: entry[k] for k in ("arch", "dataset", "labels", "url")
    }
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


# The modules that subclass torch classes or decorate with torch at import time: the networks, the data
# loaders, the trainer and what is built on them. Every other module imports no heavy library until used.
MADE_WITH_TORCH = {
    "zoo.models.resnet",
    "zoo.data.loaders",
    "zoo.train.trainer",
    "zoo.train.bench",
    "zoo.evaluate",
    "zoo.paper.degradation",
    "zoo.models.flops",
    "zoo.train.publish",
    "zoo.train.teacher",
}
HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt", "openvino", "gradio", "matplotlib", "tritonclient")


def test_every_other_module_imports_without_a_heavy_library():
    """zoo/lazy.py's promise, module by module: importing one loads none of HEAVY (each in a fresh
    interpreter, so one module's imports cannot hide another's)."""
    root = Path(__file__).resolve().parents[2]
    package = {"zoo": "zoo", "export": "zoo.export", "serve": "zoo.serve"}  # pyproject's package-dir
    modules = sorted(
        ".".join([package[folder], *p.relative_to(root / folder).with_suffix("").parts]).removesuffix(
            ".__init__"
        )
        for folder in package
        for p in (root / folder).rglob("*.py")
        if "triton_models" not in p.parts and p.name != "__main__.py"
    )
    assert "zoo.cli" in modules and "zoo.export.pipeline" in modules and "zoo.serve.runtimes" in modules
    code = (
        "import importlib, json, sys\n"
        f"heavy = {HEAVY!r}\n"
        "m = sys.argv[1]; importlib.import_module(m)\n"
        "print(json.dumps([h for h in heavy if h in sys.modules]))"
    )
    loaded = {}
    for m in modules:
        if m in MADE_WITH_TORCH:
            continue
        out = subprocess.run(
            [sys.executable, "-c", code, m], capture_output=True, text=True, timeout=60, cwd=root
        )
        assert out.returncode == 0, f"{m}: {out.stderr.strip().splitlines()[-1:]}"
        loaded[m] = json.loads(out.stdout)
    assert {m: h for m, h in loaded.items() if h} == {}


def test_a_lazy_module_loads_on_first_use_and_a_missing_one_is_one_sentence(tmp_path, monkeypatch):
    from zoo.utils.lazy import install_hint, installed, lazy_import

    (tmp_path / "zoo_lazy_probe.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed("json") and not installed("no_such_module_here") and not installed("no_such.child")
    probe = lazy_import("zoo_lazy_probe")
    assert "zoo_lazy_probe" not in sys.modules and "not loaded yet" in repr(probe)  # named, not imported
    assert probe.VALUE == 42 and "zoo_lazy_probe" in sys.modules and "not loaded yet" not in repr(probe)
    monkeypatch.delitem(sys.modules, "zoo_lazy_probe")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(ZooError) as e:
        lazy_import("openvino").Core()
    assert (
        str(e.value)
        == install_hint("openvino")
        == "OpenVINO is not installed: pip install 'resnet-zoo[openvino]'."
    )


def test_the_installed_console_script_answers_help():
    exe = os.path.join(os.path.dirname(sys.executable), "zoo")
    if not os.path.exists(exe):
        pytest.skip("the `zoo` console script is not installed next to this Python")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "export" not in result.stderr and "list" in result.stdout


def test_doctor_says_when_both_onnx_runtime_builds_are_installed(monkeypatch):
    """ONNX Runtime's own advice: one of onnxruntime and onnxruntime-gpu, never both (they share a module)."""
    from zoo.serve import runtimes

    probe = runtimes.RUNTIMES["onnxruntime"].probe
    monkeypatch.setattr(runtimes, "version", lambda dist: "1.32.0")  # as if both distributions were installed
    assert "both onnxruntime and onnxruntime-gpu are installed" in probe()
    monkeypatch.setattr(runtimes, "version", lambda dist: None if dist.endswith("-gpu") else "1.32.0")
    assert "both" not in probe()


def test_list_shows_each_architectures_default_tag_not_the_rows_own():
    """torchvision's DEFAULT weights of ResNet-50 are V2: the V1 row says so instead of repeating itself."""
    result = runner.invoke(app, ["list", "resnet50.*", "--pretrained", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["resnet50.tv_in1k"]["default_tag"] == "resnet50.tv2_in1k"
    assert rows["resnet50.tv2_in1k"]["default_tag"] == "resnet50.tv2_in1k"
    table = runner.invoke(app, ["list", "resnet50.tv_in1k", "--pretrained"])
    assert "tv2_in1k" in table.output


def test_info_says_whether_the_weights_are_here(zoo_cache):
    built_in = runner.invoke(app, ["info", "resnet20.cifar10"])
    assert built_in.exit_code == 0 and "(present)" in built_in.output
    assert "with flip averaging" in built_in.output and "top1_flip" not in built_in.output
    remote = runner.invoke(app, ["info", "resnet50.tv_in1k"])
    assert remote.exit_code == 0 and "not downloaded yet" in remote.output


def test_info_prints_each_fact_on_one_line_whole_urls_included():
    """Printed to a pipe (80 columns), a long URL or path is not cut in two: it can be copied or grepped."""
    import tomllib

    manifest = tomllib.loads((Path(__file__).resolve().parents[2] / "weights" / "manifest.toml").read_text())
    entry = manifest["weights"]["resnet110.akamaster"]
    shown = runner.invoke(app, ["info", "resnet110.akamaster"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any(line.startswith(f"weights: {entry['url']} ") for line in lines), shown.output
    assert next(line for line in lines if line.startswith("here: ")).endswith("checks its hash")
    metrics = next(line for line in lines if line.startswith("metrics: "))
    assert "top-1 93.68 on" in metrics and "top-5" not in metrics  # akamaster published top-1 only


def test_doctor_names_the_zoos_own_version():
    import zoo

    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["zoo_version"] == zoo.__version__


def test_runs_of_a_missing_folder_suggests_where_runs_usually_are(tmp_path):
    result = runner.invoke(app, ["runs", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "zoo runs ~/zoo-runs" in result.output


def _helps() -> dict[str, str]:
    """Every command's --help, as a user reads it (plain text, wide enough not to wrap names)."""
    from zoo import cli  # noqa: F401  (registers every command)

    names = [c.name for c in typer.main.get_command(app).commands.values()]
    return {n: runner.invoke(app, [n, "--help"], terminal_width=200).stdout for n in names}


def test_the_command_list_is_whole_and_starts_with_deployment():
    out = runner.invoke(app, ["--help"], terminal_width=100).stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:4] == ["export", "parity", "predict", "trust"]
    assert "..." not in out.split("Commands:")[1]  # every summary whole, none cut


def test_every_option_means_one_thing_in_every_command():
    helps = _helps()
    assert len(helps) >= 20
    for name, text in helps.items():
        options = text.split("Options:")[1].split("Examples:")[0]
        assert not re.search(r"<(str|int|float|path|list\[\w+\])>", text, re.I), name  # no Python types
        assert "Examples:" in text and f"zoo {name}" in text.split("Examples:")[1], name
        rows = dict(
            (m.group(1), m.group(2))
            for m in re.finditer(r"^\s+(?:-\w, )?(--[\w-]+)[^\n]*?\s{2,}(\S[^\n]*)", options, re.M)
        )
        if "--artifacts" in rows:
            assert "Artifacts folder" in rows["--artifacts"], name
        if "--out" in rows:  # never the artifacts folder: a command's own results
            assert "Artifacts" not in rows["--out"], name
        if "--formats" in rows:
            assert "Comma-separated" in rows["--formats"], name
        if "--format" in rows:
            assert "Comma-separated" not in rows["--format"], name
        if "--batch" in rows:
            assert "batch sizes" in rows["--batch"] and "MIN" not in rows["--batch"], name
    assert "--batch-range" in helps["export"] and "--artifacts" in helps["parity"] + helps["triton"]


def test_predict_given_a_model_where_images_go_names_the_command_meant(tmp_path, monkeypatch, zoo_cache):
    """`zoo predict resnet20.cifar10 photo.png`, as `zoo export NAME` is typed: one sentence giving the
    command meant, and that command classifies the photo; a file that happens to bear a model's name is
    an image, and an artifact folder in the first place is named as one."""
    import shlex

    from PIL import Image

    from tests.helpers import one_sentence

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32), (200, 30, 30)).save("photo 1.png")
    said = runner.invoke(app, ["predict", "resnet20.cifar10", "photo 1.png"])
    one_sentence(said, "resnet20.cifar10 is a model, not an image")
    meant = re.search(r"`zoo (predict --model [^`]+)`", said.output)
    assert meant and shlex.split(meant.group(1)) == ["predict", "--model", "resnet20.cifar10", "photo 1.png"]
    done = runner.invoke(app, [*shlex.split(meant.group(1)), "--json", "--topk", "1"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)[0]["top"][0]["label"] in {
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    }
    Path("resnet20.cifar10").write_bytes(Path("photo 1.png").read_bytes())  # a file: an image, no hint
    one_sentence(runner.invoke(app, ["predict", "resnet20.cifar10"]), "--model NAME", "--artifact DIR")
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "card.json").write_text("{}")
    one_sentence(
        runner.invoke(app, ["predict", "art", "photo 1.png"]), "art is an artifact folder", "--artifact art"
    )
    one_sentence(runner.invoke(app, ["predict", "--model", "x", "--artifact", "art", "y"]), "not both")
