"""Hostile inputs (issue #25): nothing the zoo reads can change its answer unnoticed, nothing it writes lands
outside $ZOO_CACHE or --out, nothing waits forever, and every bad input is one sentence. One section per
group of the issue; the fuzz tests over cards, manifests, shards and run folders are in test_fuzz_inputs.py."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from tests.helpers import CIFAR_LABELS, SPEC, one_sentence, write_card
from zoo.cli import app
from zoo.errors import ZooError
from zoo.export import trust
from zoo.export.artifact import read_card
from zoo.models import registry
from zoo.models.weights import download, read_manifest
from zoo.serve.runtimes import open_runtime

runner = CliRunner()
PRE = SPEC.to_dict()
_card = write_card


def _tiny_onnx(
    folder: Path,
    classes: int = 10,
    nan: bool = False,
    labels=None,
    external: bool = False,
    int64: bool = False,
    four_d: bool = False,
) -> Path:
    """A hand-built ONNX classifier (Flatten -> Gemm, optionally -> Sqrt(-1): NaN) with the zoo's metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(np.full((3 * 32 * 32, classes), 1e-3, np.float32), "w")
    b = numpy_helper.from_array(np.arange(classes, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["g"]),
    ]
    if int64:  # the model takes integers and casts them itself
        nodes = [helper.make_node("Cast", ["input"], ["asfloat"], to=TensorProto.FLOAT), *nodes]
        nodes[1].input[0] = "asfloat"
    if nan:
        minus = numpy_helper.from_array(np.array(-1.0, np.float32), "minus")
        nodes += [
            helper.make_node("Mul", ["g", "minus"], ["neg"]),
            helper.make_node("Sqrt", ["neg"], ["logits"]),
        ]
        inits = [w, b, minus]
    elif four_d:  # scores as (N, classes, 1, 1), as a convolutional head without its flatten
        shape = numpy_helper.from_array(np.array([-1, classes, 1, 1], np.int64), "shape")
        nodes += [helper.make_node("Reshape", ["g", "shape"], ["logits"])]
        inits = [w, b, shape]
    else:
        nodes += [helper.make_node("Identity", ["g"], ["logits"])]
        inits = [w, b]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.INT64 if int64 else TensorProto.FLOAT, ["N", 3, 32, 32]
            )
        ],
        [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, ["N", classes, 1, 1] if four_d else ["N", classes]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (("labels", labels or CIFAR_LABELS), ("preprocess", PRE), ("precision", "fp32")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    path = folder / "model.onnx"
    if external:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.data",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture
def cifar_image(cifar_dir, tmp_path) -> Path:
    """A real CIFAR-10 test photo (a bird) as a PNG file."""
    from zoo.data.datasets import CIFAR10

    path = tmp_path / "photo.png"
    CIFAR10(cifar_dir, "test")[11][0].save(path)
    return path


# --- 1. native code runs only when this zoo exported it or was told to trust it ---------------------------


def _fake_pt2(folder: Path) -> dict:
    folder.mkdir(parents=True)
    (folder / "model.pt2").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # a package AOTInductor would unpack
    return _card(folder, format="pt2", file="model.pt2", aoti={"torch": torch.__version__, "device": "cpu"})


def test_a_pt2_from_elsewhere_is_refused_before_it_is_loaded_until_trusted(zoo_cache, tmp_path):
    art = tmp_path / "pt2"
    _fake_pt2(art)  # its card's sha256 matches the swapped package: that proves nothing
    r = runner.invoke(app, ["predict", "--artifact", str(art), "--allow-unverified", str(tmp_path / "x.png")])
    one_sentence(r, "runs the native code", f"zoo trust {art}")
    with pytest.raises(ZooError, match="neither exported it nor was told to trust it"):
        open_runtime(art)

    r = runner.invoke(app, ["trust", str(art)])
    assert r.exit_code == 0 and "its native code will run" in r.output, r.output
    assert trust.recorded(read_card(art)) and (zoo_cache / "trusted").is_dir()
    with pytest.raises(ZooError, match="cannot load"):  # now the loader itself is reached (and fails)
        open_runtime(art)
    listed = json.loads(runner.invoke(app, ["trust", "--list", "--json"]).stdout)["entries"]
    assert [(e["sha256"], e["why"]) for e in listed] == [
        (read_card(art)["sha256"], f"trusted by hand: zoo trust {art}")
    ]
    r = runner.invoke(app, ["trust", "--revoke", str(art)])
    assert r.exit_code == 0 and "revoked" in r.output and not trust.recorded(read_card(art))
    with pytest.raises(ZooError, match="neither exported it nor was told to trust it"):  # refused again
        open_runtime(art)
    one_sentence(runner.invoke(app, ["trust", "--revoke", str(art)]), "is not in this zoo's trusted index")
    one_sentence(runner.invoke(app, ["trust"]), "name an artifact folder")


def test_trust_prune_drops_the_entries_whose_folder_is_gone_and_keeps_the_others(zoo_cache, tmp_path):
    kept, moved = tmp_path / "kept", tmp_path / "moved"
    card = _fake_pt2(kept)
    moved.mkdir()
    (moved / "model.pt2").write_bytes(b"PK\x05\x06" + b"\1" * 18)  # another model file
    other = _card(moved, format="pt2", file="model.pt2", aoti=card["aoti"], source="resnet32.cifar10")
    for folder in (kept, moved):
        assert runner.invoke(app, ["trust", str(folder)]).exit_code == 0
    nameless = {**card, "sha256": "f" * 64}  # an entry from before entries named their folder
    trust.record(nameless, "test")
    (trust.index_dir() / "damaged.json").write_text("{not json")  # listed and pruned, never a traceback
    (trust.index_dir() / "odd.json").write_text(
        json.dumps({"sha256": "e" * 64, "folder": "a\0b", "format": {}})
    )
    listed = json.loads(runner.invoke(app, ["trust", "--list", "--json"]).stdout)["entries"]
    assert sorted((str(e.get("source")), str(e["present"])) for e in listed) == [
        ("None", "False"),  # the entry whose folder no file system takes
        ("None", "None"),  # the damaged one
        ("resnet20.cifar10", "None"),
        ("resnet20.cifar10", "True"),
        ("resnet32.cifar10", "True"),
    ]
    moved.rename(tmp_path / "elsewhere")
    r = runner.invoke(app, ["trust", "--list"])
    assert r.exit_code == 0 and "(gone)" in r.output and "damaged entry" in r.output
    doc = json.loads(runner.invoke(app, ["trust", "--list", "--prune", "--json"]).stdout)
    assert sorted(e["sha256"] for e in doc["pruned"]) == sorted(["damaged", "e" * 64, other["sha256"]])
    assert len(doc["entries"]) == 2
    assert trust.recorded(card) and trust.recorded(nameless) and not trust.recorded(other)


def test_a_trusted_native_artifact_whose_card_changed_is_refused_again(zoo_cache, tmp_path):
    art = tmp_path / "pt2"
    card = _fake_pt2(art)
    trust.record(card, "test")
    card["labels"] = [*CIFAR_LABELS[:3], "dog", *CIFAR_LABELS[4:5], "cat", *CIFAR_LABELS[6:]]  # cat <-> dog
    (art / "card.json").write_text(json.dumps(card))
    with pytest.raises(ZooError, match="card changed since"):
        open_runtime(art)


def test_onnx_needs_no_trust_and_zoo_trust_says_so(zoo_cache, tmp_path):
    _tiny_onnx(tmp_path / "a")
    _card(tmp_path / "a")
    r = runner.invoke(app, ["trust", str(tmp_path / "a")])
    assert r.exit_code == 0 and "needs no trust" in r.output and not (zoo_cache / "trusted").exists()


# --- 2. the data that shapes an answer is covered by a hash ----------------------------------------------


@pytest.fixture
def onnx_artifact(checked_artifacts, tmp_path) -> Path:
    """A copy of the session's checked ONNX artifact, free to be tampered with."""
    return Path(shutil.copytree(checked_artifacts[1]["onnx"].path, tmp_path / "onnx"))


@pytest.mark.parametrize(
    "edit, field",
    [
        (
            lambda c: c["labels"].__setitem__(slice(3, 6), [c["labels"][5], c["labels"][4], c["labels"][3]]),
            "labels",
        ),
        (lambda c: c["preprocess"].__setitem__("mean", [0.9, 0.1, 0.5]), "preprocess"),
        (lambda c: c["preprocess"].__setitem__("resize", 40), "preprocess"),
    ],
    ids=["cat-dog-swapped", "other-mean", "other-resize"],
)
def test_a_card_edited_after_export_is_refused(onnx_artifact, cifar_image, edit, field):
    card = json.loads((onnx_artifact / "card.json").read_text())
    edit(card)
    (onnx_artifact / "card.json").write_text(json.dumps(card))
    r = runner.invoke(app, ["predict", "--artifact", str(onnx_artifact), str(cifar_image)])
    one_sentence(r, f"the {field} in", "the card was edited after export")


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("format", "evil", "unknown format 'evil'"),
        ("format", 5, "unknown format 5"),
        ("labels", 10, "no list of labels"),
        ("labels", None, "no list of labels"),
        ("labels", ["cat"], "no list of labels"),
        ("labels", [{"name": "cat"}] * 10, "no list of labels"),
        ("preprocess", {}, "unusable preprocessing"),
        ("preprocess", {**PRE, "crop": 0}, "`crop` must be"),
        ("preprocess", {**PRE, "crop": 100000}, "`crop` must be"),
        ("preprocess", {**PRE, "resize": 3.5}, "`resize` must be"),
        ("preprocess", {**PRE, "mean": "abc"}, "`mean` must be"),
        ("preprocess", {**PRE, "std": [0, 0, 0]}, "`std` must be 3 finite positive"),
        ("precision", "int8", "says precision 'int8'"),
        ("sha256", "", "no sha256"),
    ],
)
def test_every_unusable_card_field_is_one_sentence(tmp_path, field, value, words):
    _tiny_onnx(tmp_path / "a")
    card = _card(tmp_path / "a")
    card[field] = value
    (tmp_path / "a" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ZooError, match="export the artifact again") as e:
        read_card(tmp_path / "a")
    assert words in str(e.value)


