"""Training recipes as data: TOML files a user can copy and edit (`zoo/train/recipes/*.toml` are the built-ins)."""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

RECIPES = Path(__file__).with_name("recipes")
SCHEDULES = ("multistep", "onecycle", "cosine", "plateau")


# The sections of a recipe: every key it may hold, its type and its default, in one place. The schema
# that validates a recipe file is read from these classes.
@dataclass(frozen=True)
class Train:
    epochs: int | None = None  # epochs or iterations is required
    iterations: int | None = None
    batch_size: int | None = None  # required
    seed: int = 0
    eval_every: int = 1  # epochs between test evaluations; the last epoch is always evaluated
    # images of the training split held out of training and evaluated beside the test split (a seeded
    # choice, the same for every run of the split): pilots compare recipes on them, never on the test split
    holdout: int = 0


@dataclass(frozen=True)
class Optimizer:
    name: str = "sgd"
    lr: float | None = None  # required
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    no_decay_on_norm_and_bias: bool = False


@dataclass(frozen=True)
class Schedule:
    name: str = "multistep"
    milestones: list | None = None  # iterations (multistep)
    milestone_fractions: list | None = None  # of the total steps, set when --epochs shortens a recipe
    gamma: float = 0.1
    warmup_fraction: float | None = None  # of the total steps (None: 0.15 for onecycle, else 0)
    warmup_epochs: float | None = None
    final_lr_fraction: float = 0.0
    warmup_lr: float | None = None  # the paper's 0.01 warm-up of ResNet-110 until train error < 80%
    warmup_until_train_error: float = 0.8
    warmup_archs: list = field(default_factory=list)
    patience: int = 5  # plateau: epochs without a better test loss before the lr is cut by gamma


@dataclass(frozen=True)
class Augment:
    pad: int = 4
    hflip: bool = True
    cutout: int = 0
    scale: list = field(default_factory=lambda: [256, 480])  # ImageNet: shorter side sampled in this range
    crop: int = 224
    color_jitter: float = 0.0


@dataclass(frozen=True)
class Regularise:
    label_smoothing: float = 0.0
    ema_decay: float | None = None  # None: no EMA


@dataclass(frozen=True)
class Model:  # None: the architecture's own default
    shortcut: str | None = None
    zero_init_residual: bool | None = None
    variant: str | None = None

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Distill:  # knowledge distillation (zoo/teacher.py); weight 0: none
    teacher: list = field(default_factory=list)  # zoo tags; several: an ensemble (their mean logits)
    temperature: float = 4.0
    weight: float = 0.0  # of the soft (teacher) term; 1 - weight of the hard (label) term
    table: str = ""  # "": the teacher runs on each batch; "auto": the stored table for this teacher and split


SECTIONS = {
    "train": Train,
    "optimizer": Optimizer,
    "schedule": Schedule,
    "augment": Augment,
    "regularise": Regularise,
    "model": Model,
    "distill": Distill,
}


def recipe_file(path: Path) -> str:
    """A recipe file as a manifest names it: relative to the folder holding `zoo/` when it is one of the
    zoo's own, else absolute."""
    path = path.resolve()
    return str(path.relative_to(RECIPES.parents[2])) if path.is_relative_to(RECIPES) else str(path)


