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
