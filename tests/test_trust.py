"""Trustworthy by default: nothing runs code from a file the zoo reads, a changed artifact is refused,
broken cards are rebuilt, leftovers are cleaned, files honour the umask, and every bad option or dataset
gets one sentence before any work. One test per behaviour; each failed on the code before the fix."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.cli import app

runner = CliRunner()
SMOKE = ["--train-limit", "256", "--test-limit", "128", "--batch-size", "64", "--epochs", "1"]


def one_sentence(result, *words: str) -> None:
    """Exit 1, no traceback, and the words in the one error line."""
    assert result.exit_code == 1, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    for w in words:
        assert w in result.output, result.output


class Evil:
    """A pickle that would run code when loaded with plain pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- no code from files -------------------------------------------------------------------------------


def test_resume_never_runs_code_from_a_crafted_checkpoint(tmp_path, data):
    marker = tmp_path / "PWNED_RESUME"
    run = tmp_path / "run"
    run.mkdir()
    import torch

    torch.save({"model": Evil(marker), "optimizer": {}, "epoch": 0, "step": 0}, run / "last.pt")
    result = runner.invoke(
        app, ["train", "resnet20", "--data", str(data), "--out", str(run), "--resume", *SMOKE]
    )
    one_sentence(result, "cannot be read as a `zoo train` checkpoint")
    assert not marker.exists()


def test_resume_of_a_truncated_checkpoint_is_one_sentence(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    result = runner.invoke(
        app, ["train", "resnet20", "--data", str(data), "--out", str(run), "--resume", *SMOKE]
    )
    one_sentence(result, "truncated")


@pytest.mark.slow
def test_resume_with_another_lr_or_batch_size_is_refused(tmp_path, data):
    run = tmp_path / "run"
    args = ["train", "resnet20", "--data", str(data), "--out", str(run), *SMOKE]
    assert runner.invoke(app, [*args, "--lr", "0.05"]).exit_code == 0
    one_sentence(runner.invoke(app, [*args, "--lr", "0.1", "--resume"]), "optimizer.lr: 0.05 -> 0.1")
    changed = [a if a != "64" else "32" for a in args]
    one_sentence(runner.invoke(app, [*changed, "--lr", "0.05", "--resume"]), "train.batch_size: 64 -> 32")


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory, cifar_tag, cifar_dir):
    out = tmp_path_factory.mktemp("trust-artifacts")
    result = runner.invoke(
        app, ["export", cifar_tag, "--format", "onnx", "--out", str(out), "--parity-images", "500"]
    )
    assert result.exit_code == 0, result.output
    return out, out / cifar_tag / "onnx"


@pytest.fixture()
def png(tmp_path, cifar_dir) -> Path:
    from zoo.data import CIFAR10

    path = tmp_path / "cat.png"
    CIFAR10(cifar_dir, "test")[0][0].save(path)
    return path