def test_a_pt2_card_without_its_device_is_one_sentence(tmp_path):
    card = _fake_pt2(tmp_path / "p")
    card["aoti"] = {"torch": torch.__version__}
    (tmp_path / "p" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ZooError, match="no `aoti` record"):
        read_card(tmp_path / "p")


def test_external_data_no_hash_covers_is_refused(tmp_path):
    _tiny_onnx(tmp_path / "a", external=True)
    assert (tmp_path / "a" / "weights.data").is_file()
    _card(tmp_path / "a")
    with pytest.raises(ZooError, match="files beside it that its card's sha256 does not cover"):
        open_runtime(tmp_path / "a")


def test_a_model_whose_outputs_do_not_match_its_labels_is_refused(tmp_path):
    _tiny_onnx(tmp_path / "a", classes=5)  # 5 scores, 10 labels in its metadata and card
    _card(tmp_path / "a")
    with pytest.raises(ZooError, match="answers 5 scores per image, but its card has 10 labels"):
        open_runtime(tmp_path / "a")


def test_a_model_that_does_not_take_float_images_is_refused(tmp_path):
    _tiny_onnx(tmp_path / "a", int64=True)
    _card(tmp_path / "a")
    with pytest.raises(ZooError, match="input is not a 4-D float tensor"):
        open_runtime(tmp_path / "a")


