"""Artifacts on disk (zoo/export/artifact.py): cards, hashes, leftovers, permissions; what a changed file does."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory, cifar_tag, cifar_dir):
    out = tmp_path_factory.mktemp("trust-artifacts")
    result = runner.invoke(
        app, ["export", cifar_tag, "--formats", "onnx", "--artifacts", str(out), "--parity-images", "500"]
    )
    assert result.exit_code == 0, result.output
    return out, out / cifar_tag / "onnx"


@pytest.fixture()
def png(tmp_path, cifar_dir) -> Path:
    from zoo.data.datasets import CIFAR10

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
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
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
        [
            "export",
            cifar_tag,
            "--formats",
            "onnx",
            "--artifacts",
            str(copy_out),
            "--parity-images",
            "0",
            "--json",
        ],
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
        app,
        ["export", cifar_tag, "--formats", "onnx", "--artifacts", str(out), "--parity-images", "0", "--json"],
    )
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["status"] == "built"
    same = runner.invoke(
        app,
        ["export", cifar_tag, "--formats", "onnx", "--artifacts", str(out), "--parity-images", "0", "--json"],
    )
    assert json.loads(same.stdout)[0]["status"] == "reused"


def test_leftovers_of_killed_exports_are_cleaned_and_never_listed(onnx_artifact, tmp_path, cifar_tag):
    from zoo.export.artifact import artifact_dirs

    out = tmp_path / "out"
    art = _copy(onnx_artifact[1], out / cifar_tag / "onnx")
    dead = 2**22 + 12345  # above the kernel's pid_max: no such process
    stale = [_copy(art, art.parent / f".onnx.{dead}.abcd.tmp"), _copy(art, art.parent / f".onnx.{dead}.old")]
    alive = _copy(art, art.parent / f".onnx.{os.getpid()}.efgh.tmp")  # an export running right now
    assert artifact_dirs(out / cifar_tag) == [art]
    result = runner.invoke(app, ["parity", cifar_tag, "--artifacts", str(out), "--json", "--limit", "200"])
    assert list(json.loads(result.stdout)) == [str(art)]
    runner.invoke(
        app, ["export", cifar_tag, "--formats", "onnx", "--artifacts", str(out), "--parity-images", "0"]
    )
    assert not any(p.exists() for p in stale) and alive.exists()


def test_exported_files_and_folders_honour_the_umask(tmp_path, cifar_tag, cifar_dir):
    old = os.umask(0o022)
    try:
        result = runner.invoke(
            app,
            ["export", cifar_tag, "--formats", "onnx", "--artifacts", str(tmp_path), "--parity-images", "0"],
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    art = tmp_path / cifar_tag / "onnx"
    assert stat.S_IMODE(art.stat().st_mode) == 0o755
    assert stat.S_IMODE((art / "model.onnx").stat().st_mode) == 0o644
    assert stat.S_IMODE((art / "card.json").stat().st_mode) == 0o644


def test_a_file_name_the_file_system_refuses_is_reported_by_name(onnx_artifact, png):
    long_name = "x" * 300 + ".png"
    result = runner.invoke(app, ["predict", "--artifact", str(onnx_artifact[1]), str(png), long_name])
    one_sentence(result, "not a usable file name", "1 of 2 images")
    assert "cat.png: " in result.output  # the good image is still classified
