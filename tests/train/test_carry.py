"""Carrying runs to another machine (`zoo runs ROOT --carry DEST`): the carried copy continues the run and
ends with the weights the run itself ends with; a log is cut to the epochs its checkpoint holds; a copy
further along is never replaced; a finished run carries its record, not its checkpoint."""

from __future__ import annotations

import json
import shlex
import shutil

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo.cli import app

runner = CliRunner()
SMOKE = ["--train-limit", "512", "--test-limit", "256", "--batch-size", "64", "--lr", "0.05"]


def _zoo(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def _carry(root, dest) -> list[dict]:
    return json.loads(_zoo("runs", str(root), "--carry", str(dest), "--json").stdout)["carried"]


def _rows(folder) -> list[dict]:
    timing = {"wall_s", "images_per_s", "threads"}  # how long each epoch took differs between the two
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def test_a_carried_run_continues_elsewhere_and_ends_as_the_run_itself(tmp_path, data):
    here, there, old = tmp_path / "here", tmp_path / "there", tmp_path / "old"
    train = ["train", "resnet20", "--data", str(data), "--epochs", "2", *SMOKE]
    _zoo(*train, "--out", str(here / "cut"), "--max-steps", "10")  # 8 steps an epoch: cut inside the second

    carried = _carry(here, there)
    assert carried == [
        {
            "folder": str(here / "cut"),
            "to": str(there / "cut"),
            "complete": False,
            "steps": 10,
            "copied": True,
        }
    ]
    assert sorted(p.name for p in (there / "cut").iterdir()) == ["last.pt", "metrics.jsonl", "run.json"]
    (alone,) = _carry(here / "cut", tmp_path / "one")  # a run folder as ROOT: that run alone, by its name
    assert alone["to"] == str(tmp_path / "one" / "cut") and alone["copied"]
    assert (tmp_path / "one" / "cut" / "last.pt").read_bytes() == (there / "cut" / "last.pt").read_bytes()
    at10 = tmp_path / "at10" / "cut"
    shutil.copytree(there / "cut", at10)
    shutil.copytree(at10, old / "cut")  # the state of an earlier session's copy

    # the run continues where it runs, and its copy where it was carried, by the command `zoo runs` lists
    # for each: the copy's names the copy (its run.json still records the run's own folder)
    for root in (here, there):
        (listed,) = json.loads(_zoo("runs", str(root), "--json").stdout)["runs"]
        words = shlex.split(listed["continue_with"].split(" && ", 1)[1])
        assert words[:2] == ["zoo", "train"] and words[words.index("--out") + 1] == str(root / "cut")
        _zoo(*words[1:])
    a, b = load_file(here / "cut" / "weights.safetensors"), load_file(there / "cut" / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(here / "cut") == _rows(there / "cut")
    assert [r["epoch"] for r in _rows(there / "cut")] == [1, 2]

    # the earlier copy is not carried over the finished run; the finished run replaces the earlier copy
    finished = {p.name: p.read_bytes() for p in (there / "cut").iterdir()}
    (kept,) = _carry(old, there)
    assert (kept["copied"], kept["steps"]) == (False, 10)
    assert {p.name: p.read_bytes() for p in (there / "cut").iterdir()} == finished  # not a byte changed
    (done,) = _carry(there, old)
    assert (done["copied"], done["complete"], done["steps"]) == (True, True, 16)
    assert sorted(p.name for p in (old / "cut").iterdir()) == ["metrics.jsonl", "run.json", "summary.json"]
    listed = json.loads(_zoo("runs", str(old), "--json").stdout)["runs"]
    assert [(r["complete"], r["epochs_done"], r["continue_with"]) for r in listed] == [(True, 2, None)]

    # carried while it trains: a row logged after the copied checkpoint is not carried (the copy will log
    # that epoch again when it resumes), so the carried log ends where its checkpoint does
    live = tmp_path / "live"
    shutil.copytree(at10, live / "cut")  # checkpoint: step 10, one epoch done; log: that epoch
    second = (here / "cut" / "metrics.jsonl").read_text().splitlines()[1]
    with open(live / "cut" / "metrics.jsonl", "a") as log:  # the next epoch's row, logged meanwhile
        log.write(second + "\n")
    (copied,) = _carry(live, tmp_path / "carried")
    assert copied["steps"] == 10
    carried_log = (tmp_path / "carried" / "cut" / "metrics.jsonl").read_text()
    assert carried_log == (at10 / "metrics.jsonl").read_text() and carried_log.count("\n") == 1


def test_carrying_into_the_folder_carried_from_or_into_a_file_is_one_sentence(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "run.json").write_text('{"arch": "resnet20", "epochs": 2}')
    one_sentence(
        runner.invoke(app, ["runs", str(tmp_path / "runs"), "--carry", str(tmp_path / "runs" / "c")]),
        "separate folders",
    )
    (tmp_path / "a-file").write_text("")
    one_sentence(
        runner.invoke(app, ["runs", str(tmp_path / "runs"), "--carry", str(tmp_path / "a-file")]),
        "is a file: carry runs into a folder",
    )
    # a checkpoint that is none, or whose counters are not counts: one sentence, nothing carried
    for state in (b"not a checkpoint", {"model": {}, "optimizer": {}, "epoch": "3", "step": 5}):
        folder = tmp_path / "odd" / "run"
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(state, bytes):
            (folder / "last.pt").write_bytes(state)
        else:
            torch.save(state, folder / "last.pt")
        result = runner.invoke(app, ["runs", str(tmp_path / "odd"), "--carry", str(tmp_path / "odd-carried")])
        one_sentence(result, f"{folder / 'last.pt'} ")
        assert not [p for p in (tmp_path / "odd-carried").rglob("*") if p.is_file()]


def test_the_command_that_continues_a_run_names_the_folder_it_is_in_now(tmp_path):
    from zoo.train.runs import continue_command

    started = "zoo train resnet20 --out runs/a --max-steps 5"
    here = f"cd {tmp_path} && zoo train resnet20"
    # where it was started: the command as given, without what stopped it
    assert (
        continue_command(started, str(tmp_path), None, tmp_path / "runs" / "a")
        == f"{here} --out runs/a --resume"
    )
    # moved or carried elsewhere: --out names the folder it is in now, not the one it left
    moved = tmp_path / "moved" / "a"
    assert continue_command(started, str(tmp_path), None, moved) == f"{here} --out {moved} --resume"
    assert continue_command("zoo train resnet20 --out=runs/a", str(tmp_path), None, moved) == (
        f"{here} --out {moved} --resume"
    )
    # started without --out (runs/ARCH-RECIPE under the folder it ran in): still there, nothing added
    default = tmp_path / "runs" / "resnet20-cifar_zoo"
    assert continue_command("zoo train resnet20", str(tmp_path), None, default) == f"{here} --resume"
    assert (
        continue_command("zoo train resnet20", str(tmp_path), None, moved) == f"{here} --out {moved} --resume"
    )
