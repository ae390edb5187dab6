"""Recipes (zoo/train/recipe.py): the schema, checked with file and line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "[train]\nepochs = -3\nbatch_size = 8\n[optimizer]\nlr = 0.1\n",
            "r.toml:2: [train] epochs must be positive",
        ),
        (
            '[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nlr = "fast"\n',
            "r.toml:5: [optimizer] lr must be a number",
        ),
        (
            '[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nname = "adamw2"\nlr = 0.1\n',
            "'adamw2' is not supported",
        ),
        (
            "[train]\nepochs = 1\nbatch_sise = 8\nbatch_size = 8\n[optimizer]\nlr = 0.1\n",
            "r.toml:3: [train] batch_sise is not a known key",
        ),
        ("[train]\nepochs = 1\nbatch_size = 8\n[optimiser]\nlr = 0.1\n", "unknown section [optimiser]"),
        (
            '[train]\nepochs = "many"\nbatch_size = 8\n[optimizer]\nlr = 0.1\n',
            "r.toml:2: [train] epochs must be a whole number, not 'many'",
        ),
        (
            "[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nlr = inf\n",
            "r.toml:5: [optimizer] lr must be a finite number",
        ),
        (
            "[train]\nepochs = 1\nbatch_size = 8\n[optimizer]\nlr = 0.1\nnesterov = 1\n",
            "r.toml:6: [optimizer] nesterov must be true or false, not 1",
        ),
    ],
)
def test_recipes_are_checked_against_the_schema_with_file_and_line(tmp_path, text, words):
    from zoo import ZooError
    from zoo.train.recipe import load_recipe

    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(ZooError) as e:
        load_recipe(tmp_path / "r.toml")
    assert words in str(e.value)


def test_a_binary_recipe_is_one_sentence(tmp_path):
    (tmp_path / "r.toml").write_bytes(bytes(range(256)))
    one_sentence(
        runner.invoke(app, ["train", "resnet20", "--recipe", str(tmp_path / "r.toml")]), "not a text file"
    )


def _flat_doc(doc: dict, prefix: str = "") -> dict:
    """{"train": {"epochs": 3}} -> {"train.epochs": 3}: every leaf of a recipe by its dotted name."""
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out |= _flat_doc(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize(
    "pilot, base, changed, added",
    [
        (
            "resnet20-plain.toml",
            "cifar_budget.toml",
            {"arch.resnet20.train.epochs": 30, "train.holdout": 5000},
            1,
        ),
        (
            "resnet20-cutout.toml",
            "cifar_budget.toml",
            {"arch.resnet20.train.epochs": 30, "train.holdout": 5000, "arch.resnet20.augment.cutout": 16},
            2,
        ),
        (
            "resnet20-distill.toml",
            "cifar_distill.toml",
            {"arch.resnet20.train.epochs": 30, "train.holdout": 5000, "arch.resnet20.augment.cutout": 0},
            1,
        ),
        (
            "resnet20-distill-cutout.toml",
            "cifar_distill.toml",
            {"arch.resnet20.train.epochs": 30, "train.holdout": 5000, "arch.resnet20.augment.cutout": 16},
            2,
        ),
    ],
)
def test_a_pilot_recipe_is_its_base_with_only_its_own_keys_changed(pilot, base, changed, added):
    """The pilots extend a built-in recipe (some through another pilot): read back, every setting equals the
    base file's (read here with tomllib alone) except the keys the pilots change; each holds out the same
    5,000 training images, is named for its own file and adds its changes."""
    import tomllib

    from zoo.train.recipe import RECIPES, load_recipe

    recipe = load_recipe(RECIPES / "pilots" / pilot)
    base_doc = tomllib.loads((RECIPES / base).read_text())
    got, want = _flat_doc(recipe.doc), _flat_doc(base_doc)
    skip = {"name", "description", "changes"}
    differs = {k: v for k, v in got.items() if k not in skip and want.get(k, "absent") != v}
    assert differs == changed
    assert not {k for k in want if k not in got}  # nothing of the base is lost
    assert recipe.name == pilot.removesuffix(".toml") and recipe.doc["description"].startswith("Pilot")
    assert recipe.doc["changes"][: len(base_doc["changes"])] == base_doc["changes"]
    assert len(recipe.doc["changes"]) == len(base_doc["changes"]) + added
    # for another depth the pilot is its base
    other_depth = load_recipe(base.removesuffix(".toml")).for_arch("resnet56")
    assert recipe.for_arch("resnet56").doc["augment"] == other_depth.doc["augment"]


def test_extends_chains_files_nearest_wins_and_a_cycle_is_one_sentence(tmp_path):
    from zoo import ZooError
    from zoo.train.recipe import load_recipe

    (tmp_path / "b.toml").write_text(
        'extends = "cifar_budget"\nchanges = ["b"]\n[train]\nepochs = 7\nseed = 3\n'
        "[arch.resnet32.train]\nepochs = 9\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.toml").write_text(
        'extends = "../b.toml"\nname = "mine"\nchanges = ["a"]\n[train]\nseed = 5\n[optimizer]\nlr = 0.05\n'
    )
    a = load_recipe(tmp_path / "sub" / "a.toml")
    got = (a.name, a.train.epochs, a.train.seed, a.optimizer.lr, a.optimizer.momentum)
    assert got == ("mine", 7, 5, 0.05, 0.9)
    assert a.doc["changes"][-2:] == ["b", "a"] and "extends" not in a.doc
    assert a.for_arch("resnet32").train.epochs == 9 and a.for_arch("resnet56").augment.cutout == 16
    assert load_recipe(tmp_path / "b.toml").name == "b"

    (tmp_path / "b.toml").write_text('extends = "sub/a.toml"\n')
    with pytest.raises(ZooError, match="extends itself"):
        load_recipe(tmp_path / "sub" / "a.toml")
    (tmp_path / "c.toml").write_text('extends = "cifar_nothing"\n')
    with pytest.raises(ZooError, match="no recipe 'cifar_nothing'"):
        load_recipe(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text('extends = "cifar_budget"\n[train]\nepoch = 3\n')
    with pytest.raises(ZooError, match=r"d.toml:3: \[train\] epoch is not a known key"):
        load_recipe(tmp_path / "d.toml")
