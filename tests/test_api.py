"""The Python API (zoo/api.py): one function per command, each the one its command calls, holding the
command's policy (an unverified artifact is refused from Python as from the CLI)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zoo import ZooError, api
from zoo.cli import app

runner = CliRunner()
CLI = Path(api.__file__).parent / "cli"


def _commands() -> dict[str, set[str]]:
    """Each `zoo` command -> the zoo.api functions its body calls (read from the CLI's source)."""
    calls: dict[str, set[str]] = {}
    for module in CLI.glob("*.py"):
        for fn in ast.parse(module.read_text()).body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            names = [
                d.args[0].value
                for d in fn.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "command" and d.args
            ]
            if names:
                calls[names[0]] = {
                    n.attr
                    for n in ast.walk(fn)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "api"
                }
    return calls


def test_every_command_calls_one_function_of_the_api():
    calls = _commands()
    registered = {c.name for c in app.registered_commands}
    assert set(calls) == registered and len(registered) >= 19
    for name, used in calls.items():
        if name == "serve":  # the web demo, or a Triton server for a repository (not a zoo function)
            assert "demo" in used
            continue
        assert used and used <= set(api.__all__) | {"check_load_test"}, (name, used)
    assert calls["export"] == {"export"} and calls["parity"] >= {"parity"} and calls["predict"] == {"predict"}


def _documented() -> list[tuple[str, list[str]]]:
    """Each `api.NAME(ARGS)` of the function column of docs/python.md's table, ARGS split at top-level
    commas."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text()
    rows = []
    for line in doc.splitlines():
        cells = line.split(" | ")
        if len(cells) < 3 or not cells[1].startswith("`api."):
            continue
        name, _, args = cells[1].split("`")[1].removeprefix("api.").removesuffix(")").partition("(")
        shown, depth, item = [], 0, ""
        for ch in args + ",":
            depth += (ch in "([{") - (ch in ")]}")
            if ch == "," and depth == 0:
                shown, item = [*shown, item.strip()], ""
            else:
                item += ch
        rows.append((name, [s for s in shown if s]))
    return rows


def test_the_documented_signatures_are_the_functions_own():
    """docs/python.md shows each function's first parameters, in order, with their defaults (`...`: the
    rest, or a default not shown); a parameter renamed, reordered or given another default fails here."""
    import inspect

    rows = _documented()
    assert len(rows) >= 20
    for name, shown in rows:
        params = list(inspect.signature(getattr(api, name)).parameters.values())
        for i, item in enumerate(shown):
            if item == "...":  # the rest of the parameters
                break
            given, _, default = item.partition("=")
            assert params[i].name == given.lstrip("*"), (name, item, [p.name for p in params])
            assert given.startswith("**") == (params[i].kind is inspect.Parameter.VAR_KEYWORD), (name, item)
            if default and default != "...":
                assert params[i].default == ast.literal_eval(default), (name, item, params[i].default)
            elif not default:
                assert params[i].default is inspect.Parameter.empty, (name, item)


def test_the_preprocessing_contract_is_the_tags_transform(tmp_path, cifar_dir, cifar_tag):
    """weights.preprocess(image) against the arithmetic written out: a 32x32 CIFAR image is not resized or
    cropped, only scaled to [0, 1] and normalised by the tag's mean and std, channels first."""
    from zoo.data.datasets import CIFAR10

    img, _ = CIFAR10(cifar_dir, "test")[7]
    path = tmp_path / "seven.png"
    img.save(path)
    spec = api.weights(cifar_tag).preprocess
    expected = (np.asarray(img, dtype=np.float32) / 255 - np.array(spec.mean)) / np.array(spec.std)
    for source in (path, path.read_bytes(), api.load_image(path)):
        x = spec(source)
        assert x.shape == (3, 32, 32) and x.dtype == np.float32
        np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-6)


def test_weights_of_a_name_without_weights_is_one_sentence():
    with pytest.raises(ZooError, match="no pretrained weights"):
        api.weights("plain20")