def _copy(artifact: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(artifact, to)
    return to


def test_predict_refuses_a_model_file_changed_after_export(onnx_artifact, png, tmp_path):
    import onnx
    from onnx import numpy_helper

    art = _copy(onnx_artifact[1], tmp_path / "art")
    model = onnx.load(art / "model.onnx")
    fc = next(i for i in model.graph.initializer if numpy_helper.to_array(i).shape == (10, 64))
    w = numpy_helper.to_array(fc).copy()
    w[3] *= -1  # "cat" now answers something else
    fc.CopyFrom(numpy_helper.from_array(w, fc.name))
    onnx.save(model, art / "model.onnx")
    one_sentence(
        runner.invoke(app, ["predict", "--artifact", str(art), str(png)]),
        "does not match the sha256 in its card",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "card, words",
    [
        (b"\xff\xfe\x00garbage", "not valid UTF-8 JSON"),
        (b"[1, 2, 3]", "not a card"),
        (b'{"card_version": 1, "file": "model.onnx"}', "lacks format"),
    ],
)
def test_a_broken_card_is_one_sentence_and_export_rebuilds_it(
    onnx_artifact, png, tmp_path, card, words, cifar_tag
):
    out, original = onnx_artifact
    copy_out = tmp_path / "out"
    art = _copy(original, copy_out / cifar_tag / "onnx")
    (art / "card.json").write_bytes(card)
    one_sentence(runner.invoke(app, ["predict", "--artifact", str(art), str(png)]), words)
    one_sentence(runner.invoke(app, ["parity", cifar_tag, str(art)]), words)
    rebuilt = runner.invoke(
        app,
        ["export", cifar_tag, "--format", "onnx", "--out", str(copy_out), "--parity-images", "0", "--json"],
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)[0]["status"] == "built"


def test_an_edited_weights_hash_in_a_card_is_not_reused(onnx_artifact, tmp_path, cifar_tag):
    out = tmp_path / "out"
    art = _copy(onnx_artifact[1], out / cifar_tag / "onnx")
    card = json.loads((art / "card.json").read_text())
    card["weights_sha256"] = "0" * 64
    (art / "card.json").write_text(json.dumps(card))
    again = runner.invoke(
        app, ["export", cifar_tag, "--format", "onnx", "--out", str(out), "--parity-images", "0", "--json"]
    )
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["status"] == "built"
    same = runner.invoke(
        app, ["export", cifar_tag, "--format", "onnx", "--out", str(out), "--parity-images", "0", "--json"]
    )
    assert json.loads(same.stdout)[0]["status"] == "reused"


def test_leftovers_of_killed_exports_are_cleaned_and_never_listed(onnx_artifact, tmp_path, cifar_tag):
    from export.artifact import artifact_dirs

    out = tmp_path / "out"
    art = _copy(onnx_artifact[1], out / cifar_tag / "onnx")
    dead = 2**22 + 12345  # above the kernel's pid_max: no such process
    stale = [_copy(art, art.parent / f".onnx.{dead}.abcd.tmp"), _copy(art, art.parent / f".onnx.{dead}.old")]
    alive = _copy(art, art.parent / f".onnx.{os.getpid()}.efgh.tmp")  # an export running right now
    assert artifact_dirs(out / cifar_tag) == [art]
    result = runner.invoke(app, ["parity", cifar_tag, "--out", str(out), "--json", "--limit", "200"])
    assert list(json.loads(result.stdout)) == [str(art)]
    runner.invoke(app, ["export", cifar_tag, "--format", "onnx", "--out", str(out), "--parity-images", "0"])
    assert not any(p.exists() for p in stale) and alive.exists()


def test_exported_files_and_folders_honour_the_umask(tmp_path, cifar_tag, cifar_dir):
    old = os.umask(0o022)
    try:
        result = runner.invoke(
            app, ["export", cifar_tag, "--format", "onnx", "--out", str(tmp_path), "--parity-images", "0"]
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    art = tmp_path / cifar_tag / "onnx"
    assert stat.S_IMODE(art.stat().st_mode) == 0o755
    assert stat.S_IMODE((art / "model.onnx").stat().st_mode) == 0o644
    assert stat.S_IMODE((art / "card.json").stat().st_mode) == 0o644


# --- every bad option and dataset: one sentence, before any work ---------------------------------------


def test_a_misspelt_architecture_names_close_matches():
    one_sentence(runner.invoke(app, ["train", "resnt20"]), "unknown model 'resnt20'", "resnet20")


@pytest.mark.parametrize("flag, value", [("--lr", "-1"), ("--batch-size", "0"), ("--epochs", "0")])
def test_non_positive_training_options_are_refused_and_write_nothing(tmp_path, data, flag, value):
    run = tmp_path / "run"
    args = ["train", "resnet20", "--data", str(data), "--out", str(run), "--train-limit", "256", flag, value]
    one_sentence(runner.invoke(app, args), f"{flag} must be positive")
    assert not run.exists()


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "[train]\nepochs = -3\nbatch_size = 8\n[optimizer]\nlr = 0.1\n",
            "r.toml:2: [train] epochs must be positive",
        ),
        (
            '[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nlr = "fast"\n',
            "r.toml:5: [optimizer] lr must be a number",
        ),
        (
            '[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nname = "adamw2"\nlr = 0.1\n',
            "'adamw2' is not supported",
        ),
        (
            "[train]\nepochs = 1\nbatch_sise = 8\nbatch_size = 8\n[optimizer]\nlr = 0.1\n",
            "r.toml:3: [train] batch_sise is not a known key",
        ),
        ("[train]\nepochs = 1\nbatch_size = 8\n[optimiser]\nlr = 0.1\n", "unknown section [optimiser]"),
    ],
)
def test_recipes_are_checked_against_the_schema_with_file_and_line(tmp_path, text, words):
    from zoo import ZooError
    from zoo.recipe import load_recipe

    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(ZooError) as e:
        load_recipe(tmp_path / "r.toml")
    assert words in str(e.value)


