"""Ship a training run as a pretrained tag: its weights as safetensors plus a manifest entry that records
the metrics, the recipe and its changes, the exact command, the wall time and the hardware."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

from zoo.data.datasets import dataset
from zoo.errors import ZooError
from zoo.evaluate import evaluate
from zoo.models import registry
from zoo.models.checkpoints import import_checkpoint
from zoo.models.weights import MANIFEST, WeightSpec, read_manifest
from zoo.train.recipe import RECIPES, recipe_file
from zoo.train.runs import (
    CURVES,
    METRICS,
    SUMMARY,
    WEIGHTS,
    check_summary,
    metrics,
    read_json,
    run_command,
    state,
)
from zoo.utils.files import atomic_path, output_dir
from zoo.utils.names import split_tag
from zoo.utils.paths import user_weights_dir


def publish_run(
    run: Path, name: str, weights_dir: Path | None = None, data: str | None = None, replace: bool = False
) -> WeightSpec:
    """Evaluate a finished run on the test split under `data` (None: $ZOO_DATA) and register it as `name`.
    With `replace`, `name` is a tag of `weights_dir` that the run takes the place of, only if it scores a
    higher single-crop top-1 on the same test split (the entry records what it replaced)."""
    s = read_json(run / SUMMARY)
    if s is None and not (run / METRICS).is_file():
        raise ZooError(f"{run} is not a finished `zoo train` run (no {SUMMARY}).")
    if s is None or not s.get("complete"):
        raise ZooError(_unfinished(run))
    check_summary(s, run / SUMMARY)
    arch, tag = split_tag(name)
    if not tag or arch != s["arch"]:
        raise ZooError(f"{run} trained {s['arch']}; publish it as {s['arch']}.TAG, not {name}.")
    if not replace:
        check_new_tag(name, arch)
    if s["test_images"] < 1:
        raise ZooError(
            f"{run} was never tested (test_images {s['test_images']}): a tag's figures are measured on the "
            "test split; finish or rerun it with a test split."
        )
    weights_dir = output_dir(weights_dir or user_weights_dir(), "weights folder")  # before measuring
    old = _replaced(name, weights_dir) if replace else None
    # The manifest's numbers are measured by `zoo eval` on the saved file, not taken from the training log.
    result = evaluate([str(run)], data, split="test")
    if old is not None:  # the tag it would replace, measured now on the same images by the same code
        before = evaluate([name], data, split="test")["top1"]
        if not result["top1"] > before:
            raise ZooError(
                f"{run} scores {result['top1']:.2f}% top-1 on these {result['n']:,} test images, {name} "
                f"{before:.2f}%: the tag stays as it is (a tag is replaced only by a better one)."
            )
    flip = evaluate([str(run)], data, split="test", protocol="flip")

    spec = import_checkpoint(
        run / WEIGHTS,
        name,
        dataset=s["dataset"],
        preprocess=dataset(s["dataset"])["preprocess"],
        out_dir=weights_dir,
        metrics={
            "top1": round(result["top1"], 2),
            "top5": round(result["top5"], 2),
            "top1_flip": round(flip["top1"], 2),
            "split": dataset(s["dataset"])["test_split"],
            "source": "zoo eval (single crop; top1_flip: flip averaging)",
        },
        recipe=s.get("recipe_file") or _recipe_of_older_run(s["recipe"]),
        command=run_command(run),  # how the run was started, not the --resume that finished it
        default=old.default if old else _first_of_its_arch(arch),
        replace=old is not None,
        extra={
            "epochs": s["epochs_done"],
            "steps": s["steps"],
            "complete_recipe": s["complete"],
            "wall_time_min": round(s["wall_s"] / 60, 1),
            # robust to a machine shared or paused meanwhile: the median epoch of the training log
            "epoch_s_median": _median_epoch_s(run, s["train_images"]),
            **_epoch_s_by_threads(run, s["train_images"]),
            "hardware": s["hardware"],
            "changes_from_paper": s["recipe_doc"].get("changes", []),
            # the teacher (tags and weights' sha256), its temperature and weight, the table and its hash
            **({"distillation": s["distillation"]} if s.get("distillation") else {}),
            **({"replaced": _record_of(old)} if old else {}),
        },
    )
    for log in (METRICS, CURVES):  # the training log ships beside the weights (a replaced tag's goes)
        shipped = spec.file.parent / f"{name}.{log}"
        if (run / log).is_file():
            with atomic_path(shipped) as tmp:
                shutil.copyfile(run / log, tmp)
        else:
            shipped.unlink(missing_ok=True)
    return spec


def _recipe_of_older_run(name: str) -> str:
    """A run finished before summaries named their recipe's file: the built-in of its name, else the name."""
    builtin = RECIPES / f"{name}.toml"
    return recipe_file(builtin) if builtin.is_file() else name


