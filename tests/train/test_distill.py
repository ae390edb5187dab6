"""Distillation in the one recipe: the augmentation's views by index, the teacher table against the
teacher's own logits (and refused for another teacher, augmentation or split), the loss against a hand
computation, and a distilled smoke run that records its teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import only_the_zoos_words, small_cifar, zoo_without_torchvision
from zoo.errors import ZooError


def _views_by_hand(x: np.ndarray, ids: np.ndarray, pad: int) -> np.ndarray:
    """The crop-and-flip views of uint8 NCHW images by plain slicing: id = (oy (2 pad + 1) + ox) 2 + flip."""
    side, h, w = 2 * pad + 1, x.shape[2], x.shape[3]
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = []
    for img, i in zip(padded, ids, strict=True):
        pos, flip = divmod(int(i), 2)
        oy, ox = divmod(pos, side)
        view = img[:, oy : oy + h, ox : ox + w]
        out.append(view[:, :, ::-1] if flip else view)
    return np.stack(out)


def test_the_trainers_crops_are_the_views_their_ids_name():
    from zoo.data.loaders import crop_and_flip, view_count

    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out, ids = crop_and_flip(x, 2, True, torch.Generator().manual_seed(5), with_ids=True)
    assert ids.min() >= 0 and ids.max() < view_count(2, True) == 50
    np.testing.assert_array_equal(out.numpy(), _views_by_hand(x.numpy(), ids.numpy(), 2))
    again = crop_and_flip(x, 2, True, torch.Generator().manual_seed(5))  # the same draws without ids
    assert torch.equal(again, out)


@pytest.fixture(scope="module")
def small_split(cifar_dir):
    from zoo.data.datasets import CIFAR10

    train = CIFAR10(cifar_dir, "train")
    return train.images[:24], train.labels[:24]


def test_the_table_holds_the_teachers_logits_of_every_view_and_continues_where_it_stopped(
    small_split, tmp_path
):
    from zoo.train.teacher import TABLE, Teacher, TeacherTable, build_table

    images, labels = small_split
    teacher = Teacher(["resnet20.cifar10"])
    folder = build_table(teacher, images, labels, 1, True, tmp_path / "t", chunk=8, stop_after=5)
    meta = json.loads((folder / "table.json").read_text())
    assert meta["done"] == 5 and not meta.get("complete")  # where it was told, not the chunk's end
    with pytest.raises(ZooError, match="not complete"):
        TeacherTable.open(folder, meta["key"])
    build_table(teacher, images, labels, 1, True, folder, chunk=8)  # continues from image 5
    meta = json.loads((folder / "table.json").read_text())
    assert meta["complete"] and meta["key"]["views"] == 18 and meta["key"]["images"] == 24
    table = np.load(folder / TABLE)
    assert table.shape == (24, 18, 10) and table.dtype == np.float16
    rng = np.random.default_rng(0)
    rows, ids = rng.integers(0, 24, 40), rng.integers(0, 18, 40)
    views = _views_by_hand(images[rows].transpose(0, 3, 1, 2), ids, 1)
    online = teacher.logits(teacher.normalise(torch.from_numpy(np.ascontiguousarray(views)))).numpy()
    np.testing.assert_allclose(table[rows, ids].astype(np.float32), online, atol=0.02, rtol=0.005)
    opened = TeacherTable.open(folder, meta["key"])
    np.testing.assert_allclose(
        opened.lookup(torch.from_numpy(rows), torch.from_numpy(ids)).numpy(), table[rows, ids]
    )
    # a record damaged by hand or by a full disk: one sentence, from the builder and the reader alike
    for damaged in ('{"done": "8"}', "[1, 2]", '{"done": 8, "key": "k"}', "{"):
        (folder / "table.json").write_text(damaged)
        for read in (
            lambda: build_table(teacher, images, labels, 1, True, folder),
            lambda: TeacherTable.open(folder, meta["key"]),
        ):
            with pytest.raises(ZooError, match="table.json"):
                read()


def test_a_table_is_refused_for_another_teacher_augmentation_or_split(small_split, tmp_path):
    from zoo.train.teacher import Teacher, TeacherTable, build_table, split_sha256

    images, labels = small_split
    teacher = Teacher(["resnet20.cifar10"])
    folder = build_table(teacher, images[:4], labels[:4], 0, True, tmp_path / "t")
    key = teacher.key(0, True, split_sha256(images[:4], labels[:4]), 4)
    assert TeacherTable.open(folder, key).table.shape == (4, 2, 10)
    for other, words in (
        (teacher.key(1, True, key["train_split_sha256"], 4), "pad"),
        (teacher.key(0, True, split_sha256(images[4:8], labels[4:8]), 4), "train_split_sha256"),
        (Teacher(["resnet32.cifar10"]).key(0, True, key["train_split_sha256"], 4), "teacher"),
    ):
        with pytest.raises(ZooError, match=words):
            TeacherTable.open(folder, other)
    with pytest.raises(ZooError, match="another teacher"):  # nor is a folder of another table reused
        build_table(teacher, images[:4], labels[:4], 1, True, folder)


def test_the_distillation_loss_is_the_hand_computed_one():
    from zoo.train.teacher import distill_loss

    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(6, 10)) * 3, rng.normal(size=(6, 10)) * 3
    y = rng.integers(0, 10, 6)
    temperature, weight = 4.0, 0.9

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    ce = -np.mean(log_softmax(s)[np.arange(6), y])
    pt = np.exp(log_softmax(t / temperature))
    kl = np.sum(pt * (np.log(pt) - log_softmax(s / temperature))) / 6
    expected = (1 - weight) * ce + weight * temperature**2 * kl
    got = distill_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature, weight)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    assert float(distill_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature, 0.0)) == (
        pytest.approx(ce, rel=1e-9)
    )


def test_a_distilled_step_minimises_that_loss():
    from zoo import create_model
    from zoo.train.recipe import Distill
    from zoo.train.teacher import distill_loss
    from zoo.train.trainer import train_step

    torch.manual_seed(0)
    net = create_model("resnet20")
    x, y, soft = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)), torch.randn(8, 10)
    net.train()
    with torch.no_grad():
        before = net(x)  # BatchNorm in training mode: the same batch statistics as the step's forward
    d = Distill(teacher=["resnet56.cifar10"], temperature=2.0, weight=0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    _, loss = train_step(net, opt, x, y, 0.0, False, soft, d)
    assert float(loss.detach()) == pytest.approx(float(distill_loss(before, soft, y, 2.0, 0.5)), rel=1e-5)


def _recipe(tmp_path: Path, table: str, teacher: str = "resnet20.cifar10") -> Path:
    path = tmp_path / "distill.toml"
    path.write_text(
        f"""name = "smoke_distill"