def test_a_model_whose_scores_are_not_2_d_is_refused(tmp_path):
    _tiny_onnx(tmp_path / "a", four_d=True)
    _card(tmp_path / "a")
    with pytest.raises(ZooError, match="output is not a 2-D float tensor"):
        open_runtime(tmp_path / "a")


def test_nan_scores_are_refused_not_printed(tmp_path, cifar_image):
    _tiny_onnx(tmp_path / "a", nan=True)
    _card(tmp_path / "a")
    r = runner.invoke(
        app, ["predict", "--artifact", str(tmp_path / "a"), "--allow-unverified", str(cifar_image)]
    )
    one_sentence(r, "NaN or infinite scores")
    assert "nan%" not in r.output


def test_the_tiny_model_itself_runs(tmp_path, cifar_image):
    """The control for the tests above: the same hand-built artifact, untampered, answers."""
    _tiny_onnx(tmp_path / "a")
    _card(tmp_path / "a")
    r = runner.invoke(
        app, ["predict", "--artifact", str(tmp_path / "a"), "--allow-unverified", str(cifar_image)]
    )
    assert r.exit_code == 0 and "truck" in r.output, r.output  # the largest bias is the last class


def _user_manifest(cache: Path, text: str) -> Path:
    (cache / "weights").mkdir(parents=True, exist_ok=True)
    path = cache / "weights" / "manifest.toml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    registry.reload()
    return path