def _section(name: str) -> cached_property:
    return cached_property(lambda self: SECTIONS[name](**self.doc.get(name, {})))


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str  # the file it came from
    doc: dict[str, Any]

    # the typed sections: recipe.train.epochs, recipe.schedule.name ... (defaults from the classes above)
    train = _section("train")
    optimizer = _section("optimizer")
    schedule = _section("schedule")
    augment = _section("augment")
    regularise = _section("regularise")
    model = _section("model")
    distill = _section("distill")

    @property
    def file(self) -> str:
        """Where the recipe is written: `zoo/train/recipes/...` for the zoo's own (the path in the repository
        and in the package), else its file's absolute path."""
        return recipe_file(Path(self.source))

    def get(self, section: str, key: str) -> Any:
        """One setting with its default, by name: `recipe.get("optimizer", "lr")`."""
        return getattr(getattr(self, section), key)

    @property
    def dataset(self) -> str:
        return self.doc.get("dataset", "cifar10")

    def total_steps(self, steps_per_epoch: int) -> int:
        iters = self.train.iterations
        return int(iters) if iters else int(self.train.epochs) * steps_per_epoch

    def epochs(self, steps_per_epoch: int) -> int:
        return math.ceil(self.total_steps(steps_per_epoch) / steps_per_epoch)

    def general(self) -> Recipe:
        """The recipe without its per-architecture sections: one equal treatment for every net (the
        degradation experiment compares plain and residual nets under exactly the same recipe)."""
        return Recipe(
            self.name, self.source, {k: copy.deepcopy(v) for k, v in self.doc.items() if k != "arch"}
        )

    def for_arch(self, arch: str) -> Recipe:
        """The recipe as it trains `arch`: its `[arch.ARCH.*]` sections merged over the general ones."""
        arch = arch.split(".")[0]
        per_arch = self.doc.get("arch", {})
        doc = _merged({k: v for k, v in self.doc.items() if k != "arch"}, per_arch.get(arch, {}))
        if arch in per_arch:
            doc["changes"] = [*doc.get("changes", []), f"for {arch}: {_flat(per_arch[arch])}"]
        return Recipe(self.name, self.source, doc)

    def with_overrides(
        self,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        eval_every: int | None = None,
    ) -> Recipe:
        """The same recipe with the command line's overrides (recorded in the run's summary)."""
        flags = (
            ("--epochs", epochs),
            ("--batch-size", batch_size),
            ("--lr", lr),
            ("--eval-every", eval_every),
        )
        for flag, value in flags:
            if value is not None and not (value > 0 and math.isfinite(value)):  # nan fails > 0
                raise ZooError(f"{flag} must be {'finite' if value > 0 else 'positive'}, not {value}.")
        doc = copy.deepcopy(self.doc)
        if epochs is not None:
            was = (
                f"{self.train.iterations} iterations"
                if self.train.iterations
                else f"{self.train.epochs} epochs"
            )
            doc["train"].pop("iterations", None)
            doc["train"]["epochs"] = epochs
            doc["changes"] = [
                *doc.get("changes", []),
                f"shortened by --epochs to {epochs} epochs (the recipe says {was})",
            ]
            if doc.get("schedule", {}).get("name") == "multistep":  # keep milestones at the same fractions
                old = self.train.iterations
                if old:
                    doc["schedule"]["milestone_fractions"] = [m / old for m in doc["schedule"]["milestones"]]
        if batch_size is not None:
            doc["train"]["batch_size"] = batch_size
        if lr is not None:
            doc["optimizer"]["lr"] = lr
        if eval_every is not None:  # how often the log tests; the weights do not depend on it
            doc["train"]["eval_every"] = eval_every
        return Recipe(self.name, self.source, doc)


def load_recipe(name_or_file: str | Path) -> Recipe:
    """A built-in recipe by name (cifar_budget, cifar_zoo, cifar_paper, imagenet_paper) or a TOML file.

    A file may start from another recipe (`extends = "cifar_budget"`, or a file path relative to its own
    folder) and hold only what it changes: its keys are merged over the other's, section by section
    (per-architecture sections too), and its `changes` are added to the other's."""
    return _load(name_or_file, ())


