"""One runtime interface for every backend, in the spirit of Polygraphy's runners: open, run an NCHW
float32 batch and get logits back, close; device, precision and preprocessing as properties.

    with open_runtime("artifacts/resnet20.cifar10/onnx-int8-cpu") as rt:
        logits = rt.run(batch)
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.labels import load_labels
from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError, reading
from zoo.export import tensorrt, trust
from zoo.export.aoti import check_compatible
from zoo.export.artifact import names_artifact
from zoo.export.int8 import EXACT
from zoo.export.int8 import arithmetic as int8_arithmetic
from zoo.export.onnx import ort_session
from zoo.export.tensorrt import Engine
from zoo.models import registry
from zoo.utils.files import exists
from zoo.utils.lazy import installed, lazy_import
from zoo.utils.machine import cpu_record, hardware, version
from zoo.utils.paths import cache_dir

ort = lazy_import("onnxruntime")
ov = lazy_import("openvino")
torch = lazy_import("torch")


def chunks(n: int, size: int | None) -> list[tuple[int, int]]:
    """[start, end) ranges covering n items in pieces of at most `size` (one piece when size is None)."""
    if not size or n <= size:
        return [(0, n)]
    return [(a, min(n, a + size)) for a in range(0, n, size)]


class Runtime:
    """Base class: subclasses set `backend`, implement `_run`, and name in `_handles` the attributes that
    hold the backend's session, engine or model, which `close()` releases."""

    # What a runtime declares once, as Polygraphy's runners do; `register` puts it in RUNTIMES, and
    # open_runtime, the bench's targets, `zoo doctor` and the --backend help read it from there.
    backend = "?"  # its name (doctor's rows, the card's verdict records)
    distribution = "torch"  # the package whose version a verdict records
    module = "torch"  # what must import for it to run (its extra: zoo/utils/lazy.py EXTRAS)
    runs = ""  # the file suffix of the artifacts it runs as their own runtime (formats.py's table)
    options: tuple[str, ...] = ()  # --backend values that pick it for an ONNX artifact
    option_help = ""  # what those values mean, for --help
    _handles: tuple[str, ...] = ()

    @classmethod
    def available(cls) -> bool:
        """Whether it can run here (bench's `--formats all`)."""
        return installed(cls.module)

    @classmethod
    def probe(cls) -> str:
        """`zoo doctor`: one line on what works here; raises when it cannot run."""
        return f"{cls.module} {importlib.import_module(cls.module).__version__}"

    @classmethod
    def on_gpu(cls, backend: str | None) -> bool:
        """Whether it runs on a GPU when picked with `backend` (where the bench puts its baselines)."""
        return False

    @classmethod
    def from_artifact(cls, path: Path, card: dict[str, Any], backend: str | None, common: dict, **o: Any):
        """Open the artifact in `path`; `o`: threads, shared."""
        return cls(path / card["file"], **common)

    def __init__(
        self,
        name: str,
        preprocess: PreprocessSpec,
        labels: list[str],
        precision: str,
        device: str,
        fmt: str,
        card: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.preprocess, self.labels = name, preprocess, labels
        self.precision, self.device, self.format, self.card = precision, device, fmt, card or {}
        self.arithmetic = precision  # how the numbers are computed here, where that says more
        self.closed = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.preprocess.input_shape

    batch_limit: int | None = None  # a backend's own maximum batch (ONNX Runtime's TensorRT provider)

    @property
    def max_batch(self) -> int | None:
        """The largest batch the backend takes at once (an engine's profile maximum); None: any."""
        profile = self.card.get("profile") if self.format.startswith("trt-") else None
        return int(profile["max"]) if profile else self.batch_limit

    def run(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 batch of any size -> float32 logits (N, classes); a batch above the backend's
        maximum is run in chunks of at most that size."""
        if self.closed:
            raise ZooError(f"{self.name} was closed; open it again to run it.")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ZooError(
                f"{self.name} takes batches of shape (N, {', '.join(map(str, self.input_shape))}), "
                f"not {tuple(batch.shape)}."
            )
        parts = [
            np.asarray(self._run(batch[a:b]), dtype=np.float32) for a, b in chunks(len(batch), self.max_batch)
        ]
        return self._checked(parts[0] if len(parts) == 1 else np.concatenate(parts), len(batch))

    def _checked(self, logits: np.ndarray, n: int) -> np.ndarray:
        """Scores an answer can be read from: one row per image, one column per label, all finite."""
        if logits.shape != (n, len(self.labels)):
            raise ZooError(
                f"{self.name} answered scores of shape {logits.shape} for {n} images, but it has "
                f"{len(self.labels)} labels: the model and its labels do not belong together; export it again."
            )
        if not np.isfinite(logits).all():
            raise ZooError(
                f"{self.name} answered NaN or infinite scores: its weights or its arithmetic are broken here."
            )
        return logits

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_device(self, x):
        """A device-resident torch batch -> device-resident logits, no host copies (GPU runtimes that
        can; the benchmark times the model alone this way). None where the backend cannot."""
        return None

    def synchronize(self) -> None:
        """Wait for the device (a no-op on the CPU), so timings cover the work."""

    def close(self) -> None:
        """Release the session, engine or model (its memory, host and device) now, not when the
        runtime object is collected. Idempotent; running a closed runtime is an error."""
        for name in self._handles:
            if hasattr(self, name):
                delattr(self, name)
        if not self.closed and self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        self.closed = True

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "arithmetic": self.arithmetic,
        }

    def measured_on(self) -> dict[str, Any]:
        """Where a figure measured with this runtime holds: the CPU with the features that change its
        numerics, the GPU where one runs it, the runtime and its version, and the arithmetic."""
        where: dict[str, Any] = {
            **cpu_record(),
            "runtime": self.backend,
            "runtime_version": version(self.distribution) or version(f"{self.distribution}-gpu"),
            "arithmetic": self.arithmetic,
            "precision": self.precision,
        }
        if self.device.startswith("cuda"):
            gpu = hardware(self.device)
            where |= {k: gpu[k] for k in ("gpu", "compute_capability", "cuda") if k in gpu}
            with contextlib.suppress(Exception):  # older torch: the CUDA version above still tells the stack
                where["cuda_driver"] = torch._C._cuda_getDriverVersion()
        return where


RUNTIMES: dict[str, type[Runtime]] = {}  # backend name -> class, in the order registered


def register(cls: type[Runtime]) -> type[Runtime]:
    RUNTIMES[cls.backend] = cls
    return cls


@register
class TorchRuntime(Runtime):
    """The PyTorch original of a tag, eager or torch.compile'd: the reference every artifact is held to."""

    backend = "pytorch"
    options = ("pytorch", "pytorch-compiled")
    _handles = ("model",)

    @classmethod
    def probe(cls) -> str:
        cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"torch {torch.__version__}, CUDA devices: {', '.join(cuda) or 'none'}"

    def __init__(self, tag: str, device: str = "cpu", compiled: bool = False, **kw: Any) -> None:

        _, spec = registry.resolve(tag)
        if spec is None:
            raise ZooError(f"{tag} has no pretrained weights; see `zoo list --pretrained`.")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ZooError(f"--device {device} was asked for, but PyTorch sees no CUDA device here.")
        self.torch = torch
        self.model = registry.create_model(spec.name, pretrained=True).to(device)
        if compiled:  # on a GPU with CUDA graphs, the strongest PyTorch baseline without TensorRT
            self.model = torch.compile(self.model, mode="max-autotune" if device.startswith("cuda") else None)
        super().__init__(
            spec.name,
            spec.preprocess,
            list(load_labels(spec.labels)),
            "fp32",
            device,
            "pytorch-compiled" if compiled else "pytorch",
            **kw,
        )
        if device.startswith("cuda") and torch.backends.cudnn.allow_tf32:
            # PyTorch's default on GPUs: label it, as trt-fp32 (TF32 cleared) is compared with it
            self.arithmetic = "fp32 with TF32 convolutions (PyTorch's cuDNN default)"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(batch).to(self.device)).float().cpu().numpy()

    def run_device(self, x):
        with self.torch.inference_mode():
            return self.model(x)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)


