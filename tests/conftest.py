"""Shared fixtures: where the real data is (skip with a reason when it is not), and torchvision as a
test-only cross-check (its CUDA build's compiled ops do not load with CPU torch; see ANCHORS.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class _MutantsSubpackages:
    """In mutmut's copy of the tree (mutants/), `zoo.export`, `zoo.serve` and `zoo.weights` are the copy's
    export/, serve/ and weights/, imported under the names mutmut gives them (`serve.bench`, whose mutants
    are `serve.bench.x_hardware__mutmut_1` ...). The editable install maps `zoo.serve` to the tree it was
    installed from, the original: there no mutant of export/ or serve/ could ever be killed; and a module
    imported as `zoo.serve.bench` would not answer to mutmut's `serve.bench`, since a mutant's trampoline
    compares that name with the function's `__module__`."""

    NAMES = ("export", "serve", "weights")

    def find_spec(self, fullname: str, path=None, target=None):
        import importlib.util

        top, _, rest = fullname.partition(".")
        if top != "zoo" or rest.split(".")[0] not in self.NAMES:
            return None
        real = self._real(rest).__spec__
        spec = importlib.util.spec_from_loader(
            fullname, self, origin=real.origin, is_package=real.submodule_search_locations is not None
        )
        spec.has_location = True  # __file__ is the copy's file, as for any module
        return spec

    @staticmethod
    def _real(name: str):
        import importlib

        return importlib.import_module(name)

    def create_module(self, spec):
        return self._real(spec.name.partition(".")[2])  # the same module object under both names

    def exec_module(self, module) -> None:
        pass  # run once, as `serve.bench`


if REPO.name == "mutants" and (REPO / "zoo" / "__init__.py").is_file():
    import sys

    sys.path.insert(0, str(REPO))
    sys.meta_path.insert(0, _MutantsSubpackages())


def data_root() -> Path | None:
    raw = os.environ.get("ZOO_DATA")
    path = Path(raw) if raw else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


if data_root() is not None:  # the code under test finds data the way a user's does: through ZOO_DATA
    os.environ["ZOO_DATA"] = str(data_root())


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip with the reason; in CI (CI=true) a missing prerequisite is a failure, so green means tested."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the CI machine must have it)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items) -> None:
    """`gpu` tests skip without a CUDA device and `tensorrt` tests without TensorRT (with TensorRT but
    no GPU they would fail instead), each with the reason; CI has neither, so they are never required."""
    import importlib.util

    def has_cuda() -> bool:
        try:
            import torch

            return torch.cuda.is_available()
        except ImportError:
            return False

    reasons = {
        "gpu": None if has_cuda() else "needs a CUDA device",
        "tensorrt": None if importlib.util.find_spec("tensorrt") else "TensorRT is not installed here",
    }
    for item in items:
        for mark, reason in reasons.items():
            if reason and item.get_closest_marker(mark) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


def pytest_sessionfinish(session) -> None:
    """Under mutmut (which sets MUTANT_UNDER_TEST), each session removes its temporary folders: a sample is
    thousands of short sessions, their module fixtures export hundreds of MB each, and pytest's own
    retention (the last three sessions) does not reclaim folders of sessions that ran side by side."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if os.environ.get("MUTANT_UNDER_TEST") and factory is not None:
        shutil.rmtree(factory.getbasetemp(), ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """No test reads or writes the user's cache: the whole session runs with its own $ZOO_CACHE."""
    from zoo.models import registry

    old = os.environ.get("ZOO_CACHE")
    os.environ["ZOO_CACHE"] = str(tmp_path_factory.mktemp("zoo-cache"))
    registry.reload()
    yield
    if old is None:
        os.environ.pop("ZOO_CACHE", None)
    else:
        os.environ["ZOO_CACHE"] = old
    registry.reload()


@pytest.fixture(scope="session")
def data() -> Path:
    root = data_root()
    if root is None:
        missing("real data not found: set ZOO_DATA to a folder with cifar10/ and imagenet-sample/")
    return root


@pytest.fixture(scope="session")
def cifar_dir(data: Path) -> Path:
    if not (data / "cifar10" / "test.npz").is_file():
        missing(f"CIFAR-10 not found under {data}/cifar10")
    return data / "cifar10"


@pytest.fixture(scope="session")
def imagenet_sample(data: Path) -> Path:
    if not (data / "imagenet-sample" / "labels.csv").is_file():
        missing(f"the ImageNet sample is not found under {data}/imagenet-sample")
    return data / "imagenet-sample"


_tv_lib = None


@pytest.fixture(scope="session")
def torchvision():
    """torchvision with the two missing operator schemas defined, so that models and transforms import."""
    global _tv_lib
    import torch

    if _tv_lib is None:
        try:
            _tv_lib = torch.library.Library("torchvision", "DEF")
            _tv_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _tv_lib.define(
                "qnms(Tensor dets, Tensor scores, float iou_threshold, float scale, int zero_point) -> Tensor"
            )
        except RuntimeError:
            pass  # already defined (a real torchvision build)
    return pytest.importorskip("torchvision", reason="torchvision is the independent cross-check here")


@pytest.fixture()
def zoo_cache(tmp_path, monkeypatch) -> Path:
    """An empty $ZOO_CACHE, so no test touches the user's cache or manifest."""
    from zoo.models import registry

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    registry.reload()
    yield tmp_path / "cache"
    registry.reload()


@pytest.fixture(scope="session")
def cifar_tag() -> str:
    """The shipped CIFAR-10 tag (ZOO_TEST_TAG may name another, e.g. one imported into $ZOO_CACHE)."""
    from zoo.models import registry

    tag = os.environ.get("ZOO_TEST_TAG", "resnet20.cifar10")
    if tag not in registry.pretrained_tags():
        pytest.skip(f"{tag} is not in the weights manifest")
    return tag


@pytest.fixture(scope="session")
def checked_artifacts(tmp_path_factory, cifar_tag, cifar_dir):
    """The one export the tests of predict, bench, the demo and Triton share: the CIFAR tag to ONNX and the
    CPU's INT8, each checked as `zoo export` checks it (1,000 test images), because those commands run only
    artifacts whose verdict passed. Returns (artifacts folder, {format: Artifact}). A test that changes an
    artifact copies it first."""
    from zoo.export.pipeline import ExportOptions
    from zoo.serve.checked_export import export_and_check

    out = tmp_path_factory.mktemp("checked-artifacts")
    options = ExportOptions(["onnx", "onnx-int8-cpu"], out, calib_size=256)
    checked = export_and_check(cifar_tag, options.formats, options, parity_images=1000, log=lambda _m: None)
    assert [c.status for c in checked] == ["ok", "ok"], [c.reason() for c in checked]
    return out, {c.target: c.artifact for c in checked}
