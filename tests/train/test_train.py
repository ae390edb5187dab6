"""The trainer on real CIFAR-10 images: recipes, a smoke run, exact resume, DDP, and `zoo eval`."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import REPO
from tests.helpers import one_sentence, small_cifar
from zoo import ZooError
from zoo.cli import app
from zoo.train.recipe import load_recipe, lr_at

runner = CliRunner()
SMOKE = ["--train-limit", "512", "--test-limit", "256", "--batch-size", "64", "--lr", "0.05"]


def test_builtin_recipes_parse_and_say_how_they_differ_from_the_paper():
    paper = load_recipe("cifar_paper")
    assert paper.total_steps(391) == 64_000
    assert [lr_at(paper, s, 64_000) for s in (0, 31_999, 32_000, 48_000)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001]
    )
    zoo = load_recipe("cifar_zoo")
    assert zoo.doc["changes"] and zoo.get("regularise", "label_smoothing") == 0.1
    peak = max(lr_at(zoo, s, 1000) for s in range(1000))
    assert peak == pytest.approx(0.2) and lr_at(zoo, 999, 1000) < 1e-3
    assert load_recipe("imagenet_paper").get("augment", "scale") == [256, 480]
    short = paper.with_overrides(epochs=2)
    assert [lr_at(short, s, 100) for s in (49, 50, 75)] == pytest.approx([0.1, 0.01, 0.001])


def test_bad_recipes_are_clear_errors(tmp_path):
    with pytest.raises(ZooError, match="no recipe"):
        load_recipe("nope")
    (tmp_path / "notes").write_text("lr: 0.1\n")  # a path without .toml is still read as the file it names
    with pytest.raises(ZooError, match="notes is not valid TOML"):
        load_recipe(tmp_path / "notes")
    bad = tmp_path / "r.toml"
    bad.write_text("[train]\nbatch_size = 8\n[optimizer]\nlr = 0.1\n")
    with pytest.raises(ZooError, match="epochs or iterations"):
        load_recipe(bad)
    bad.write_text('[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nlr = 0.1\n[schedule]\nname = "exp"\n')
    with pytest.raises(ZooError, match="schedule"):
        load_recipe(bad)


def test_the_device_pipeline_normalises_exactly_as_the_preprocessing_contract(cifar_dir):
    from zoo.data.datasets import CIFAR10, preprocess_spec
    from zoo.data.loaders import DeviceCifarLoader
    from zoo.data.preprocess import preprocess

    spec = preprocess_spec("cifar10")
    test = CIFAR10(cifar_dir, "test")
    x, y = next(iter(DeviceCifarLoader(test.images[:8], test.labels[:8], 8, spec, train=False)))
    ref = np.stack([preprocess(test[i][0], spec) for i in range(8)])
    assert np.abs(x.numpy() - ref).max() < 1e-5 and y.tolist() == test.labels[:8].tolist()


def test_augmentation_crops_within_the_padding_and_flips(cifar_dir):
    from zoo.data.loaders import crop_and_flip

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = crop_and_flip(x, 0, True, g)  # no padding: each image is itself or its mirror
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    padded = crop_and_flip(x, 2, False, torch.Generator().manual_seed(1))
    assert padded.shape == x.shape


def _train(tmp: Path, *extra: str, epochs: int = 2, data: Path) -> dict:
    args = [
        "train",
        "resnet20",
        "--data",
        str(data),
        "--epochs",
        str(epochs),
        "--out",
        str(tmp),
        *SMOKE,
        *extra,
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_smoke_run_loss_falls_and_the_checkpoint_round_trips_into_zoo_eval(tmp_path, data):
    summary = _train(tmp_path / "run", epochs=3, data=data)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert {"lr", "train_top1", "images_per_s", "wall_s"} <= set(rows[0])
    assert {"test_top1", "test_top5"} <= set(rows[-1])  # the last epoch is always evaluated
    assert summary["complete"] and summary["hardware"]["torch"] == torch.__version__
    evaluated = runner.invoke(
        app, ["eval", str(tmp_path / "run"), "--data", str(data), "--limit", "256", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["n"] == 256 and result["top1"] == pytest.approx(summary["top1"], abs=1e-6)
    assert (tmp_path / "run" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    # and by hand, with neither the trainer's evaluation nor `zoo eval`: the shipped file loaded into the
    # network, the raw test arrays normalised with the dataset's published mean/std, argmax counted
    from safetensors.torch import load_file

    from zoo.models import registry

    raw = np.load(data / "cifar10" / "test.npz")
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1) * 255  # CIFAR-10's published statistics
    std = torch.tensor([0.247, 0.2435, 0.2616]).view(1, 3, 1, 1) * 255
    x = ((torch.from_numpy(raw["x"][:256]).permute(0, 3, 1, 2).float() - mean) / std).numpy()
    net = registry.create_model("resnet20")
    net.load_state_dict(load_file(tmp_path / "run" / "weights.safetensors"))
    with torch.no_grad():
        right = (net.eval()(torch.from_numpy(x)).argmax(1).numpy() == raw["y"][:256]).sum()
    assert 100 * right / 256 == pytest.approx(summary["top1"], abs=1e-6)


def test_a_killed_run_resumes_exactly(tmp_path, data):
    """SIGKILL inside the second epoch, after the run saved itself there (--save-every: about every
    step): the resumed run trains the rest of that epoch and ends where an uninterrupted one does."""
    from zoo.train.trainer import read_train_checkpoint

    longer = ["--train-limit", "2048"]  # epochs long enough (seconds) for the kill to land part-way
    straight = _train(tmp_path / "a", *longer, epochs=3, data=data)
    out = tmp_path / "b"
    args = ["train", "resnet20", "--data", str(data), "--epochs", "3", "--out", str(out), *SMOKE, *longer]
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", *args, "--save-every", "0.001"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics, ckpt = tmp_path / "b" / "metrics.jsonl", tmp_path / "b" / "last.pt"
    try:  # kill it (SIGKILL, no clean-up) once it has saved itself inside its second epoch
        for _ in range(1200):
            second = metrics.is_file() and metrics.read_text().count("\n") >= 1
            if second and (read_train_checkpoint(ckpt, "cpu").get("partial") or {}).get("batches", 0) >= 3:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        # while it trains, the folder is its alone: a second process is refused and named, `zoo runs` says so
        one_sentence(runner.invoke(app, [*args, "--resume"]), f"being trained by process {proc.pid}")
        (live,) = json.loads(runner.invoke(app, ["runs", str(out), "--json"]).stdout)["runs"]
        assert live["training_now"]["pid"] == proc.pid
        proc.kill()
    finally:
        proc.wait()
    (stopped,) = json.loads(runner.invoke(app, ["runs", str(out), "--json"]).stdout)["runs"]
    assert stopped["training_now"] is None  # the kernel dropped the lock with the killed process
    # training it afresh would overwrite it: refused until --resume (or another folder)
    one_sentence(runner.invoke(app, args), f"{out} already holds a run (1 / 3 epochs)", "--resume")
    done_before = metrics.read_text().count("\n")
    assert done_before == 1, "the run was not interrupted inside its second epoch"
    saved = read_train_checkpoint(ckpt, "cpu")
    assert saved["epoch"] == 0 and 3 <= saved["partial"]["batches"] < 32  # 2,048 / 64 batches an epoch
    assert saved["step"] == 32 + saved["partial"]["batches"]
    resumed = _train(tmp_path / "b", "--resume", *longer, epochs=3, data=data)
    a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert resumed["steps"] == straight["steps"] and [r["epoch"] for r in b] == [1, 2, 3]
    # Independent of the trainer's code: 2,048 images in batches of 64 are 32 steps an epoch, and the
    # recipe (cifar_budget: 2 warm-up epochs rising linearly to the peak, then a cosine to zero) gives in
    # closed form the learning rate of each epoch's last step (0-based index i; logged with the epoch);
    # both runs, the resumed one included, must follow it.
    per_epoch, peak, warm = 2048 // 64, 0.05, 2 * (2048 // 64)
    total = 3 * per_epoch

    def lr_of_step(i: int) -> float:
        if i < warm:
            return peak * (i + 1) / warm
        return peak * 0.5 * (1 + math.cos(math.pi * (i - warm) / (total - warm)))

    for rows in (a, b):
        assert [r["step"] for r in rows] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
        assert [r["lr"] for r in rows] == pytest.approx([lr_of_step(r["step"] - 1) for r in rows], abs=1e-9)
    assert b[-1]["test_top1"] == a[-1]["test_top1"]
    assert b[-1]["train_loss"] == pytest.approx(a[-1]["train_loss"], rel=1e-4)
    # the interrupted epoch's figures count its batches before the kill too (restored running sums)
    assert [r["train_top1"] for r in b] == [r["train_top1"] for r in a]
    assert b[1]["train_loss"] == pytest.approx(a[1]["train_loss"], rel=1e-4)
    from safetensors.torch import load_file

    wa, wb = (
        load_file(tmp_path / "a" / "weights.safetensors"),
        load_file(tmp_path / "b" / "weights.safetensors"),
    )
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5) for k in wa)


def test_a_run_that_cannot_start_says_why(tmp_path, data):
    result = runner.invoke(
        app, ["train", "resnet20", "--data", str(data), "--out", str(tmp_path), "--resume", *SMOKE]
    )
    assert result.exit_code == 1 and "nothing to resume" in result.output
    absent = tmp_path / "never-trained"
    one_sentence(
        runner.invoke(app, ["train", "resnet20", "--out", str(absent), "--resume"]), "nothing to resume"
    )
    assert not absent.exists()  # refused before any folder is made
    typo = runner.invoke(app, ["train", "resnet20", "--out", str(tmp_path), "--amp", "bf61"])
    assert typo.exit_code == 1 and "--amp 'bf61' is not one of auto, bf16, fp16, fp32" in typo.output
    assert not (tmp_path / "last.pt").exists()  # a misspelt precision is refused, not trained as fp32
    # a tag that cannot be published new is refused before the hours of training, not after them
    taken = runner.invoke(
        app, ["train", "resnet20", "--out", str(tmp_path / "t"), "--publish", "resnet20.cifar10"]
    )
    one_sentence(taken, "resnet20.cifar10 is already a tag", "--replace")
    other = runner.invoke(
        app, ["train", "resnet20", "--out", str(tmp_path / "t"), "--publish", "resnet32.mine"]
    )
    one_sentence(other, "published as resnet20.TAG")
    assert not (tmp_path / "t").exists()


def test_zoo_runs_says_how_far_each_run_got_and_its_command_continues_it_from_anywhere(
    tmp_path, data, zoo_cache
):
    """A run cut short (as when a session ends) is listed with its epochs done of planned and its last
    test figure; the command `zoo runs` gives continues it from another folder, and then it is finished."""
    zoo = [sys.executable, "-m", "zoo.cli"]  # as the console script: the run records its own command
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_DATA", None)
    args = ["train", "resnet20", "--data", str(data), "--epochs", "2", "--out", "cut", *SMOKE]
    started = subprocess.run([*zoo, *args, "--max-steps", "10"], cwd=tmp_path, env=env, capture_output=True)
    assert started.returncode == 0, started.stderr.decode()[-2000:]  # 8 steps an epoch: stopped in epoch 2
    from zoo.train.trainer import read_train_checkpoint

    saved = read_train_checkpoint(tmp_path / "cut" / "last.pt", "cpu")  # saved where --max-steps stopped
    assert (saved["epoch"], saved["step"], saved["partial"]["batches"]) == (0, 10, 2)

    def listed() -> dict:
        result = runner.invoke(app, ["runs", str(tmp_path), "--json"])
        assert result.exit_code == 0, result.output
        (only,) = json.loads(result.stdout)["runs"]
        return only

    cut = listed()
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert (cut["arch"], cut["epochs_done"], cut["epochs_planned"], cut["complete"]) == (
        "resnet20",
        1,
        2,
        False,
    )
    assert len(rows) == 1 and "test_top1" not in rows[0]  # cifar_budget tests every 5 epochs and the last
    assert rows[0]["threads"] == 1  # OMP_NUM_THREADS, logged with the epoch it timed
    assert cut["test_top1"] is None and cut["test_epoch"] is None
    assert cut["steps_saved_after"] == saved["partial"]["batches"]  # epoch 2's steps the resume skips
    assert cut["folder"] == str(tmp_path / "cut")
    assert cut["continue_with"] == f"cd {tmp_path} && zoo {' '.join(args)} --resume"
    assert f"continue with `{cut['continue_with']}`." in started.stdout.decode()  # what the stop said
    table = runner.invoke(app, ["runs", str(tmp_path)]).output
    assert (
        "| resnet20 | cifar_budget | 1 / 2 (+2 steps) | - | unfinished" in table
        and cut["continue_with"] in table
    )

    resumed = cut["continue_with"].replace(" && zoo ", f" && {sys.executable} -m zoo.cli ", 1)
    # continued on 2 threads, as a session does once the cores are free
    done = subprocess.run(
        ["bash", "-c", resumed], cwd="/", env={**env, "OMP_NUM_THREADS": "2"}, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    finished = listed()
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert (finished["epochs_done"], finished["complete"], finished["continue_with"]) == (2, True, None)
    assert finished["steps_saved_after"] is None
    assert finished["test_top1"] == summary["top1"] and finished["test_epoch"] == 2 and summary["complete"]
    nothing = runner.invoke(app, ["runs", str(tmp_path / "cut" / "nowhere")])
    assert nothing.exit_code == 1 and "is not a folder" in nothing.output

    # published, the run records the command that trains it from the start: not the --resume that
    # finished it, nor the --max-steps that cut it
    shipped = runner.invoke(
        app,
        ["publish", str(tmp_path / "cut"), "resnet20.cut", "--weights-dir", str(tmp_path / "w"), "--json"],
    )
    assert shipped.exit_code == 0, shipped.output
    spec = json.loads(shipped.stdout)
    assert spec["command"] == f"cd {tmp_path} && zoo {' '.join(args)}"
    # and the manifest tells the epochs' speed apart by the thread count each one trained with
    by_threads = spec["epoch_s_by_threads"]
    assert [(e["threads"], e["epochs"]) for e in by_threads] == [(1, 1), (2, 1)]
    assert all(e["median_s"] > 0 for e in by_threads)


def test_zoo_runs_says_how_long_a_run_still_needs_at_its_pace_now(tmp_path):
    """Hours left = epochs planned but not done x the median epoch at the latest thread count: a stretch
    paused or shared (epoch 5) and epochs trained on another thread count (1, 2) do not move it."""
    run = tmp_path / "r110"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"arch": "resnet110", "recipe": "cifar_budget", "epochs": 100}))
    walls = [(2, 600), (2, 1200), (1, 3200), (1, 5200), (1, 12000), (1, 14000)]  # (threads, wall_s)
    rows = [{"epoch": e, "threads": n, "wall_s": w} for e, (n, w) in enumerate(walls, 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert shown.exit_code == 0, shown.output
    (state,) = json.loads(shown.stdout)["runs"]
    # one-thread epochs took 2000, 2000, 6800, 2000 s: 2000 s, for the 94 epochs left
    assert (state["epoch_s"], state["threads"], state["hours_left"]) == (
        2000.0,
        1,
        round(94 * 2000 / 3600, 1),
    )
    text = runner.invoke(app, ["runs", str(tmp_path)]).output
    assert "| 6 / 100 | - | unfinished, ~52.2 h left at 33.3 min an epoch on 1 thread, last update" in text
    # a log with no usable time says nothing of time left; a finished run has none left
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "wall_s": "soon"}) + "\n")
    (state,) = json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout)["runs"]
    assert state["epoch_s"] is None and state["hours_left"] is None
    assert "| 1 / 100 | - | unfinished, last update" in runner.invoke(app, ["runs", str(tmp_path)]).output
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"complete": True}))  # stopped early, as planned
    (state,) = json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout)["runs"]
    assert (state["complete"], state["epoch_s"], state["hours_left"]) == (True, 2000.0, None)
    # a log whose epochs do not run 1, 2, 3, ... (edited, or two logs pasted together) counts nothing
    (run / "summary.json").unlink()
    for epochs, wrong in (
        ([1, 2, 2], "line 3, logs epoch 2 where epoch 3 comes"),
        ([-5], "line 1, logs epoch -5"),
    ):
        (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in epochs))
        for command in (["curves", str(run)], ["publish", str(run), "resnet110.x"]):
            one_sentence(runner.invoke(app, command), wrong)
        # `zoo runs` lists it as damaged, beside the runs it can read, with the same fields as they have
        shutil.copytree(REPO / "weights" / "runs" / "pilot-resnet20-plain", tmp_path / "pilot")
        listed = runner.invoke(app, ["runs", str(tmp_path), "--json"])
        assert listed.exit_code == 1, listed.output  # the listing, and the exit status says one is damaged
        pilot, broken = json.loads(listed.stdout)["runs"]
        assert pilot["damaged"] is None and pilot["complete"] and wrong in broken["damaged"]
        assert set(broken) == set(pilot) and broken["continue_with"] is None
        shown = runner.invoke(app, ["runs", str(tmp_path)])
        table = shown.stdout
        assert "| 30 / 30 |" in table and f"| `{run}` | ? | ? | - | - | damaged: " in table and wrong in table
        assert (
            shown.exit_code == 1 and f"1 run folder could not be read (named above): {run}." in shown.stderr
        )
        shutil.rmtree(tmp_path / "pilot")


def test_a_run_started_from_python_records_the_zoo_line_that_continues_it(tmp_path, data, monkeypatch):
    """Started from the Python API (a notebook or a script, whose argv is no zoo command), a run records
    the `zoo train` line of that call, quoted for a shell (its folder has a space): `zoo runs` gives the
    command that continues it, and that command finishes it."""
    from zoo import api
    from zoo.train import runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/srv/jupyter/kernel.py", "-f", "kernel-1.json"])
    smoke = {"train_limit": 128, "test_limit": 64, "batch_size": 64}  # 2 steps an epoch
    api.train("resnet20", data=data, out="cut here", epochs=2, max_steps=3, progress=False, **smoke)
    (cut,) = runs.find(tmp_path)
    assert (cut["epochs_done"], cut["epochs_planned"], cut["complete"]) == (1, 2, False)
    assert "kernel" not in cut["continue_with"]
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DATA"}  # the command names its data itself
    resumed = cut["continue_with"].replace(" && zoo ", f" && {sys.executable} -m zoo.cli ", 1)
    done = subprocess.run(["bash", "-c", resumed], cwd="/", env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    (finished,) = runs.find(tmp_path)
    assert (finished["epochs_done"], finished["complete"], finished["continue_with"]) == (2, True, None)
    assert finished["steps_saved_after"] is None
    assert finished["folder"] == str(tmp_path / "cut here")


def test_zoo_curves_puts_pilots_side_by_side_with_what_each_recipe_changes(tmp_path, data):
    """Pilots before a budget: a finished run and one killed part-way (no summary, as when a session ends),
    their curves on one figure, final figures only where a run ended, and the recipe's differences read
    from the killed run's checkpoint."""
    plain = _train(tmp_path / "plain", data=data)
    recipe = tmp_path / "cutout.toml"
    recipe.write_text('extends = "cifar_budget"\n[augment]\ncutout = 16\n')
    _train(tmp_path / "cutout", "--recipe", str(recipe), "--max-steps", "10", data=data)  # 8 steps an epoch
    (tmp_path / "cutout" / "summary.json").unlink()
    out = tmp_path / "report" / "pilots"
    runs = [str(tmp_path / "plain"), str(tmp_path / "cutout"), str(tmp_path / "cutout" / "..") + "/plain"]
    result = runner.invoke(app, ["curves", *runs, "--out", str(out), "--json"])  # the baseline again: once
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    a, b = doc["runs"]
    logged = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()]
    assert a["train_top1"] == [r["train_top1"] for r in logged] and a["epochs"] == [1, 2]
    assert a["final_test_top1"] == plain["top1"] and a["test_epochs"] == [2] and a["differs"] == {}
    assert (b["epochs_done"], b["epochs_planned"], b["complete"]) == (1, 2, False)
    assert b["final_test_top1"] is None and b["final_train_top1"] is None and b["test_top1"] == []
    assert b["differs"] == {"augment.cutout": [0, 16]}  # nothing else: same epochs, same everything
    assert doc["written"] == [str(out / "curves.json"), str(out / "curves.png")]  # --out DIR, as every --out
    assert json.loads((out / "curves.json").read_text()) == {k: v for k, v in doc.items() if k != "written"}
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    table = runner.invoke(app, ["curves", str(tmp_path / "plain"), str(tmp_path / "cutout")]).output
    assert (
        f"| plain | resnet20 | cifar_budget | 2 / 2 | {logged[-1]['train_top1']:.2f} | - | {plain['top1']:.2f} (final)"
        in table
    )
    assert "| cutout | resnet20 | cutout | 1 / 2 |" in table and "augment.cutout 0 -> 16 |" in table
    assert doc["compared_on"] == "test" and "chosen on the test split" in table  # neither held images out
    one_sentence(runner.invoke(app, ["curves", str(tmp_path / "report")]), "is not a `zoo train` run folder")
    one_sentence(runner.invoke(app, ["curves", str(tmp_path / "nowhere")]), "is not a `zoo train` run folder")