def _epoch_seconds(run: Path, train_images: int) -> list[tuple[int | None, float]]:
    """(CPU threads or None where the row predates that field, seconds) of each epoch in the run's log."""
    rows = [
        r for r in metrics(run) if isinstance(r.get("images_per_s"), int | float) and r["images_per_s"] > 0
    ]
    return [(row.get("threads"), train_images / row["images_per_s"]) for row in rows]


def _median_epoch_s(run: Path, train_images: int) -> float | None:
    seconds = [t for _, t in _epoch_seconds(run, train_images)]
    return round(statistics.median(seconds), 1) if seconds else None


def _epoch_s_by_threads(run: Path, train_images: int) -> dict[str, list[dict[str, float]]]:
    """Epochs and median epoch time per CPU thread count, for a run resumed with other OMP_NUM_THREADS
    (rows logged before the trainer recorded `threads` are left out; {} when none has it)."""
    by: dict[int, list[float]] = {}
    for n, t in _epoch_seconds(run, train_images):
        if n is not None:
            by.setdefault(n, []).append(t)
    rows = [
        {"threads": n, "epochs": len(ts), "median_s": round(statistics.median(ts), 1)}
        for n, ts in sorted(by.items())
    ]
    return {"epoch_s_by_threads": rows} if rows else {}


def _unfinished(run: Path) -> str:
    """A run that has not reached the end of its recipe: how far it got, and the command that continues it."""
    st = state(run)
    planned = st["epochs_planned"] or "?"
    go_on = st["continue_with"] or "zoo train ... --resume"
    return f"{run} has trained {st['epochs_done']} of its {planned} epochs; finish it first: `{go_on}`."


def check_new_tag(name: str, arch: str) -> None:
    """Refuse, before anything is measured or trained, a tag that cannot be published new for `arch`."""
    tag_arch, tag = split_tag(name)
    if not tag or tag_arch != arch:
        raise ZooError(f"a run of {arch} is published as {arch}.TAG, not {name}.")
    if name in registry.pretrained_tags():
        top1 = registry.pretrained_tags()[name].metrics.get("top1")
        raise ZooError(
            f"{name} is already a tag (top-1 {top1}); publish under another tag, or put a finished run in "
            f"its place with `zoo publish RUN {name} --replace` (done only if the run scores higher)."
        )


def _first_of_its_arch(arch: str) -> bool:
    """The first tag of the zoo's own for an arch becomes what the bare name means (imported reference
    checkpoints are never marked default, so they step aside); a replaced tag keeps its standing."""
    return not any(t.default for t in registry.pretrained_tags().values() if t.arch == arch)


def _replaced(name: str, weights_dir: Path) -> WeightSpec:
    """The tag `name` as the manifest in `weights_dir` has it, which `zoo publish --replace` may replace:
    the very tag the zoo loads under that name."""
    manifest = weights_dir / MANIFEST
    spec = read_manifest(manifest).get(name) if manifest.is_file() else None
    loaded = registry.pretrained_tags().get(name)
    if spec is None:
        where = (
            f"; it is in {loaded.file.parent / MANIFEST}: give --weights-dir {loaded.file.parent}"
            if loaded is not None and loaded.file is not None
            else "; publish it without --replace"
            if loaded is None
            else ""
        )
        raise ZooError(f"--replace: {name} is not a tag of {manifest}{where}.")
    if loaded is None or loaded.sha256 != spec.sha256:
        raise ZooError(
            f"--replace: {name} of {manifest} is not the {name} the zoo loads (give the --weights-dir "
            "whose manifest it reads)."
        )
    return spec


def _record_of(old: WeightSpec) -> dict:
    """What a replaced tag was: its figures, its file's hash (the file stays in git history), its command."""
    figures = {k: old.metrics[k] for k in ("top1", "top1_flip") if k in old.metrics}
    return {**figures, "sha256": old.sha256, "command": old.command}
