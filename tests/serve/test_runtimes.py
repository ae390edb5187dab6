"""The runtimes (zoo/serve/runtimes.py): one interface, batches in chunks, providers that must not fall back."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import SPEC, ProfileLimited
from zoo import ZooError
from zoo.cli import app
from zoo.serve.runtimes import Runtime, check_provider, chunks, ort_providers


def test_chunks_cover_every_item_in_pieces_of_at_most_the_limit():
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunks(3, 4) == [(0, 3)] and chunks(7, None) == [(0, 7)] and chunks(8, 4) == [(0, 4), (4, 8)]


def test_a_runtime_takes_any_batch_in_chunks_of_its_profile_maximum():
    rt = ProfileLimited(64)
    x = np.random.default_rng(0).standard_normal((250, 3, 32, 32)).astype(np.float32)
    out = rt.run(x)
    assert rt.seen == [64, 64, 64, 58] and out.shape == (250, 10)
    whole = ProfileLimited(1000).run(x)
    np.testing.assert_allclose(out, whole, rtol=1e-6)


def test_onnx_runtime_falling_back_to_the_cpu_is_refused():
    check_provider(None, ["CPUExecutionProvider"])
    check_provider(
        ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    with pytest.raises(ZooError, match="could not use CUDAExecutionProvider"):
        check_provider(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"])
    with pytest.raises(ZooError, match="could not use TensorrtExecutionProvider"):
        check_provider([("TensorrtExecutionProvider", {}), "CPUExecutionProvider"], ["CPUExecutionProvider"])


def test_the_cpu_onnxruntime_wheel_asked_for_cuda_is_refused_not_run_on_the_cpu(
    tmp_path, cifar_tag, cifar_dir
):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA is installed: the fallback cannot happen here")
    out = tmp_path / "a"
    assert (
        CliRunner()
        .invoke(app, ["export", cifar_tag, "--artifacts", str(out), "--parity-images", "0"])
        .exit_code
        == 0
    )
    from zoo.serve.runtimes import open_runtime

    with pytest.raises(ZooError, match="could not use CUDAExecutionProvider"):
        open_runtime(out / cifar_tag / "onnx", backend="cuda")


def test_the_tensorrt_provider_gets_caches_and_the_artifacts_profile(zoo_cache):
    card = {
        "sha256": "ab" * 32,
        "input": {"name": "input"},
        "batch": {"min": 1, "opt": 8, "max": 64},
        "preprocess": SPEC.to_dict(),
    }
    (name, options), *rest = ort_providers("tensorrt", card, zoo_cache)
    assert name == "TensorrtExecutionProvider" and rest == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]
    assert str(zoo_cache) in options["trt_engine_cache_path"]
    assert options["trt_profile_min_shapes"] == "input:1x3x32x32"
    assert options["trt_profile_max_shapes"] == "input:64x3x32x32"
    assert ort_providers(None, card, zoo_cache) is None


def test_a_missing_gpu_provider_says_whether_the_gpu_build_or_its_libraries_are_missing():
    from zoo.serve.runtimes import provider_missing

    assert "install onnxruntime-gpu" in provider_missing(
        "CUDAExecutionProvider", ["CPUExecutionProvider"], None
    )
    said = provider_missing("TensorrtExecutionProvider", ["CPUExecutionProvider"], "1.31.0")
    assert "onnxruntime-gpu 1.31.0 is installed" in said and "TensorRT 10 (libnvinfer)" in said
    assert "CUDA and cuDNN" in provider_missing("CUDAExecutionProvider", [], "1.31.0")


def test_ort_with_the_tensorrt_provider_runs_batches_in_chunks_of_its_profile():
    """ONNX Runtime's TensorRT provider builds its engine for the artifact's profile: parity's batches of
    250 must be cut to its maximum, as they are for the zoo's own engines."""

    class TrtProvider(Runtime):
        backend = "onnxruntime"
        seen: list[int] = []

        def _run(self, batch):
            assert len(batch) <= 64, "a batch above the provider's profile reached it"
            self.seen.append(len(batch))
            return np.zeros((len(batch), 10), np.float32)

    rt = TrtProvider("x", SPEC, [str(i) for i in range(10)], "fp32", "cuda", "onnx")
    rt.batch_limit = 64
    assert rt.run(np.zeros((250, 3, 32, 32), np.float32)).shape == (250, 10)
    assert rt.seen == [64, 64, 64, 58]