def test_the_long_runs_recipe_follows_the_committed_pilots_and_their_rule(monkeypatch):
    """weights/pilots/resnet20-30ep/curves.json is what `zoo curves` reads from the pilots' committed logs, and
    cifar_distill is what docs/training.md's rule makes of its held-out figures at epoch 30: an option is
    taken when it gains >= 0.6 points in both its pairs, dropped when it loses in both."""
    from zoo import api

    committed = json.loads((REPO / "weights" / "pilots" / "resnet20-30ep" / "curves.json").read_text())
    monkeypatch.chdir(REPO)  # its folders are the repository's
    again = api.curves([r["folder"] for r in committed["runs"]])
    assert {k: again[k] for k in committed} == committed
    end = {r["run"].removeprefix("pilot-resnet20-"): r["final_val_top1"] for r in committed["runs"]}
    assert committed["compared_on"] == "val" and all(r["complete"] for r in committed["runs"])

    def verdict(pairs: list[float]) -> str:
        return "taken" if min(pairs) >= 0.6 else "dropped" if max(pairs) < 0 else "open"

    cutout = verdict([end["cutout"] - end["plain"], end["distill-cutout"] - end["distill"]])
    distill = verdict([end["distill"] - end["plain"], end["distill-cutout"] - end["cutout"]])
    for arch in ("resnet20", "resnet32"):
        doc = load_recipe("cifar_distill").for_arch(arch).doc
        assert (doc["augment"]["cutout"] > 0) == (cutout == "taken") and cutout != "open"
        assert bool(doc["distill"]["teacher"]) == (distill == "taken") and distill != "open"
        assert doc["train"]["epochs"] == 200 and not doc["train"].get("holdout")  # all 50,000 images


