"""A Triton model repository from `zoo triton`: every config parses into Triton's own ModelConfig, and a
real Triton server on loopback serves the ensemble with what `zoo predict` computes, under load too."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import missing
from zoo.cli import app
from zoo.errors import ZooError

REPO = Path(__file__).resolve().parents[2]


def _need_tritonclient() -> None:
    try:
        import tritonclient.grpc.model_config_pb2  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError:
        missing("tritonclient is not installed: pip install 'resnet-zoo[triton]'")


@pytest.fixture(scope="module")
def artifact(checked_artifacts) -> Path:
    return checked_artifacts[1]["onnx-int8-cpu"].path  # tests/conftest.py: the session's checked export


@pytest.fixture(scope="module")
def repository(artifact, tmp_path_factory) -> tuple[Path, dict]:
    _need_tritonclient()
    from zoo.serve.triton import write_repository

    repo = tmp_path_factory.mktemp("triton") / "repo"
    return repo, write_repository(artifact, repo)


@pytest.fixture(scope="module")
def server(repository):
    from zoo.serve.tritonserver import TritonServer, find_server

    try:
        find_server()
    except ZooError as e:
        missing(str(e))
    with TritonServer(repository[0]) as s:
        yield s


def test_every_config_parses_into_tritons_model_config_and_the_ensemble_is_wired(repository, artifact):
    from zoo.export.artifact import read_card
    from zoo.serve.triton import read_config

    repo, written = repository
    card = read_card(artifact)
    configs = {name: read_config(repo / name / "config.pbtxt") for name in written["models"]}
    assert set(configs) == {p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file()}
    ensemble = configs[written["ensemble"]]
    assert ensemble.platform == "ensemble"
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == [
        f"{written['ensemble']}-{r}" for r in ("preprocess", "classifier", "softmax")
    ]
    produced = {"IMAGE"}  # each step reads only tensors that exist by then, and writes the output last
    for s in steps:
        assert set(s.input_map.values()) <= produced
        produced |= set(s.output_map.values())
    assert ensemble.output[0].name in produced and list(ensemble.output[0].dims) == [len(card["labels"])]
    labels = (repo / written["ensemble"] / ensemble.output[0].label_filename).read_text().splitlines()
    assert labels == card["labels"]
    classifier = configs[f"{written['ensemble']}-classifier"]
    assert classifier.backend == "python" and classifier.max_batch_size == card["batch"]["max"]
    assert list(classifier.input[0].dims) == card["input"]["shape"][1:]
    assert list(classifier.dynamic_batching.preferred_batch_size) == sorted(
        {card["batch"]["opt"], card["batch"]["max"]}
    )
    assert (repo / classifier.name / "1" / "artifact" / card["file"]).is_file()


def test_a_1000_class_label_file_keeps_index_order_and_duplicates(artifact, tmp_path):
    """ImageNet's labels are neither sorted nor unique (two "crane", two "maillot"): the ensemble's label
    file must be the class names line by line in index order, as the label file of the zoo (the reference
    here is that file itself, read without the zoo)."""
    from zoo.data.labels import _DIR
    from zoo.export.artifact import read_card
    from zoo.serve.triton import _fill, configs

    names = (_DIR / "imagenet1k.txt").read_text().splitlines()
    assert len(names) == 1000 and names.count("crane") == 2 and names != sorted(names)
    card = read_card(artifact) | {"labels": names}
    card["output"] = {**card["output"], "shape": [None, 1000]}
    ensemble = next(c for c in configs(card, "cpu").values() if c.get("platform") == "ensemble")
    (tmp_path / "ensemble").mkdir()
    _fill(tmp_path / "ensemble", ensemble, card, artifact)
    written = (tmp_path / "ensemble" / "labels.txt").read_text().splitlines()
    assert written == names
    assert [i for i, n in enumerate(written) if n == "crane"] == [134, 517]


def test_gpu_configs_use_tritons_own_backends_and_an_engine_never_goes_to_a_cpu(artifact, tmp_path):
    _need_tritonclient()
    from zoo.export.artifact import read_card
    from zoo.serve.triton import config_text, configs, read_config

    card = read_card(artifact)
    onnx = configs(card, "gpu")[f"{card['source']}-{card['format']}-classifier".replace(".", "-")]
    engine_card = card | {"format": "trt-fp16", "file": "model.engine"}
    engine = configs(engine_card, "gpu", dynamic_batching=False)
    plan = next(c for name, c in engine.items() if name.endswith("-classifier"))
    from tritonclient.grpc import model_config_pb2

    for config, platform in ((onnx, "onnxruntime_onnx"), (plan, "tensorrt_plan")):
        text = tmp_path / f"{platform}.pbtxt"
        text.write_text(config_text(config))
        parsed = read_config(text)  # parsed from its text, as the server reads it
        assert parsed.platform == platform and parsed.max_batch_size == card["batch"]["max"]
        assert parsed.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert not plan.get("dynamic_batching")
    with pytest.raises(ZooError, match="runs only on a GPU"):
        configs(engine_card, "cpu")
    with pytest.raises(ZooError, match="cannot be served by Triton"):
        configs(card | {"format": "pt2", "file": "model.pt2"}, "cpu")
    with pytest.raises(ZooError, match="not a valid Triton model configuration"):
        config_text({"name": "x", "max_batch": 4})

    for args, sentence in (
        (["--format", "pt2"], "cannot be served"),
        (["--format", "trt-fp16"], "only on a GPU"),
    ):
        refused = CliRunner().invoke(
            app, ["triton", card["source"], *args, "--artifacts", str(tmp_path / "a")]
        )
        assert refused.exit_code == 1 and sentence in refused.output
        assert not (tmp_path / "a").exists()  # refused before anything was exported


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _infer(client, model: str, data: bytes, classes: int | None = None):
    import tritonclient.http as http

    x = http.InferInput("IMAGE", [len(data)], "UINT8")
    x.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    out = [http.InferRequestedOutput("PROBABILITIES", class_count=classes or 0)]
    return client.infer(model, [x], outputs=out).as_numpy("PROBABILITIES")


def test_the_served_ensemble_answers_what_zoo_predict_answers_on_real_images(
    server, repository, artifact, cifar_dir, tmp_path
):
    import tritonclient.http as http

    from zoo.data.datasets import CIFAR10
    from zoo.serve.predict import predict
    from zoo.serve.runtimes import open_runtime

    test = CIFAR10(cifar_dir, "test")
    files = []
    for i in range(0, 10_000, 250):  # 40 real test images, as the files a user would send
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(_png(test.images[i]))
    with open_runtime(artifact) as rt:
        expected = predict(rt, [str(f) for f in files], topk=10)
    client = http.InferenceServerClient(server.url)
    name = repository[1]["ensemble"]
    for f, want in zip(files, expected, strict=True):
        probs = {t["label"]: t["prob"] for t in want["top"]}
        full = _infer(client, name, f.read_bytes())
        assert np.allclose(sorted(full, reverse=True), [t["prob"] for t in want["top"]], atol=1e-6)
        top5 = [s.decode().split(":") for s in _infer(client, name, f.read_bytes(), classes=5)]
        assert top5[0][2] == want["top"][0]["label"]
        for value, index, label in top5:  # Triton's classification: "probability:index:label", best first
            assert abs(float(value) - probs[label]) < 1e-5 and label == rt.labels[int(index)]
        assert [float(v) for v, _, _ in top5] == sorted((float(v) for v, _, _ in top5), reverse=True)


def test_a_bad_image_is_one_sentence_and_the_server_keeps_serving(server, repository, cifar_dir):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    from zoo.data.datasets import CIFAR10

    client = http.InferenceServerClient(server.url)
    name = repository[1]["ensemble"]
    with pytest.raises(InferenceServerException, match="not an image that Pillow can read"):
        _infer(client, name, b"this is not an image")
    good = _infer(client, name, _png(CIFAR10(cifar_dir, "test").images[0]), classes=1)
    assert len(good) == 1 and server.process.poll() is None


def test_a_bounded_load_test_counts_every_request(server, repository, cifar_dir):
    from zoo.data.datasets import CIFAR10
    from zoo.serve.triton_bench import load_test

    images = [_png(a) for a in CIFAR10(cifar_dir, "test").images[:16]]
    images.append(b"broken")  # one bad image among them: counted as a failure, never stopping the test
    r = load_test(server.url, repository[1]["ensemble"], images, clients=4, requests=6)  # images 0..23 mod 17
    assert r["succeeded"] == 23 and r["failures"] == 1
    assert "not an image" in r["first_failure"] and r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]


def test_bench_triton_writes_both_batching_runs(server, artifact, cifar_tag, tmp_path):
    del server  # only to skip where no Triton server is installed
    out = tmp_path / "bench"
    args = ["bench-triton", cifar_tag, "--artifacts", str(artifact.parent.parent), "--clients", "2"]
    result = CliRunner().invoke(app, [*args, "--requests", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(next(out.glob("triton-*.json")).read_text())
    assert set(report["runs"]) == {"dynamic_batching", "no_batching"}
    assert all(r["failures"] == 0 and r["succeeded"] == 6 for r in report["runs"].values())


@pytest.mark.parametrize("stop_with", ["SIGINT", "SIGTERM"])
def test_zoo_serve_triton_prints_its_endpoints_and_stops_cleanly_on_ctrl_c_or_sigterm(
    server, repository, stop_with
):
    """`zoo serve --triton REPO`: a second server on its own port, ready, then SIGINT (Ctrl-C) or SIGTERM
    (what systemd, `docker stop` and Kubernetes send): the server and its Python-backend stubs (its
    process group) are gone afterwards, not only the zoo."""
    import signal
    import time
    import urllib.request

    from zoo.serve.tritonserver import free_port

    port = free_port()
    proc = _zoo_serve(repository[0], port)
    groups = []
    try:
        deadline = time.monotonic() + 120
        ready = False
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status
                    == 200
                )
            except OSError:
                time.sleep(0.5)
        assert ready, proc.stderr.read() if proc.poll() is not None else "not ready in 120 s"
        time.sleep(1.0)  # past the readiness poll of the command itself, into its serving loop
        groups = [os.getpgid(pid) for pid in _servers_on(port)]
        assert groups and len(_in_group(groups[0])) >= 2, "no server with its stubs"
        proc.send_signal(getattr(signal, stop_with))
        out, err = proc.communicate(timeout=120)  # stop() gives the server 30 s, then kills it
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert (
        f"HTTP http://127.0.0.1:{port}" in out and repository[1]["ensemble"] in out and "Traceback" not in err
    )
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
    assert server.process.poll() is None  # the other server is untouched
    assert _in_group(groups[0]) == []  # the server and every stub it started


def _in_group(group: int) -> list[int]:
    """The pids of the processes of a process group (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _zoo_serve(repo: Path, port: int):
    """`zoo serve --triton REPO --port PORT` in a subprocess, with Ctrl-C at its default as from a terminal,
    even where this suite was started in the background (a shell's `&` makes its children ignore SIGINT,
    and a Python started so never raises KeyboardInterrupt)."""
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "zoo.cli", "serve", "--triton", str(repo), "--port", str(port)]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _servers_on(port: int) -> list[int]:
    """The pids of the processes whose command line holds `--http-port PORT` (Linux /proc)."""
    needle = f"--http-port\0{port}\0".encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            pass  # the process ended while we looked
    return pids


