"""The logic around the GPU code that can be tested without a GPU: chunking to an engine's batch limit,
device and backend choice under torchrun, ONNX Runtime provider checks, engine fingerprints and keys,
and FP16 / INT8 exports without data. The GPU glue itself is tested where TensorRT exists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from serve.runtimes import Runtime, check_provider, chunks, ort_providers
from zoo import ZooError
from zoo.cli import app
from zoo.preprocess import PreprocessSpec

SPEC = PreprocessSpec.from_dict({"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3})


def test_chunks_cover_every_item_in_pieces_of_at_most_the_limit():
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunks(3, 4) == [(0, 3)] and chunks(7, None) == [(0, 7)] and chunks(8, 4) == [(0, 4), (4, 8)]


class ProfileLimited(Runtime):
    """A backend that, like a TensorRT engine, refuses batches above its profile maximum."""

    backend = "limited"

    def __init__(self, maximum: int) -> None:
        card = {"profile": {"min": 1, "opt": 2, "max": maximum}}
        super().__init__("limited", SPEC, [str(i) for i in range(10)], "fp16", "cpu", "trt-fp16", card)
        self.seen: list[int] = []

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) > self.max_batch:
            raise ZooError(f"batch {len(batch)} exceeds this engine's profile maximum {self.max_batch}")
        self.seen.append(len(batch))
        return batch.reshape(len(batch), 3, -1).mean(axis=2) @ np.ones((3, 10), np.float32) * np.arange(10)


def test_a_runtime_takes_any_batch_in_chunks_of_its_profile_maximum():
    rt = ProfileLimited(64)
    x = np.random.default_rng(0).standard_normal((250, 3, 32, 32)).astype(np.float32)
    out = rt.run(x)
    assert rt.seen == [64, 64, 64, 58] and out.shape == (250, 10)
    whole = ProfileLimited(1000).run(x)
    np.testing.assert_allclose(out, whole, rtol=1e-6)


def test_parity_of_a_profile_limited_runtime_gets_a_verdict_not_a_skip(cifar_tag, cifar_dir):
    from serve.parity import labelled_images, logits_of, parity
    from serve.runtimes import TorchRuntime
    from zoo.data import find_dataset

    reference = TorchRuntime(cifar_tag)
    data = labelled_images(reference.preprocess, find_dataset("cifar10", None, "test"), 500)  # batches of 250
    limited = ProfileLimited(64)
    result = parity(reference, limited, data, logits_of(reference, data))
    assert "verdict" in result and result["images"] == 500 and max(limited.seen) == 64


@pytest.mark.parametrize(
    "choice, local_rank, world, gpus, expected",
    [
        ("auto", 0, 1, 0, ("cpu", None)),
        ("auto", 1, 2, 2, ("cuda:1", "nccl")),  # each rank its own GPU, not cuda:0 for all
        ("cuda", 3, 4, 4, ("cuda:3", "nccl")),
        ("cpu", 1, 2, 2, ("cpu", "gloo")),  # the backend follows the device trained on, not what exists
        ("auto", 0, 2, 0, ("cpu", "gloo")),
        ("cuda:1", 0, 1, 2, ("cuda:1", None)),
    ],
)
def test_each_process_trains_on_its_own_device_with_the_backend_of_that_device(
    choice, local_rank, world, gpus, expected
):
    from zoo.train import plan_device

    assert plan_device(choice, local_rank, world, gpus) == expected


@pytest.mark.parametrize(
    "choice, local_rank, world, gpus, words",
    [
        ("cuda", 0, 1, 0, "no CUDA device"),
        ("cuda:1", 0, 2, 2, "LOCAL_RANK"),
        ("cuda", 2, 4, 2, "does not exist"),
    ],
)
def test_impossible_devices_are_one_sentence(choice, local_rank, world, gpus, words):
    from zoo.train import plan_device

    with pytest.raises(ZooError, match=words):
        plan_device(choice, local_rank, world, gpus)


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
        CliRunner().invoke(app, ["export", cifar_tag, "--out", str(out), "--parity-images", "0"]).exit_code
        == 0
    )
    from serve.runtimes import open_runtime

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


RECORDED = {  # a fingerprint as an H100 with TensorRT 10.13 records it in a card
    "tensorrt": "10.13.3.9",
    "tensorrt_cuda_major": "12",
    "cuda": "12.8",
    "gpu": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "driver": "570.172.08",
}


def test_an_engine_from_another_gpu_or_tensorrt_is_rebuilt_and_the_same_one_is_kept():
    from export.tensorrt import check_fingerprint, fingerprint_mismatch

    assert fingerprint_mismatch(RECORDED, dict(RECORDED)) is None
    assert fingerprint_mismatch(RECORDED, {**RECORDED, "driver": "580.0"}) is None  # drivers do not matter
    for key, other in (("gpu", "NVIDIA L4"), ("tensorrt", "11.0.0.1"), ("compute_capability", "8.9")):
        assert key in fingerprint_mismatch(RECORDED, {**RECORDED, key: other})
        with pytest.raises(ZooError, match="rebuild"):
            check_fingerprint({"fingerprint": RECORDED}, {**RECORDED, key: other})
    check_fingerprint({"fingerprint": RECORDED}, dict(RECORDED))
    # the sentence names what the engine was built for and what is here
    why = fingerprint_mismatch(RECORDED, {**RECORDED, "gpu": "NVIDIA L4"})
    assert RECORDED["gpu"] in why and "NVIDIA L4" in why
    with pytest.raises(ZooError, match="rebuild"):  # a card without a fingerprint: rebuild, never crash
        check_fingerprint({}, dict(RECORDED))


def test_the_engine_key_changes_with_everything_an_engine_depends_on():
    from export.tensorrt import engine_key, timing_cache_file

    base = engine_key("f" * 64, "fp16", (1, 8, 64), (3, 32, 32), RECORDED)
    assert base["cuda_major"] == "12" and base["gpu"] == RECORDED["gpu"]
    for change in (
        {"onnx_sha256": "e" * 64},
        {"precision": "int8"},
        {"profile": (1, 8, 128)},
    ):
        args = {"onnx_sha256": "f" * 64, "precision": "fp16", "profile": (1, 8, 64)} | change
        assert (
            engine_key(args["onnx_sha256"], args["precision"], args["profile"], (3, 32, 32), RECORDED) != base
        )
    assert (
        engine_key("f" * 64, "fp16", (1, 8, 64), (3, 32, 32), {**RECORDED, "tensorrt_cuda_major": "13"})
        != base
    )
    assert engine_key("f" * 64, "fp16", (1, 8, 64), (3, 64, 64), RECORDED) != base  # another input size
    for key, other in (("gpu", "NVIDIA L4"), ("tensorrt", "11.0.0.1"), ("compute_capability", "8.9")):
        assert engine_key("f" * 64, "fp16", (1, 8, 64), (3, 32, 32), {**RECORDED, key: other}) != base
    # without TensorRT's own CUDA major, the CUDA version's major decides: 12.4 and 12.8 share engines
    no_major = {k: v for k, v in RECORDED.items() if k != "tensorrt_cuda_major"}
    key = engine_key("f" * 64, "fp16", (1, 8, 64), (3, 32, 32), {**no_major, "cuda": "12.4"})
    assert key == base and key["cuda_major"] == "12"
    # engines are built for this GPU and TensorRT only (no hardware- or version-compatible engines)
    assert base["hardware_compatible"] is False and base["version_compatible"] is False
    assert timing_cache_file(__import__("pathlib").Path("/c"), RECORDED).name == (
        "timing-NVIDIA_H100_80GB_HBM3-trt10.13.3.9.cache"
    )


@pytest.mark.slow
def test_fp16_without_images_converts_unmeasured_and_int8_stops_before_any_work(
    tmp_path, zoo_cache, monkeypatch
):
    """An ImageNet model with no ImageNet images: `onnx-fp16` is built with its weights checked and says
    that ranges were not measured; INT8 refuses in one sentence and writes nothing."""
    monkeypatch.delenv("ZOO_DATA", raising=False)
    from zoo.checkpoints import untrained

    untrained("resnet18")  # seeded random weights in the test's own cache: no ImageNet weights here
    out = tmp_path / "a"
    r = CliRunner().invoke(app, ["export", "resnet18.untrained", "--format", "onnx-int8", "--out", str(out)])
    assert r.exit_code == 1 and "needs real imagenet1k images to calibrate on" in r.output, r.output
    assert not out.exists()
    r = CliRunner().invoke(
        app, ["export", "resnet18.untrained", "--format", "onnx-fp16", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    rows = {row["format"]: row for row in json.loads(r.stdout)}
    assert rows["onnx-fp16"]["status"] == "built" and rows["onnx-fp16"]["ok"]
    card = json.loads((out / "resnet18.untrained" / "onnx-fp16" / "card.json").read_text())
    assert card["ranges"].startswith("not measured") and card["fp16"]["max_activation"] is None


@pytest.mark.slow
def test_fp16_without_measured_ranges_costs_nothing_on_a_cifar_net(tmp_path, cifar_tag, cifar_dir):
    """What converting without images costs where images exist (weights/fp16-unmeasured-vs-measured.json):
    measurement keeps no node in FP32, so both graphs agree with PyTorch equally on the whole test split."""
    from export.calibration import batches, calibration_images
    from export.fp16 import activation_ranges, export_fp16, fp32_nodes
    from export.onnx import load
    from export.pipeline import ExportOptions, export_model
    from serve.parity import compare, labelled_images, logits_of
    from serve.runtimes import OnnxRuntime, TorchRuntime
    from zoo import registry
    from zoo.data import find_dataset

    spec = registry.pretrained_tags()[cifar_tag]
    (onnx_art,) = export_model(cifar_tag, ExportOptions(["onnx"], tmp_path), log=lambda _m: None)
    calib = batches(calibration_images(spec, None, 128), spec)
    ranges = activation_ranges(load(onnx_art.artifact.file), calib[:4])
    assert fp32_nodes(load(onnx_art.artifact.file), ranges) == set() and max(ranges.values()) < 100
    data = labelled_images(spec.preprocess, find_dataset("cifar10", None, "test"))
    ref = logits_of(TorchRuntime(cifar_tag), data)
    agreement = {}
    for name, b in (("measured", calib[:4]), ("unmeasured", [])):
        path = tmp_path / f"{name}.onnx"
        export_fp16(onnx_art.artifact.file, path, b)
        rt = OnnxRuntime(
            path, name=name, preprocess=spec.preprocess, labels=[], precision="fp16", fmt="onnx-fp16"
        )
        agreement[name] = compare(ref, logits_of(rt, data), data.labels)["top1_agreement"]
    assert agreement["measured"] == agreement["unmeasured"] >= 99.5


@pytest.mark.parametrize(
    ("text", "profile"), [("8", (1, 8, 8)), ("1", (1, 1, 1)), ("1:8:64", (1, 8, 64)), ("4:4:4", (4, 4, 4))]
)
def test_a_batch_profile_is_min_opt_max_or_one_number_for_opt_and_max(text, profile):
    from export.tensorrt import parse_profile

    assert parse_profile(text) == profile


@pytest.mark.parametrize("text", ["2:4", "1:8:64:128", "8:4:16", "0:1:1", "1:16:8", "a:b:c", "", "0"])
def test_a_batch_profile_out_of_order_or_malformed_is_one_sentence(text):
    from export.tensorrt import parse_profile

    with pytest.raises(ZooError, match="--batch"):
        parse_profile(text)


# --- the second GPU review (#26): what can be decided without a GPU ---------------------------------


def test_an_engine_refuses_a_batch_outside_its_profile_in_one_sentence():
    from export.tensorrt import check_batch

    check_batch(8, 1, 64)
    with pytest.raises(ZooError, match="below this engine's profile minimum 4; export again with --batch 2:"):
        check_batch(2, 4, 64)
    with pytest.raises(ZooError, match="exceeds this engine's profile maximum 64"):
        check_batch(65, 1, 64)


def test_a_missing_gpu_provider_says_whether_the_gpu_build_or_its_libraries_are_missing():
    from serve.runtimes import provider_missing

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


def test_a_cuda_pt2_is_refused_on_another_gpu_architecture():
    from export.aoti import check_compatible

    card = {"aoti": {"torch": "2.11.0", "device": "cuda", "gpu": "NVIDIA H200", "compute_capability": "9.0"}}
    check_compatible(card, {"torch": "2.11.0", "gpu": "NVIDIA H100", "compute_capability": "9.0"})
    with pytest.raises(
        ZooError, match=r"compiled for NVIDIA H200 \(compute capability 9.0\), not this NVIDIA L4"
    ):
        check_compatible(card, {"torch": "2.11.0", "gpu": "NVIDIA L4", "compute_capability": "8.9"})
    with pytest.raises(ZooError, match="PyTorch sees none here"):
        check_compatible(card, {"torch": "2.11.0"})
    with pytest.raises(ZooError, match="compiled by torch 2.11.0"):
        check_compatible(card, {"torch": "2.13.0", "compute_capability": "9.0"})


def test_the_bench_compares_with_eager_on_the_device_its_targets_run_on():
    import torch

    from serve.bench import resolve_device

    assert resolve_device("auto", ["pytorch", "onnx", "onnx-int8-cpu"]) == "cpu"
    assert resolve_device("auto", ["pytorch", "trt-fp16"]) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", ["trt-fp16"]) == "cpu"  # what the user asked for stands


def test_a_bench_worker_that_runs_too_long_is_one_failed_row(tmp_path, cifar_tag, cifar_dir):
    from serve.bench import BenchOptions, bench

    o = BenchOptions(["pytorch"], [1], 0.1, repeats=1, out=tmp_path / "b", artifacts=tmp_path / "a")
    o.worker_timeout = 0.5  # a fresh Python with torch takes longer than that to start
    report = bench(cifar_tag, o, log=lambda _m: None)
    entry = report["summary"][0]
    assert entry["status"] == "failed" and "took longer than 0.5 s" in entry["message"] and not report["rows"]


def test_parity_streams_the_split_one_batch_at_a_time(cifar_dir, cifar_tag):
    from serve.parity import stream
    from zoo import registry
    from zoo.data import CIFAR10

    class Counting(CIFAR10):
        read = 0

        def __getitem__(self, i):
            type(self).read += 1
            return super().__getitem__(i)

    data = Counting(cifar_dir, "test")
    batches = stream(registry.resolve(cifar_tag)[1].preprocess, data, 1000, batch_size=250)
    first, labels = next(batches)
    assert first.shape == (250, 3, 32, 32) and len(labels) == 250 and Counting.read == 250
    assert sum(len(y) for _, y in batches) == 750 and Counting.read == 1000


def test_doctor_says_when_both_onnx_runtime_builds_are_installed(monkeypatch):
    """ONNX Runtime's own advice: one of onnxruntime and onnxruntime-gpu, never both (they share a module)."""
    import zoo.doctor as doctor

    monkeypatch.setattr(doctor, "version", lambda dist: "1.32.0")  # as if both distributions were installed
    assert "both onnxruntime and onnxruntime-gpu are installed" in doctor._onnxruntime()
    monkeypatch.setattr(doctor, "version", lambda dist: None if dist.endswith("-gpu") else "1.32.0")
    assert "both" not in doctor._onnxruntime()