def test_a_run_with_held_out_images_evaluates_them_and_zoo_curves_compares_on_them(tmp_path, data):
    """[train] holdout = 128 of 512 training images: 384 trained on, the held-out accuracy logged beside
    the test split's, and equal to the shipped weights' accuracy on those 128 images computed by hand."""
    from safetensors.torch import load_file

    from zoo.data.loaders import holdout_split
    from zoo.models import registry

    recipe = tmp_path / "held.toml"
    recipe.write_text('extends = "cifar_budget"\n[train]\nholdout = 128\n')
    summary = _train(tmp_path / "held", "--recipe", str(recipe), data=data)
    assert (summary["train_images"], summary["val_images"]) == (384, 128)
    rows = [json.loads(line) for line in (tmp_path / "held" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_n"] == 128 and rows[-1]["val_top1"] == summary["val_top1"]
    assert rows[-1]["images_per_s"] > 0 and rows[-1]["step"] == 2 * (384 // 64)  # 6 steps an epoch
    raw = np.load(data / "cifar10" / "train_00.npz")  # the split's first file holds its first 512 images
    held = holdout_split(512, 128)[1]
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1) * 255  # CIFAR-10's published statistics
    std = torch.tensor([0.247, 0.2435, 0.2616]).view(1, 3, 1, 1) * 255
    x = (torch.from_numpy(raw["x"][:512][held]).permute(0, 3, 1, 2).float() - mean) / std
    net = registry.create_model("resnet20")
    net.load_state_dict(load_file(tmp_path / "held" / "weights.safetensors"))
    with torch.no_grad():
        right = (net.eval()(x).argmax(1).numpy() == raw["y"][:512][held]).sum()
    assert 100 * right / 128 == pytest.approx(summary["val_top1"], abs=1e-6)
    compared = runner.invoke(app, ["curves", str(tmp_path / "held"), "--json"])
    (run,) = json.loads(compared.stdout)["runs"]
    assert (
        json.loads(compared.stdout)["compared_on"] == "val" and run["final_val_top1"] == summary["val_top1"]
    )
    table = runner.invoke(app, ["curves", str(tmp_path / "held")]).output
    assert f"| {summary['val_top1']:.2f} (final) |" in table and "the test split is logged beside" in table
    listed = runner.invoke(app, ["runs", str(tmp_path / "held")]).output  # and `zoo runs` says both
    assert f"| {summary['top1']:.2f}% (epoch 2; held-out {summary['val_top1']:.2f}%) | finished |" in listed
    # a run killed before its first epoch ended has only run.json: its recipe (holding out) is known
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "run.json").write_text((tmp_path / "held" / "run.json").read_text())
    both = json.loads(
        runner.invoke(app, ["curves", *(str(tmp_path / r) for r in ("held", "started")), "--json"]).stdout
    )
    assert both["compared_on"] == "val" and both["runs"][1]["differs"] == {}
    assert (both["runs"][1]["epochs_done"], both["runs"][1]["val_top1"]) == (0, [])
    recipe.write_text('extends = "cifar_budget"\n[train]\nholdout = 512\n')
    one_sentence(
        runner.invoke(
            app, ["train", "resnet20", "--recipe", str(recipe), "--out", str(tmp_path / "x"), *SMOKE]
        ),
        "holdout = 512 leaves no training images of the 512",
    )


def test_the_continue_command_reads_the_data_the_run_read_and_drops_what_stopped_it():
    from zoo.train.runs import continue_command

    started = "zoo train resnet56 --max-steps=5 --out r --amp bf16"
    assert (
        continue_command(started, "/w", "/d")
        == "cd /w && ZOO_DATA=/d zoo train resnet56 --out r --amp bf16 --resume"
    )
    given = "zoo train resnet56 --data /e --out r --resume"  # --data given, already resumed: as it was
    assert continue_command(given, "/w", "/d") == f"cd /w && {given}"
    figure = "zoo degradation --epochs 10 --max-steps 3"  # continues its unfinished nets when given again
    assert continue_command(figure, None, None) == "zoo degradation --epochs 10"
    assert continue_command(None, "/w", "/d") is None


def _ddp_run(out: Path, data: Path, *args: str) -> dict:
    """`zoo train resnet20 ARGS` as two gloo processes on this machine; their summary."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
    ]
    cmd += ["--master-port", str(port), "-m", "zoo.cli", "train", "resnet20", "--data", str(data)]
    cmd += [*args, "--out", str(out), "--json"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def test_two_process_ddp_with_gloo_gives_the_same_result_shape(tmp_path, data):
    ddp = _ddp_run(tmp_path / "ddp", data, "--epochs", "1", *SMOKE)
    single = _train(tmp_path / "one", epochs=1, data=data)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["steps"] == single["steps"] // 2  # each process takes half of every epoch
    assert set(ddp) - {"recipe_doc"} == set(single) and ddp["test_images"] == single["test_images"]


DDP_RECIPE = """
name = "ddp_check"
dataset = "cifar10"
[train]
epochs = 1
batch_size = 64
seed = 0
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 5e-4
nesterov = true
[schedule]
name = "cosine"
final_lr_fraction = 0.0
[augment]
pad = 4
hflip = true
[model]
shortcut = "A"
zero_init_residual = true
"""


def test_ddp_replicas_agree_and_equal_one_process_averaging_their_gradients(tmp_path, data):
    """Breakages: a missing all-reduce (each process trains on its shard alone), both processes reading
    the same shard, or a gradient summed instead of averaged. DDP's contract, emulated here in one
    process: every step applies the mean of the two shards' gradients (each shard's own BatchNorm
    statistics) to one model, so both processes end with identical weights equal to that model's."""
    from safetensors.torch import load_file

    from zoo import create_model
    from zoo.data.datasets import CIFAR10, preprocess_spec
    from zoo.data.loaders import DeviceCifarLoader
    from zoo.train.recipe import load_recipe

    recipe_file = tmp_path / "ddp_check.toml"
    recipe_file.write_text(DDP_RECIPE)
    limit = 256  # two processes x 2 steps x 64 images
    summary = _ddp_run(
        tmp_path / "ddp",
        data,
        "--recipe",
        str(recipe_file),
        "--train-limit",
        str(limit),
        "--test-limit",
        "100",
    )
    assert summary["world_size"] == 2 and summary["steps"] == 2
    assert summary["replica_max_abs_diff"] == 0.0  # the two processes hold the same weights
    ddp = load_file(str(tmp_path / "ddp" / "weights.safetensors"))

    recipe = load_recipe(recipe_file)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, shortcut="A", zero_init_residual=True).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    train = CIFAR10(data / "cifar10", "train")
    spec = preprocess_spec("cifar10")
    shards = [
        DeviceCifarLoader(train.images[:limit], train.labels[:limit], 64, spec, rank=r, world=2)
        for r in (0, 1)
    ]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step, batches in enumerate(zip(*shards, strict=True)):
        grads = []
        for x, y in batches:
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        for p, g0, g1 in zip(model.parameters(), *grads, strict=True):
            p.grad = (g0 + g1) / 2
        for g in opt.param_groups:
            g["lr"] = lr_at(recipe, step, 2)
        opt.step()
    differ = max((p.detach() - ddp[n]).abs().max().item() for n, p in model.named_parameters())
    moved = max((p.detach() - start[n]).abs().max().item() for n, p in model.named_parameters())
    assert differ < 0.01 * moved, (
        f"DDP weights differ from the emulation by {differ:.3g} (steps moved {moved:.3g})"
    )