def test_open_runtime_refuses_an_artifact_never_checked_as_the_cli_does(checked_artifacts, tmp_path):
    """The verdict policy lives in the API: an artifact whose card holds no parity result is refused by
    api.open_runtime and api.predict in the sentence `zoo predict` prints; allowed, it runs with a warning."""
    _, made = checked_artifacts
    copy = tmp_path / "onnx"
    shutil.copytree(made["onnx"].path, copy)
    card = json.loads((copy / "card.json").read_text())
    del card["parity"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ZooError) as refused:
        api.open_runtime(copy)
    assert "--allow-unverified" in str(refused.value) and "zoo parity" in str(refused.value)
    cli = runner.invoke(app, ["predict", "--artifact", str(copy), "x.png"])
    assert cli.exit_code == 1 and str(refused.value) in " ".join(cli.output.split())
    lines: list[str] = []
    with api.open_runtime(copy, allow_unverified=True, log=lines.append) as rt:
        logits = rt.run(np.zeros((2, *rt.input_shape), dtype=np.float32))
    assert logits.shape == (2, 10) and lines and lines[0].startswith("warning:")


def test_predict_from_python_equals_zoo_predict(checked_artifacts, tmp_path, cifar_dir):
    from zoo.data.datasets import CIFAR10

    test = CIFAR10(cifar_dir, "test")
    for i in range(3):
        test[i][0].save(tmp_path / f"{i}.png")
    artifact = checked_artifacts[1]["onnx-int8-cpu"].path
    from_python = api.predict(artifact, [tmp_path], topk=3)
    cli = runner.invoke(app, ["predict", "--artifact", str(artifact), str(tmp_path), "--topk", "3", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == json.loads(json.dumps(from_python))
    assert [r["top"][0]["label"] for r in from_python] == [
        r["top"][0]["label"] for r in json.loads(cli.stdout)
    ]


def test_the_version_is_one_place():
    import zoo

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"resnet-zoo {zoo.__version__}"


def test_predict_names_missing_images_before_loading_any_model(tmp_path):
    """`zoo predict --model TAG missing.png` answers in one sentence without importing torch."""
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from zoo.cli import app; "
        f"r = CliRunner().invoke(app, ['predict', '--model', 'resnet20.cifar10', {str(tmp_path / 'no.png')!r}, "
        f"{str(tmp_path / 'loop.png')!r}]); print(r.exit_code, 'torch' in sys.modules); print(r.output)"
    )
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")  # a link to itself: no file behind it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first, *rest = out.stdout.splitlines()
    assert first == "1 False", out.stdout + out.stderr
    assert f"{tmp_path / 'no.png'}: error: no such file\n" in "\n".join(rest) + "\n"
    assert f"{tmp_path / 'loop.png'}: error: no such file: a link that leads nowhere" in "\n".join(rest)


def test_a_folder_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch, cifar_tag):
    """One rule for predict, info and the API: a bare name is a model's unless a folder of that name holds
    a card (./resnet20.cifar10 may be a user's run folder); a Path or a name with a separator is a folder."""
    from PIL import Image

    from zoo.export.artifact import names_artifact

    monkeypatch.chdir(tmp_path)
    (tmp_path / cifar_tag).mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save("x.png")
    said = runner.invoke(app, ["predict", "--model", cifar_tag, "x.png", "--json"])
    assert said.exit_code == 0, said.output
    with api.open_runtime(cifar_tag) as rt:
        assert rt.backend == "pytorch" and json.loads(said.stdout)[0]["top"][0]["label"] in rt.labels
    assert api.describe(cifar_tag)["name"] == cifar_tag and "artifact" not in api.describe(cifar_tag)
    for path in (Path(cifar_tag), f"./{cifar_tag}"):  # named as a folder: the folder, which holds no card
        assert names_artifact(path)
        with pytest.raises(ZooError, match="not an artifact directory"):
            api.describe(path)
    (tmp_path / cifar_tag / "card.json").write_text("{}")
    assert names_artifact(cifar_tag)  # now it is one (a damaged one)
