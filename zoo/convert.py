"""Import a foreign checkpoint (a torchvision `.pth` state dict, say) as a zoo tag: safetensors + manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.paths import user_weights_dir
from zoo.weights import (
    MANIFEST,
    WeightSpec,
    append_manifest_entry,
    read_checkpoint,
    save_safetensors,
    sha256_file,
)


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
) -> WeightSpec:
    """Check that `checkpoint` loads strictly into the architecture of `name` (arch.tag), write it as
    safetensors into `out_dir` (default: the user's weights folder) and add its manifest entry there."""
    from zoo import registry
    from zoo.labels import load_labels

    arch, _, tag = name.partition(".")
    if not tag:
        raise ZooError(f"name the new weights as ARCH.TAG (e.g. {arch}.mine), not {name!r}.")
    if name in registry.pretrained_tags():
        raise ZooError(f"{name} already exists; choose another tag.")
    labels = labels or dataset
    state = read_checkpoint(Path(checkpoint))
    model = registry.create_model(arch, num_classes=len(load_labels(labels)))
    registry.load_state(model, state, str(checkpoint), arch)
    out_dir = Path(out_dir) if out_dir else user_weights_dir()
    manifest = out_dir / MANIFEST
    if isinstance(preprocess, str):  # a preset of the built-in manifest, copied so the entry stands alone
        import tomllib

        from zoo.paths import BUILTIN_WEIGHTS

        presets = tomllib.loads((BUILTIN_WEIGHTS / MANIFEST).read_text()).get("preprocess", {})
        if preprocess not in presets:
            raise ZooError(f"unknown preprocessing preset {preprocess!r}; known: {', '.join(presets)}.")
        preprocess = presets[preprocess]
    weights = out_dir / f"{name}.safetensors"
    if weights.exists():
        raise ZooError(f"{weights} already exists; choose another tag or remove it.")
    save_safetensors(model.state_dict(), weights, metadata={"name": name, "source": str(checkpoint)})
    entry = {
        "arch": arch,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "dataset": dataset,
        "labels": labels,
        "preprocess": preprocess,
        "metrics": metrics or {},
        "recipe": recipe,
        "command": command or f"zoo import-weights {checkpoint} {name}",
        "default": default,
        **(extra or {}),
    }
    try:
        append_manifest_entry(manifest, name, entry)
    except BaseException:
        weights.unlink(missing_ok=True)  # no weights file without its manifest entry
        raise
    registry.reload()
    return registry.pretrained_tags()[name]
