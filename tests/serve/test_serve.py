"""Serving: the runtime interface, `zoo predict`, parity metrics and bars, `zoo parity` and `zoo bench`."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo import ZooError
from zoo.cli import app
from zoo.export.pipeline import ExportOptions
from zoo.models import registry
from zoo.serve.checked_export import export_and_check
from zoo.serve.parity import compare, verdict
from zoo.serve.predict import expand, top_k
from zoo.serve.runtimes import open_runtime

runner = CliRunner()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def artifacts(checked_artifacts):
    return checked_artifacts  # tests/conftest.py: the session's checked export


@pytest.fixture(scope="module")
def cifar_pngs(tmp_path_factory, cifar_dir):
    """Eight real CIFAR-10 test images as PNG files, with their labels."""
    from zoo.data.datasets import CIFAR10

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
    assert m["top1_change"]["lost"] == 1 and m["top1_change"]["gained"] == 0
    # 3 of 4 agreeing already puts agreement below 97% (Wilson CI 30.1-95.4); one image lost of four is
    # no evidence of a drop above 0.5 points (paired CI -17 to 67), so only the agreement bar fails.
    v = verdict(m, "int8")
    assert (
        not v["passed"]
        and len(v["failures"]) == 1
        and "agreement 75.00% (95% CI 30.06–95.44" in v["failures"][0]
    )
    assert verdict(compare(ref, ref, labels), "fp32")["passed"]


def _case(n: int, disagree: int, lost: int, gained: int, accuracy: float = 0.9):
    """n images, 10 classes: the reference right on n * accuracy; the candidate differs on `disagree`
    images, of which `lost` were right and become wrong, `gained` were wrong and become right."""
    labels = np.arange(n) % 10
    ref_pred = labels.copy()
    wrong = np.arange(n) >= int(n * accuracy)
    ref_pred[wrong] = (labels[wrong] + 1) % 10
    cand_pred = ref_pred.copy()
    right_idx, wrong_idx = np.flatnonzero(~wrong), np.flatnonzero(wrong)
    cand_pred[right_idx[:lost]] = (labels[right_idx[:lost]] + 2) % 10
    cand_pred[wrong_idx[:gained]] = labels[wrong_idx[:gained]]
    other = disagree - lost - gained  # wrong both times, with different wrong answers
    cand_pred[wrong_idx[gained : gained + other]] = (labels[wrong_idx[gained : gained + other]] + 3) % 10
    eye = np.eye(10)
    return eye[ref_pred] * 9, eye[cand_pred] * 9, labels


def test_verdicts_fail_on_evidence_not_on_noise():
    # The README's first command on 1,000 images: 11 disagreements, a 0.7-point drop (9 lost, 2 gained).
    # The drop's interval reaches well below the 0.5 bar: noise, not evidence.
    m = compare(*_case(1000, 11, 9, 2))
    assert m["top1"] == pytest.approx(m["reference_top1"] - 0.7)
    assert verdict(m, "int8")["passed"], verdict(m, "int8")
    # The same rates on 10,000 images are evidence: 90 lost, 20 gained is a drop of 0.70 (CI 0.49-0.91)...
    m = compare(*_case(10_000, 110, 90, 20))
    lo, hi = -m["top1_change"]["ci"][1], -m["top1_change"]["ci"][0]
    assert 0.45 < lo < 0.5 < hi and verdict(m, "int8")["passed"]
    # ...and 100 lost, 10 gained (a 0.9-point drop, CI above 0.5) fails, saying why and on what.
    v = verdict(compare(*_case(10_000, 110, 100, 10)), "int8")
    assert not v["passed"] and "drop 0.90 points" in v["failures"][0] and "10000 images" in v["failures"][0]
    # Agreement: 96% on 1,000 images (CI 94.6-97.0) is not below a 97% bar for certain; on 10,000 it is.
    assert verdict(compare(*_case(1000, 40, 0, 0)), "int8")["passed"]
    v = verdict(compare(*_case(10_000, 400, 0, 0)), "int8")
    assert not v["passed"] and "agreement 96.00%" in v["failures"][0]


def test_intervals_equal_scipys():
    stats = pytest.importorskip("scipy.stats", reason="scipy is the independent cross-check")
    from zoo.serve.parity import paired_change, wilson

    for k, n in ((989, 1000), (1000, 1000), (9917, 10_000), (3, 7)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((100 * ci.low, 100 * ci.high), abs=1e-9)
    for lost, gained in ((9, 2), (90, 20), (0, 0), (5, 5), (400, 300)):
        ref = np.array([True] * lost + [False] * gained + [True] * 50)
        cand = np.array([False] * lost + [True] * gained + [True] * 50)
        p = paired_change(ref, cand)["mcnemar_p"]
        expected = stats.binomtest(min(lost, gained), lost + gained, 0.5).pvalue if lost + gained else 1.0
        assert p == pytest.approx(expected, rel=1e-9)


def test_every_parity_column_equals_its_definition_computed_another_way():
    """Each column of `compare`, recomputed image by image with Python's sorted() on logits without ties."""
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((200, 10))
    cand = ref + rng.standard_normal((200, 10)) * 0.6  # disagrees on some images, not on most
    labels = rng.integers(0, 10, 200)
    top = [[sorted(range(10), key=lambda k, row=row: -row[k]) for row in x] for x in (ref, cand)]
    r5, c5 = [[t[:5] for t in x] for x in top]

    def pct(flags) -> float:
        return 100.0 * sum(flags) / len(flags)

    m = compare(ref, cand, labels)
    expected = {
        "top1_agreement": pct([r[0] == c[0] for r, c in zip(r5, c5, strict=True)]),
        "top5_agreement": pct([r[0] in c for r, c in zip(r5, c5, strict=True)]),
        "top5_overlap": 100.0 * np.mean([len(set(r) & set(c)) / 5 for r, c in zip(r5, c5, strict=True)]),
        "reference_top1": pct([r[0] == y for r, y in zip(r5, labels, strict=True)]),
        "top1": pct([c[0] == y for c, y in zip(c5, labels, strict=True)]),
        "reference_top5": pct([y in r for r, y in zip(r5, labels, strict=True)]),
        "top5": pct([y in c for c, y in zip(c5, labels, strict=True)]),
        "max_abs_logit_diff": float(np.max(np.abs(ref - cand))),
        "mean_abs_logit_diff": float(np.mean(np.abs(ref - cand))),
    }
    assert {k: m[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert 50 < expected["top1_agreement"] < 100 and expected["reference_top5"] != expected["top5"]
    assert m["images"] == 200 and m["nonfinite"] == 0
    lost = sum(r[0] == y and c[0] != y for r, c, y in zip(r5, c5, labels, strict=True))
    gained = sum(r[0] != y and c[0] == y for r, c, y in zip(r5, c5, labels, strict=True))
    assert (m["top1_change"]["lost"], m["top1_change"]["gained"]) == (lost, gained) and lost and gained
    assert compare(ref, np.where(np.eye(10)[labels] > 0, np.nan, cand), labels)["nonfinite"] == 200


def test_the_paired_interval_is_the_mean_difference_plus_minus_z_standard_errors():
    """The accuracy change's interval from its definition: the per-image differences (candidate right
    minus reference right), their mean +- 1.96 x their standard deviation / sqrt(n)."""
    from zoo.serve.parity import Z95, paired_change

    rng = np.random.default_rng(0)
    for n, p_lost, p_gained in ((1000, 0.009, 0.002), (50, 0.1, 0.3), (400, 0.0, 0.0)):
        ref = rng.random(n) < 0.9
        u = rng.random(n)
        cand = np.where(ref, u >= p_lost, u < p_gained / 0.1)
        d = cand.astype(float) - ref.astype(float)
        half = Z95 * d.std() / np.sqrt(n)
        out = paired_change(ref, cand)
        assert out["change"] == pytest.approx(100 * d.mean(), abs=1e-12)
        assert out["ci"] == pytest.approx([100 * (d.mean() - half), 100 * (d.mean() + half)], abs=1e-9)
    assert paired_change(np.ones(400, bool), np.ones(400, bool))["ci"] == [0.0, 0.0]
    empty = paired_change(np.zeros(0, bool), np.zeros(0, bool))  # no images: no change, no evidence
    assert empty["change"] == 0.0 and empty["ci"] == [0.0, 0.0] and empty["mcnemar_p"] == 1.0


def test_parity_runs_the_reference_itself_when_not_given_its_logits(artifacts, cifar_tag, cifar_dir):
    from zoo.data.datasets import CIFAR10
    from zoo.serve.parity import labelled_images, logits_of, parity
    from zoo.serve.runtimes import TorchRuntime

    spec = registry.resolve(cifar_tag)[1]
    images = labelled_images(spec.preprocess, CIFAR10(cifar_dir, "test"), 100)
    reference = TorchRuntime(cifar_tag)
    with open_runtime(artifacts[1]["onnx"].path) as rt:
        alone = parity(reference, rt, images)
        given = parity(reference, rt, images, logits_of(reference, images))
    assert alone["top1_agreement"] == given["top1_agreement"] and alone["images"] == 100
    assert alone["reference_top1"] == given["reference_top1"] > 80


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
        # leaving the block released the backend's session or model: nothing holds it any more
        assert rt.closed and not any(hasattr(rt, h) for h in rt._handles) and rt._handles
        with pytest.raises(ZooError, match="was closed"):
            rt.run(x)
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


def test_predict_reads_an_image_from_a_url_or_standard_input_as_from_its_file(
    artifacts, cifar_pngs, monkeypatch
):
    """A URL (a loopback server here) and `-` give the file's very answer; a missing page, a refused
    connection and a server slower than the deadline are errors of that image alone, in one sentence."""
    import functools
    import http.server
    import threading

    import zoo.serve.predict as predict_module

    _, arts = artifacts
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(cifar_pngs))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    image = sorted(cifar_pngs.glob("*.png"))[3]
    try:
        base = ["predict", "--artifact", str(arts["onnx"].path), "--json"]
        from_file = json.loads(runner.invoke(app, [*base, str(image)]).stdout)[0]["top"]
        r = runner.invoke(
            app, [*base, f"{url}/{image.name}", f"{url}/missing.png", "http://127.0.0.1:9/x.png"]
        )
        rows = json.loads(r.stdout)
        assert r.exit_code == 1 and rows[0]["top"] == from_file
        assert (
            rows[1]["error"].startswith(f"cannot read {url}/missing.png (") and "refused" in rows[2]["error"]
        )
        r = runner.invoke(app, [*base, "-"], input=image.read_bytes())
        assert r.exit_code == 0 and json.loads(r.stdout) == [{"image": "-", "top": from_file}]
        r = runner.invoke(app, [*base, "-"], input=b"not an image")
        assert json.loads(r.stdout)[0]["error"] == "standard input is not an image that Pillow can read."
        monkeypatch.setattr(predict_module, "URL_DEADLINE_S", 0.0)  # every transfer is too slow
        error = json.loads(runner.invoke(app, [*base, f"{url}/{image.name}"]).stdout)[0]["error"]
        assert error.startswith(f"reading {url}/{image.name} took longer than 0 s")
    finally:
        server.shutdown()
        server.server_close()


def test_predict_prints_each_image_on_one_line_without_empty_percentages(cifar_pngs, cifar_tag):
    """The text form lists the labels that have a probability worth printing (>= 0.05%, so never '0.0%')
    and says how many of the top-k were left out; the JSON keeps all k."""
    text = runner.invoke(app, ["predict", "--model", cifar_tag, str(cifar_pngs)])
    doc = runner.invoke(app, ["predict", "--model", cifar_tag, str(cifar_pngs), "--json"])
    assert text.exit_code == doc.exit_code == 0
    lines = dict(line.split(": ", 1) for line in text.stdout.splitlines())
    rows = json.loads(doc.stdout)
    assert len(lines) == len(rows) == 8 and not re.search(r"(?<![0-9])0\.0%", text.stdout)
    for r in rows:
        line, kept = lines[r["image"]], [t for t in r["top"] if t["prob"] >= 0.0005]
        assert line.startswith(f"{r['top'][0]['label']} {100 * r['top'][0]['prob']:.1f}%")
        assert all(f"{t['label']} {100 * t['prob']:.1f}%" in line for t in kept)
        left = len(r["top"]) - max(len(kept), 1)
        assert (f"the other {left} < 0.1%" in line) == (left > 0)
    assert any("< 0.1%" in line for line in lines.values())  # a trained model is that sure of some images


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
    if _has("openvino"):  # the same artifact run by OpenVINO predicts the same, once checked with it
        args = ["predict", "--artifact", str(arts["onnx"].path), "--backend", "openvino", str(cifar_pngs)]
        refused = runner.invoke(app, [*args, "--json"])  # a verdict is per runtime: none yet for OpenVINO
        assert refused.exit_code == 1 and "never been checked with openvino" in refused.output
        check = ["parity", cifar_tag, str(arts["onnx"].path), "--backend", "openvino", "--limit", "500"]
        assert runner.invoke(app, check).exit_code == 0
        c = runner.invoke(app, [*args, "--json", "--topk", "1"])
        assert c.exit_code == 0, c.output
        assert [r["top"][0]["label"] for r in json.loads(c.stdout)] == [
            r["top"][0]["label"] for r in json.loads(a.stdout)
        ]
    r = runner.invoke(app, ["predict", "--model", cifar_tag, "--backend", "openvino", str(cifar_pngs)])
    assert r.exit_code == 1 and "needs one" in r.output  # OpenVINO runs artifacts, not tags
    wide = runner.invoke(app, ["predict", "--model", cifar_tag, str(cifar_pngs), "--json", "--topk", "11"])
    assert wide.exit_code == 0 and {len(r["top"]) for r in json.loads(wide.stdout)} == {10}
    assert "knows 10 classes, so each image gets all 10 of them (--topk 11)" in wide.stderr


def test_expand_finds_images_in_folders_and_by_pattern(cifar_pngs):
    assert len(expand([str(cifar_pngs)])) == 8
    assert expand([str(cifar_pngs / "nothing*.png")])[0][1] == "the pattern matches no file"


def test_zoo_parity_writes_each_result_into_the_card_and_fails_on_a_bar(artifacts, cifar_tag):
    out, arts = artifacts
    result = runner.invoke(app, ["parity", cifar_tag, "--artifacts", str(out), "--limit", "1000", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {str(arts["onnx"].path), str(arts["onnx-int8-cpu"].path)}
    fp32 = report[str(arts["onnx"].path)]
    assert fp32["top1_agreement"] >= 99.9 and fp32["images"] == 1000 and fp32["verdict"]["passed"]
    card = json.loads((arts["onnx-int8-cpu"].path / "card.json").read_text())
    assert card["parity"]["top1_agreement"] == report[str(arts["onnx-int8-cpu"].path)]["top1_agreement"]
    strict = ["parity", cifar_tag, "-f", "onnx-int8-cpu", "--artifacts", str(out), "--int8-bar", "99.99"]
    strict = runner.invoke(app, [*strict, "--limit", "500", "--json"])  # -f: that artifact alone
    assert strict.exit_code == 1 and list(json.loads(strict.stdout)) == [str(arts["onnx-int8-cpu"].path)]
    given = json.loads(strict.stdout)[str(arts["onnx-int8-cpu"].path)]["verdict_given_bars"]
    assert not given["passed"] and "top-1 agreement" in given["failures"][0]


def test_bench_writes_json_csv_and_a_plot_with_the_hardware_record(artifacts, cifar_tag, tmp_path):
    out, made = artifacts
    formats = ["pytorch", "onnx", "onnx-int8-cpu"] + (["openvino"] if _has("openvino") else [])
    args = [
        "bench",
        cifar_tag,
        "--formats",
        ",".join(formats),
        "--batch",
        "1,4",
        "--seconds",
        "0.2",
        "--repeats",
        "2",
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
    assert report["untrained"] is False
    rows = report["rows"]
    assert {(r["format"], r["batch"]) for r in rows} == {(f, b) for f in formats for b in (1, 4)}
    for r in rows:
        assert 0 < r["model_p50_ms"] <= r["model_p90_ms"] <= r["model_p99_ms"] and r["model_runs"] >= 10
        assert r["e2e_p50_ms"] > 0 and r["model_images_per_s"] > 0 and r["peak_rss_mb"] > 0
        # two fresh processes per format; the figure is the median of their two p50s
        assert r["repeats"] == 2 and len(r["model_p50_ms_runs"]) == 2
        assert r["model_p50_ms"] == pytest.approx(float(np.mean(r["model_p50_ms_runs"])))
    eager = next(e for e in report["summary"] if e["format"] == "pytorch")
    assert eager["speedup_vs_eager_b1"] == pytest.approx(1.0)
    assert all(e["status"] == "ok" for e in report["summary"]), report["summary"]
    card = json.loads((made["onnx-int8-cpu"].path / "card.json").read_text())
    assert {int(b) for b in card["bench"]["rows"]} == {1, 4}  # the timings are written into the card too
    if "openvino" in formats:  # OpenVINO's parity is its own, measured through OpenVINO, not ONNX Runtime's
        onnx_card = json.loads((made["onnx"].path / "card.json").read_text())
        assert onnx_card["parity_openvino"]["candidate"]["backend"] == "openvino"
        ov = next(e for e in report["summary"] if e["format"] == "openvino")
        assert ov["parity"]["top1_agreement"] == onnx_card["parity_openvino"]["top1_agreement"]

    def written(ext: str) -> Path:  # the tag holds a dot, so no with_suffix
        return tmp_path / f"bench-{cifar_tag}.{ext}"

    assert json.loads(written("json").read_text())["model"] == cifar_tag
    assert written("csv").read_text().count("\n") == len(rows) + 1
    table = written("md").read_text().splitlines()  # the README's table, one row per format
    assert [line.split(" | ")[0].strip("| ") for line in table[2 : 2 + len(formats)]] == formats
    png = written("png")  # matplotlib is a dev dependency: the plot must be there
    assert Image.open(io.BytesIO(png.read_bytes())).size[0] > 500


def test_bad_input_to_the_serving_commands(tmp_path, cifar_tag):
    assert runner.invoke(app, ["predict", "x.png"]).exit_code == 1
    r = runner.invoke(app, ["predict", "--artifact", str(tmp_path), "x.png"])
    assert r.exit_code == 1 and "not an artifact directory" in r.output and "zoo export" in r.output
    typo = runner.invoke(app, ["info", str(tmp_path / "arts-typo")])  # a path that is not there says so
    assert typo.exit_code == 1 and f"{tmp_path / 'arts-typo'} does not exist" in typo.output
    for fmt in ("onnx", "onnx-fp16"):  # the tag's folder, or the artifacts folder: the artifacts are named
        (tmp_path / "arts" / cifar_tag / fmt).mkdir(parents=True)
        (tmp_path / "arts" / cifar_tag / fmt / "card.json").write_text("{}")
    for given in (tmp_path / "arts" / cifar_tag, tmp_path / "arts"):
        one_sentence(
            runner.invoke(app, ["predict", "--artifact", str(given), "x.png"]),
            f"it holds 2 artifacts, name one: {tmp_path / 'arts' / cifar_tag / 'onnx'}, ",
        )
    r = runner.invoke(app, ["parity", cifar_tag, "--artifacts", str(tmp_path)])
    assert r.exit_code == 1 and "no artifacts" in r.output
    r = runner.invoke(
        app, ["parity", cifar_tag, "-f", "onnx,onnx-int8", "--artifacts", str(tmp_path / "arts")]
    )
    one_sentence(r, f"no onnx-int8 artifact of {cifar_tag} under {tmp_path / 'arts'}; export it with")
    one_sentence(
        runner.invoke(app, ["parity", cifar_tag, "x", "-f", "onnx"]), "by their folders or by --formats"
    )
    r = runner.invoke(app, ["bench", cifar_tag, "--batch", "1,x"])
    assert r.exit_code == 1 and "comma-separated" in r.output
    r = runner.invoke(app, ["bench", cifar_tag, "--repeats", "0"])
    assert r.exit_code == 1 and "at least 1" in r.output
    r = runner.invoke(app, ["parity", cifar_tag, "--backend", "tpu", "--artifacts", str(tmp_path)])
    assert r.exit_code == 1 and "unknown backend" in r.output


def test_the_compiled_pytorch_runtime_matches_eager(cifar_tag, cifar_dir):
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with open_runtime(cifar_tag) as eager, open_runtime(cifar_tag, backend="pytorch-compiled") as compiled:
        assert compiled.format == "pytorch-compiled"
        np.testing.assert_allclose(compiled.run(x), eager.run(x), atol=1e-4, rtol=1e-4)


def test_openvino_runs_an_onnx_artifact_and_is_held_to_the_bar_of_what_it_computes_in(
    artifacts, cifar_tag, cifar_dir
):
    """OpenVINO computes an FP32 artifact in bf16 on CPUs that have it: the runtime says so, its logits
    stay close to ONNX Runtime's, and parity through OpenVINO on 1000 real test images passes the bar of
    that precision and lands in the card under its own key."""
    pytest.importorskip(
        "openvino", reason="OpenVINO is an optional backend (pip install 'resnet-zoo[openvino]')"
    )
    from zoo.serve.parity import BARS, check_artifacts

    _, made = artifacts
    onnx_dir = made["onnx"].path
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with open_runtime(onnx_dir, backend="openvino") as ov, open_runtime(onnx_dir) as ort:
        assert ov.backend == "openvino" and ov.device == "cpu" and ov.precision in ("fp32", "bf16", "fp16")
        a, b = ov.run(x), ort.run(x)
    tolerance = 1e-3 if ov.precision == "fp32" else 0.1 * float(np.abs(b).max())
    assert np.abs(a - b).max() < tolerance
    own = check_artifacts(cifar_tag, [onnx_dir], None, 1000)[str(onnx_dir)]
    result = check_artifacts(cifar_tag, [onnx_dir], None, 1000, backend="openvino")[str(onnx_dir)]
    bar = BARS["fp16" if ov.precision in ("bf16", "fp16") else "fp32"]["top1_agreement"]
    assert result["images"] == 1000 and result["verdict"]["bars"]["top1_agreement"] == bar
    assert result["top1_agreement"] >= bar and result["verdict"]["passed"]
    card = json.loads((onnx_dir / "card.json").read_text())
    assert card["parity_openvino"]["top1_agreement"] == result["top1_agreement"]
    assert card["parity"] == own and own["candidate"]["backend"] == "onnxruntime"  # both results kept


def test_a_missing_backend_is_one_sentence(artifacts, monkeypatch):
    import sys

    _, made = artifacts
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(ZooError, match="OpenVINO is not installed"):
        open_runtime(made["onnx"].path, backend="openvino")


def test_bench_untrained_times_an_architecture_without_weights_and_says_so(
    zoo_cache, tmp_path, cifar_dir, monkeypatch
):
    """plain20 has no trained weights here: `zoo bench` says how to time it anyway; --untrained registers
    seeded random weights in the user's cache (reproducibly), and the report marks every row timing-only."""
    from zoo.models.checkpoints import untrained
    from zoo.models.weights import read_checkpoint

    r = runner.invoke(app, ["bench", "plain20", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "--untrained" in r.output
    args = ["bench", "plain20", "--untrained", "--formats", "pytorch,onnx-int8-cpu", "--batch", "1"]
    args += ["--seconds", "0.1", "--repeats", "1", "--parity-images", "100", "--out", str(tmp_path / "b")]
    result = runner.invoke(app, [*args, "--artifacts", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "plain20.untrained" and report["untrained"] is True
    assert [e["status"] for e in report["summary"]] == ["timing only", "timing only"]
    assert {r["format"] for r in report["rows"]} == {"pytorch", "onnx-int8-cpu"}
    spec = registry.pretrained_tags()["plain20.untrained"]
    assert spec.extra["untrained"] is True and spec.file.parent == zoo_cache / "weights"
    assert registry.resolve("plain20")[1] is None  # a bare name never means random weights
    assert "plain20.untrained" not in registry.list_models(pretrained=True)  # nor are they "pretrained"
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "another-cache"))
    registry.reload()
    again = untrained("plain20")  # the same seed gives the same weights on another machine
    assert again.file != spec.file
    a, b = read_checkpoint(spec.file), read_checkpoint(again.file)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_bench_runs_openvino_on_the_int8_graph_too_and_names_the_fastest_pair_within_its_bar(
    artifacts, cifar_tag, tmp_path
):
    """Every runtime that can run an artifact is a target (OpenVINO on the zoo's Q/DQ INT8 ONNX as well),
    and the report names the fastest artifact + runtime pair that passed its bar, with the next best."""
    from zoo.serve.targets import runnable_here

    if not _has("openvino"):
        pytest.skip("openvino is not installed")
    every = runnable_here()
    assert {"openvino-int8", "openvino-fp16", "onnx-int8", "pytorch"} <= set(every)
    assert not any(t.startswith("trt-") for t in every) or _has("tensorrt")
    mine = tmp_path / "artifacts"  # a copy: the bench exports onnx-int8 into it, and writes cards
    shutil.copytree(artifacts[0], mine)
    args = ["bench", cifar_tag, "--formats", "onnx-int8,openvino-int8", "--batch", "1", "--seconds", "0.2"]
    args += [
        "--repeats",
        "1",
        "--parity-images",
        "200",
        "--out",
        str(tmp_path),
        "--artifacts",
        str(mine),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    p50 = {e["format"]: e["by_batch"]["1"]["model_p50_ms"] for e in report["summary"] if e["status"] == "ok"}
    assert set(p50) == {"onnx-int8", "openvino-int8"}
    best, other = sorted(p50, key=p50.get)
    assert report["fastest"]["format"] == best and report["fastest"]["runner_up"] == other
    assert report["fastest"]["ratio"] == pytest.approx(p50[other] / p50[best])
    # OpenVINO runs the CPU flavour of INT8 (a CPU runtime: 7-bit weights where int8 kernels saturate)
    card = json.loads((mine / cifar_tag / "onnx-int8-cpu" / "card.json").read_text())
    assert {"bench_openvino", "parity_openvino"} <= set(card)  # kept apart per runtime
    assert card["parity_openvino"]["measured_on"]["runtime"] == "openvino"
    assert {"bench", "parity"} <= set(json.loads((mine / cifar_tag / "onnx-int8" / "card.json").read_text()))
    assert "Fastest within its parity bar: " + best in (tmp_path / f"bench-{cifar_tag}.md").read_text()


def test_export_and_check_reads_data_by_option_and_says_how_each_target_went(
    tmp_path, cifar_tag, data, monkeypatch
):
    """The workflow behind `zoo export` and `zoo bench`: the original's row carries the accuracy the
    artifacts were compared with, parity runs on --data without $ZOO_DATA, a format that cannot be built
    is 'failed' with its cause."""

    monkeypatch.delenv("ZOO_DATA", raising=False)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))  # no fetched CIFAR-10 to fall back on
    options = ExportOptions(out=tmp_path / "out", calib_method="median", data=str(data))  # no such method
    out = export_and_check(cifar_tag, ["pytorch", "onnx", "onnx-int8"], options, parity_images=200, log=print)
    assert [c.status for c in out] == ["ok", "ok", "failed"]
    pytorch, onnx_row, int8 = out
    assert onnx_row.parity["images"] == 200 and onnx_row.ok and onnx_row.artifact is not None
    assert pytorch.parity == {"top1_agreement": 100.0, "top1": onnx_row.parity["reference_top1"]}
    assert not int8.ok and "calibration method" in int8.message and int8.reason() == int8.message


def test_a_status_and_its_reason_follow_the_parity_result():
    from zoo.serve.checked_export import Checked, status_of

    failing = {"verdict": {"passed": False, "failures": ["top-1 agreement 90%", "drop 2 points"]}}
    assert status_of(failing) == "parity failed" and status_of({"verdict": {"passed": True}}) == "ok"
    assert status_of({"failed": "could not run it"}) == "parity failed"
    assert status_of({"skipped": "no labelled images"}) == status_of({}) == "not validated"
    c = Checked("onnx", status_of(failing), parity=failing)
    assert c.reason() == "failed its parity bar: top-1 agreement 90%; drop 2 points" and not c.ok
    assert (
        Checked("onnx", "parity failed", parity={"failed": "could not run it"}).reason() == "could not run it"
    )


def test_probabilities_shown_to_users_are_the_softmax():
    """Breakage: softmax at temperature 2 in predict / the demo (scipy is the reference)."""
    special = pytest.importorskip("scipy.special", reason="scipy is the independent cross-check")
    from zoo.serve.predict import top_k

    logits = np.random.default_rng(0).standard_normal((4, 10)) * 5
    expected = special.softmax(logits, axis=1)
    for row, top in zip(expected, top_k(logits, [str(i) for i in range(10)], 10), strict=True):
        assert [t["index"] for t in top] == list(np.argsort(-row))
        assert [t["prob"] for t in top] == pytest.approx(sorted(row, reverse=True), abs=1e-12)


def test_zoo_info_on_an_artifact_shows_its_card_and_its_standing_here(artifacts, tmp_path, monkeypatch):
    _, arts = artifacts
    path = arts["onnx-int8-cpu"].path
    card = json.loads((path / "card.json").read_text())
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 0, r.output
    parity = card["parity"]  # as the last check left it (other tests check this artifact again)
    assert (
        f"✅ passed; top-1 agreement {parity['top1_agreement']:.2f}% on {parity['images']:,} images"
        in r.output
    )
    assert card["int8"]["arithmetic"] in r.output and "note:" not in r.output  # measured on this CPU
    doc = json.loads(runner.invoke(app, ["info", str(path), "--json"]).stdout)
    assert doc["card"] == card and doc["standing"] == {
        "own": {"status": "passed", "reason": "", "host_note": ""}
    }
    # on a CPU of the other int8 class the verdict stands, with the note predict and serve print
    other = "avx2" if card["parity"]["measured_on"]["int8_class"] == "vnni" else "avx2,avx512f,avx512_vnni"
    monkeypatch.setenv("ZOO_CPU_FEATURES", other)
    assert (
        "note: its int8 verdict was measured on a CPU of class"
        in runner.invoke(app, ["info", str(path)]).output
    )
    copy = tmp_path / "never-checked"
    shutil.copytree(path, copy)
    (copy / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "parity"}))
    r = runner.invoke(app, ["info", str(copy)])
    assert (
        r.exit_code == 0
        and "parity: · not validated: it has never been checked against its original" in r.output
    )