dataset = "cifar10"
[train]
epochs = 1
batch_size = 64
[optimizer]
lr = 0.05
[schedule]
name = "cosine"
[augment]
pad = 1
[distill]
teacher = ["{teacher}"]
weight = 0.5
table = "{table}"
"""
    )
    return path


@pytest.mark.parametrize("table", ["", "auto"])
def test_a_distilled_smoke_run_records_its_teacher_and_table_and_so_does_its_tag(
    tmp_path, data, cifar_tag, table, zoo_cache
):
    from typer.testing import CliRunner

    from zoo.cli import app
    from zoo.models import registry
    from zoo.models.weights import sha256_file, weights_file

    # zoo_cache: the table and the published tag go to an empty $ZOO_CACHE
    runner = CliRunner()
    recipe = _recipe(tmp_path, table)
    args = ["--recipe", str(recipe), "--data", str(data), "--train-limit", "128", "--test-limit", "100"]
    if table:  # and 32 of the 128 held out: the student reads the whole split's table by each image's index
        recipe.write_text(recipe.read_text().replace("batch_size = 64\n", "batch_size = 64\nholdout = 32\n"))
        missing = runner.invoke(app, ["train", "resnet20", *args, "--out", str(tmp_path / "r0")])
        assert missing.exit_code == 1 and "zoo teacher-table" in missing.output
        build = ["teacher-table", "--recipe", str(recipe), "--data", str(data), "--train-limit", "128"]
        built = runner.invoke(app, [*build, "--json"])
        assert built.exit_code == 0, built.output
        assert json.loads(built.stdout)["key"]["images"] == 128 and json.loads(built.stdout)["complete"]
        other = [a if a != "128" else "112" for a in args]  # another split than the table's: none for it
        refused = runner.invoke(app, ["train", "resnet20", *other, "--out", str(tmp_path / "r1")])
        assert refused.exit_code == 1 and "build it with `zoo teacher-table" in refused.output
    done = runner.invoke(app, ["train", "resnet20", *args, "--out", str(tmp_path / "r"), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    record = summary["distillation"]
    assert record["teacher"] == [cifar_tag] and record["weight"] == 0.5
    if table:
        assert (summary["train_images"], summary["val_images"]) == (96, 32)
        sha, folder = json.loads(built.stdout)["sha256"], json.loads(built.stdout)["folder"]
        assert (
            record["table"] == Path(folder).name
        )  # named as `zoo runs` lists it, not by this machine's path
        assert (
            record["table_sha256"]
            == sha
            == sha256_file(zoo_cache / "teacher-tables" / record["table"] / "table.npy")
        )
    else:
        assert record["table"] is None
    assert record["teacher_sha256"] == [sha256_file(weights_file(registry.resolve(cifar_tag)[1]))]

    # the tag it ships as names the teacher, the recipe and the table, in its manifest and in `zoo info`
    small = small_cifar(data, tmp_path / "small", train=0, test=200)
    shipped = runner.invoke(app, ["publish", str(tmp_path / "r"), "resnet20.distilled", "--data", str(small)])
    assert shipped.exit_code == 0, shipped.output
    registry.reload()
    entry = registry.describe("resnet20.distilled")["weights"]
    assert entry["distillation"] == {k: v for k, v in record.items() if v is not None}  # TOML has no null
    assert entry["recipe"] == str(recipe)
    info = runner.invoke(app, ["info", "resnet20.distilled"])
    assert info.exit_code == 0, info.output
    said = " ".join(info.output.split())
    assert f"teacher: {cifar_tag} (T 4.0, weight 0.5)" in said
    assert (
        f"table {record['table']} (sha256 {record['table_sha256']})" if table else "run on each batch"
    ) in said


def test_the_online_teacher_gives_pytorchs_logits_of_each_batchs_uncut_view(small_split, tmp_path):
    """Online distillation runs the teacher through ONNX Runtime on a CPU; its logits are PyTorch's own
    (an independent forward) for the view each row was cropped and flipped to, before cutout."""
    from zoo.data.loaders import DeviceCifarLoader
    from zoo.train.recipe import load_recipe
    from zoo.train.teacher import Teacher
    from zoo.train.trainer import _teacher

    images, labels = small_split
    recipe_path = _recipe(tmp_path, "")
    recipe_path.write_text(recipe_path.read_text().replace("pad = 1\n", "pad = 1\ncutout = 16\n"))
    recipe = load_recipe(str(recipe_path))
    teacher = Teacher(["resnet20.cifar10"])
    loader = DeviceCifarLoader(images, labels, 8, teacher.spec, pad=1, cutout=16, seed=3)
    online, record = _teacher(loader, recipe, torch.device("cpu"))
    assert record["table"] is None
    x, _, index, ids = next(iter(loader))
    views = _views_by_hand(images[index.numpy()].transpose(0, 3, 1, 2), ids.numpy(), 1)
    cut = (x * loader.std + loader.mean).round().clamp(0, 255).numpy() != views  # cutout reached the student
    assert cut.any()
    by_torch = teacher.logits(teacher.normalise(torch.from_numpy(np.ascontiguousarray(views))))
    np.testing.assert_allclose(online((x, _, index, ids)).numpy(), by_torch.numpy(), atol=1e-3, rtol=1e-4)


def test_a_run_distilled_online_prints_only_the_zoos_own_words_without_torchvision(data, tmp_path):
    """The online teacher is exported to ONNX inside `zoo train`: on a fresh machine (no torchvision)
    the exporter's warnings about torchvision's operators must not reach the run's log."""
    recipe = _recipe(tmp_path, "")
    args = ["--recipe", str(recipe), "--data", str(data), "--train-limit", "128", "--test-limit", "100"]
    result = zoo_without_torchvision(
        "train", "resnet20", *args, "--max-steps", "1", "--out", str(tmp_path / "r")
    )
    only_the_zoos_words(result)
    assert "stopped after 1 of" in result.stdout + result.stderr


