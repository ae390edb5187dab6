"""Verdicts that hold on every CPU the zoo runs on, and that every command honours: the CPU's numeric
features and classes (injected, so that the logic is tested on any machine), the INT8 flavours' arithmetic
against ONNX's own reference evaluator, where a verdict was measured, bars that cannot be loosened into a
pass, and the refusal of failed or unchecked artifacts by predict, the demo, Triton and the bench."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from zoo.cli import app
from zoo.export.artifact import read_card, update_card
from zoo.export.int8 import EXACT
from zoo.export.pipeline import ExportOptions, export_model
from zoo.serve.bars import bars_with
from zoo.serve.checked_export import export_and_check
from zoo.serve.parity import verdict
from zoo.utils import machine

runner = CliRunner()
FORMATS = ["onnx", "onnx-int8", "onnx-int8-cpu"]


@pytest.fixture(scope="module")
def checked(tmp_path_factory, cifar_tag, cifar_dir):
    out = tmp_path_factory.mktemp("verdict-artifacts")
    options = ExportOptions(FORMATS, out, calib_size=256)
    done = export_and_check(cifar_tag, FORMATS, options, parity_images=1000, log=lambda _m: None)
    assert [c.status for c in done] == ["ok"] * 3, [c.reason() for c in done]
    return out, {c.target: c.artifact.path for c in done}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _mark_failed(directory: Path) -> None:
    """The state of an artifact whose last check failed: its real metrics judged under bars it misses."""
    card = read_card(directory)
    metrics = card["parity"]
    failed = verdict(metrics, card["precision"], bars_with(int8_bar=99.99))
    assert not failed["passed"]
    update_card(directory, parity={**metrics, "verdict": failed})


def _one_sentence(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


# --- the CPU's numeric features and classes -------------------------------------------------------


def test_cpu_features_are_this_cpus_flags_or_the_injected_set(monkeypatch):
    monkeypatch.delenv(machine.FEATURES_ENV, raising=False)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    flags = next((line.split(":")[1].split() for line in lines if line.startswith("flags")), [])
    assert machine.cpu_features() == [f for f in machine.NUMERIC_FEATURES if f in flags]
    monkeypatch.setenv(machine.FEATURES_ENV, "avx512_vnni, avx2,sse4_2")
    assert machine.cpu_features() == ["avx2", "avx512_vnni"]  # in the table's order, unknown ones left out


@pytest.mark.parametrize(
    "features, int8, bf16",
    [
        (["avx2"], "no-vnni", "no-bf16"),  # AMD EPYC (Zen 2/3), Intel Haswell-Skylake client
        (["avx2", "avx512f"], "no-vnni", "no-bf16"),  # Skylake-SP: AVX-512 saturates as AVX2 does
        (["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], "vnni", "bf16"),  # Zen 4, Cooper Lake
        (["avx2", "avx_vnni"], "vnni", "no-bf16"),  # Alder Lake: VNNI on 256-bit registers
        (["avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"], "vnni", "bf16"),  # Sapphire Rapids
    ],
)
def test_each_x86_cpu_family_gets_its_int8_and_bf16_class(features, int8, bf16):
    from zoo.export.int8 import weight_bits_for

    assert machine.int8_class(features) == int8 and machine.bf16_class(features) == bf16
    assert weight_bits_for("cpu", int8) == (8 if int8 == "vnni" else 7)
    assert weight_bits_for("trt", int8) == 8  # TensorRT computes exact int8 whatever built it


def test_the_cpu_flavour_has_7_bit_weights_without_vnni_and_8_with_it(
    monkeypatch, tmp_path, cifar_tag, cifar_dir
):
    """Read from the graph itself: 7-bit weights stay within ±64, 8-bit ones reach ±127. An export on a CPU
    of the other class rebuilds the artifact instead of reusing it."""

    def export(features: str):
        monkeypatch.setenv(machine.FEATURES_ENV, features)
        options = ExportOptions(["onnx-int8-cpu"], tmp_path, calib_size=32)
        return export_model(cifar_tag, options, log=lambda _m: None)[-1]

    def widest_weight(path: Path) -> int:
        graph = onnx.load(str(path)).graph
        weights = [numpy_helper.to_array(i) for i in graph.initializer]
        return max(
            int(np.abs(w.astype(np.int32)).max()) for w in weights if w.dtype == np.int8 and w.size > 1
        )

    seven = export("avx2")
    assert seven.artifact.card["int8"]["weight_bits"] == 7 and widest_weight(seven.artifact.file) <= 64
    assert seven.artifact.card["int8"]["built_on"]["features"] == ["avx2"]
    eight = export("avx2,avx512f,avx512_vnni")
    assert eight.status == "built" and eight.artifact.card["int8"]["weight_bits"] == 8
    assert widest_weight(eight.artifact.file) == 127
    assert export("avx2,avx512f,avx512_vnni").status == "reused"


# --- the arithmetic of each INT8 flavour ----------------------------------------------------------


def test_the_tensorrt_flavour_runs_and_is_judged_in_exact_int8_arithmetic(checked, cifar_tag, cifar_dir):
    """ONNX's own reference evaluator (numpy, no fused kernels) computes what the Q/DQ graph means; the
    zoo's runtime of the TensorRT flavour must give that on any CPU, and its card say so. Both sum the
    dequantized products in float, in their own order: a value within float rounding of a quantization
    boundary may land one output step apart (2 of these 80 logits do with one ONNX Runtime thread), so
    the bar is one step of the output's scale, rarely taken; saturating kernels miss it by many steps."""
    from onnx.reference import ReferenceEvaluator

    from zoo.data.datasets import CIFAR10
    from zoo.data.preprocess import preprocess_batch
    from zoo.models import registry
    from zoo.serve.runtimes import open_runtime

    test = CIFAR10(cifar_dir, "test")
    x = preprocess_batch([test[i][0] for i in range(8)], registry.resolve(cifar_tag)[1].preprocess)
    path = checked[1]["onnx-int8"]
    reference = ReferenceEvaluator(str(path / "model.onnx")).run(None, {"input": x})[0]
    graph = onnx.load(str(path / "model.onnx")).graph
    step = float(next(numpy_helper.to_array(i) for i in graph.initializer if i.name == "logits_scale"))
    with open_runtime(path) as rt:
        diff = np.abs(rt.run(x) - reference)
        assert diff.max() <= step + 1e-4 and np.mean(diff > 1e-4) <= 0.05, (diff.max(), step)
        assert (rt.run(x).argmax(1) == reference.argmax(1)).all()
        assert rt.arithmetic == EXACT
    card = read_card(path)
    assert card["int8"]["arithmetic"] == EXACT and card["parity"]["measured_on"]["arithmetic"] == EXACT