ENTRY = 'arch = "resnet20"\ndataset = "cifar10"\nlabels = "cifar10"\npreprocess = "cifar10"\nfile = "w.safetensors"\n'


@pytest.mark.parametrize(
    "entry, words",
    [
        (ENTRY, "`sha256` is missing"),
        (ENTRY + 'sha256 = ""\n', "`sha256` must be the file's 64 hex digits"),
        (ENTRY + 'sha256 = "6b58a0c2"\n', "`sha256` must be the file's 64 hex digits"),
        (ENTRY + 'sha256_prefix = "6b58a0c2"\n', "`sha256_prefix`"),
        (
            ENTRY.replace("w.safetensors", "../../elsewhere.safetensors") + f'sha256 = "{"0" * 64}"\n',
            "plain file name",
        ),
        (
            ENTRY.replace('labels = "cifar10"', 'labels = "../../etc/passwd"') + f'sha256 = "{"0" * 64}"\n',
            "not a name",
        ),
        (ENTRY + f'sha256 = "{"0" * 64}"\nrename = "abc"\n', "`rename` must be a table"),
        (
            ENTRY.replace('preprocess = "cifar10"', "preprocess = { crop = -3 }")
            + f'sha256 = "{"0" * 64}"\n',
            "`crop`",
        ),
        (
            ENTRY.replace('preprocess = "cifar10"', "preprocess = { crop = 32, mean = [0.5, 0.5] }")
            + f'sha256 = "{"0" * 64}"\n',
            "`mean`",
        ),
    ],
    ids=[
        "no-sha256",
        "empty-sha256",
        "short-sha256",
        "prefix-for-a-file",
        "path-traversal",
        "labels-path",
        "rename-str",
        "crop-negative",
        "mean-2",
    ],
)
def test_user_manifest_entries_are_checked_field_by_field(zoo_cache, entry, words):
    path = _user_manifest(zoo_cache, '[weights."resnet20.mine"]\n' + entry)
    with pytest.raises(ZooError, match="resnet20.mine") as e:
        read_manifest(path)
    assert words in str(e.value)
    r = runner.invoke(app, ["list", "--pretrained"])
    one_sentence(r, str(path))


@pytest.mark.parametrize(
    "text, words",
    [
        ('weights = "str"\n', "must be tables"),
        ('[weights]\n"resnet20.mine" = "a string"\n', "an entry must be a table"),
        (b'[weights."resnet20.mine"]\narch = "\xff\xfe"\n', "not UTF-8"),
    ],
)
def test_a_malformed_user_manifest_is_one_sentence(zoo_cache, text, words):
    _user_manifest(zoo_cache, text)
    r = runner.invoke(app, ["list", "--pretrained"])
    one_sentence(r, words)


