"""The registry: architecture names and pretrained `arch.tag` names, resolved from data.

Architectures come from `archs.toml`, pretrained tags from the weights manifests. Listing and describing
never imports torch; only `create_model` does.
"""

from __future__ import annotations

import difflib
import fnmatch
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError
from zoo.models.weights import (
    WeightSpec,
    check_weights,
    manifest_paths,
    read_checkpoint,
    read_manifest,
    weights_file,
)
from zoo.utils.lazy import lazy_import
from zoo.utils.names import split_tag

torch = lazy_import("torch")

if TYPE_CHECKING:
    from torch import nn


@cache
def archs() -> dict[str, dict[str, Any]]:
    with open(Path(__file__).with_name("archs.toml"), "rb") as f:
        return tomllib.load(f)


@cache
def pretrained_tags() -> dict[str, WeightSpec]:
    tags: dict[str, WeightSpec] = {}
    for path in manifest_paths():
        for name, spec in read_manifest(path).items():
            if spec.arch not in archs():
                raise ZooError(f"manifest {path}: {name} names the unknown architecture {spec.arch!r}.")
            if name in tags:  # a user's manifest adds tags; it never silently replaces the zoo's own
                raise ZooError(
                    f"manifest {path}: {name} is already a tag of {tags[name].file or tags[name].url}; "
                    "rename the entry (a manifest adds tags, it cannot replace one)."
                )
            tags[name] = spec
    return tags


def reload() -> None:
    """Forget cached manifests (after a manifest was written)."""
    pretrained_tags.cache_clear()


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Architecture names matching a shell-style pattern; with pretrained=True, the `arch.tag` names
    (untrained timing weights, `zoo bench --untrained`, are not pretrained and are left out)."""
    order = {a: i for i, a in enumerate(archs())}  # the order of archs.toml: ImageNet, CIFAR, plain
    tags = [n for n, s in pretrained_tags().items() if not s.extra.get("untrained")]
    names = tags if pretrained else list(archs())  # tags keep their manifest order
    matches = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return sorted(matches, key=lambda n: (order[n.split(".")[0]], names.index(n)))


def default_tag(arch: str) -> WeightSpec | None:
    """The tag a bare arch name means: the one marked default, or the only one; never untrained weights."""
    tags = [s for s in pretrained_tags().values() if s.arch == arch and not s.extra.get("untrained")]
    return next((s for s in tags if s.default), tags[0] if len(tags) == 1 else None)


def resolve(name: str) -> tuple[str, WeightSpec | None]:
    """(architecture, its weights) for `arch` or `arch.tag`; a bare arch gets its default tag, if any."""
    arch, tag = split_tag(name)
    if arch not in archs():
        raise ZooError(f"unknown model {name!r}{_suggest(name, [*archs(), *pretrained_tags()])}")
    if not tag:
        return arch, default_tag(arch)
    spec = pretrained_tags().get(name)
    if spec is None:
        tags = [n for n in pretrained_tags() if n.startswith(arch + ".")]
        known = f"; its tags are {', '.join(tags)}" if tags else f"; {arch} has no pretrained tags yet"
        raise ZooError(f"unknown tag {name!r}{known}.")
    return arch, spec


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build `arch` or `arch.tag` in eval mode; pretrained=True loads the tag's hash-checked weights.

    kwargs override the architecture: num_classes, shortcut ("A", "B", "C"), variant ("v1", "v1.5"),
    zero_init_residual. The model carries `zoo_arch` and `zoo_weights` (the WeightSpec, or None).
    """
    from zoo.models.resnet import build

    arch, spec = resolve(name)
    if pretrained and spec is None:
        raise ZooError(f"{arch} has no pretrained weights yet; train it with `zoo train {arch}`.")
    if spec is not None:
        if pretrained and kwargs.get("num_classes", spec.num_classes) != spec.num_classes:
            raise ZooError(
                f"{spec.name} has {spec.num_classes} classes; it cannot load as {kwargs['num_classes']}."
            )
        kwargs.setdefault("num_classes", spec.num_classes)
    try:
        model = build(archs()[arch], **kwargs)
    except (TypeError, ValueError) as e:
        raise ZooError(f"cannot build {arch}: {e}.") from None
    if pretrained:
        load_weights(model, spec)
    model.zoo_arch = arch
    model.zoo_weights = spec if pretrained else None
    return model.eval()


def load_weights(model: nn.Module, spec: WeightSpec) -> None:

    load_state(model, read_checkpoint(weights_file(spec)), f"the weights of {spec.name}", spec.arch)


def load_state(model: nn.Module, state: dict, what: str, arch: str) -> None:
    """Load a state dict strictly, or raise one sentence saying how `what` does not fit `arch`."""
    own = model.state_dict()
    # Checkpoints saved before PyTorch 0.4.1 have no BatchNorm step counters; like PyTorch, count from 0.
    state = {**{k: torch.zeros_like(v) for k, v in own.items() if k.endswith("num_batches_tracked")}, **state}
    own = set(own)
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise ZooError(
            f"{what} do not fit {arch}: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})."
        )
    check_weights(state, what)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # same keys, other shapes
        raise ZooError(f"{what} do not fit {arch}: {str(e).strip().splitlines()[-1].strip()}") from None


def describe(name: str) -> dict[str, Any]:
    """Everything the zoo knows of an architecture or tag, as plain data (no torch import)."""
    arch, spec = resolve(name)
    a = archs()[arch]
    info: dict[str, Any] = {
        "name": spec.name if spec else arch,
        "arch": arch,
        "family": a["family"],
        "residual": a["residual"],
        "block": a["block"],
        "layers": a["layers"],
        "shortcut": a["shortcut"],
        "params": a["params"],
        "gmacs": a["gmacs"],
        "input_size": a["input_size"],
        "tags": [n for n in list_models(pretrained=True) if n.startswith(arch + ".")],
        "weights": spec.to_dict() if spec else None,
    }
    return info


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else "; see `zoo list`."
