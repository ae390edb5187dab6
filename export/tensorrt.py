"""TensorRT: a thin compile-and-run layer over an already typed ONNX graph (FP32, FP16-typed, or Q/DQ INT8).

Precision is decided in the ONNX graph, so the network is created STRONGLY_TYPED (required from
TensorRT 10.12 on, the only mode in TensorRT 11, where BuilderFlag.FP16/INT8 and the calibrators are
gone). FP32 builds clear TF32 for tight parity. An engine runs only on the TensorRT version and GPU that
built it: its fingerprint is recorded in the card and checked before loading; a mismatch means rebuild.
Runs where `import tensorrt` works; everywhere else says so in one sentence.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import

torch = lazy_import("torch")
trt = lazy_import("tensorrt")

MISSING = (
    "TensorRT is not installed here, so no engine was built (the ONNX artifacts before it were kept); "
    "on a machine with an NVIDIA GPU run `pip install 'resnet-zoo[trt]'` and export again."
)
WORKSPACE = 4 << 30


def available() -> bool:
    try:
        trt.__version__  # noqa: B018  (loads it)
    except (ZooError, ImportError, OSError):  # not installed, or its CUDA libraries do not load
        return False
    return True


def _trt():
    if not available():
        raise ZooError(MISSING)
    return trt


_LOGGER = None


def logger():
    """The one TensorRT logger of the process (TensorRT warns when a second one differs)."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = _trt().Logger(_trt().Logger.WARNING)
    return _LOGGER


def make_builder():
    """A TensorRT builder, or one sentence: a CUDA 13 build of TensorRT (11.x) under an older driver
    raises from its constructor, where the CUDA 12 build (the trt-cu12 extra) would run."""
    try:
        builder = _trt().Builder(logger())
    except (TypeError, RuntimeError) as e:
        raise ZooError(
            f"TensorRT {trt.__version__} (CUDA {tensorrt_cuda_major() or '?'}) cannot create a builder here "
            f"({str(e).splitlines()[0][:160]}): the driver may be older than its CUDA needs; install the "
            "extra of your driver's CUDA major, resnet-zoo[trt-cu12] or resnet-zoo[trt-cu13]."
        ) from None
    if builder is None:
        raise ZooError(f"TensorRT {trt.__version__} could not create a builder on this GPU.")
    return builder


def parse_profile(text: str) -> tuple[int, int, int]:
    """--batch-range MIN:OPT:MAX (or one number N = 1:N:N) -> (min, opt, max)."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise ZooError(f"--batch-range {text!r} is not MIN:OPT:MAX (e.g. 1:8:64).") from None
    if len(parts) == 1:
        parts = [1, parts[0], parts[0]]
    if len(parts) != 3 or not (1 <= parts[0] <= parts[1] <= parts[2]):
        raise ZooError(f"--batch-range {text!r} must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX.")
    return parts[0], parts[1], parts[2]


def device_fingerprint() -> dict[str, Any]:
    """TensorRT version, CUDA, GPU name and compute capability, driver: what an engine is tied to."""
    trt = _trt()

    if not torch.cuda.is_available():
        raise ZooError("TensorRT is installed but PyTorch sees no CUDA GPU, so no engine can be built here.")
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "tensorrt": trt.__version__,
        "tensorrt_cuda_major": tensorrt_cuda_major(),
        "cuda": torch.version.cuda,
        "gpu": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": _driver_version(),
    }


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def tensorrt_cuda_major() -> str | None:
    """The CUDA major TensorRT itself was built for, from its wheel's name (tensorrt-cu12, -cu13, ...):
    it, not PyTorch's CUDA, is what an engine depends on."""
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("tensorrt-cu") and name[len("tensorrt-cu") :].split("-")[0].isdigit():
            return name[len("tensorrt-cu") :].split("-")[0]
    return None


