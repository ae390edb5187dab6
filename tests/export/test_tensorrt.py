"""TensorRT logic that runs without TensorRT (zoo/export/tensorrt.py): engine keys, profiles, batch limits."""

from __future__ import annotations

import pytest

from zoo import ZooError

RECORDED = {  # a fingerprint as an H100 with TensorRT 10.13 records it in a card
    "tensorrt": "10.13.3.9",
    "tensorrt_cuda_major": "12",
    "cuda": "12.8",
    "gpu": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "driver": "570.172.08",
}


def test_an_engine_from_another_gpu_or_tensorrt_is_rebuilt_and_the_same_one_is_kept():
    from zoo.export.tensorrt import check_fingerprint, fingerprint_mismatch

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
    from zoo.export.tensorrt import engine_key, timing_cache_file

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


@pytest.mark.parametrize(
    ("text", "profile"), [("8", (1, 8, 8)), ("1", (1, 1, 1)), ("1:8:64", (1, 8, 64)), ("4:4:4", (4, 4, 4))]
)
def test_a_batch_profile_is_min_opt_max_or_one_number_for_opt_and_max(text, profile):
    from zoo.export.tensorrt import parse_profile

    assert parse_profile(text) == profile


@pytest.mark.parametrize("text", ["2:4", "1:8:64:128", "8:4:16", "0:1:1", "1:16:8", "a:b:c", "", "0"])
def test_a_batch_profile_out_of_order_or_malformed_is_one_sentence(text):
    from zoo.export.tensorrt import parse_profile

    with pytest.raises(ZooError, match="--batch-range"):
        parse_profile(text)


def test_an_engine_refuses_a_batch_outside_its_profile_in_one_sentence():
    from zoo.export.tensorrt import check_batch

    check_batch(8, 1, 64)
    with pytest.raises(
        ZooError, match="below this engine's profile minimum 4; export again with --batch-range 2:"
    ):
        check_batch(2, 4, 64)
    with pytest.raises(ZooError, match="exceeds this engine's profile maximum 64"):
        check_batch(65, 1, 64)