def test_ddp_processes_follow_rank_0s_plateau_schedule(tmp_path, data):
    """The plateau schedule is decided on rank 0, where the test split is evaluated; every process must
    apply the same learning rate (before, rank 1 kept the full rate and the replicas drifted apart). A tiny
    rate leaves the test loss flat, so with patience 0 the rate is cut after epochs 2 and 3."""
    recipe = DDP_RECIPE.replace("epochs = 1", "epochs = 3").replace("lr = 0.05", "lr = 1e-7")
    recipe = recipe.replace(
        'name = "cosine"\nfinal_lr_fraction = 0.0', 'name = "plateau"\npatience = 0\ngamma = 0.1'
    )
    recipe_file = tmp_path / "plateau.toml"
    recipe_file.write_text(recipe)
    args = ["--recipe", str(recipe_file), "--train-limit", "256", "--test-limit", "100"]
    summary = _ddp_run(tmp_path / "ddp", data, *args)
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == pytest.approx(1e-8)  # rank 0 cut the rate after epoch 2
    # and cut again after epoch 3: every process ends with the same state
    assert summary["schedule_by_rank"] == [{"lr_scale": pytest.approx(0.01), "warm": False}] * 2
    assert summary["replica_max_abs_diff"] == 0.0


def test_fp16_training_is_refused_on_a_cpu(tmp_path, data):
    from typer.testing import CliRunner

    from zoo.cli import app

    r = CliRunner().invoke(
        app, ["train", "resnet20", "--amp", "fp16", "--device", "cpu", "--data", str(data)]
    )
    assert r.exit_code == 1 and "GPUs without bf16" in r.output