GPU_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
# --backend values that run an ONNX artifact on the CPU in a chosen INT8 arithmetic: fused or not
CPU_ARITHMETIC = {"onnxruntime-exact": False, "onnxruntime-fused": True}


@register
class OnnxRuntime(Runtime):
    backend = "onnxruntime"
    distribution = "onnxruntime"
    module = "onnxruntime"
    runs = ".onnx"
    options = ("cuda", "tensorrt", *CPU_ARITHMETIC)
    option_help = (
        "ONNX Runtime's cuda or tensorrt provider, or its CPU with INT8 in exact int8 arithmetic "
        "(onnxruntime-exact) or its fused int8 kernels (onnxruntime-fused: what a plain session computes)"
    )
    _handles = ("session",)

    @classmethod
    def probe(cls) -> str:
        both = version("onnxruntime") and version("onnxruntime-gpu")
        clash = "; both onnxruntime and onnxruntime-gpu are installed: uninstall one of them" if both else ""
        return "providers: " + ", ".join(ort.get_available_providers()) + clash

    @classmethod
    def on_gpu(cls, backend: str | None) -> bool:
        return backend in GPU_PROVIDERS

    @classmethod
    def from_artifact(cls, path: Path, card: dict[str, Any], backend: str | None, common: dict, **o: Any):
        providers = ort_providers(backend, card, path)
        spinning = not o.get("shared", False)
        return cls(
            path / card["file"],
            providers=providers,
            threads=o.get("threads"),
            spinning=spinning,
            fused=CPU_ARITHMETIC.get(backend or ""),
            **common,
        )

    def __init__(
        self,
        path: Path,
        providers: list[str] | None = None,
        threads: int | None = None,
        spinning: bool = True,
        fused: bool | None = None,
        **kw: Any,
    ) -> None:
        """`fused`: how an INT8 graph is computed on the CPU (None: its flavour's way, export/int8.py)."""
        int8 = (kw.get("card") or {}).get("int8")
        on_cpu = not providers
        # the TensorRT flavour on the CPU: exact int8, what TensorRT computes (export/int8.py)
        exact = bool(int8) and on_cpu and int8_arithmetic(int8, fused) == EXACT
        self.session = ort_session(path, threads, providers, spinning, exact_int8=exact, gpu=not on_cpu)
        check_provider(providers, self.session.get_providers())
        if not on_cpu and self.session.get_providers()[0] == "TensorrtExecutionProvider":
            self.batch_limit = int((kw.get("card") or {}).get("batch", {}).get("max", 64))  # its profile
        self.input_name = self.session.get_inputs()[0].name
        provider = self.session.get_providers()[0]
        device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        super().__init__(device=device, **kw)
        if int8 and on_cpu:
            self.arithmetic = int8_arithmetic(int8, fused)
        elif not on_cpu:
            self.arithmetic = f"{self.precision} on ONNX Runtime's {provider}"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: batch})[0]
        except Exception as e:  # ORT raises its own types (a shape outside a provider's profile, ...)
            raise ZooError(
                f"ONNX Runtime could not run {self.name}: {str(e).splitlines()[0][:300]}"
            ) from None


