"""Checkpoints as zoo tags: a foreign checkpoint (a torchvision `.pth` state dict, say) imported as
safetensors + a manifest entry, and `ARCH.untrained`, seeded random weights registered for timing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from zoo.data.datasets import dataset as dataset_entry
from zoo.data.datasets import num_classes, of_family
from zoo.data.labels import load_labels
from zoo.errors import ZooError
from zoo.models import registry
from zoo.models.weights import (
    MANIFEST,
    WeightSpec,
    append_manifest_entry,
    builtin_presets,
    read_checkpoint,
    read_manifest,
    replaced_manifest_entry,
    save_safetensors,
    sha256_file,
)
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import
from zoo.utils.names import check_name, split_tag
from zoo.utils.paths import user_weights_dir

torch = lazy_import("torch")


def import_checkpoint(
    checkpoint: Path,
    name: str,
    dataset: str = "imagenet1k",
    labels: str | None = None,
    preprocess: str | dict[str, Any] = "imagenet_256",
    out_dir: Path | None = None,
    metrics: dict[str, Any] | None = None,
    recipe: str = "",
    command: str = "",
    default: bool = False,
    extra: dict[str, Any] | None = None,
    replace: bool = False,
) -> WeightSpec:
    """Check that `checkpoint` loads strictly into the architecture of `name` (arch.tag), write it as
    safetensors into `out_dir` (default: the user's weights folder) and add its manifest entry there.
    With `replace`, `name` is an entry of that manifest (`replaced_manifest_entry` refuses any other), and
    its weights file and entry are replaced (whether the new weights deserve it is the caller's decision:
    `zoo publish --replace`)."""
    arch, tag = split_tag(name)
    if not tag:
        raise ZooError(f"name the new weights as ARCH.TAG (e.g. {arch}.mine), not {name!r}.")
    if name in registry.pretrained_tags() and not replace:
        raise ZooError(f"{name} already exists; choose another tag.")
    check_name(dataset, "dataset")
    labels = check_name(labels or dataset, "label set")
    state = read_checkpoint(Path(checkpoint))
    model = registry.create_model(arch, num_classes=len(load_labels(labels)))
    registry.load_state(model, state, f"the weights in {checkpoint}", arch)
    out_dir = Path(out_dir) if out_dir else user_weights_dir()
    manifest = out_dir / MANIFEST
    if isinstance(preprocess, str):  # a preset of the built-in manifest, copied so the entry stands alone
        presets = builtin_presets()
        if preprocess not in presets:
            raise ZooError(f"unknown preprocessing preset {preprocess!r}; known: {', '.join(presets)}.")
        preprocess = presets[preprocess]
    weights = out_dir / f"{name}.safetensors"
    if weights.exists() and not replace:
        raise ZooError(f"{weights} already exists; choose another tag or remove it.")
    with atomic_path(weights) as new:  # the file takes its place only once its entry is written
        save_safetensors(model.state_dict(), new, metadata={"name": name, "source": str(checkpoint)})
        entry = {
            "arch": arch,
            "file": weights.name,
            "sha256": sha256_file(new),
            "dataset": dataset,
            "labels": labels,
            "preprocess": preprocess,
            "metrics": metrics or {},
            "recipe": recipe,
            "command": command or f"zoo import-weights {checkpoint} {name}",
            "default": default,
            **(extra or {}),
        }
        if replace:
            with atomic_path(manifest) as tmp:
                tmp.write_text(replaced_manifest_entry(manifest, name, entry))
        else:
            append_manifest_entry(manifest, name, entry)
    registry.reload()
    return read_manifest(manifest)[name]  # also when out_dir is not a manifest the registry reads


UNTRAINED = "untrained"


def untrained(arch: str, seed: int = 0, out_dir: Path | None = None) -> WeightSpec:
    """`ARCH.untrained`: the architecture with seeded random weights, registered (once) in the user's
    weights folder, so that `zoo export` and `zoo bench` can time an architecture that has no trained
    weights here, as timm's benchmark does. Its accuracy means nothing; its speed, and how closely its
    artifacts follow it, do. The entry says `untrained = true`, and reports built on it say so."""
    arch = registry.resolve(arch)[0]  # an unknown name gets its one sentence, with suggestions
    name = f"{arch}.{UNTRAINED}"
    existing = registry.pretrained_tags().get(name)
    if existing is not None:
        return existing

    dataset = of_family(registry.archs()[arch]["family"])
    preprocess = dataset_entry(dataset)["preprocess"]
    torch.manual_seed(seed)
    model = registry.create_model(arch, num_classes=num_classes(dataset))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_safetensors(model.state_dict(), Path(tmp) / f"{name}.safetensors")
        return import_checkpoint(
            checkpoint,
            name,
            dataset=dataset,
            preprocess=preprocess,
            out_dir=out_dir,
            metrics={"note": "untrained: seeded random weights, for timing only"},
            command=f"zoo bench {arch} --untrained (torch.manual_seed({seed}))",
            extra={"untrained": True, "seed": seed},
        )