def test_every_dequantize_of_the_tensorrt_graph_reads_int8_with_zero_point_zero(checked):
    """TensorRT's ONNX parser takes DequantizeLinear of int8 only (no int32 biases) and symmetric scales."""
    graph = onnx.load(str(checked[1]["onnx-int8"] / "model.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    dq = [n for n in graph.node if n.op_type == "DequantizeLinear"]
    weights = 0
    for node in dq:
        source = node.input[0]
        if source in inits:
            assert inits[source].dtype == np.int8, f"{node.name} reads {inits[source].dtype}"
            weights += 1
        else:
            assert producer[source].op_type == "QuantizeLinear", node.name
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    convs = sum(n.op_type in ("Conv", "Gemm") for n in graph.node)
    assert weights == convs  # one per Conv and Gemm weight: no bias is quantized


def test_every_verdict_says_where_it_was_measured(checked):
    import onnxruntime

    for fmt, path in checked[1].items():
        where = read_card(path)["parity"]["measured_on"]
        assert where["features"] == machine.cpu_features() and where["cpu"] == machine.machine()["cpu"]
        assert where["int8_class"] == machine.int8_class(where["features"])
        assert where["runtime"] == "onnxruntime" and where["runtime_version"] == onnxruntime.__version__
        assert where["arithmetic"] == {"onnx": "fp32", "onnx-int8": EXACT}.get(fmt, where["arithmetic"])
    cpu = read_card(checked[1]["onnx-int8-cpu"])["parity"]["measured_on"]["arithmetic"]
    assert (
        "fused u8s8" in cpu and f"{read_card(checked[1]['onnx-int8-cpu'])['int8']['weight_bits']}-bit" in cpu
    )


def test_doctor_names_this_cpus_numeric_features(monkeypatch):
    monkeypatch.setenv(machine.FEATURES_ENV, "avx2,avx512f")
    doc = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)["cpu_numerics"]
    assert doc["features"] == ["avx2", "avx512f"] and doc["int8_class"] == "no-vnni"
    text = " ".join(runner.invoke(app, ["doctor"]).stdout.replace("│", " ").split())
    assert "avx2, avx512f" in text and "saturate (no VNNI)" in text and "7-bit weights" in text
    monkeypatch.setenv(machine.FEATURES_ENV, "avx2,avx512f,avx512_vnni")
    text = " ".join(runner.invoke(app, ["doctor"]).stdout.replace("│", " ").split())
    assert "(VNNI): onnx-int8-cpu gets 8-bit weights" in text


# --- bars -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--int8-bar", "nan", "at least 0"),
        ("--int8-bar", "-5", "at least 0"),
        ("--int8-max-drop", "-1", "at least 0"),
        ("--fp16-bar", "101", "at most 100"),
    ],
)
def test_bars_that_could_never_fail_are_refused(checked, cifar_tag, option, value, words):
    out = _one_sentence(
        runner.invoke(app, ["parity", cifar_tag, "--artifacts", str(checked[0]), option, value])
    )
    assert words in out and option in out


