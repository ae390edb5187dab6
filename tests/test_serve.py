"""Serving: the runtime interface, `zoo predict`, parity metrics and bars, `zoo parity` and `zoo bench`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from export.pipeline import ExportOptions, export_model
from serve.parity import compare, verdict
from serve.predict import expand, top_k
from serve.runtimes import open_runtime
from zoo.cli import app
from zoo.errors import ZooError

runner = CliRunner()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, cifar_tag, cifar_dir):
    out = tmp_path_factory.mktemp("serve-artifacts")
    results = export_model(
        cifar_tag, ExportOptions(["onnx", "onnx-int8-cpu"], out, calib_size=256), log=lambda _m: None
    )
    return out, {r.format: r.artifact for r in results}


@pytest.fixture(scope="module")
def cifar_pngs(tmp_path_factory, cifar_dir):
    """Eight real CIFAR-10 test images as PNG files, with their labels."""
    from zoo.data import CIFAR10

    folder = tmp_path_factory.mktemp("pngs")
    test = CIFAR10(cifar_dir, "test")
    for i in range(8):
        test[i][0].save(folder / f"{i}_{test.labels[i]}.png")
    return folder


def test_parity_metrics_on_a_constructed_case():
    ref = np.array([[9, 1, 0, 0, 0, 0], [0, 9, 1, 0, 0, 0], [0, 0, 9, 1, 0, 0], [0, 0, 0, 9, 1, 0]], float)
    cand = ref.copy()
    cand[3] = [0, 0, 0, 1, 9, 0]  # row 3: top-1 moves to 4; the original's top-1 (3) is still in its top-5
    labels = np.array([0, 1, 5, 3])
    m = compare(ref, cand, labels)
    assert m["top1_agreement"] == 75.0 and m["top5_agreement"] == 100.0
    assert m["reference_top1"] == 75.0 and m["top1"] == 50.0 and m["max_abs_logit_diff"] == 8.0
    v = verdict(m, "int8")
    assert (
        not v["passed"]
        and any("agreement" in f for f in v["failures"])
        and any("drop" in f for f in v["failures"])
    )
    assert verdict(compare(ref, ref, labels), "fp32")["passed"]


def test_top_k_is_sorted_probabilities_that_sum_to_one():
    logits = np.array([[0.0, 3.0, 1.0, 2.0]])
    (top,) = top_k(logits, ["a", "b", "c", "d"], 3)
    assert [t["label"] for t in top] == ["b", "d", "c"]
    full = top_k(logits, ["a", "b", "c", "d"], 10)[0]
    assert len(full) == 4 and sum(t["prob"] for t in full) == pytest.approx(1.0)


def test_runtimes_share_one_interface_and_check_their_input(artifacts, cifar_tag):
    _, arts = artifacts
    x = np.zeros((2, 3, 32, 32), np.float32)
    outputs = {}
    for source in (cifar_tag, arts["onnx"].path, arts["onnx-int8-cpu"].path):
        with open_runtime(source) as rt:
            assert rt.input_shape == (3, 32, 32) and len(rt.labels) == 10
            outputs[rt.precision] = rt.run(x)
            with pytest.raises(ZooError, match="takes batches of shape"):
                rt.run(np.zeros((2, 3, 64, 64), np.float32))
    assert set(outputs) == {"fp32", "int8"} and all(o.shape == (2, 10) for o in outputs.values())


def test_predict_takes_files_folders_and_globs_and_reports_bad_images_by_name(
    artifacts, cifar_pngs, tmp_path
):
    _, arts = artifacts
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    args = [
        "predict",
        "--artifact",
        str(arts["onnx"].path),
        str(cifar_pngs),
        str(cifar_pngs / "0_*.png"),
        str(tmp_path / "broken.png"),
        str(tmp_path / "empty.jpg"),
        str(tmp_path / "missing.jpg"),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1  # some images were bad
    rows = json.loads(result.stdout)
    good = [r for r in rows if "top" in r]
    assert len(good) == 9 and all(len(r["top"]) == 5 for r in good)
    errors = {Path(r["image"]).name: r["error"] for r in rows if "error" in r}
    assert set(errors) == {"broken.png", "empty.jpg", "missing.jpg"} and "empty" in errors["empty.jpg"]
    correct = sum(r["top"][0]["index"] == int(Path(r["image"]).stem.split("_")[1]) for r in good)
    assert correct >= 6  # a trained CIFAR-10 model on real test images


def test_predict_agrees_between_pytorch_and_the_onnx_artifact(artifacts, cifar_pngs, cifar_tag):
    _, arts = artifacts
    a = runner.invoke(app, ["predict", "--model", cifar_tag, str(cifar_pngs), "--json", "--topk", "1"])
    b = runner.invoke(
        app, ["predict", "--artifact", str(arts["onnx"].path), str(cifar_pngs), "--json", "--topk", "1"]
    )
    assert a.exit_code == b.exit_code == 0
    assert [r["top"][0]["label"] for r in json.loads(a.stdout)] == [
        r["top"][0]["label"] for r in json.loads(b.stdout)
    ]


def test_expand_finds_images_in_folders_and_by_pattern(cifar_pngs):
    assert len(expand([str(cifar_pngs)])) == 8
    assert expand([str(cifar_pngs / "nothing*.png")])[0][1] == "the pattern matches no file"


def test_zoo_parity_writes_each_result_into_the_card_and_fails_on_a_bar(artifacts, cifar_tag):
    out, arts = artifacts
    result = runner.invoke(app, ["parity", cifar_tag, "--out", str(out), "--limit", "1000", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {str(arts["onnx"].path), str(arts["onnx-int8-cpu"].path)}
    fp32 = report[str(arts["onnx"].path)]
    assert fp32["top1_agreement"] >= 99.9 and fp32["images"] == 1000 and fp32["verdict"]["passed"]
    card = json.loads((arts["onnx-int8-cpu"].path / "card.json").read_text())
    assert card["parity"]["top1_agreement"] == report[str(arts["onnx-int8-cpu"].path)]["top1_agreement"]
    strict = runner.invoke(
        app, ["parity", cifar_tag, str(arts["onnx-int8-cpu"].path), "--limit", "500", "--int8-bar", "100.01"]
    )
    assert strict.exit_code == 1 and "top-1 agreement" in strict.output


def test_bench_writes_json_csv_and_a_plot_with_the_hardware_record(artifacts, cifar_tag, tmp_path):
    out, _ = artifacts
    args = [
        "bench",
        cifar_tag,
        "--formats",
        "pytorch,onnx,onnx-int8-cpu",
        "--batch",
        "1,4",
        "--seconds",
        "0.2",
        "--parity-images",
        "200",
        "--out",
        str(tmp_path),
        "--artifacts",
        str(out),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["hardware"]["cpu_count"] and report["hardware"]["versions"]["onnxruntime"]
    rows = report["rows"]
    assert {(r["format"], r["batch"]) for r in rows} == {
        (f, b) for f in ("pytorch", "onnx", "onnx-int8-cpu") for b in (1, 4)
    }
    for r in rows:
        assert 0 < r["model_p50_ms"] <= r["model_p90_ms"] <= r["model_p99_ms"] and r["model_runs"] >= 10
        assert r["e2e_p50_ms"] > 0 and r["model_images_per_s"] > 0 and r["peak_rss_mb"] > 0
    eager = next(e for e in report["summary"] if e["format"] == "pytorch")
    assert eager["speedup_vs_eager_b1"] == pytest.approx(1.0)

    def written(ext: str) -> Path:  # the tag holds a dot, so no with_suffix
        return tmp_path / f"bench-{cifar_tag}.{ext}"

    assert json.loads(written("json").read_text())["model"] == cifar_tag
    assert written("csv").read_text().count("\n") == len(rows) + 1
    png = written("png")
    if png.exists():
        assert Image.open(io.BytesIO(png.read_bytes())).size[0] > 500


def test_bad_input_to_the_serving_commands(tmp_path, cifar_tag):
    assert runner.invoke(app, ["predict", "x.png"]).exit_code == 1
    r = runner.invoke(app, ["predict", "--artifact", str(tmp_path), "x.png"])
    assert r.exit_code == 1 and "not an artifact directory" in r.output
    r = runner.invoke(app, ["parity", cifar_tag, "--out", str(tmp_path)])
    assert r.exit_code == 1 and "no artifacts" in r.output
    r = runner.invoke(app, ["bench", cifar_tag, "--batch", "1,x"])
    assert r.exit_code == 1 and "comma-separated" in r.output


def test_the_compiled_pytorch_runtime_matches_eager(cifar_tag, cifar_dir):
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with open_runtime(cifar_tag) as eager, open_runtime(cifar_tag, backend="pytorch-compiled") as compiled:
        assert compiled.format == "pytorch-compiled"
        np.testing.assert_allclose(compiled.run(x), eager.run(x), atol=1e-4, rtol=1e-4)