def test_the_degradation_experiment_trains_four_nets_and_draws_figure_6(tmp_path, data):
    args = [
        "degradation",
        "--data",
        str(data),
        "--depths",
        "32,20",  # taken shallower first
        "--recipe",
        "cifar_budget",
        "--epochs",
        "2",
        "--out",
        str(tmp_path),
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--batch-size",
        "64",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"plain20", "plain32", "resnet20", "resnet32"}
    doc = json.loads((tmp_path / "degradation.json").read_text())
    assert doc["depths"] == [20, 32]
    # Figure 6 draws test error after every epoch, whatever the recipe's eval_every (cifar_budget: 5)
    assert all(r["test_epochs"] == r["epochs"] == [1, 2] for r in doc["runs"].values())
    assert (tmp_path / "degradation.png").read_bytes()[:4] == b"\x89PNG"
    summaries = {a: json.loads((tmp_path / a / "summary.json").read_text()) for a in doc["runs"]}
    recipes = [{k: v for k, v in s["recipe_doc"].items() if k != "changes"} for s in summaries.values()]
    assert all(r == recipes[0] for r in recipes)  # plain and residual nets under exactly one recipe
    # Figure 6 tests the nets' own weights, as the paper does: cifar_budget's EMA copy is switched off
    assert all(not s["ema"] and s["recipe_doc"]["regularise"]["ema_decay"] == 0 for s in summaries.values())
    stamps = {a: (tmp_path / a / "summary.json").stat().st_mtime_ns for a in doc["runs"]}
    for arch, run in doc["runs"].items():  # the figure's numbers are the runs' own logs and summaries
        rows = [json.loads(line) for line in (tmp_path / arch / "metrics.jsonl").read_text().splitlines()]
        assert run["train_error"] == [100 - r["train_top1"] for r in rows]
        assert run["test_top1"] == summaries[arch]["top1"] == rows[-1]["test_top1"]
    again = runner.invoke(app, args)  # after an interruption the same command continues; finished nets stay
    assert again.exit_code == 0, again.output
    assert stamps == {a: (tmp_path / a / "summary.json").stat().st_mtime_ns for a in doc["runs"]}