def test_a_recipe_refuses_a_distillation_weight_outside_0_to_1(tmp_path):
    from zoo.train.recipe import load_recipe

    path = _recipe(tmp_path, "")
    path.write_text(path.read_text().replace("weight = 0.5", "weight = 1.5"))
    with pytest.raises(ZooError, match=r"\[distill\] weight must be from 0 to 1"):
        load_recipe(path)


@pytest.mark.parametrize("teacher", ['[""]', "[56]", '["resnet56.cifar10", 3]'])
def test_a_recipe_refuses_a_teacher_that_is_not_a_list_of_tags(tmp_path, teacher):
    from zoo.train.recipe import load_recipe

    path = _recipe(tmp_path, "")
    path.write_text(path.read_text().replace('teacher = ["resnet20.cifar10"]', f"teacher = {teacher}"))
    with pytest.raises(ZooError, match=r"\[distill\] teacher must be a list of zoo tags"):
        load_recipe(path)


@pytest.mark.parametrize("flag", ["--train-limit", "--stop-after"])
def test_a_teacher_table_of_no_images_is_refused_before_any_work(tmp_path, monkeypatch, flag):
    """--train-limit -4 once sliced the split's last 4 images off and built a table of the other 49,996."""
    from typer.testing import CliRunner

    from tests.helpers import one_sentence
    from zoo.cli import app

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["teacher-table", "--recipe", "cifar_distill", flag, "-4"])
    one_sentence(result, f"{flag} must be at least 1, not -4")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("started_by", ["cli", "python"])
