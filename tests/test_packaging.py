"""The wheel, as a user installs it: one import name, every file its commands read, nothing from the
repository. (Editable installs read the repository's folders and hide a file the wheel lacks: the Triton
model files once were missing from it.) Polygraphy keeps a packaging test of the same kind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the sources: building in place would leave build/ in the repository, which later builds
    # and editable installs read
    source = tmp_path_factory.mktemp("source") / "resnet-zoo"
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "artifacts", "runs", "bench")
    shutil.copytree(REPO, source, ignore=skip)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (found,) = out.glob("resnet_zoo-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked into a folder of its own, as pip installs it (--target), without dependencies:
    the environment's torch, ONNX Runtime and friends stand in for the user's."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def run_installed(installed: Path, tmp_path: Path, *code: str) -> subprocess.CompletedProcess:
    """Python with the installed wheel first on its path, started outside the repository (so that neither
    its folders nor the editable install's finder can be what answers)."""
    env = {**os.environ, "PYTHONPATH": str(installed), "ZOO_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-c", "\n".join(code)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )


def test_the_wheel_installs_one_import_name_and_the_files_its_commands_read(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"zoo"}, f"top-level names in the wheel: {sorted(top)}"
    for needed in (
        "zoo/export/pipeline.py",
        "zoo/serve/triton_models/classifier.py",  # copied into every Triton repository
        "zoo/serve/triton_models/zoo_site.py",
        "zoo/serve/triton_models/check_engine.py",
        "zoo/weights/manifest.toml",
        "zoo/weights/resnet20.cifar10.safetensors",
        "zoo/models/archs.toml",
        "zoo/data/datasets.toml",
        "zoo/data/labels/imagenet1k.txt",
        "zoo/train/recipes/cifar_budget.toml",
    ):
        assert needed in names, f"{needed} is missing from {wheel.name}"
    assert not [n for n in names if n.startswith("tests/")]


def test_the_installed_wheel_runs_from_its_own_files(installed, tmp_path):
    """Import paths, the built-in weights and a command that reads package data (`zoo triton` copies the
    Triton model files), from the installed copy alone."""
    from tests.conftest import data_root

    if data_root() is None:
        pytest.skip("needs ../shared/data for the export that `zoo triton` makes first")
    out = run_installed(
        installed,
        tmp_path,
        "import json, zoo, zoo.serve.triton, zoo.weights",
        "from zoo.utils.paths import BUILTIN_WEIGHTS",
        "from typer.testing import CliRunner",
        "from zoo.cli import app",
        "r = CliRunner().invoke(app, ['triton', 'resnet20.cifar10', '-f', 'onnx', '--repo', 'repo',",
        "                            '--artifacts', 'artifacts', '--json'])",
        "print(json.dumps({'zoo': zoo.__file__, 'weights': str(BUILTIN_WEIGHTS), 'exit': r.exit_code,",
        "                  'version': zoo.__version__, 'output': r.output[-800:]}))",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["zoo"].startswith(str(installed)), report
    assert report["weights"].startswith(str(installed)), report
    assert report["exit"] == 0, report["output"]
    models = tmp_path / "repo"
    assert (models / "resnet20.cifar10" / "1" / "model.py").is_file() or any(models.rglob("model.py"))


def test_the_version_is_the_one_the_wheel_was_built_with(installed, tmp_path, wheel):
    out = run_installed(installed, tmp_path, "import zoo; print(zoo.__version__)")
    assert out.returncode == 0, out.stderr
    assert wheel.name.startswith(f"resnet_zoo-{out.stdout.strip()}-")


def test_every_module_a_command_loads_comes_from_a_declared_dependency():
    """A new user installs only the base dependencies (and the extra a backend needs): a module the CLI
    imports at start-up or while exporting ONNX must belong to them or to what they require, not to a
    package that happens to be installed here (click came with gradio here; typer 0.2x no longer depends
    on it, and `zoo` failed to start on a fresh install)."""
    import re
    import tomllib
    from importlib import metadata

    names = "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    code = (
        "import sys; import zoo.cli; from zoo.cli import app; import zoo.api, zoo.export.pipeline, "
        f"zoo.serve.parity, zoo.serve.bench, zoo.utils.progress, zoo.export.trust; {names}"
    )
    runs = [
        subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, timeout=300, cwd=REPO)
        for c in (code, f"import sys; {names}")  # the second: what the interpreter loads by itself (.pth)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    loaded = set(runs[0].stdout.split()) - set(runs[1].stdout.split()) - set(sys.stdlib_module_names)
    loaded -= {"zoo", "__main__"}
    loaded = {m for m in loaded if not m.startswith("_")}

    doc = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*doc["dependencies"], *doc["optional-dependencies"]["onnx"]]

    def name(requirement: str) -> str:
        return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    allowed, todo = set(), [name(r) for r in declared]
    while todo:  # the declared distributions and everything they require (their markers aside)
        dist = todo.pop()
        if dist in allowed:
            continue
        allowed.add(dist)
        with contextlib.suppress(metadata.PackageNotFoundError):  # a dependency not installed here
            todo += [name(r) for r in metadata.requires(dist) or [] if "extra ==" not in r]
    providers = metadata.packages_distributions()
    strays = {
        m: providers.get(m, ["?"])
        for m in loaded
        if not {d.lower().replace("_", "-") for d in providers.get(m, [])} & allowed
    }
    assert not strays, f"imported from undeclared distributions: {strays}"