def test_a_binary_recipe_is_one_sentence(tmp_path):
    (tmp_path / "r.toml").write_bytes(bytes(range(256)))
    one_sentence(
        runner.invoke(app, ["train", "resnet20", "--recipe", str(tmp_path / "r.toml")]), "not a text file"
    )


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_eval_limit_must_be_positive(limit, cifar_tag, cifar_dir):
    one_sentence(runner.invoke(app, ["eval", cifar_tag, "--limit", limit]), "--limit must be at least 1")


def test_importing_a_missing_or_corrupt_safetensors_is_one_sentence(tmp_path, zoo_cache):
    one_sentence(
        runner.invoke(app, ["import-weights", str(tmp_path / "no.safetensors"), "resnet20.x"]),
        "does not exist",
    )
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    one_sentence(
        runner.invoke(app, ["import-weights", str(bad), "resnet20.x"]), "not a readable safetensors file"
    )


def test_a_file_name_the_file_system_refuses_is_reported_by_name(onnx_artifact, png):
    long_name = "x" * 300 + ".png"
    result = runner.invoke(app, ["predict", "--artifact", str(onnx_artifact[1]), str(png), long_name])
    one_sentence(result, "not a usable file name", "1 of 2 images")
    assert "cat.png: " in result.output  # the good image is still classified


def test_a_calibration_folder_with_a_foreign_labels_csv_is_one_sentence(tmp_path, cifar_tag):
    (tmp_path / "labels.csv").write_text("name,kind\na.jpg,cat\n")
    result = runner.invoke(
        app,
        [
            "export",
            cifar_tag,
            "--format",
            "onnx-int8-cpu",
            "--calib-data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    one_sentence(result, "not an ImageNet-sample index")


def test_data_that_does_not_fit_the_model_is_refused_before_any_work(imagenet_sample, cifar_tag, tmp_path):
    one_sentence(
        runner.invoke(app, ["eval", cifar_tag, "--data", str(imagenet_sample)]), "1000 classes", "has 10"
    )
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "resnet20", "--data", str(imagenet_sample), "--out", str(run)])
    one_sentence(result, "1000 classes")
    assert not (run / "last.pt").exists()


# --- verdicts and the first screen ----------------------------------------------------------------------


@pytest.mark.slow
def test_export_with_calib_data_and_no_zoo_data_checks_parity_on_its_test_split(
    cifar_dir, cifar_tag, tmp_path
):
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DATA"}
    env["ZOO_CACHE"] = str(tmp_path / "cache")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.cli",
            "export",
            cifar_tag,
            "--format",
            "onnx",
            "--calib-data",
            str(cifar_dir),
            "--out",
            str(tmp_path / "o"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["ok"] and row["parity"]["images"] == 10_000 and row["parity"]["verdict"]["passed"]


def test_export_prints_only_the_zoos_own_words_without_torchvision(cifar_tag, cifar_dir, tmp_path):
    """A fresh machine has no torchvision: the exporter's warnings about its operators must not show."""
    hide = (
        "import importlib.util, sys;"
        "real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a, **k: None if n.split('.')[0] == 'torchvision' else real(n, *a, **k);"
        "from zoo.cli import main; sys.argv = ['zoo'] + sys.argv[1:]; main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            hide,
            "export",
            cifar_tag,
            "--format",
            "onnx",
            "--out",
            str(tmp_path),
            "--parity-images",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "torchvision" not in result.stderr + result.stdout
    assert "warning" not in (result.stderr + result.stdout).lower()