def _load(name_or_file: str | Path, seen: tuple[Path, ...]) -> Recipe:
    path = Path(name_or_file)
    if not path.suffix and len(path.parts) == 1:  # a bare name is a built-in; a path is a file
        path = RECIPES / f"{name_or_file}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise ZooError(f"no recipe {name_or_file!r}: give a TOML file or one of {known}.")
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ZooError(f"recipe {path} is not a text file (TOML, UTF-8).") from None
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"recipe {path} is not valid TOML: {e}.") from None
    if "extends" in doc:
        _check_section(doc, path, text)
        base = doc.pop("extends")
        if path.resolve() in seen:
            raise ZooError(f"recipe {path} extends itself (through {' -> '.join(str(p) for p in seen)}).")
        relative = path.parent / base
        parent = _load(
            relative if Path(base).suffix and relative.is_file() else base, (*seen, path.resolve())
        )
        doc = _merged(parent.doc, {"name": path.stem, **doc})  # named for itself, not for its base
    _validate(doc, path, text)
    return Recipe(doc.get("name", path.stem), str(path), doc)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: tables key by key (recursively), `changes` appended."""
    doc = copy.deepcopy(base)
    for key, value in over.items():
        if key == "changes":
            doc["changes"] = [*doc.get("changes", []), *value]
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = _merged(doc[key], value)
        else:
            doc[key] = copy.deepcopy(value)
    return doc


# The recipe schema: every key a recipe may hold, with its type. Unknown keys are errors, so that a
# misspelt one is never silently ignored.
NUMBER = (int, float)
_KINDS = {"int": int, "float": NUMBER, "bool": bool, "str": str, "list": list}


def _kind(annotation: str) -> Any:
    return _KINDS[annotation.split("|")[0].split("[")[0].strip()]


SCHEMA: dict[str, dict[str, Any]] = {
    "": {"name": str, "description": str, "dataset": str, "changes": list, "extends": str},
    **{name: {f.name: _kind(str(f.type)) for f in fields(cls)} for name, cls in SECTIONS.items()},
}
OPTIMIZERS = ("sgd",)
DATASETS = ("cifar10", "imagenet1k")
POSITIVE = {
    ("train", "epochs"),
    ("train", "iterations"),
    ("train", "batch_size"),
    ("train", "eval_every"),
    ("optimizer", "lr"),
    ("distill", "temperature"),
}
NON_NEGATIVE = {
    ("train", "holdout"),
    ("optimizer", "momentum"),
    ("optimizer", "weight_decay"),
    ("augment", "pad"),
    ("augment", "cutout"),
    ("regularise", "label_smoothing"),
    ("regularise", "ema_decay"),
}


def _line_of(text: str, section: str, key: str) -> int | None:
    """The line of `key` in `[section]` (or at the top for ""), for error messages."""
    current = ""
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = stripped.strip("[]").strip()
        elif current.endswith(section) and stripped.split("=")[0].strip().strip('"') == key:
            return n
    return None


def _check_section(doc: dict, path: Path, text: str, where: str = "") -> None:
    def fail(section: str, key: str, problem: str) -> None:
        line = _line_of(text, section, key)
        at = f"{path}:{line}" if line else str(path)
        name = f"[{where}{section}] {key}" if section else key
        raise ZooError(f"recipe {at}: {name} {problem}.")

    for section, body in doc.items():
        if section == "arch" and not where:
            if not isinstance(body, dict):
                fail("", "arch", "must be a table of per-architecture sections")
            for arch, sections in body.items():
                if not isinstance(sections, dict) or any(k not in SCHEMA or not k for k in sections):
                    fail(
                        f"arch.{arch}",
                        next(iter(sections), arch) if isinstance(sections, dict) else arch,
                        f"is not one of the sections {', '.join(k for k in SCHEMA if k)}",
                    )
                _check_section(sections, path, text, f"arch.{arch}.")
            continue
        if not isinstance(body, dict):  # a top-level key
            _check_value("", section, body, fail)
            continue
        if section not in SCHEMA or not section:
            fail(section, next(iter(body), section), f"is in an unknown section [{section}]")
        for key, value in body.items():
            _check_value(section, key, value, fail)


def _check_value(section: str, key: str, value: Any, fail) -> None:
    known = SCHEMA[section]
    if key not in known:
        fail(section, key, f"is not a known key (known: {', '.join(known)})")
    kind = known[key]
    if isinstance(value, bool) and kind is not bool:
        fail(section, key, f"must be a number, not {value!r}")
    if not isinstance(value, kind):
        words = {int: "a whole number", str: "a string", bool: "true or false", list: "a list"}
        names = "a number" if kind is NUMBER else words.get(kind, f"a {getattr(kind, '__name__', kind)}")
        fail(section, key, f"must be {names}, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # TOML has inf and nan
        fail(section, key, f"must be a finite number, not {value}")
    if (section, key) in POSITIVE and value <= 0:
        fail(section, key, f"must be positive, not {value}")
    if (section, key) in NON_NEGATIVE and value < 0:
        fail(section, key, f"must not be negative, not {value}")
    if (section, key) == ("optimizer", "name") and value not in OPTIMIZERS:
        fail(section, key, f"{value!r} is not supported (the trainer has {', '.join(OPTIMIZERS)})")
    if (section, key) == ("distill", "weight") and not 0 <= value <= 1:
        fail(section, key, f"must be from 0 to 1, not {value}")
    if (section, key) == ("distill", "teacher") and not all(isinstance(t, str) and t for t in value):
        fail(section, key, "must be a list of zoo tags")
    if (section, key) == ("", "dataset") and value not in DATASETS:
        fail(section, key, f"{value!r} is not one of {', '.join(DATASETS)}")


def _validate(doc: dict, path: Path, text: str = "") -> None:
    _check_section(doc, path, text)
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
    base, sched = float(recipe.optimizer.lr), recipe.schedule
    if sched.name == "multistep":
        fractions = sched.milestone_fractions
        milestones = [f * total for f in fractions] if fractions else sched.milestones
        return base * sched.gamma ** sum(step >= m for m in milestones)
    if sched.name in ("onecycle", "cosine"):
        fraction = sched.warmup_fraction
        warm = int(total * (fraction if fraction is not None else 0.15 if sched.name == "onecycle" else 0.0))
        if sched.warmup_epochs and recipe.train.epochs:
            warm = int(total * sched.warmup_epochs / recipe.train.epochs)
        final = base * sched.final_lr_fraction
        if step < warm:
            return base * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return final + (base - final) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return base


def _flat(section: dict) -> str:
    """`{"train": {"epochs": 120}}` -> "train.epochs = 120", for the changes list."""
    return ", ".join(f"{k}.{kk} = {vv}" for k, v in section.items() for kk, vv in v.items())


TRAINING_SECTIONS = ("dataset", "train", "optimizer", "schedule", "augment", "regularise", "model", "distill")


def setting_differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """Where two resolved recipe documents train differently: (`section.key`, a's value, b's value), in
    order; names, descriptions and change notes are not settings."""
    diffs: list[tuple[str, Any, Any]] = []
    for section in TRAINING_SECTIONS:
        x, y = a.get(section), b.get(section)
        if isinstance(x, dict) and isinstance(y, dict):
            diffs += [
                (f"{section}.{k}", x.get(k), y.get(k))
                for k in sorted(set(x) | set(y))
                if x.get(k) != y.get(k)
            ]
        elif x != y:
            diffs.append((section, x, y))
    return diffs