def test_a_user_manifest_cannot_replace_a_built_in_tag(zoo_cache):
    _user_manifest(zoo_cache, '[weights."resnet20.cifar10"]\n' + ENTRY + f'sha256 = "{"0" * 64}"\n')
    r = runner.invoke(app, ["info", "resnet20.cifar10"])
    one_sentence(r, "resnet20.cifar10 is already a tag", "cannot replace one")


def _state(fill=None) -> dict:
    state = registry.create_model("resnet20").state_dict()
    if fill:
        fill(state)
    return state


@pytest.mark.parametrize(
    "fill, words",
    [
        (lambda s: s["fc.weight"].fill_(float("nan")), "NaN or infinite"),
        (lambda s: s["conv1.weight"].view(-1)[0].fill_(float("inf")), "NaN or infinite"),
        (lambda s: s["bn1.running_var"].fill_(-1.0), "negative variances"),
        (lambda s: s.__setitem__("fc.bias", torch.zeros(10, dtype=torch.int32)), "int32 values"),
    ],
    ids=["nan", "inf", "negative-variance", "integer"],
)
def test_import_weights_refuses_weights_that_cannot_compute(zoo_cache, tmp_path, fill, words):
    save_file(_state(fill), str(tmp_path / "w.safetensors"))
    r = runner.invoke(
        app,
        [
            "import-weights",
            str(tmp_path / "w.safetensors"),
            "resnet20.bad",
            "--dataset",
            "cifar10",
            "--preprocess",
            "cifar10",
        ],
    )
    one_sentence(r, words)
    assert not (zoo_cache / "weights" / "resnet20.bad.safetensors").exists()
    assert "resnet20.bad" not in registry.pretrained_tags()


def _shard(folder: Path, name: str, **arrays) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / name, **arrays)
    return folder


X = np.zeros((20, 32, 32, 3), np.uint8)
Y = np.arange(20, dtype=np.int64) % 10


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"x": X, "y": Y + 100}, "label 100 is not a class index from 0 to 9"),
        ({"x": X, "y": Y - 1}, "label -1 is not a class index"),
        ({"x": X, "y": Y[:10]}, "one per image (20)"),
        ({"x": X, "y": Y.reshape(4, 5)}, "one per image"),
        ({"x": X, "y": Y.astype(np.float32)}, "must be integers"),
        ({"x": X}, "needs arrays `x` (images) and `y`"),
        ({"x": X, "y": np.array([object()] * 20, dtype=object)}, "not a readable CIFAR-10 shard"),
        ({"x": X.astype(np.float32), "y": Y}, "must be uint8"),
    ],
    ids=["labels+100", "labels-1", "300-vs-10", "2d-y", "float-y", "no-y", "object-array", "float-x"],
)
def test_cifar_shards_with_wrong_labels_or_arrays_are_one_sentence(tmp_path, arrays, words):
    root = _shard(tmp_path / "c", "test.npz", **arrays)
    r = runner.invoke(app, ["eval", "resnet20.cifar10", "--data", str(root)])
    one_sentence(r, words)


def test_a_corrupt_shard_is_one_sentence(tmp_path):
    root = _shard(tmp_path / "c", "test.npz", x=X, y=Y)
    (root / "test.npz").write_bytes((root / "test.npz").read_bytes()[:300])
    r = runner.invoke(app, ["eval", "resnet20.cifar10", "--data", str(root)])
    one_sentence(r, "not a readable CIFAR-10 shard")