def test_zoo_runs_lists_a_teacher_table_cut_short_and_its_command_finishes_it(
    tmp_path, data, cifar_tag, monkeypatch, started_by
):
    """The table is a long job of its own (hours on a CPU): `zoo runs` at the next session's start names
    it, how far it got, and the command that continues it from any folder (without the --stop-after that
    cut it); once complete, its sha256 is the table file's. Started from the Python API (whose argv is no
    zoo command), the table records the `zoo teacher-table` line of that call."""
    import hashlib
    import os
    import subprocess
    import sys

    from typer.testing import CliRunner

    from zoo.cli import app

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))  # where `zoo runs` looks for tables
    recipe = _recipe(tmp_path, "auto")
    env = {**os.environ, "ZOO_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_DATA", None)
    args = ["teacher-table", "--recipe", str(recipe), "--data", str(data), "--train-limit", "100"]
    if started_by == "cli":
        cut = subprocess.run(  # the table is written in chunks of 64 images
            [sys.executable, "-m", "zoo.cli", *args, "--stop-after", "64"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
        )
        assert cut.returncode == 0, cut.stderr.decode()[-2000:]
    else:
        from zoo import api

        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", ["/srv/jupyter/kernel.py", "-f", "kernel-1.json"])
        api.teacher_table(str(recipe), data=data, train_limit=100, stop_after=64, log=lambda _: None)

    def listed() -> dict:
        shown = CliRunner().invoke(app, ["runs", str(tmp_path), "--json"])
        assert shown.exit_code == 0, shown.output  # no run folders, but a table: listed
        found = json.loads(shown.stdout)
        assert found["runs"] == []
        (only,) = found["teacher_tables"]
        return only

    table = listed()
    assert (table["teacher"], table["done"], table["images"], table["complete"]) == (
        [cifar_tag],
        64,
        100,
        False,
    )
    assert table["continue_with"] == f"cd {tmp_path} && zoo {' '.join(args)}"
    text = CliRunner().invoke(app, ["runs", str(tmp_path)]).output
    assert f"| {cifar_tag} | 64 / 100 | unfinished" in text and table["continue_with"] in text
    again = table["continue_with"].replace(" && zoo ", f" && {sys.executable} -m zoo.cli ", 1)
    done = subprocess.run(["bash", "-c", again], cwd="/", env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    table = listed()
    npy = Path(table["folder"]) / "table.npy"
    assert table["complete"] and table["done"] == 100 and table["continue_with"] is None
    assert table["sha256"] == hashlib.sha256(npy.read_bytes()).hexdigest()
    assert np.load(npy).shape == (100, 18, 10)  # every image, the 18 views of pad 1, ten classes