def test_ctrl_c_while_the_server_starts_leaves_no_server_running(repository):
    """Ctrl-C during the readiness wait (not only while serving) stops the tritonserver it started."""
    import signal
    import time

    from zoo.serve.tritonserver import free_port

    port = free_port()
    proc = _zoo_serve(repository[0], port)
    try:
        deadline = time.monotonic() + 60
        while not _servers_on(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _servers_on(port), "the command started no tritonserver"
        proc.send_signal(signal.SIGINT)  # the server is starting its models: not ready yet
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Triton is serving" not in out and _servers_on(port) == []


def test_the_python_backend_steps_need_only_numpy_and_pillow(tmp_path, cifar_dir):
    """What a GPU container installs for the preprocess and softmax steps (`pip install --no-deps` of the
    zoo, NumPy, Pillow): importing and running them touches no other third-party package."""
    from zoo.data.datasets import CIFAR10

    CIFAR10(cifar_dir, "test")[0][0].save(tmp_path / "img.png")
    allowed = ("numpy", "PIL", "zoo", "serve", "export")
    # under mutation testing (even its clean run, where the variable is ""), each mutated function calls
    # mutmut's trampoline; the installed zoo never does
    if "MUTANT_UNDER_TEST" in os.environ:
        allowed += ("mutmut",)
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top in {allowed!r}:
            return None
        raise ImportError("not in the light install: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from zoo.data.preprocess import PreprocessSpec, load_image, preprocess
from zoo.serve.predict import softmax
spec = PreprocessSpec(32, 32, "bilinear", True, (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
x = preprocess(load_image({str(tmp_path / "img.png")!r}), spec)
p = softmax(np.arange(10, dtype=np.float32)[None])
print(x.shape, round(float(p.sum()), 5))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.split() == ["(3,", "32,", "32)", "1.0"]


@pytest.mark.parametrize(
    "tensorrt, gpu, words",
    [
        ("10.3.0", "NVIDIA H200", None),
        ("10.4.0", "NVIDIA H200", "built by TensorRT 10.3.0, this container has 10.4.0"),
        ("10.3.0", "NVIDIA L4", "built for a NVIDIA H200, this GPU is a NVIDIA L4"),
    ],
)
def test_the_containers_tensorrt_is_checked_against_the_engines_before_serving(
    tmp_path, tensorrt, gpu, words
):
    model = tmp_path / "resnet20-cifar10-trt-fp16-classifier"
    model.mkdir()
    shutil.copy2(REPO / "serve" / "triton_models" / "check_engine.py", model)
    card = {
        "source": "resnet20.cifar10",
        "format": "trt-fp16",
        "fingerprint": {"tensorrt": "10.3.0", "gpu": "NVIDIA H200"},
    }
    (model / "card.json").write_text(json.dumps(card))
    args = [sys.executable, str(model / "check_engine.py"), "--tensorrt", tensorrt, "--gpu", gpu]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if words is None:
        assert out.returncode == 0 and "loads here" in out.stdout
    else:
        assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr


def test_zoo_triton_on_a_gpu_defaults_to_a_gpu_graph(tmp_path, cifar_tag, cifar_dir):
    """`--device gpu` without --format writes Triton's onnxruntime_onnx backend over the FP16 graph, not
    the CPU flavour of INT8 that is the CPU default."""
    _need_tritonclient()
    repo = tmp_path / "repo"
    args = [
        "triton",
        cifar_tag,
        "--device",
        "gpu",
        "--artifacts",
        str(tmp_path / "a"),
        "--repo",
        str(repo),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["ensemble"].endswith("onnx-fp16") and written["device"] == "gpu"
    config = (repo / f"{written['ensemble']}-classifier" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "KIND_GPU" in config