def test_an_int8_artifact_runs_in_the_arithmetic_asked_and_is_judged_apart(tmp_path, cifar_tag, cifar_dir):
    """The TensorRT flavour of INT8 runs on the CPU in exact int8 arithmetic (its own way); with --backend
    onnxruntime-fused it computes what a plain ONNX Runtime session computes (an InferenceSession with
    default options is the reference, not the zoo's session), with onnxruntime-exact what ORT computes with
    no graph optimisation at all (each Q/DQ node on its own, in float). A verdict under either goes to the
    card apart from the artifact's own, and is what predict then asks for."""
    import json

    import onnxruntime as ort

    from zoo.export.int8 import EXACT
    from zoo.serve.runtimes import open_runtime

    made = CliRunner().invoke(
        app,
        ["export", cifar_tag, "-f", "onnx-int8", "--artifacts", str(tmp_path), "--calib-size", "64"]
        + ["--parity-images", "0"],
    )
    assert made.exit_code == 0, made.output
    artifact = tmp_path / cifar_tag / "onnx-int8"
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    model = str(next(artifact.glob("*.onnx")))
    plain = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    unoptimised = ort.SessionOptions()
    unoptimised.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    by_node = ort.InferenceSession(model, unoptimised, providers=["CPUExecutionProvider"])
    by_node = by_node.run(None, {"input": x})[0]
    with open_runtime(artifact, backend="onnxruntime-fused") as fused:
        np.testing.assert_allclose(fused.run(x), plain, atol=1e-5)
        assert fused.arithmetic != EXACT and "fused" in fused.arithmetic
        with pytest.raises(RuntimeError):  # Q/DQ fusion is on, as in a plain session
            fused.session.get_session_options().get_session_config_entry("session.disable_quant_qdq")
    with open_runtime(artifact, backend="onnxruntime-exact") as exact, open_runtime(artifact) as own:
        got = exact.run(x)
        np.testing.assert_array_equal(got, own.run(x))
        assert exact.arithmetic == own.arithmetic == EXACT
    # float sums in another order may put a value one quantization step apart, rarely more
    assert np.median(np.abs(got - by_node)) < 1e-4 and (got.argmax(1) == by_node.argmax(1)).mean() >= 0.9

    before = json.loads((artifact / "card.json").read_text())
    said = CliRunner().invoke(
        app, ["parity", cifar_tag, str(artifact), "--backend", "onnxruntime-fused", "--limit", "100"]
    )
    card = json.loads((artifact / "card.json").read_text())
    assert said.exit_code in (0, 1) and "with onnxruntime-fused" in said.output, said.output
    assert "fused" in card["parity_onnxruntime-fused"]["candidate"]["arithmetic"]
    assert card.get("parity") == before.get("parity")  # the artifact's own verdict is untouched
    refused = CliRunner().invoke(
        app, ["predict", "--artifact", str(artifact), "--backend", "onnxruntime-exact", "x.png"]
    )
    assert refused.exit_code == 1 and "never been checked with onnxruntime-exact" in refused.output
    # the bench's onnx-int8-fused: the same artifact, its fused verdict (timed only if it passed)
    bench = ["bench", cifar_tag, "-f", "onnx-int8-fused", "--artifacts", str(tmp_path), "--batch", "1"]
    bench += [
        "--seconds",
        "0.1",
        "--repeats",
        "1",
        "--parity-images",
        "100",
        "--out",
        str(tmp_path / "b"),
        "--json",
    ]
    report = json.loads(CliRunner().invoke(app, bench).stdout)
    (row,) = [e for e in report["summary"] if e["format"] == "onnx-int8-fused"]
    fused_verdict = json.loads((artifact / "card.json").read_text())["parity_onnxruntime-fused"]["verdict"]
    assert (row["status"] == "ok") == fused_verdict["passed"]


def test_a_backend_runs_onnx_artifacts_and_refuses_the_others_by_name(
    checked_artifacts, tmp_path, cifar_tag, data
):
    """--backend names a runtime for an ONNX file: a .pt2 or an engine would run by its own runtime and its
    verdict land under the backend's name. Asked by name, it is one sentence; among every artifact of a
    tag, it is passed over."""
    import json
    import shutil

    from zoo import api
    from zoo.serve.runtimes import check_runs

    folder = tmp_path / cifar_tag
    shutil.copytree(checked_artifacts[1]["onnx"].path, folder / "onnx")
    card = json.loads((folder / "onnx" / "card.json").read_text()) | {"format": "pt2", "file": "model.pt2"}
    (folder / "pt2").mkdir()
    (folder / "pt2" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ZooError, match="is a pt2 artifact; --backend openvino runs ONNX artifacts \\(onnx, "):
        check_runs(card, "openvino", folder / "pt2")
    check_runs(card, None, folder / "pt2")  # its own runtime runs it
    results = api.parity(cifar_tag, artifacts=tmp_path, data=data, limit=50, backend="onnxruntime-exact")
    assert list(results) == [str(folder / "onnx")] and results[str(folder / "onnx")]["verdict"]["passed"]
    shutil.rmtree(folder / "onnx")
    with pytest.raises(ZooError, match="no ONNX artifacts of .* for --backend openvino"):
        api.parity(cifar_tag, artifacts=tmp_path, data=data, backend="openvino")