@pytest.mark.parametrize(
    "depths, words",
    [
        ("20,20", "two different depths"),
        ("20,21", "unknown model 'plain21'"),  # found before plain20 and resnet20 are trained, not after
        ("18,34", "plain18 is one of the imagenet nets, and recipe cifar_paper trains cifar10"),
    ],
)
def test_degradation_checks_its_four_nets_before_training_any(tmp_path, depths, words):
    out = tmp_path / "figure6"
    one_sentence(runner.invoke(app, ["degradation", "--depths", depths, "--out", str(out)]), words)
    assert not out.exists()


def _figure6(train_errors: dict[str, float], test_errors: dict[str, float]) -> dict:
    runs = {a: {"train_error": [99.0, e], "test_top1": 100 - test_errors[a]} for a, e in train_errors.items()}
    return {"depths": [20, 56], "runs": runs}


def test_the_degradation_table_says_whether_the_papers_findings_showed():
    from zoo.paper.degradation import table

    paper_like = _figure6(
        {"plain20": 6.0, "plain56": 11.0, "resnet20": 4.0, "resnet56": 1.5},
        {"plain20": 9.5, "plain56": 13.0, "resnet20": 8.5, "resnet56": 7.0},
    )
    text = table(paper_like)
    assert "| plain56 | 56 | 11.00 | 13.00 |" in text and "| resnet20 | 20 | 4.00 | 8.50 |" in text
    assert text.count("as in the paper") == 2 and "unlike" not in text
    # a budget too short for the deep ResNet to pull ahead: said, not hidden
    short = _figure6(
        {"plain20": 6.0, "plain56": 11.0, "resnet20": 4.0, "resnet56": 4.5},
        {"plain20": 9.5, "plain56": 13.0, "resnet20": 8.5, "resnet56": 8.0},
    )
    lines = table(short).splitlines()
    assert "resnet56 against resnet20: training error higher, test error lower (unlike the paper" in lines[-1]
    assert "plain56 against plain20: training error higher, test error higher (as in the paper" in lines[-2]


