"""The paper's degradation experiment (Section 4.2, Figure 6): plain nets get worse with depth, residual
nets get better. Trains plain and residual twins at two depths with one recipe and plots their curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, device_choice
from zoo.train.recipe import Recipe
from zoo.train.runs import CHECKPOINT, SUMMARY, metrics, read_json
from zoo.train.trainer import TrainConfig, check_trainable, train
from zoo.utils.figures import pyplot, save
from zoo.utils.files import atomic_path, output_dir


def degradation(
    depths: tuple[int, int], recipe: Recipe, data: str | None, out: Path, **train_kwargs: Any
) -> dict:
    """Train plainD and resnetD for both depths; write out/degradation.json and out/degradation.png.
    Run again with the same arguments after an interruption: finished nets are kept, a net cut short
    resumes from its checkpoint. The test split is evaluated after every epoch: Figure 6 draws its curve.
    The depths are taken shallower first; all four nets are checked before the first is trained."""
    shallow, deep = sorted(depths)
    if shallow == deep:
        raise ZooError(
            f"--depths {shallow},{deep}: the experiment compares two different depths, e.g. 20,56."
        )
    depths = (shallow, deep)
    for family in ("plain", "resnet"):
        for depth in depths:
            check_trainable(f"{family}{depth}", recipe)
    device_choice(train_kwargs.get("device", "auto"))
    output_dir(out, "results folder")  # before four nets are trained, not after
    recipe = _figure6_recipe(recipe)
    runs: dict[str, dict[str, Any]] = {}
    for family in ("plain", "resnet"):
        for depth in depths:
            arch = f"{family}{depth}"
            folder = out / arch
            summary = read_json(folder / SUMMARY)
            if not (summary and summary.get("complete")):  # finished earlier: kept; cut short: continued
                resume = (folder / CHECKPOINT).is_file()
                summary = train(TrainConfig(arch, data, recipe, folder, resume=resume, **train_kwargs))
            rows = metrics(folder)
            runs[arch] = {
                "test_top1": summary["top1"],
                "wall_s": summary["wall_s"],
                "train_error": [100 - r["train_top1"] for r in rows],
                "test_error": [100 - r["test_top1"] for r in rows if "test_top1" in r],
                "test_epochs": [r["epoch"] for r in rows if "test_top1" in r],
                "epochs": [r["epoch"] for r in rows],
            }
    result = {"recipe": recipe.name, "depths": list(depths), "runs": runs}

    with atomic_path(out / "degradation.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "degradation.png")
    return result


def _figure6_recipe(recipe: Recipe) -> Recipe:
    """The recipe as Figure 6 needs it: the test split after every epoch, and the nets' own weights
    evaluated, as the paper plots them. An EMA copy (a shipping choice) averages BatchNorm statistics
    along with the weights, and mid-run in a deep plain net they no longer fit: measured here, plain56
    after 7 of 10 epochs scored 48.0% with its own weights and 16.5% as the EMA copy."""
    doc = recipe.with_overrides(eval_every=1).doc  # already a copy of the recipe's
    if doc.get("regularise", {}).get("ema_decay"):
        doc["regularise"]["ema_decay"] = 0.0
        doc["changes"] = [*doc.get("changes", []), "for Figure 6: no EMA; the nets' own weights are tested"]
    return Recipe(recipe.name, recipe.source, doc)


def plot(result: dict[str, Any], path: Path) -> None:
    """Figure 6 style: training error dashed, test error bold, plain on the left, ResNets on the right."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, family in zip(axes, ("plain", "resnet"), strict=True):
        for depth in result["depths"]:
            run = result["runs"][f"{family}{depth}"]
            line = ax.plot(run["epochs"], run["train_error"], "--", linewidth=1)[0]
            ax.plot(
                run.get("test_epochs", run["epochs"]),
                run["test_error"],
                "-",
                linewidth=2,
                color=line.get_color(),
                label=f"{family}-{depth}",
            )
        ax.set(
            title=f"{'plain' if family == 'plain' else 'ResNet'} (dashed: training, bold: test)",
            xlabel="epoch",
        )
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error (%)")
    # the first epochs' errors (60-90%) would squash the last ones, where the finding is
    finals = [e for run in result["runs"].values() for e in (run["train_error"][-1], 100 - run["test_top1"])]
    everything = [e for run in result["runs"].values() for e in run["train_error"] + run["test_error"]]
    axes[0].set_ylim(0, min(max(everything), max(40.0, 2 * max(finals))) + 1)
    epochs = max(len(run["epochs"]) for run in result["runs"].values())
    fig.suptitle(f"CIFAR-10, recipe {result['recipe']}, {epochs} epochs each")
    save(fig, path)


def table(result: dict[str, Any]) -> str:
    """The figure's end points as a markdown table, and whether the paper's two findings showed:
    the deeper plain net trains worse than the shallower one (degradation), the deeper ResNet better."""
    shallow, deep = result["depths"]
    lines = [
        "| net | depth | final training error (%) | final test error (%) |",
        "| --- | --- | --- | --- |",
    ]
    for family in ("plain", "resnet"):
        for depth in (shallow, deep):
            run = result["runs"][f"{family}{depth}"]
            lines.append(
                f"| {family}{depth} | {depth} | {run['train_error'][-1]:.2f} | {100 - run['test_top1']:.2f} |"
            )
    lines.append("")
    for family, paper in (("plain", "higher"), ("resnet", "lower")):
        a, b = result["runs"][f"{family}{shallow}"], result["runs"][f"{family}{deep}"]
        train = "higher" if b["train_error"][-1] > a["train_error"][-1] else "lower"
        test = "higher" if 100 - b["test_top1"] > 100 - a["test_top1"] else "lower"
        verdict = "as in the paper" if train == test == paper else "unlike the paper"
        lines.append(
            f"- {family}{deep} against {family}{shallow}: training error {train}, test error {test} "
            f"({verdict}: {paper} for both)."
        )
    return "\n".join(lines) + "\n"