def test_looser_bars_are_recorded_beside_the_verdict_and_never_turn_a_failure_into_a_pass(
    cifar_tag, cifar_dir
):
    """Two real, different networks: resnet32's answers as a 'candidate' for resnet20's fail the FP32 bar.
    Under a bar of 50% they pass the given bars, and the verdict the card keeps is still the zoo's."""
    from zoo.data.datasets import CIFAR10
    from zoo.models import registry
    from zoo.serve.parity import labelled_images, parity
    from zoo.serve.runtimes import TorchRuntime

    spec = registry.resolve(cifar_tag)[1]
    data = labelled_images(spec.preprocess, CIFAR10(cifar_dir, "test"), 500)
    loose = bars_with(fp32_bar=50.0)
    result = parity(TorchRuntime(cifar_tag), TorchRuntime("resnet32.cifar10"), data, bars=loose)
    assert result["top1_agreement"] < 99.0
    assert not result["verdict"]["passed"] and result["verdict"]["bars"]["top1_agreement"] == 99.9
    assert result["verdict_given_bars"]["passed"]
    assert result["verdict_given_bars"]["looser"] == ["fp32 top1_agreement 50 (the zoo's: 99.9)"]
    assert "verdict_given_bars" not in parity(TorchRuntime(cifar_tag), TorchRuntime(cifar_tag), data)


def test_zoo_parity_with_other_bars_keeps_the_zoos_verdict_in_the_card(checked, cifar_tag, tmp_path):
    art = _copy(checked[1]["onnx-int8-cpu"], tmp_path / cifar_tag / "onnx-int8-cpu")
    strict = runner.invoke(app, ["parity", cifar_tag, str(art), "--limit", "500", "--int8-bar", "99.99"])
    assert strict.exit_code == 1 and "99.99" in strict.output  # the bars asked for decide the exit code
    card = read_card(art)
    assert card["parity"]["verdict"]["passed"] and card["parity"]["verdict"]["bars"]["top1_agreement"] == 97.0
    assert not card["parity"]["verdict_given_bars"]["passed"]


def test_parity_refuses_an_artifact_exported_from_another_tag(checked, cifar_tag):
    art = checked[1]["onnx"]
    out = _one_sentence(runner.invoke(app, ["parity", "resnet32.cifar10", str(art)]))
    assert f"exported from {cifar_tag}, not resnet32.cifar10" in out and f"zoo parity {cifar_tag}" in out
    assert read_card(art)["parity"]["reference"]["name"] == cifar_tag  # nothing written


# --- every command honours the verdict -------------------------------------------------------------


@pytest.fixture()
def png(tmp_path, cifar_dir) -> Path:
    from zoo.data.datasets import CIFAR10

    path = tmp_path / "ship.png"
    CIFAR10(cifar_dir, "test")[1][0].save(path)
    return path


def test_predict_refuses_a_failed_or_unchecked_artifact_unless_insisted(checked, cifar_tag, tmp_path, png):
    failed = _copy(checked[1]["onnx-int8-cpu"], tmp_path / "failed")
    _mark_failed(failed)
    out = _one_sentence(runner.invoke(app, ["predict", "--artifact", str(failed), str(png)]))
    assert "refused: its last parity check failed" in out and "--allow-unverified" in out
    assert f"zoo parity {cifar_tag} {failed}" in out
    anyway = runner.invoke(app, ["predict", "--artifact", str(failed), str(png), "--allow-unverified"])
    assert anyway.exit_code == 0 and "ship" in anyway.stdout and "warning:" in anyway.stderr
    unchecked = _copy(checked[1]["onnx"], tmp_path / "unchecked")
    card = read_card(unchecked)
    del card["parity"]
    (unchecked / "card.json").write_text(json.dumps(card))
    out = _one_sentence(runner.invoke(app, ["predict", "--artifact", str(unchecked), str(png)]))
    assert "never been checked" in out
    ok = runner.invoke(app, ["predict", "--artifact", str(checked[1]["onnx"]), str(png)])
    assert ok.exit_code == 0 and not ok.stderr.strip()


