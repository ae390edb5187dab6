"""Training recipes as data: TOML files a user can copy and edit (`zoo/recipes/*.toml` are the built-ins)."""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.paths import PACKAGE_DIR

RECIPES = PACKAGE_DIR / "recipes"
SCHEDULES = ("multistep", "onecycle", "cosine", "plateau")


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # the file it came from
    doc: dict[str, Any]

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.doc.get(section, {}).get(key, default)

    @property
    def dataset(self) -> str:
        return self.doc.get("dataset", "cifar10")

    def total_steps(self, steps_per_epoch: int) -> int:
        iters = self.get("train", "iterations")
        return int(iters) if iters else int(self.get("train", "epochs")) * steps_per_epoch

    def epochs(self, steps_per_epoch: int) -> int:
        return math.ceil(self.total_steps(steps_per_epoch) / steps_per_epoch)

    def for_arch(self, arch: str) -> Recipe:
        """The recipe as it trains `arch`: its `[arch.ARCH.*]` sections merged over the general ones."""
        arch = arch.split(".")[0]
        per_arch = self.doc.get("arch", {})
        doc = {k: copy.deepcopy(v) for k, v in self.doc.items() if k != "arch"}
        for section, values in per_arch.get(arch, {}).items():
            doc.setdefault(section, {}).update(copy.deepcopy(values))
        if arch in per_arch:
            doc["changes"] = [*doc.get("changes", []), f"for {arch}: {_flat(per_arch[arch])}"]
        return Recipe(self.name, self.source, doc)

    def with_overrides(
        self, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None
    ) -> Recipe:
        """The same recipe with the command line's overrides (recorded in the run's summary)."""
        doc = copy.deepcopy(self.doc)
        if epochs is not None:
            was = (
                f"{self.get('train', 'iterations')} iterations"
                if self.get("train", "iterations")
                else f"{self.get('train', 'epochs')} epochs"
            )
            doc["train"].pop("iterations", None)
            doc["train"]["epochs"] = epochs
            doc["changes"] = [
                *doc.get("changes", []),
                f"shortened by --epochs to {epochs} epochs (the recipe says {was})",
            ]
            if doc.get("schedule", {}).get("name") == "multistep":  # keep milestones at the same fractions
                old = self.get("train", "iterations")
                if old:
                    doc["schedule"]["milestone_fractions"] = [m / old for m in doc["schedule"]["milestones"]]
        if batch_size is not None:
            doc["train"]["batch_size"] = batch_size
        if lr is not None:
            doc["optimizer"]["lr"] = lr
        return Recipe(self.name, self.source, doc)


def load_recipe(name_or_file: str | Path) -> Recipe:
    """A built-in recipe by name (cifar_paper, cifar_zoo, imagenet_paper) or a TOML file."""
    path = Path(name_or_file)
    if not path.suffix:
        path = RECIPES / f"{name_or_file}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise ZooError(f"no recipe {name_or_file!r}: give a TOML file or one of {known}.")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"recipe {path} is not valid TOML: {e}.") from None
    _validate(doc, path)
    return Recipe(doc.get("name", path.stem), str(path), doc)


def _validate(doc: dict, path: Path) -> None:
    train = doc.get("train", {})
    if not (train.get("epochs") or train.get("iterations")):
        raise ZooError(f"recipe {path}: [train] needs epochs or iterations.")
    if "batch_size" not in train or "lr" not in doc.get("optimizer", {}):
        raise ZooError(f"recipe {path}: [train] batch_size and [optimizer] lr are required.")
    sched = doc.get("schedule", {}).get("name", "multistep")
    if sched not in SCHEDULES:
        raise ZooError(f"recipe {path}: schedule {sched!r} is not one of {', '.join(SCHEDULES)}.")
    if sched == "multistep" and "milestones" not in doc["schedule"]:
        raise ZooError(f"recipe {path}: a multistep schedule needs milestones (iterations).")


def lr_at(recipe: Recipe, step: int, total: int) -> float:
    """The learning rate of a step-wise schedule (plateau is decided per epoch by the trainer)."""
    base = float(recipe.get("optimizer", "lr"))
    name = recipe.get("schedule", "name", "multistep")
    if name == "multistep":
        fractions = recipe.get("schedule", "milestone_fractions")
        milestones = [f * total for f in fractions] if fractions else recipe.get("schedule", "milestones")
        return base * recipe.get("schedule", "gamma", 0.1) ** sum(step >= m for m in milestones)
    if name in ("onecycle", "cosine"):
        warm = int(total * recipe.get("schedule", "warmup_fraction", 0.15 if name == "onecycle" else 0.0))
        if recipe.get("schedule", "warmup_epochs") and recipe.get("train", "epochs"):
            warm = int(total * recipe.get("schedule", "warmup_epochs") / recipe.get("train", "epochs"))
        final = base * recipe.get("schedule", "final_lr_fraction", 0.0)
        if step < warm:
            return base * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return final + (base - final) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return base


def _flat(section: dict) -> str:
    """`{"train": {"epochs": 120}}` -> "train.epochs = 120", for the changes list."""
    return ", ".join(f"{k}.{kk} = {vv}" for k, v in section.items() for kk, vv in v.items())
