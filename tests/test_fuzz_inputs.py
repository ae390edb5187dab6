"""Fuzzing what the zoo reads from disk (issue #25): cards, manifests, CIFAR-10 shards and run folders built
from random values. Each input is either read (and then usable) or refused with a ZooError; any other
exception is a traceback a user would have seen. Bounded: EXAMPLES inputs per reader, no deadline."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import SPEC, write_card
from zoo.errors import ZooError

EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["onnx", "pt2", "trt-fp16", "model.onnx", "resnet20.cifar10", "cifar10", "fp32", "bilinear"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)

PRE = SPEC.to_dict()


FIELDS = [
    "format",
    "precision",
    "file",
    "sha256",
    "source",
    "preprocess",
    "labels",
    "aoti",
    "profile",
    "input",
]
preprocess_fields = st.dictionaries(
    st.sampled_from(["resize", "crop", "interpolation", "antialias", "mean", "std"]), values, max_size=6
)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), values, max_size=3),
    pre=preprocess_fields,
    drop=st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_cards(tmp_path_factory, changes, pre, drop):
    from zoo.export.artifact import read_card

    folder = tmp_path_factory.mktemp("card")
    (folder / "model.onnx").write_bytes(b"not read by the card reader")
    card = {**write_card(folder), **changes}
    card["preprocess"] = (
        {**PRE, **pre} if isinstance(card.get("preprocess"), dict) else card.get("preprocess")
    )
    for key in drop:
        card.pop(key, None)
    (folder / "card.json").write_text(json.dumps(card, allow_nan=True))
    try:
        read = read_card(folder)
    except ZooError:
        return
    from zoo.data.preprocess import PreprocessSpec

    PreprocessSpec.from_dict(read["preprocess"])  # what a card admits is usable by its readers
    assert len(read["labels"]) >= 2 and read["file"] == "model.onnx"


@FUZZ
@given(raw=st.binary(max_size=200))
def test_card_bytes(tmp_path_factory, raw):
    from zoo.export.artifact import read_card

    folder = tmp_path_factory.mktemp("raw")
    (folder / "card.json").write_bytes(raw)
    with pytest.raises(ZooError):
        read_card(folder)


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False),
    st.text(string.printable, max_size=70),
    st.sampled_from(["resnet20", "cifar10", "imagenet1k", "cifar10x", "w.safetensors", "0" * 64, "6b58a0c2"]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(toml_scalars, max_size=4)
        | st.dictionaries(st.text(string.ascii_letters, max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
ENTRY = {
    "arch": "resnet20",
    "dataset": "cifar10",
    "labels": "cifar10",
    "preprocess": "cifar10",
    "file": "w.safetensors",
    "sha256": "0" * 64,
}
ENTRY_FIELDS = [*ENTRY, "url", "sha256_prefix", "default", "metrics", "rename", "recipe", "command"]


@FUZZ
@given(
    name=st.one_of(
        st.sampled_from(["resnet20.mine", "resnet20", "plain.x", "resnet20.a.b"]), st.text(max_size=20)
    ),
    changes=st.dictionaries(st.sampled_from(ENTRY_FIELDS), toml_values, max_size=3),
    drop=st.lists(st.sampled_from(list(ENTRY)), max_size=2),
)
def test_manifests(tmp_path_factory, name, changes, drop):
    from zoo.models.weights import read_manifest

    entry = {**ENTRY, **changes}
    for key in drop:
        entry.pop(key, None)
    path = tmp_path_factory.mktemp("manifest") / "manifest.toml"
    path.write_text(tomli_w.dumps({"weights": {name: entry}}))
    try:
        specs = read_manifest(path)
    except ZooError:
        return
    spec = specs[name]
    assert spec.sha256 and len(spec.sha256) == 64 or spec.sha256_prefix and spec.url
    assert spec.file is None or spec.file.parent == path.parent
    assert spec.num_classes >= 2  # a label set that exists


dtypes = st.sampled_from([np.uint8, np.int64, np.int32, np.float32, np.float64, np.bool_, np.int8])


@FUZZ
@given(
    n=st.integers(0, 6),
    x_shape=st.lists(st.integers(0, 33), min_size=1, max_size=5),
    x_dtype=dtypes,
    y_shape=st.lists(st.integers(0, 7), min_size=0, max_size=2),
    y_dtype=dtypes,
    y_values=st.integers(-3, 12),
    keys=st.sampled_from([("x", "y"), ("x",), ("y",), ("x", "y", "z")]),
)
def test_cifar_shards(tmp_path_factory, n, x_shape, x_dtype, y_shape, y_dtype, y_values, keys):
    from zoo.data.datasets import CIFAR10

    root = tmp_path_factory.mktemp("shard")
    x = np.zeros([n, 32, 32, 3] if x_shape[0] == 33 else x_shape, x_dtype)
    y = np.full(y_shape or [n], y_values).astype(y_dtype)
    arrays = {"x": x, "y": y, "z": np.zeros(2)}
    np.savez(root / "test.npz", **{k: arrays[k] for k in keys})
    try:
        data = CIFAR10(root, "test")
    except ZooError:
        return
    assert len(data.images) == len(data.labels) and all(0 <= int(v) < 10 for v in data.labels)
    for i in range(len(data)):
        data[i]


@FUZZ
@given(
    summary=st.one_of(
        values,
        st.dictionaries(
            st.sampled_from(["arch", "complete", "test_images", "top1", "epochs_done", "recipe"]), values
        ),
    ),
    rows=st.lists(
        st.one_of(
            values,
            st.fixed_dictionaries({"epoch": values, "images_per_s": values}),
            st.fixed_dictionaries(
                {"epoch": st.integers(0, 4), "wall_s": values | st.integers(), "threads": values}
            ),
        ),
        max_size=4,
    ),
    record=st.one_of(
        st.none(),
        values,
        st.dictionaries(
            st.sampled_from(["arch", "recipe", "epochs", "command", "cwd", "data"]), values | st.integers()
        ),
    ),
)
def test_run_folders(tmp_path_factory, summary, rows, record):
    from zoo.train.carry import carry
    from zoo.train.runs import find, markdown

    run = tmp_path_factory.mktemp("runs") / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if record is not None:
        (run / "run.json").write_text(json.dumps(record))
    try:
        markdown(find(run.parent))
    except ZooError:
        return
    try:  # and carried to another folder as it is
        carry(run.parent, run.parent.parent / f"{run.parent.name}-carried")
    except ZooError:
        return