def engine_key(
    onnx_sha256: str,
    precision: str,
    profile: tuple[int, int, int],
    input_shape: tuple[int, ...],
    fp: dict[str, Any] | None = None,
) -> dict:
    """The cache key of an engine: everything that makes an old engine unusable or different. `fp`: the
    device fingerprint (default: this machine's)."""
    fp = fp or device_fingerprint()
    return {
        "onnx_sha256": onnx_sha256,
        "precision": precision,
        "profile": list(profile),
        "input_chw": list(input_shape),
        "tensorrt": fp["tensorrt"],
        "cuda_major": fp.get("tensorrt_cuda_major") or (fp.get("cuda") or "").split(".")[0],
        "gpu": fp["gpu"],
        "compute_capability": fp["compute_capability"],
        "hardware_compatible": False,
        "version_compatible": False,
    }


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    profile: tuple[int, int, int],
    input_chw: tuple[int, ...],
    precision: str,
    cache_dir: Path,
    workspace: int = WORKSPACE,
) -> dict[str, Any]:
    """Compile `onnx_path` into a serialised engine at `engine_path`; returns what the card records."""
    trt = _trt()
    builder = make_builder()
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ZooError(f"TensorRT could not parse {onnx_path.name}: {errors[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for the card
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 is on by default; FP32 parity needs it off
    name = network.get_input(0).name
    p = builder.create_optimization_profile()
    p.set_shape(name, *[(b, *input_chw) for b in profile])
    config.add_optimization_profile(p)
    fp = device_fingerprint()
    cache_file = timing_cache_file(cache_dir, fp)
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        # a cache from another device or version: start an empty one (as Polygraphy does)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ZooError(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above).")
    engine_path.write_bytes(bytes(serialized))
    updated = config.get_timing_cache()
    if updated is not None:  # written atomically: two builds at once must not corrupt it
        with atomic_path(cache_file) as tmp:
            tmp.write_bytes(bytes(updated.serialize()))
    engine = trt.Runtime(logger()).deserialize_cuda_engine(bytes(serialized))
    return {
        "fingerprint": fp,
        "layer_precisions": layer_precisions(engine) if engine is not None else {},
        "profile": {"min": profile[0], "opt": profile[1], "max": profile[2]},
        "workspace_bytes": workspace,
        "tf32": precision != "fp32",
    }


def layer_precisions(engine) -> dict[str, int]:
    """How many of the engine's convolution layers compute in each data type (from the engine inspector,
    built with detailed profiling verbosity): an INT8 engine whose convolutions run in Half or Float, or
    an FP16 one in Float, is not the engine that was asked for."""
    import json

    info = json.loads(
        engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    )
    counts: dict[str, int] = {}
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict) or "Convolution" not in str(layer.get("LayerType", "")):
            continue
        outputs = layer.get("Outputs") or [{}]
        dtype = str(outputs[0].get("Format/Datatype", "?")).split()[0]
        counts[dtype] = counts.get(dtype, 0) + 1
    return counts


def timing_cache_file(cache_dir: Path, fp: dict[str, Any]) -> Path:
    """One timing cache per GPU model and TensorRT version."""
    gpu = "".join(c if c.isalnum() or c in "-." else "_" for c in fp["gpu"])
    return Path(cache_dir) / f"timing-{gpu}-trt{fp['tensorrt']}.cache"


FINGERPRINT_KEYS = ("tensorrt", "gpu", "compute_capability")


def fingerprint_mismatch(then: dict[str, Any], now: dict[str, Any]) -> str | None:
    """Why an engine built on `then` cannot run on `now` (None: it can)."""
    for k in FINGERPRINT_KEYS:
        if then.get(k) != now.get(k):
            return f"this engine was built for {k} {then.get(k)!r}, but here it is {now.get(k)!r}"
    return None


def check_fingerprint(card: dict[str, Any], now: dict[str, Any] | None = None) -> None:
    """ZooError (rebuild, never crash) when the engine was built for another TensorRT or GPU."""
    why = fingerprint_mismatch(card.get("fingerprint", {}), now or device_fingerprint())
    if why:
        raise ZooError(f"{why}; run `zoo export` again to rebuild it.")


class Engine:
    """A deserialised engine with one execution context; run() takes and returns host numpy arrays."""

    def __init__(self, path: Path, card: dict[str, Any]) -> None:
        trt = _trt()

        check_fingerprint(card)
        self.torch = torch
        runtime = trt.Runtime(logger())
        self.engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:  # there is no preflight check: a null engine means incompatible
            raise ZooError(f"TensorRT could not load {path}; run `zoo export` again to rebuild it.")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        for name in (self.input, self.output):  # buffers are allocated as float32: refuse anything else
            dtype = self.engine.get_tensor_dtype(name)
            if dtype != trt.DataType.FLOAT:
                raise ZooError(
                    f"{path} has {dtype} at its I/O tensor {name!r}; the zoo's engines take and return float32 "
                    "(export again from the zoo's ONNX)."
                )
        self.min_batch, self.max_batch = card["profile"]["min"], card["profile"]["max"]
        self.stream = torch.cuda.Stream()

    def run_device(self, x):
        """Run a CUDA tensor batch (float32, contiguous) and return the CUDA logits tensor."""
        torch = self.torch
        check_batch(x.shape[0], self.min_batch, self.max_batch)
        if not self.context.set_input_shape(self.input, tuple(x.shape)):
            raise ZooError(f"TensorRT refused the input shape {tuple(x.shape)} for this engine.")
        out = torch.empty(
            tuple(self.context.get_tensor_shape(self.output)), device=x.device, dtype=torch.float32
        )
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ZooError("TensorRT failed to run the engine.")
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
        return self.run_device(x).cpu().numpy()


def check_batch(n: int, low: int, high: int) -> None:
    """A batch outside an engine's profile is one sentence (TensorRT would leave -1 dimensions)."""
    if n < low:
        raise ZooError(
            f"batch {n} is below this engine's profile minimum {low}; export again with --batch-range {n}:OPT:MAX."
        )
    if n > high:
        raise ZooError(
            f"batch {n} exceeds this engine's profile maximum {high}; export again with a larger --batch-range MAX."
        )