@register
class TensorRTRuntime(Runtime):
    backend = "tensorrt"
    distribution = "tensorrt"
    module = "tensorrt"
    runs = ".engine"
    _handles = ("engine",)

    @classmethod
    def available(cls) -> bool:
        return tensorrt.available()

    @classmethod
    def probe(cls) -> str:
        """Usable means a builder can be created here (imported alone says little: a CUDA 13 build under an
        older driver imports and then fails)."""
        trt = importlib.import_module("tensorrt")
        if trt.Builder(trt.Logger(trt.Logger.ERROR)) is None:
            raise RuntimeError("it could not create a builder on this GPU")
        return f"TensorRT {trt.__version__}: a builder was created"

    @classmethod
    def on_gpu(cls, backend: str | None) -> bool:
        return True

    def __init__(self, path: Path, card: dict[str, Any], **kw: Any) -> None:

        self.engine = Engine(path, card)
        super().__init__(device="cuda", card=card, **kw)
        self.arithmetic = f"TensorRT {self.precision} engine"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.run(batch)

    def run_device(self, x):
        return self.engine.run_device(x)

    def synchronize(self) -> None:
        self.engine.torch.cuda.synchronize()


@register
class AOTIRuntime(Runtime):
    backend = "aoti"
    runs = ".pt2"
    _handles = ("model",)

    @classmethod
    def probe(cls) -> str:
        importlib.import_module("torch._inductor")
        return "AOTInductor packages (.pt2) compile and load with this torch"

    def __init__(self, path: Path, card: dict[str, Any], **kw: Any) -> None:

        check_compatible(card)
        self.torch = torch
        device = card["aoti"]["device"]
        index = torch.device(device).index if device.startswith("cuda") else None
        try:  # on the GPU it was compiled for: cuda:1 stays cuda:1
            with _own_temp_dir():
                self.model = torch._inductor.aoti_load_package(
                    str(path), **({"device_index": index} if index is not None else {})
                )
        except Exception as e:  # a package from another torch/device fails in many ways
            raise ZooError(f"cannot load {path}: {str(e).splitlines()[0][:200]}; export it again.") from None
        super().__init__(device=device, card=card, **kw)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(batch).to(self.device)).float().cpu().numpy()

    def run_device(self, x):
        if not self.device.startswith("cuda"):
            return None
        with self.torch.inference_mode():
            return self.model(x)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)


