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
