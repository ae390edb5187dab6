"""`zoo curves`: several training runs side by side (pilots before a budget is spent): their training and
test curves on one figure, and a table of where each run got and what its recipe changes over the first.

Each run is read from its folder as `zoo train` left it, finished or not: an unfinished run shows the
epochs it has, and its last test figure is not called final."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, reading
from zoo.train.recipe import setting_differences
from zoo.train.runs import CHECKPOINT, METRICS, RUN, SUMMARY, metrics, read_json, state
from zoo.utils.figures import pyplot, save
from zoo.utils.files import atomic_path, output_dir


def recipe_doc(folder: Path) -> dict[str, Any] | None:
    """The resolved recipe a run trains with: from its summary when it finished, else from run.json (written
    when it started), else from its checkpoint (a run started before run.json kept it); None if none has it."""
    for record in (read_json(folder / SUMMARY) or {}, read_json(folder / RUN) or {}):
        if isinstance(record.get("recipe_doc"), dict):
            return record["recipe_doc"]
    if (folder / CHECKPOINT).is_file():
        from zoo.train.trainer import read_train_checkpoint

        doc = read_train_checkpoint(folder / CHECKPOINT, "cpu").get("recipe")
        return doc if isinstance(doc, dict) else None
    return None


def run_curve(folder: Path) -> dict[str, Any]:
    """One run: its name, recipe, epochs, per-epoch training top-1, and the epochs its test split was read."""
    if not (folder / METRICS).is_file() and not (folder / RUN).is_file():
        raise ZooError(f"{folder} is not a `zoo train` run folder (it has no {METRICS} or {RUN}).")
    where = state(folder)  # what `zoo runs` says of it: arch, recipe, epochs done of planned, finished
    rows = metrics(folder)
    tested = [r for r in rows if isinstance(r.get("test_top1"), int | float)]
    held = [r for r in rows if isinstance(r.get("val_top1"), int | float)]
    done, planned = where["epochs_done"], where["epochs_planned"]
    return {
        "run": folder.name,
        **{k: where[k] for k in ("folder", "arch", "recipe", "epochs_done", "epochs_planned", "complete")},
        "epochs": [r["epoch"] for r in rows],
        "train_top1": [r.get("train_top1") for r in rows],
        "test_epochs": [r["epoch"] for r in tested],
        "test_top1": [r["test_top1"] for r in tested],
        "val_epochs": [r["epoch"] for r in held],  # the held-out training images ([train] holdout)
        "val_top1": [r["val_top1"] for r in held],
        # the figure a run ends with: its last epoch's, and only once that epoch is its last planned one
        "final_train_top1": rows[-1].get("train_top1") if rows and done == planned else None,
        "final_test_top1": tested[-1]["test_top1"] if tested and tested[-1]["epoch"] == planned else None,
        "final_val_top1": held[-1]["val_top1"] if held and held[-1]["epoch"] == planned else None,
    }


def compare(folders: list[Path]) -> dict[str, Any]:
    """The runs' curves, and each recipe's training settings that differ from the first run's."""
    if not folders:
        raise ZooError("name the run folders to compare, e.g. `zoo curves ~/zoo-runs/pilot-*`.")
    unique: dict[Path, Path] = {}  # a shell glob may name the baseline again (`plain pilot-*`): once each
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    runs, docs = [], []
    for folder in unique.values():
        with reading(f"the run folder {folder}"):
            runs.append(run_curve(folder))
            docs.append(recipe_doc(folder))
    for run, doc in zip(runs, docs, strict=True):
        if doc is None or docs[0] is None:
            run["differs"] = None  # a run before its first epoch: its recipe is not recorded yet
        else:
            run["differs"] = {key: [a, b] for key, a, b in setting_differences(docs[0], doc)}
    # recipes are compared on held-out training images when every run holds some out, never on the test
    # split (which is logged beside them); runs without them can only be compared on the test split. A run
    # holds images out if its recipe says so, whether or not it has been evaluated yet.
    on = "val" if all(_holds_out(run, doc) for run, doc in zip(runs, docs, strict=True)) else "test"
    return {"baseline": runs[0]["run"], "compared_on": on, "runs": runs}


