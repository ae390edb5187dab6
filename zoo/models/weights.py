"""Pretrained weights as data: the manifest, hash-checked files and downloads, safetensors I/O.

A manifest (`weights/manifest.toml`, and the user's own in `$ZOO_CACHE/weights/`) lists each tag. Every
load checks the file's sha256; a mismatch is an error that leaves the file as it is.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.labels import load_labels
from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import
from zoo.utils.paths import BUILTIN_WEIGHTS, cache_dir, user_weights_dir

safetensors_torch = lazy_import("safetensors.torch")
tomli_w = lazy_import("tomli_w")
torch = lazy_import("torch")

MANIFEST = "manifest.toml"


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained tag, as its manifest entry describes it."""

    name: str  # arch.tag
    arch: str
    dataset: str
    labels: str
    preprocess: PreprocessSpec
    file: Path | None = None
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    default: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: str = ""
    command: str = ""
    rename: dict[str, str] = field(default_factory=dict)  # key prefixes of a foreign checkpoint -> ours
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def num_classes(self) -> int:
        return len(load_labels(self.labels))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "dataset": self.dataset,
            "labels": self.labels,
            "num_classes": self.num_classes,
            "preprocess": self.preprocess.to_dict(),
            "file": str(self.file) if self.file else None,
            "url": self.url,
            "sha256": self.sha256,
            "sha256_prefix": self.sha256_prefix,
            "default": self.default,
            "metrics": self.metrics,
            "recipe": self.recipe,
            "command": self.command,
            "rename": self.rename or None,
            **self.extra,
        }


def manifest_paths() -> list[Path]:
    return [BUILTIN_WEIGHTS / MANIFEST, user_weights_dir() / MANIFEST]


def builtin_presets() -> dict[str, dict[str, Any]]:
    """The named preprocessing presets of the zoo's own manifest (its `[preprocess.NAME]` tables)."""
    return tomllib.loads((BUILTIN_WEIGHTS / "manifest.toml").read_text()).get("preprocess", {})


def read_manifest(path: Path) -> dict[str, WeightSpec]:
    """The entries of one manifest file (none if it does not exist)."""
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"manifest {path} is not valid TOML: {e}.") from None
    presets = doc.get("preprocess", {})
    specs = {}
    for name, entry in doc.get("weights", {}).items():
        try:
            specs[name] = _spec_from_entry(name, dict(entry), presets, path.parent)
        except (KeyError, TypeError) as e:
            raise ZooError(f"manifest {path}: entry {name!r} is missing or has a bad field ({e}).") from None
    return specs


def _spec_from_entry(name: str, e: dict, presets: dict, base: Path) -> WeightSpec:
    if "." not in name or name.split(".", 1)[0] != e["arch"]:
        raise TypeError(f"the name must be '{e['arch']}.TAG'")
    pre = e.pop("preprocess")
    if isinstance(pre, str):
        pre = presets[pre]
    known = {
        "arch",
        "dataset",
        "labels",
        "file",
        "url",
        "sha256",
        "sha256_prefix",
        "default",
        "metrics",
        "recipe",
        "command",
        "rename",
    }
    return WeightSpec(
        name=name,
        arch=e["arch"],
        dataset=e["dataset"],
        labels=e["labels"],
        preprocess=PreprocessSpec.from_dict(pre),
        file=base / e["file"] if e.get("file") else None,
        url=e.get("url"),
        sha256=e.get("sha256"),
        sha256_prefix=e.get("sha256_prefix"),
        default=bool(e.get("default", False)),
        metrics=dict(e.get("metrics", {})),
        recipe=e.get("recipe", ""),
        command=e.get("command", ""),
        rename=dict(e.get("rename", {})),
        extra={k: v for k, v in e.items() if k not in known},
    )


# --- hashes and atomic files ------------------------------------------------------------------------


