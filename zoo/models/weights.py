"""Pretrained weights as data: the manifest, hash-checked files and downloads, safetensors I/O.

A manifest (`weights/manifest.toml`, and the user's own in `$ZOO_CACHE/weights/`) lists each tag. Every
load checks the file's sha256; a mismatch is an error that leaves the file as it is.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.labels import load_labels
from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError, reading
from zoo.utils import urls
from zoo.utils.files import atomic_path, read_text
from zoo.utils.lazy import lazy_import
from zoo.utils.names import check_name, split_tag
from zoo.utils.paths import BUILTIN_WEIGHTS, cache_dir, user_weights_dir

safetensors_torch = lazy_import("safetensors.torch")
tomli_w = lazy_import("tomli_w")
torch = lazy_import("torch")

MANIFEST = "manifest.toml"
MAX_MANIFEST_BYTES = 4 << 20


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
    """The entries of one manifest file (none if it does not exist); one sentence naming the entry and
    the field when one is not what the zoo can use."""
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(read_text(path, MAX_MANIFEST_BYTES, "manifest"))
    except tomllib.TOMLDecodeError as e:
        raise ZooError(f"manifest {path} is not valid TOML: {e}.") from None
    presets, weights = doc.get("preprocess", {}), doc.get("weights", {})
    if not isinstance(presets, dict) or not isinstance(weights, dict):
        raise ZooError(f'manifest {path}: `weights` and `preprocess` must be tables ([weights."ARCH.TAG"]).')
    if (
        path.resolve() != (BUILTIN_WEIGHTS / MANIFEST).resolve()
    ):  # a user's manifest may use the zoo's presets
        presets = {**builtin_presets(), **presets}
    specs = {}
    for name, entry in weights.items():
        try:
            with reading(f"the entry {name!r} of the manifest {path}"):
                specs[name] = _spec_from_entry(name, entry, presets, path.parent)
        except ZooError as e:
            raise ZooError(f"manifest {path}: entry {name!r}: {e}") from None
    return specs


_HEX = re.compile(r"[0-9a-f]+")
_KNOWN = {"arch", "dataset", "labels", "preprocess", "file", "url", "sha256", "sha256_prefix", "default"}
_KNOWN |= {"metrics", "recipe", "command", "rename"}


def _field(e: dict, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = e.get(key, default)
    if value is not default and not isinstance(value, kind):
        name = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ZooError(
            f"`{key}` must be a {name.replace('str', 'string').replace('dict', 'table')}, not {value!r}."
        )
    return value


def _spec_from_entry(name: str, e: Any, presets: dict, base: Path) -> WeightSpec:
    """One entry, checked field by field: a name ARCH.TAG, a known label set, a usable preprocessing, a
    plain file name beside the manifest or an http(s) url, and the hash every load is checked against
    (a full sha256; an 8+ digit prefix only for a url whose file name carries it, torchvision's way)."""
    arch, tag = split_tag(name)
    if not tag:
        raise ZooError("the name must be ARCH.TAG.")
    if not isinstance(e, dict):
        raise ZooError(f"an entry must be a table, not {e!r}.")
    if e.get("arch") != arch:
        raise ZooError(f"the name must be '{e.get('arch')}.TAG': the part before the dot is its `arch`.")
    dataset = check_name(_field(e, "dataset", str, ""), "dataset")
    labels = check_name(_field(e, "labels", str, ""), "label set")
    load_labels(labels)
    pre = e.get("preprocess")
    if isinstance(pre, str):
        if pre not in presets:
            raise ZooError(f"`preprocess` names the unknown preset {pre!r}.")
        pre = presets[pre]
    preprocess = PreprocessSpec.from_dict(pre, "`preprocess`")
    file, url = _field(e, "file", str), _field(e, "url", str)
    if file is not None and (not file or Path(file).name != file or file.startswith(".")):
        raise ZooError(f"`file` must be a plain file name beside the manifest, not {file!r}.")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ZooError(f"`url` must be an http(s) address, not {url!r}.")
    if file is None and url is None:
        raise ZooError("give `file` (beside the manifest) or `url`: where the weights are.")
    sha256, prefix = _field(e, "sha256", str), _field(e, "sha256_prefix", str)
    if sha256 is not None and not (len(sha256) == 64 and _HEX.fullmatch(sha256.lower())):
        raise ZooError(f"`sha256` must be the file's 64 hex digits, not {sha256!r}.")
    if prefix is not None and not (
        url and 8 <= len(prefix) <= 64 and _HEX.fullmatch(prefix.lower()) and prefix in url.rsplit("/", 1)[-1]
    ):
        raise ZooError(
            f"`sha256_prefix` {prefix!r} must be 8+ hex digits found in the url's file name "
            "(torchvision's convention); give the full `sha256` otherwise."
        )
    if sha256 is None and prefix is None:
        raise ZooError("`sha256` is missing: every weights file is checked against its hash.")
    rename = _field(e, "rename", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
        raise ZooError("`rename` must map key prefixes (strings) to key prefixes.")
    return WeightSpec(
        name=name,
        arch=arch,
        dataset=dataset,
        labels=labels,
        preprocess=preprocess,
        file=base / file if file else None,
        url=url,
        sha256=sha256.lower() if sha256 else None,
        sha256_prefix=prefix.lower() if prefix else None,
        default=_field(e, "default", bool, False),
        metrics=dict(_field(e, "metrics", dict, {})),
        recipe=_field(e, "recipe", str, ""),
        command=_field(e, "command", str, ""),
        rename=dict(rename),
        extra={k: v for k, v in e.items() if k not in _KNOWN},
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
    if not expected:  # the manifest reader refuses entries without a hash: this is a caller's mistake
        raise ZooError("no hash to check the file against; the manifest entry needs its sha256.")
    return digest.startswith(expected.lower())


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


MAX_DOWNLOAD_BYTES = 2 << 30  # the largest file the zoo fetches (CIFAR-10 is 170 MB, ResNet-152 241 MB)
DOWNLOAD_DEADLINE_S = 3600.0  # for the whole transfer (zoo.utils.urls)


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    md5: str | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    deadline_s: float = DOWNLOAD_DEADLINE_S,
) -> Path:
    """Fetch `url` to `dest`, verifying its hash before it appears under that name. Bounded in size (the
    announced length, else `max_bytes`) and in time (`deadline_s` for the whole transfer), so neither an
    endless body nor a trickling server fills the disk or holds the command forever."""
    algorithm, expected = _expected(sha256, sha256_prefix, md5)
    if not expected:
        raise ZooError(f"no hash to check {url} against: the zoo downloads only files whose hash it knows.")
    with atomic_path(dest) as tmp:
        h = hashlib.new(algorithm)
        try:
            with open(tmp, "wb") as out:
                for chunk in urls.stream(url, max_bytes, deadline_s):
                    h.update(chunk)
                    out.write(chunk)
        except urls.NETWORK_ERRORS as e:
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
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


def check_weights(state: dict, what: str) -> None:
    """Weights a network can compute with: floating-point parameters and statistics, every value finite,
    BatchNorm variances not negative (integer counters, such as num_batches_tracked, may stay integers).
    NaN, Inf or integer weights load without complaint and answer `nan%` or a flat 1/classes."""
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if not value.is_floating_point():
            raise ZooError(
                f"{what}: {key} holds {str(value.dtype).removeprefix('torch.')} values, not floats."
            )
        if not bool(torch.isfinite(value).all()):
            raise ZooError(f"{what}: {key} holds NaN or infinite values; these weights cannot compute.")
        if key.endswith("running_var") and bool((value < 0).any()):
            raise ZooError(
                f"{what}: {key} holds negative variances; these are not trained BatchNorm statistics."
            )


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


def replaced_manifest_entry(manifest: Path, name: str, entry: dict[str, Any]) -> str:
    """The text of `manifest` with `entry` in the place of `[weights."name"]` and its sub-tables; every
    other line as it was (comments included). Read back before it is returned: the other entries must come
    out unchanged and this one as given, or the manifest is left to be edited by hand."""
    text = manifest.read_text()
    before = tomllib.loads(text)
    own = (f'[weights."{name}"]', f'[weights."{name}".')
    kept: list[str] = []
    dropped: list[str] = []
    at, inside = None, False

    def keep_trailing_comments() -> None:  # those just above the next table (or the end) are not its
        tail = len(dropped)
        while tail and (not dropped[tail - 1].strip() or dropped[tail - 1].startswith("#")):
            tail -= 1
        kept.extend(x for x in dropped[tail:] if x.strip())
        dropped.clear()

    for line in text.splitlines(keepends=True):
        if line.startswith("["):  # a table header (tomli_w indents the items of multi-line arrays)
            if inside and not line.startswith(own):
                keep_trailing_comments()
            inside = line.startswith(own)
            if inside and at is None:
                at = len(kept)
        (dropped if inside else kept).append(line)
    keep_trailing_comments()
    if at is None or name not in before.get("weights", {}):
        raise ZooError(f"{name} is not an entry of {manifest}: there is nothing of it to replace there.")
    block = tomli_w.dumps({"weights": {name: _without_none(entry)}})
    new = "".join(kept[:at]) + block + ("\n" if at < len(kept) else "") + "".join(kept[at:])
    after = tomllib.loads(new)
    others = {k: v for k, v in before["weights"].items() if k != name}
    if (
        {k: v for k, v in after.items() if k != "weights"}
        != {k: v for k, v in before.items() if k != "weights"}
        or {k: v for k, v in after["weights"].items() if k != name} != others
        or after["weights"][name] != tomllib.loads(block)["weights"][name]
    ):
        raise ZooError(f"{manifest} is laid out in a way the zoo cannot rewrite {name} in; edit it by hand.")
    return new


def _without_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_none(x) for k, x in v.items() if x is not None}
    return [_without_none(x) for x in v] if isinstance(v, list | tuple) else v