def _holds_out(run: dict[str, Any], doc: dict[str, Any] | None) -> bool:
    if doc is None:  # recipe not recorded: what its metrics show
        return bool(run["val_epochs"])
    train = doc.get("train")
    return isinstance(train, dict) and bool(train.get("holdout"))


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """OUT/curves.json always; OUT/curves.png when matplotlib is installed. Each written whole or not at
    all."""
    output_dir(out, "results folder")
    paths = [out / "curves.json"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    if plot(result, out / "curves.png"):
        paths.append(out / "curves.png")
    return paths


def plot(result: dict[str, Any], path: Path) -> bool:
    """Training error dashed, test error bold, one colour a run; False when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ends: list[float] = []
    on = result["compared_on"]
    for run in result["runs"]:
        train = [(e, 100 - t) for e, t in zip(run["epochs"], run["train_top1"], strict=True) if t is not None]
        line = ax.plot([e for e, _ in train], [t for _, t in train], "--", linewidth=1)[0]
        ax.plot(
            run[f"{on}_epochs"],
            [100 - t for t in run[f"{on}_top1"]],
            "o-",
            linewidth=2,
            markersize=3,
            color=line.get_color(),
            label=run["run"],
        )
        ends += [t for _, t in train[-1:]] + [100 - t for t in run[f"{on}_top1"][-1:]]
    # the first epochs' errors (50-80%) would squash the last ones, where runs part; an error is at most 100%
    ax.set_ylim(0, min(100.0, max(20.0, 3 * max(ends, default=10.0))))
    bold = "held-out training images' error" if on == "val" else "test error"
    ax.set(xlabel="epoch", ylabel="top-1 error (%)", title=f"dashed: training error, bold: {bold}")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, path)
    return True


def markdown(result: dict[str, Any]) -> str:
    """One row a run: epochs, its latest training, held-out and test top-1 (called final at its last
    planned epoch), the compared split's top-1 at each epoch it was read, and what its recipe changes."""
    on = result["compared_on"]
    name = "held-out" if on == "val" else "test"
    lines = [
        f"| run | arch | recipe | epochs | train top-1 | held-out top-1 | test top-1 | {name} top-1 at epochs "
        f"| differs from {result['baseline']} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(result["runs"]):
        planned = run["epochs_planned"] if run["epochs_planned"] is not None else "?"
        train = run["train_top1"][-1] if run["train_top1"] else None
        points = ", ".join(
            f"{e}: {t:.1f}" for e, t in zip(run[f"{on}_epochs"], run[f"{on}_top1"], strict=True)
        )
        differs = run["differs"]
        changes = (
            "?"
            if differs is None
            else "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differs.items())
            or ("(baseline)" if i == 0 else "(same settings)")
        )
        lines.append(
            f"| {run['run']} | {run['arch'] or '?'} | {run['recipe'] or '?'} | {run['epochs_done']} / {planned} | "
            f"{f'{train:.2f}' if train is not None else '-'} | {_latest(run, 'val')} | {_latest(run, 'test')} "
            f"| {points or '-'} | {changes} |"
        )
    lines.append("")
    lines.append(
        "Compared on the training images each run held out ([train] holdout); the test split is logged "
        "beside them and chooses nothing."
        if on == "val"
        else "Not every run held training images out, so the curves are the test split's: a recipe chosen "
        "from them is chosen on the test split (hold images out with [train] holdout)."
    )
    return "\n".join(lines) + "\n"


def _latest(run: dict[str, Any], split: str) -> str:
    final = run[f"final_{split}_top1"]
    if final is not None:
        return f"{final:.2f} (final)"
    if run[f"{split}_top1"]:
        return f"{run[f'{split}_top1'][-1]:.2f} (epoch {run[f'{split}_epochs'][-1]})"
    return "-"