def sha256_file(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(sha256: str | None, sha256_prefix: str | None, md5: str | None) -> tuple[str, str | None]:
    """(algorithm, the expected hex digest or its prefix): md5 only where nothing else is published."""
    return ("md5", md5) if md5 else ("sha256", sha256 or sha256_prefix)


def _matches(digest: str, expected: str | None) -> bool:
    return not expected or digest.startswith(expected.lower())


def verify_hash(
    path: Path, sha256: str | None = None, sha256_prefix: str | None = None, md5: str | None = None
) -> str:
    """The file's hash (md5 where only that is published, as for CIFAR-10), or ZooError when it differs
    from the expected one (the file is left as is)."""
    algorithm, expected = _expected(sha256, sha256_prefix, md5)
    digest = sha256_file(path, algorithm)
    if not _matches(digest, expected):
        raise ZooError(
            f"{path} has {algorithm} {digest[:16]}…, but the manifest expects {expected[:16]}…; "
            "the file is corrupt or not the published one (it was left untouched: delete it to fetch it again)."
        )
    return digest


def mirrored(url: str) -> str:
    """`url`, or the same file name under $ZOO_MIRROR (a base URL: a company mirror, an offline copy
    served over HTTP). The hash checked is the manifest's either way, so a mirror cannot change a file."""
    mirror = os.environ.get("ZOO_MIRROR")
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if mirror else url


def download(
    url: str, dest: Path, sha256: str | None = None, sha256_prefix: str | None = None, md5: str | None = None
) -> Path:
    """Fetch `url` to `dest`, verifying its hash before it appears under that name."""
    with atomic_path(dest) as tmp:
        algorithm, expected = _expected(sha256, sha256_prefix, md5)
        h = hashlib.new(algorithm)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise ZooError(
                f"cannot download {url} ({reason}); check the connection, or place the file at {dest} yourself."
            ) from None
        digest = h.hexdigest()
        if not _matches(digest, expected):
            raise ZooError(
                f"the download of {url} has {algorithm} {digest[:16]}…, not the published {expected[:16]}…; "
                "it was discarded."
            )
    return dest


# --- resolving a tag to a verified safetensors file -----------------------------------------------


def weights_file(spec: WeightSpec) -> Path:
    """A verified local safetensors file for `spec`, downloaded and converted when needed."""
    if spec.file is not None:
        if not spec.file.is_file():
            raise ZooError(f"the weights of {spec.name} are missing: {spec.file} does not exist.")
        verify_hash(spec.file, spec.sha256, spec.sha256_prefix)
        return spec.file
    if not spec.url:
        raise ZooError(f"the manifest entry of {spec.name} has neither a file nor a url.")
    fetched = cache_dir() / "downloads" / spec.url.rsplit("/", 1)[-1]
    if fetched.is_file():
        verify_hash(fetched, spec.sha256, spec.sha256_prefix)
    else:
        download(mirrored(spec.url), fetched, spec.sha256, spec.sha256_prefix)
    if fetched.suffix == ".safetensors":
        return fetched
    return _converted(fetched, spec)


def _converted(pth: Path, spec: WeightSpec) -> Path:
    """A safetensors copy of a verified .pth, with its own recorded hash."""
    out = cache_dir() / "weights" / f"{spec.name}-{pth.stem}.safetensors"
    sidecar = out.with_suffix(".sha256")
    if out.is_file() and sidecar.is_file():
        verify_hash(out, sidecar.read_text().strip())
        return out
    save_safetensors(renamed(read_checkpoint(pth), spec.rename), out)
    with atomic_path(sidecar) as tmp:
        tmp.write_text(sha256_file(out) + "\n")
    return out


def read_checkpoint(path: Path) -> dict:
    """A state dict from a .pth/.pt (weights only, no pickle code) or .safetensors file."""
    if not Path(path).is_file():
        raise ZooError(f"{path} does not exist.")
    if path.suffix == ".safetensors":
        try:
            return safetensors_torch.load_file(path)
        except Exception as e:  # SafetensorError, OSError, ...: a corrupt or foreign file
            raise ZooError(f"{path} is not a readable safetensors file ({type(e).__name__}).") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a foreign or corrupt file
        raise ZooError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}).") from None
    for key in ("state_dict", "model", "model_state_dict", "ema"):  # common training-script wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ZooError(f"{path} does not hold a state dict of tensors.")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in obj.items()}


def renamed(state: dict, prefixes: dict[str, str]) -> dict:
    """`state` with each key's leading `old` prefix replaced by `new` (e.g. {"linear.": "fc."})."""
    out = {}
    for key, value in state.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        out[prefixes[old] + key.removeprefix(old) if old is not None else key] = value
    return out


def save_safetensors(state: dict, dest: Path, metadata: dict[str, str] | None = None) -> Path:
    with atomic_path(dest) as tmp:
        safetensors_torch.save_file(
            {k: v.detach().contiguous() for k, v in state.items()}, str(tmp), metadata=metadata
        )
    return dest


# --- writing manifest entries -----------------------------------------------------------------------


def append_manifest_entry(manifest: Path, name: str, entry: dict[str, Any]) -> None:
    """Add `[weights."name"]` to a manifest file, atomically; the name must be new there. Fields that
    are None are left out (TOML has no null)."""
    existing = manifest.read_text() if manifest.is_file() else ""
    if name in read_manifest(manifest):
        raise ZooError(f"{name} is already in {manifest}; choose another tag.")
    block = tomli_w.dumps({"weights": {name: _without_none(entry)}})
    with atomic_path(manifest) as tmp:
        tmp.write_text(existing + "\n" + block)


def _without_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_none(x) for k, x in v.items() if x is not None}
    return [_without_none(x) for x in v] if isinstance(v, list | tuple) else v