def test_a_finished_run_is_published_with_metrics_measured_by_zoo_eval(tmp_path, data, zoo_cache):
    from zoo.evaluate import evaluate
    from zoo.models import registry

    small = small_cifar(data, tmp_path / "data")
    run = tmp_path / "run"
    _train(run, epochs=1, data=small)
    wrong = runner.invoke(app, ["publish", str(run), "resnet32.mine", "--weights-dir", str(tmp_path / "w")])
    assert wrong.exit_code == 1 and "trained resnet20" in wrong.output
    result = runner.invoke(
        app,
        [
            "publish",
            str(run),
            "resnet20.mine",
            "--weights-dir",
            str(tmp_path / "w"),
            "--data",
            str(small),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)
    single = evaluate([str(run)], data=str(small), split="test")
    flip = evaluate([str(run)], data=str(small), split="test", protocol="flip")
    assert single["n"] == 1000
    assert spec["metrics"]["top1"] == round(single["top1"], 2) and spec["metrics"]["top1_flip"] == round(
        flip["top1"], 2
    )
    assert spec["epochs"] == 1 and spec["complete_recipe"] and spec["hardware"]["torch"] == torch.__version__
    import zoo

    recipe = Path(zoo.__file__).parents[1] / spec["recipe"]  # a built-in: its path in the repository
    assert spec["recipe"].startswith("zoo/train/recipes/") and recipe.is_file()
    assert (tmp_path / "w" / "resnet20.mine.metrics.jsonl").is_file()
    manifest = (tmp_path / "w" / "manifest.toml").read_text()
    assert '[weights."resnet20.mine"]' in manifest and "top1_flip" in manifest
    registry.reload()


def test_publish_replace_puts_a_run_in_a_tags_place_only_when_it_scores_higher(tmp_path, data, zoo_cache):
    """`zoo publish RUN TAG --replace`, as a long run that beats a shipped tag is published: refused for
    a run that scores no higher than the tag on the same images (the tag left byte for byte), and for a
    tag outside the weights folder written to; a better run takes the tag's place (its default standing
    kept, what it replaced recorded) and the zoo then loads the new weights under the old name."""
    import shutil

    from safetensors.torch import load_file, save_file

    from zoo.evaluate import evaluate
    from zoo.models import registry
    from zoo.models.weights import read_manifest

    small = small_cifar(data, tmp_path / "data", train=512, test=500)
    weak = tmp_path / "weak"
    _train(weak, epochs=1, data=small)  # a smoke run: at chance on the test images
    publish = ["publish", "--data", str(small)]
    first = runner.invoke(app, [*publish, str(weak), "resnet20.mine", "--json"])
    assert first.exit_code == 0, first.output
    was = json.loads(first.stdout)
    manifest = zoo_cache / "weights" / "manifest.toml"
    files = {p: p.read_bytes() for p in (manifest, zoo_cache / "weights" / "resnet20.mine.safetensors")}

    one_sentence(runner.invoke(app, [*publish, str(weak), "resnet20.mine"]), "already a tag", "--replace")
    same = runner.invoke(app, [*publish, str(weak), "resnet20.mine", "--replace"])
    one_sentence(same, "the tag stays as it is", f"{was['metrics']['top1']:.2f}%")
    one_sentence(
        runner.invoke(app, [*publish, str(weak), "resnet20.cifar10", "--replace"]),
        "not a tag of",
        "give --weights-dir",
    )
    assert {p: p.read_bytes() for p in files} == files

    strong = tmp_path / "strong"  # the same run holding the shipped resnet20.cifar10's weights
    shutil.copytree(weak, strong)
    shipped = registry.create_model("resnet20.cifar10", pretrained=True).state_dict()
    save_file({k: v.contiguous() for k, v in shipped.items()}, strong / "weights.safetensors")
    (strong / "metrics.jsonl").write_text((weak / "metrics.jsonl").read_text() + "\n")  # told apart below
    better = runner.invoke(app, [*publish, str(strong), "resnet20.mine", "--replace", "--json"])
    assert better.exit_code == 0, better.output
    now = json.loads(better.stdout)
    measured = evaluate([str(strong)], data=str(small), split="test")
    assert now["metrics"]["top1"] == round(measured["top1"], 2) > was["metrics"]["top1"] + 50
    assert now["replaced"] == {
        "top1": was["metrics"]["top1"],
        "top1_flip": was["metrics"]["top1_flip"],
        "sha256": was["sha256"],
        "command": was["command"],
    }
    assert now["default"] == was["default"] and now["sha256"] != was["sha256"]
    assert manifest.read_text().count('[weights."resnet20.mine"]') == 1
    assert list(read_manifest(manifest)) == ["resnet20.mine"]
    loaded = registry.create_model("resnet20.mine", pretrained=True).state_dict()  # checks the new hash
    assert all(torch.equal(loaded[k], v) for k, v in load_file(strong / "weights.safetensors").items())
    shipped_log = zoo_cache / "weights" / "resnet20.mine.metrics.jsonl"
    assert shipped_log.read_text() == (strong / "metrics.jsonl").read_text()
    assert not list((zoo_cache / "weights").glob(".*"))  # no temporary file left behind


def test_a_run_cut_short_is_not_published(tmp_path, data):
    run, weights = tmp_path / "run", tmp_path / "w"
    # --publish with a run stopped early: trained, not published, and no error (the stop was asked for)
    publish = ["--publish", "resnet20.half", "--weights-dir", str(weights), "--max-steps", "5"]
    args = ["train", "resnet20", "--data", str(data), "--epochs", "2", "--out", str(run), *SMOKE, *publish]
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped after 5 of 16 steps (not published" in stopped.output
    assert not (weights / "manifest.toml").exists()
    result = runner.invoke(app, ["publish", str(run), "resnet20.half", "--weights-dir", str(tmp_path / "w")])
    # how far it got, and the very command `zoo runs` gives to finish it
    (listed,) = json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout)["runs"]
    assert result.exit_code == 1 and f"has trained {listed['epochs_done']} of its 2 epochs" in result.output
    assert f"`{listed['continue_with']}`" in " ".join(result.output.split())


def test_bench_train_measures_img_per_s_and_where_an_epoch_goes(tmp_path, data, monkeypatch):
    monkeypatch.setenv("ZOO_CPU_FEATURES", "avx2,avx512f")  # one CPU model name covers both kinds
    args = ["bench-train", "--archs", "resnet20", "--settings", "fp32-nchw-b128", "--seconds", "1"]
    result = runner.invoke(app, [*args, "--data", str(data), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench-train.json").read_text())
    assert report == json.loads(result.stdout)
    setting, epoch = report["rows"]
    assert setting["setting"] == "fp32-nchw-b128" and setting["batch"] == 128 and setting["images_per_s"] > 0
    assert setting["compiled"] is False and setting["threads"] == torch.get_num_threads()
    assert "fp32" in epoch["setting"]  # what `zoo train --amp auto` computes in on a CPU
    parts = epoch["breakdown_s"]
    total = parts["sgd_steps"] + parts["ema_update"] + parts["input_pipeline"] + parts["evaluation_per_epoch"]
    assert epoch["epoch_s"] == pytest.approx(total) and epoch["images_per_s"] == pytest.approx(50_000 / total)
    assert report["hardware"]["cpu_count"] and report["versions"]["torch"] == torch.__version__
    assert report["hardware"]["torch_threads"] == torch.get_num_threads()  # the record every bench writes
    assert report["hardware"]["cpu_features"] == ["avx2", "avx512f"]
    bad = runner.invoke(app, ["bench-train", "--archs", "resnet50"])
    assert bad.exit_code == 1 and "not a CIFAR architecture" in bad.output


SMOKE_1EPOCH = ["--train-limit", "256", "--test-limit", "128", "--batch-size", "64", "--epochs", "1"]


class Evil:
    """A pickle that would run code when loaded with plain pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_runs_code_from_a_crafted_checkpoint(tmp_path, data):
    marker = tmp_path / "PWNED_RESUME"
    run = tmp_path / "run"
    run.mkdir()
    import torch

    torch.save({"model": Evil(marker), "optimizer": {}, "epoch": 0, "step": 0}, run / "last.pt")
    result = runner.invoke(
        app, ["train", "resnet20", "--data", str(data), "--out", str(run), "--resume", *SMOKE_1EPOCH]
    )
    one_sentence(result, "cannot be read as a `zoo train` checkpoint")
    assert not marker.exists()


def test_resume_of_a_truncated_checkpoint_is_one_sentence(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    result = runner.invoke(
        app, ["train", "resnet20", "--data", str(data), "--out", str(run), "--resume", *SMOKE_1EPOCH]
    )
    one_sentence(result, "truncated")


def test_sigterm_saves_the_run_after_the_step_under_way_and_exits_143(tmp_path, data):
    """A scheduler's SIGTERM (or Ctrl-C) inside an epoch: the run saves itself at once, not at its next
    --save-every (10 minutes away here), exits 128 + 15 saying how to continue, and continues from there."""
    from zoo.train.trainer import read_train_checkpoint

    out, longer = tmp_path / "run", ["--train-limit", "2048"]  # 32 steps an epoch
    args = ["train", "resnet20", "--data", str(data), "--epochs", "2", "--out", str(out), *SMOKE, *longer]
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", *args], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):  # until it trains its second epoch
            if (out / "metrics.jsonl").is_file() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    saved = read_train_checkpoint(out / "last.pt", "cpu")
    assert saved["epoch"] == 0 and 1 <= saved["partial"]["batches"] <= 32  # saved inside epoch 2
    assert f"SIGTERM: the run saved itself after step {saved['step']} (epoch 2)" in stderr
    (listed,) = json.loads(runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout)["runs"]
    assert listed["training_now"] is None and f"`{listed['continue_with']}`" in stderr
    resumed = _train(out, "--resume", *longer, epochs=2, data=data)
    assert resumed["complete"] and resumed["steps"] == 64


def test_a_resume_logs_an_epoch_a_kill_left_unlogged_and_names_half_a_row(tmp_path, data):
    """An epoch's checkpoint holds its row: a kill between the checkpoint and the log (or a carry copied
    then) loses no row. Half a row (a log appended in place when a disk filled) is named, not a traceback."""
    run = tmp_path / "run"
    assert not _train(run, "--max-steps", "8", epochs=2, data=data)["complete"]  # 8 steps: epoch 1, whole
    log = run / "metrics.jsonl"
    (first,) = log.read_text().splitlines()
    assert json.loads(first)["epoch"] == 1
    args = ["train", "resnet20", "--data", str(data), "--epochs", "2", "--out", str(run), *SMOKE, "--resume"]
    log.write_text(first + '\n{"epoch": 2, "lo')
    one_sentence(runner.invoke(app, args), f"{log}, line 2, is not an epoch record")
    log.write_text("")  # killed after the checkpoint, before its row reached the log
    assert runner.invoke(app, args).exit_code == 0
    rows = log.read_text().splitlines()
    assert rows[0] == first and [json.loads(r)["epoch"] for r in rows] == [1, 2]


@pytest.mark.slow
def test_resume_with_another_network_images_lr_or_batch_size_is_refused(tmp_path, data):
    run = tmp_path / "run"
    args = ["train", "resnet20", "--data", str(data), "--out", str(run), *SMOKE_1EPOCH]
    assert runner.invoke(app, [*args, "--lr", "0.05"]).exit_code == 0
    one_sentence(runner.invoke(app, [*args, "--lr", "0.1", "--resume"]), "optimizer.lr: 0.05 -> 0.1")
    changed = [a if a != "64" else "32" for a in args]
    one_sentence(runner.invoke(app, [*changed, "--lr", "0.05", "--resume"]), "train.batch_size: 64 -> 32")
    # another network (plain20's weights have resnet20's names, so they would load) or other images
    other = [a if a != "resnet20" else "plain20" for a in args]
    one_sentence(runner.invoke(app, [*other, "--lr", "0.05", "--resume"]), "arch: 'resnet20' -> 'plain20'")
    fewer = [a if a != "256" else "128" for a in args]
    one_sentence(runner.invoke(app, [*fewer, "--lr", "0.05", "--resume"]), "train_limit: 256 -> 128")
    # a checkpoint written before it recorded what it trains: the folder's run.json names the network
    state = torch.load(run / "last.pt", weights_only=True)
    del state["trains"]
    torch.save(state, run / "last.pt")
    one_sentence(runner.invoke(app, [*other, "--lr", "0.05", "--resume"]), "arch: 'resnet20' -> 'plain20'")


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--lr", "-1", "--lr must be positive"),
        ("--batch-size", "0", "--batch-size must be positive"),
        ("--epochs", "0", "--epochs must be positive"),
        # a negative count once sliced off the end (images[:-5] trained on 49,995 images), 0 read them all
        ("--train-limit", "-5", "--train-limit must be at least 1, not -5"),
        ("--test-limit", "0", "--test-limit must be at least 1, not 0"),
        ("--max-steps", "0", "--max-steps must be at least 1, not 0"),
        ("--save-every", "0", "--save-every must be a positive number of minutes, not 0"),
        ("--save-every", "nan", "--save-every must be a positive number of minutes, not nan"),
    ],
)
def test_non_positive_training_options_are_refused_and_write_nothing(tmp_path, data, flag, value, words):
    run = tmp_path / "run"
    args = ["train", "resnet20", "--data", str(data), "--out", str(run), flag, value]
    limit = [] if flag == "--train-limit" else ["--train-limit", "256"]
    one_sentence(runner.invoke(app, [*args, *limit]), words)
    assert not run.exists()


def test_a_weights_tag_is_not_trained_as_its_architecture(tmp_path):
    """`zoo train resnet20.cifar10` once trained resnet20 from scratch, the tag's weights unread."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "resnet20.cifar10", "--out", str(run), "--epochs", "1"])
    one_sentence(result, "resnet20.cifar10 is a weights tag; `zoo train` trains an architecture from scratch")
    assert "zoo train resnet20." in result.output and not run.exists()


@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_a_training_set_smaller_than_one_batch_is_one_sentence(tmp_path, data, arch):
    """The last partial batch is dropped, so such a set would train no step at all (an ImageFolder of a
    few photos once ended in a ZeroDivisionError): both the CIFAR loader and the folder loader refuse it."""
    if arch == "resnet18":
        from PIL import Image

        data = tmp_path / "photos"
        for split in ("train", "val"):
            (data / split / "tench").mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (240, 224), (40 * i, 90, 160)).save(data / split / "tench" / f"{i}.png")
    run = tmp_path / "run"
    args = ["train", arch, "--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "4"]
    limit = ["--train-limit", "3"] if arch == "resnet20" else ["--recipe", "imagenet_paper"]
    one_sentence(runner.invoke(app, [*args, *limit]), "3 training images are fewer than one batch of 4")
    assert not (run / "last.pt").exists()


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
    from zoo.train.trainer import plan_device

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
    from zoo.train.trainer import plan_device

    with pytest.raises(ZooError, match=words):
        plan_device(choice, local_rank, world, gpus)