@pytest.mark.parametrize(
    "csv_text, words",
    [
        ("filename,class_index\na.png,5000\n", "label 5000 is not a class index from 0 to 999"),
        ("filename,class_index\na.png,-1\n", "label -1"),
        ("filename,class_index\na\0.png,3\n", "not an ImageNet-sample index"),
        ("filename,class_index\n../../etc/x.png,3\n", "not an ImageNet-sample index"),
    ],
    ids=["5000", "negative", "nul", "traversal"],
)
def test_an_imagenet_sample_index_with_bad_rows_is_one_sentence(tmp_path, csv_text, words):
    from zoo.data.datasets import open_dataset

    (tmp_path / "s" / "images").mkdir(parents=True)
    (tmp_path / "s" / "labels.csv").write_text(csv_text)
    with pytest.raises(ZooError, match=words):
        open_dataset(tmp_path / "s")


def test_publish_refuses_a_run_that_was_never_tested(zoo_cache, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_file(_state(), str(run / "weights.safetensors"))
    summary = {
        "arch": "resnet20",
        "dataset": "cifar10",
        "recipe": "cifar_budget",
        "complete": True,
        "epochs_done": 1,
        "steps": 1,
        "train_images": 10,
        "test_images": 0,
        "top1": 99.9,
        "top5": 100.0,
        "wall_s": 1.0,
        "hardware": {},
        "recipe_doc": {},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    r = runner.invoke(app, ["publish", str(run), "resnet20.untested"])
    one_sentence(r, "was never tested (test_images 0)")
    assert "resnet20.untested" not in registry.pretrained_tags()


@pytest.mark.parametrize(
    "summary, words",
    [([1, 2], "not a JSON object"), ({"complete": True}, "no usable `arch`"), ("{", "not valid JSON")],
    ids=["list", "missing-keys", "broken"],
)
def test_damaged_run_records_are_one_sentence(tmp_path, summary, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(summary if isinstance(summary, str) else json.dumps(summary))
    one_sentence(runner.invoke(app, ["publish", str(run), "resnet20.x"]), words)


def test_epochs_timed_at_zero_images_per_second_do_not_divide_by_zero(tmp_path):
    from zoo.train.publish import _median_epoch_s

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "images_per_s": 0}\n{"epoch": 2, "images_per_s": 100}\n')
    assert _median_epoch_s(run, 1000) == 10.0


# --- 3. names never write outside the cache -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "resnet20.x/../../../../trav2",
        "resnet20./tmp/abs",
        "resnet20.a\nb",
        "resnet20." + "x" * 300,
        "resnet20.a.b",
    ],
    ids=["relative", "absolute", "newline", "long", "two-dots"],
)
def test_import_weights_refuses_a_tag_that_is_not_a_name(zoo_cache, tmp_path, name):
    save_file(_state(), str(tmp_path / "w.safetensors"))
    before = set(tmp_path.rglob("*"))
    r = runner.invoke(app, ["import-weights", str(tmp_path / "w.safetensors"), name, "--dataset", "cifar10"])
    one_sentence(r, "is not a model name")
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere, the cache included


def test_import_weights_refuses_a_dataset_that_is_not_a_name(zoo_cache, tmp_path):
    save_file(_state(), str(tmp_path / "w.safetensors"))
    r = runner.invoke(
        app, ["import-weights", str(tmp_path / "w.safetensors"), "resnet20.q", "--dataset", 'x"y']
    )
    one_sentence(r, "dataset 'x\"y' is not a name")


# --- 4. nothing waits forever or reads without bound --------------------------------------------------


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "inside.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo",
            "predict",
            "--model",
            "resnet20.cifar10",
            str(fifo),
            str(folder),
            "/dev/zero",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("not a regular file") == 3, done.stderr


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    from zoo.data.preprocess import load_image

    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(8 << 30)  # 8 GB, sparse: nothing is allocated unless it is read
    with pytest.raises(ZooError, match="more than the"):
        load_image(big)