@contextlib.contextmanager
def _own_temp_dir():
    """AOTInductor unpacks a package's shared library into a new `aotinductor_*` folder of the temporary
    directory and leaves it there: unpack into a folder of our own and remove it once loaded (the loaded
    library stays mapped)."""
    tmp = tempfile.mkdtemp(prefix="zoo-pt2-")
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None  # Python's own cache of the temporary directory
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
        shutil.rmtree(tmp, ignore_errors=True)


@register
class OpenVINORuntime(Runtime):
    """OpenVINO on the CPU from an ONNX artifact, compiled for latency. OpenVINO picks its own inference
    precision: bf16 on CPUs that have it (this one), so an FP32 artifact runs here as bf16, and the runtime
    says so in its precision, which parity then judges by the half-precision bar."""

    backend = "openvino"
    distribution = "openvino"
    module = "openvino"
    options = ("openvino",)
    option_help = "OpenVINO"
    _handles = ("request", "compiled")

    @classmethod
    def probe(cls) -> str:
        return "devices: " + ", ".join(ov.Core().available_devices)

    @classmethod
    def from_artifact(cls, path: Path, card: dict[str, Any], backend: str | None, common: dict, **o: Any):
        return cls(path / card["file"], threads=o.get("threads"), **common)

    def __init__(self, path: Path, threads: int | None = None, **kw: Any) -> None:
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError with a multi-line report
            raise ZooError(f"OpenVINO cannot load {path}: {str(e).strip().splitlines()[0][:300]}") from None
        self.request = self.compiled.create_infer_request()
        computes = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        super().__init__(device="cpu", **kw)
        if self.precision == "fp32":  # an FP32 artifact runs in whatever OpenVINO computes in
            self.precision = {"bf16": "bf16", "f16": "fp16"}.get(computes, "fp32")
        self.arithmetic = f"OpenVINO, inference precision {computes}" + (
            ", its int8 kernels on the Q/DQ graph" if self.precision == "int8" else ""
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.request.infer([batch])[0]


TAG_BACKENDS = TorchRuntime.options  # what may run a tag
# what else may run an ONNX artifact, in --help's order
ARTIFACT_BACKENDS = tuple(
    o for cls in reversed(RUNTIMES.values()) for o in cls.options if cls is not TorchRuntime
)


def runtime_for(fmt: str, backend: str | None = None) -> type[Runtime]:
    """The runtime that runs an artifact of format `fmt` (picked by `backend` where one takes it)."""
    from zoo.export.formats import get

    suffix = Path(get(fmt).file).suffix
    for cls in RUNTIMES.values():
        if backend and backend in cls.options and suffix == ".onnx" and cls is not TorchRuntime:
            return cls
    for cls in RUNTIMES.values():
        if cls.runs == suffix:
            return cls
    raise ZooError(f"no runtime here runs {fmt} artifacts.")


def check_backend(backend: str | None) -> None:
    """One sentence for a backend name `open_runtime` does not know."""
    if backend is not None and backend not in ARTIFACT_BACKENDS + TAG_BACKENDS:
        raise ZooError(f"unknown backend {backend!r}; choose {', '.join(ARTIFACT_BACKENDS)}.")


def open_runtime(
    source: str | Path,
    backend: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    shared: bool = False,
) -> Runtime:
    """A runtime for an artifact directory (its card says what it is) or a model name (PyTorch eager).
    `backend` runs an ONNX artifact with OpenVINO or ONNX Runtime's CUDA / TensorRT provider. `shared`:
    other runtimes share this process's cores (the demo), so ONNX Runtime's threads do not spin."""
    check_backend(backend)
    path = Path(source)
    if not names_artifact(source):
        if backend not in (None, *TAG_BACKENDS):
            raise ZooError(f"{source} is not an artifact directory; the {backend} backend needs one.")
        return TorchRuntime(str(source), device, compiled=backend == "pytorch-compiled")
    if not exists(path):
        raise ZooError(f"{source} does not exist: there is no artifact directory there.")
    with reading(f"the artifact {path}"):
        return _open_artifact(path, backend, threads, shared)


def _open_artifact(path: Path, backend: str | None, threads: int | None, shared: bool) -> Runtime:
    card = trust.opened(path)
    common = {
        "name": f"{card['source']}/{card['format']}",
        "preprocess": PreprocessSpec.from_dict(card["preprocess"]),
        "labels": card["labels"],
        "precision": card["precision"],
        "fmt": card["format"],
        "card": card,
    }
    check_runs(card, backend, path)
    cls = runtime_for(card["format"], backend)
    return cls.from_artifact(path, card, backend, common, threads=threads, shared=shared)


def check_runs(card: dict[str, Any], backend: str | None, path: Path) -> None:
    """One sentence when `backend` is asked to run an artifact it cannot: the --backend values run ONNX
    files, so an engine or a .pt2 would otherwise run by its own runtime under the backend's name."""
    if backend in ARTIFACT_BACKENDS and not str(card.get("file", "")).endswith(".onnx"):
        from zoo.export.formats import ONNX_FORMATS

        raise ZooError(
            f"{path} is a {card.get('format')} artifact; --backend {backend} runs ONNX artifacts "
            f"({', '.join(ONNX_FORMATS)})."
        )


def ort_providers(backend: str | None, card: dict[str, Any], artifact: Path) -> list | None:
    """ONNX Runtime's execution providers for `backend` (None: its CPU default). The TensorRT provider
    gets an engine cache and a timing cache beside the artifact and the artifact's batch profile, so a
    session does not rebuild its engine each time it opens."""
    if backend == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if backend != "tensorrt":
        return None

    name = card.get("input", {}).get("name", "input")
    chw = "x".join(str(d) for d in PreprocessSpec.from_dict(card["preprocess"]).input_shape)
    batch = card.get("batch", {"min": 1, "opt": 8, "max": 64})
    cache = cache_dir() / "ort-tensorrt" / card["sha256"][:16]
    options = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_profile_min_shapes": f"{name}:{batch['min']}x{chw}",
        "trt_profile_opt_shapes": f"{name}:{batch['opt']}x{chw}",
        "trt_profile_max_shapes": f"{name}:{batch['max']}x{chw}",
    }
    return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]