def test_a_verdict_measured_on_another_cpu_class_is_said_in_one_line(checked, monkeypatch, png):
    here = machine.int8_class(machine.cpu_features())
    other = "avx2" if here == "vnni" else "avx2,avx512f,avx512_vnni"
    monkeypatch.setenv(machine.FEATURES_ENV, other)
    moved = runner.invoke(app, ["predict", "--artifact", str(checked[1]["onnx-int8-cpu"]), str(png)])
    assert moved.exit_code == 0
    notes = [line for line in moved.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"class {here}" in notes[0] and "zoo parity" in notes[0], moved.stderr
    for fmt in ("onnx", "onnx-int8"):  # fp32, and exact int8: the same on every CPU
        same = runner.invoke(app, ["predict", "--artifact", str(checked[1][fmt]), str(png)])
        assert same.exit_code == 0 and "note:" not in same.stderr


def test_triton_refuses_a_failed_artifact_before_writing_anything(checked, cifar_tag, tmp_path):
    out = tmp_path / "artifacts"
    _mark_failed(_copy(checked[1]["onnx-int8-cpu"], out / cifar_tag / "onnx-int8-cpu"))
    repo = tmp_path / "repo"
    result = runner.invoke(app, ["triton", cifar_tag, "--artifacts", str(out), "--repo", str(repo)])
    assert "refused" in _one_sentence(result) and not repo.exists()


def test_the_demo_marks_verdicts_in_its_dropdown_and_refuses_failed_artifacts(
    checked, cifar_tag, tmp_path, png
):
    pytest.importorskip("gradio", reason="the web demo needs gradio: pip install 'resnet-zoo[app]'")
    from zoo.serve.demo import RuntimeCache, classify

    out = tmp_path / "artifacts"
    for fmt in FORMATS:
        _copy(checked[1][fmt], out / cifar_tag / fmt)
    _mark_failed(out / cifar_tag / "onnx-int8-cpu")
    cache = RuntimeCache(out)
    labels = dict((value, label) for label, value in cache.choices(cifar_tag))
    assert (
        "✅ passed" in labels["onnx"]
        and "❌ failed" in labels["onnx-int8-cpu"]
        and labels["pytorch"] == "pytorch"
    )
    cand, _, status, _ = classify(cache, str(png), cifar_tag, "onnx-int8-cpu")
    assert cand == {} and "refused" in status and "⚠️" in status
    cand, _, status, _ = classify(
        RuntimeCache(out, allow_unverified=True), str(png), cifar_tag, "onnx-int8-cpu"
    )
    assert len(cand) == 5 and "used anyway" in status


def test_the_bench_does_not_time_a_failed_artifact_unless_insisted_and_marks_it(checked, cifar_tag, tmp_path):
    out = tmp_path / "artifacts"
    _mark_failed(_copy(checked[1]["onnx-int8-cpu"], out / cifar_tag / "onnx-int8-cpu"))
    args = ["bench", cifar_tag, "--formats", "onnx-int8-cpu", "--batch", "1", "--seconds", "0.1"]
    args += ["--repeats", "1", "--parity-images", "0", "--artifacts", str(out), "--json"]
    refused = json.loads(runner.invoke(app, [*args, "--out", str(tmp_path / "a")]).stdout)
    entry = refused["summary"][0]
    assert entry["status"] == "parity failed" and entry["refused"] and not refused["rows"]
    assert "--allow-unverified" in entry["message"] and refused["fastest"] is None
    timed = json.loads(runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--allow-unverified"]).stdout)
    entry = timed["summary"][0]
    assert entry["status"] == "parity failed" and "warning" in entry and timed["rows"]
    assert timed["fastest"] is None  # never named the fastest
    from zoo.serve.bench import summary_cells

    assert summary_cells(timed)[0][1] == "parity failed (timed anyway)"
    assert math.isfinite(timed["rows"][0]["model_p50_ms"])