class _Hostile(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/trickle":
            self.send_response(200)
            self.end_headers()
            for _ in range(100):  # one byte every 0.2 s: each read succeeds, the whole never ends
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == "/endless":
            self.send_response(200)
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif self.path == "/bad-status":
            self.wfile.write(b"HTTP/1.1 2OO WHAT\r\n\r\n")


@pytest.fixture
def hostile_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_trickling_server_hits_the_overall_deadline(hostile_server, tmp_path):
    start = time.monotonic()
    with pytest.raises(ZooError, match="took longer than 2 s"):
        download(f"{hostile_server}/trickle", tmp_path / "f", sha256="0" * 64, deadline_s=2)
    assert time.monotonic() - start < 10 and list(tmp_path.iterdir()) == []


def test_an_endless_body_stops_at_the_size_bound_and_leaves_nothing(hostile_server, tmp_path):
    with pytest.raises(ZooError, match="more than the 1,048,576 bytes expected"):
        download(f"{hostile_server}/endless", tmp_path / "f", sha256="0" * 64, max_bytes=1 << 20)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_status_line_is_one_sentence(hostile_server, tmp_path):
    with pytest.raises(ZooError, match="cannot download"):
        download(f"{hostile_server}/bad-status", tmp_path / "f", sha256="0" * 64)


# --- 5. the last resort: one sentence, the traceback only when asked -------------------------------------


def test_an_unforeseen_error_is_one_sentence_with_exit_3_and_the_traceback_only_under_debug(monkeypatch):
    from zoo import api
    from zoo.errors import reading

    def broken():
        with reading("the doctor's notes"):
            raise KeyError("pulse")

    monkeypatch.setattr(api, "doctor", broken)
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 3 and "Traceback" not in r.output
    assert r.output.count("\n") == 1 and "unexpected KeyError while reading the doctor's notes" in r.output
    assert "--debug" in r.output
    r = runner.invoke(app, ["--debug", "doctor"])
    assert r.exit_code == 3 and "Traceback" in r.output and "KeyError: 'pulse'" in r.output
    r = runner.invoke(app, ["doctor", "--pulse"])  # a mistyped option is click's usage error, exit 2
    assert r.exit_code == 2 and "No such option: --pulse" in r.output and "unexpected" not in r.output
    monkeypatch.delenv("ZOO_DEBUG", raising=False)


@pytest.mark.parametrize(
    "args, words",
    [
        (["bench", "resnet20.cifar10", "--seconds", "nan"], "--seconds must be a positive number"),
        (["bench", "resnet20.cifar10", "--threads", "-3"], "--threads must be at least 1, not -3"),
        (["bench", "resnet20.cifar10", "--repeats", "0"], "--repeats must be at least 1, not 0"),
        (["bench", "resnet20.cifar10", "--batch", "8,0"], "every --batch size must be at least 1, not 8,0"),
        (
            ["predict", "--model", "resnet20.cifar10", "x.png", "--topk", "0"],
            "--topk must be at least 1, not 0",
        ),
        (
            ["export", "resnet20.cifar10", "-f", "onnx-int8", "--calib-size", "-2"],
            "--calib-size must be at least 1",
        ),
        (["bench-triton", "resnet20.cifar10", "--requests", "0"], "--requests must be at least 1, not 0"),
        (["train", "resnet20", "--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N, not 'tpu'"),
        (["degradation", "--device", "cuda:x"], "--device must be auto, cpu, cuda or cuda:N, not 'cuda:x'"),
        (
            ["export", "resnet20.cifar10", "-f", "pt2", "--device", "tpu"],
            "--device must be cpu, cuda or cuda:N",
        ),
        (["train", "resnet20", "--lr", "inf"], "--lr must be finite, not inf"),
        (["serve", "--port", "99999"], "--port must be a whole number from 1 to 65535, not 99999"),
        (
            ["serve", "--triton", "repo", "--port", "-1"],
            "--port must be a whole number from 1 to 65535, not -1",
        ),
        (["serve", "--host", "999.1.1.1"], "cannot listen on --host '999.1.1.1': name or service not known"),
        (["serve", "--host", "a..b"], "cannot listen on --host 'a..b': not a host name"),
        (["serve", "--host", "192.0.2.1"], "cannot listen on 192.0.2.1:7860: 192.0.2.1 is not an address"),
        (["info", "resnet20." + "x" * 300], "is not a model name"),
        # no --model or --artifact, and a first word no file system takes: no model is guessed from it
        (["predict", "a" * 5000], "--model NAME (a tag or arch) or --artifact DIR"),
        (["predict", "a/" * 3000, "x.png"], "--model NAME (a tag or arch) or --artifact DIR"),
        (["predict", "bad\x00name"], "--model NAME (a tag or arch) or --artifact DIR"),
        (["bench", "resnet20.cifar10", "--out", "a" * 5000], "cannot create the results folder aaa"),
        (
            [
                "train",
                "resnet20",
                "--max-steps",
                "1",
                "--publish",
                "resnet20.new",
                "--weights-dir",
                "a" * 5000,
            ],
            "cannot create the weights folder",
        ),
    ],
)
def test_impossible_options_are_one_sentence(args, words):
    one_sentence(runner.invoke(app, args), words)


def test_serve_on_a_port_another_server_holds_is_one_sentence_before_the_demo_is_built():
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        for args in (["serve", "--port", port], ["serve", "--triton", "repo", "--port", port]):
            one_sentence(
                runner.invoke(app, args), f"cannot listen on 127.0.0.1:{port}: another server listens"
            )


LONG = "a" * 5000  # no file system takes a name this long (ENAMETOOLONG wherever a command first looks)


@pytest.mark.parametrize(
    "args",
    [
        ["eval", LONG],
        ["eval", "resnet20.cifar10", "--data", LONG],
        ["trust", LONG],
        ["runs", LONG],
        ["curves", LONG],
        ["import-weights", LONG, "resnet20.x"],
        ["predict", "--artifact", LONG, "x.png"],
        ["train", "resnet20", "--recipe", LONG, "--max-steps", "1"],
    ],
)
def test_a_path_longer_than_the_file_system_takes_is_the_users_mistake_in_one_sentence(args):
    result = runner.invoke(app, args)
    one_sentence(result, "is longer than this file system allows for a path", "aaa…aaa")
    assert len(result.output) < 600  # the name cut to its ends, not 5,000 characters echoed back


@pytest.mark.parametrize(
    "command", [["bench", "resnet20.cifar10"], ["train", "resnet20", "--max-steps", "1"]]
)
def test_an_out_that_is_a_file_is_one_sentence(tmp_path, command):
    (tmp_path / "file").write_text("")
    one_sentence(runner.invoke(app, [*command, "--out", str(tmp_path / "file")]), "is a file, not a folder")


def test_a_triton_repo_that_is_a_file_is_named_before_anything_is_exported(tmp_path):
    (tmp_path / "file").write_text("")
    args = ["triton", "resnet20.cifar10", "--artifacts", str(tmp_path / "arts"), "--data", "no-such-data"]
    one_sentence(
        runner.invoke(app, [*args, "--repo", str(tmp_path / "file")]), "file is a file, not a folder"
    )
    assert not (tmp_path / "arts").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["bench", "resnet20.cifar10", "--data", "no-such-data"],
        ["bench-train", "--archs", "resnet20", "--seconds", "1", "--data", "no-such-data"],
        ["degradation", "--epochs", "1", "--data", "no-such-data"],
        ["curves", str(Path(__file__).parents[1] / "weights" / "runs" / "pilot-resnet20-plain")],
    ],
)
def test_an_out_inside_a_file_names_the_file_before_any_data_is_read(tmp_path, command):
    # the folder cannot be made because a file stands where a folder above it should be: that file is
    # named (not "File exists" or "unexpected"), before the data (absent here) is looked for
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "results"
    result = runner.invoke(app, [*command, "--out", str(out)])
    one_sentence(result, f"{tmp_path / 'file'} is a file, not a folder")
    assert (tmp_path / "file").read_text() == "" and not list(tmp_path.glob(".*"))