def require_backend(backend: str | None) -> None:
    """One sentence, before any work, when ONNX Runtime here has no provider for a GPU `backend`."""
    check_backend(backend)
    provider = GPU_PROVIDERS.get(backend or "")
    if provider and provider not in ort.get_available_providers():
        raise ZooError(provider_missing(provider, ort.get_available_providers(), version("onnxruntime-gpu")))


def check_provider(asked: list | None, running: list[str]) -> None:
    """ONNX Runtime falls back to the CPU with only a log line when an asked provider cannot load:
    refuse instead, so a result is never reported for a backend that did not run it."""
    if not asked:
        return
    first = asked[0][0] if isinstance(asked[0], tuple) else asked[0]
    if not running or running[0] != first:
        raise ZooError(provider_missing(first, running, version("onnxruntime-gpu")))


def provider_missing(provider: str, running: list[str], gpu_build: str | None) -> str:
    """Why ONNX Runtime could not use `provider`, and what to do: install its GPU build, or, where that is
    installed, the CUDA / cuDNN / TensorRT 10 libraries it loads at run time."""
    runs = f"it runs {', '.join(running) or 'nothing'}"
    if gpu_build is None:
        return (
            f"ONNX Runtime could not use {provider} here ({runs}): install onnxruntime-gpu (whose TensorRT "
            "provider links TensorRT 10) on a machine with an NVIDIA GPU."
        )
    libraries = "TensorRT 10 (libnvinfer)" if provider.startswith("Tensorrt") else "CUDA and cuDNN"
    return (
        f"onnxruntime-gpu {gpu_build} is installed but could not load {provider} ({runs}): the {libraries} "
        "libraries it loads at run time are missing or of another version (see its CUDA requirements)."
    )
