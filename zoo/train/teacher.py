"""Knowledge distillation's teacher, for the one recipe: a zoo tag (or an ensemble of tags, whose logits
are averaged), its soft targets computed per batch (online) or read from a stored teacher table, and the
distillation loss (Hinton et al. 2015).

The table: the trainer's CIFAR augmentation (zero-pad `pad`, a crop of the original size, a flip) has
(2 pad + 1)^2 x 2 views of each training image (162 for pad 4), so the teacher's logits for every view
can be computed once and shared by every student. A table is keyed by the teacher's weights (sha256),
the augmentation it covers and the training split's own hash; a table of another key, or one not yet
complete, is refused in one sentence. Only the training split ever reaches the teacher. Written in
chunks with its progress beside it, so `zoo teacher-table` continues where a stopped one ended."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.data.loaders import render, view_count
from zoo.data.preprocess import PreprocessSpec
from zoo.errors import ZooError
from zoo.models import registry
from zoo.models.weights import sha256_file, weights_file
from zoo.utils.files import atomic_path, read_json
from zoo.utils.lazy import installed, lazy_import
from zoo.utils.paths import cache_dir
from zoo.utils.quiet import quiet_exporter

ort = lazy_import("onnxruntime")

TABLE, META = "table.npy", "table.json"


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    weight: float,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """(1 - weight) x cross-entropy with the labels + weight x T^2 x KL(teacher_T || student_T), where _T
    are the softmaxes at temperature T; the T^2 keeps the soft term's gradients at the hard term's scale."""
    hard = F.cross_entropy(student, y, label_smoothing=smoothing)
    if weight == 0:
        return hard
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student / t, dim=1),
        F.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * hard + weight * t * t * soft


class Teacher:
    """The teacher's networks (eval mode) and what identifies them: their tags and weights' sha256."""

    def __init__(self, tags: list[str], device: torch.device | str = "cpu") -> None:
        if not tags:
            raise ZooError('distillation needs a teacher: [distill] teacher = ["resnet56.cifar10"].')
        self.tags, self.device = list(tags), torch.device(device)
        self.models, self.sha256 = [], []
        for tag in self.tags:
            _, spec = registry.resolve(tag)
            if spec is None:
                raise ZooError(
                    f"teacher {tag} has no pretrained weights; name a tag of `zoo list --pretrained`."
                )
            model = registry.create_model(spec.name, pretrained=True).eval().to(self.device)
            self.models.append(model.to(memory_format=torch.channels_last))
            self.sha256.append(sha256_file(weights_file(spec)))
        self.spec: PreprocessSpec = registry.resolve(self.tags[0])[1].preprocess

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The mean logits of the teacher's networks for normalised NCHW images, in fp32."""
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        return torch.stack([m(x).float() for m in self.models]).mean(0)

    def runner(self, threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """What computes the teacher's logits in bulk (its table, or each batch of a run distilled online):
        on a CPU the networks exported to ONNX and run by ONNX Runtime on `threads` threads (2x PyTorch's
        throughput for resnet56 on an AVX2 EPYC), else the networks themselves."""
        if self.device.type != "cpu" or not installed("onnxruntime"):
            return self.logits
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        sessions = [
            ort.InferenceSession(
                _onnx_bytes(m, self.spec.input_shape), options, providers=["CPUExecutionProvider"]
            )
            for m in self.models
        ]

        def run(x: torch.Tensor) -> torch.Tensor:
            batch = np.ascontiguousarray(x.float().numpy())
            return torch.from_numpy(
                np.mean([s.run(None, {s.get_inputs()[0].name: batch})[0] for s in sessions], axis=0)
            )

        return run

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.spec.mean, device=x_uint8.device).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.spec.std, device=x_uint8.device).view(1, 3, 1, 1) * 255
        return (x_uint8.float() - mean) / std

    def key(self, pad: int, hflip: bool, split_sha256: str, n: int) -> dict[str, Any]:
        return {
            "teacher": self.tags,
            "teacher_sha256": self.sha256,
            "pad": pad,
            "hflip": hflip,
            "views": view_count(pad, hflip),
            "train_split_sha256": split_sha256,
            "images": n,
            "normalise": {"mean": list(self.spec.mean), "std": list(self.spec.std)},
        }


def _onnx_bytes(model: torch.nn.Module, shape: tuple[int, int, int]) -> bytes:
    """The network as an in-memory ONNX model with a dynamic batch (the teacher's forward pass only: the
    zoo's deployable export, with its checks and metadata, is export/onnx.py)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with quiet_exporter():
        program = torch.onnx.export(
            model.to(memory_format=torch.contiguous_format),
            (torch.zeros(2, *shape),),
            None,
            dynamo=True,
            dynamic_shapes={"x": {0: batch}},
            external_data=False,
        )
    model.to(memory_format=torch.channels_last)
    return program.model_proto.SerializeToString()


def split_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The training split's own hash: its pixels and labels, so a table never serves other images."""
    h = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def table_dir(key: dict[str, Any]) -> Path:
    """Where the table of `key` lives: $ZOO_CACHE/teacher-tables/<hash of the key>."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "teacher-tables" / f"{'+'.join(key['teacher'])}-{digest}"


def build_table(
    teacher: Teacher,
    images: np.ndarray,
    labels: np.ndarray,
    pad: int,
    hflip: bool,
    folder: Path | None = None,
    chunk: int = 64,
    batch: int = 1024,
    log: Callable[[str], None] = lambda _m: None,
    stop_after: int | None = None,
    started: dict[str, Any] | None = None,
) -> Path:
    """Compute (or continue) the table of the uint8 NHWC training `images`: float16 logits of shape
    (images, views, classes). `stop_after` images: stop there (as a kill would), to continue later.
    `started` (the command, its folder and data root) is kept beside the table's progress, so that
    `zoo runs` can say how to continue it."""
    n, v = len(images), view_count(pad, hflip)
    key = teacher.key(pad, hflip, split_sha256(images, labels), n)
    folder = Path(folder) if folder is not None else table_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(folder)
    if meta is not None and meta["key"] != key:
        raise ZooError(
            f"{folder} holds a teacher table of another teacher, augmentation or split; use another folder."
        )
    done = meta["done"] if meta else 0
    classes = None
    table = np.lib.format.open_memmap(folder / TABLE, mode="r+") if done else None
    t0, start_done = time.perf_counter(), done
    ids = torch.arange(v)
    forward = teacher.runner(torch.get_num_threads())
    while done < n and (stop_after is None or done < stop_after):
        end = min(n, done + chunk, n if stop_after is None else stop_after)  # stops where it was told
        x = torch.from_numpy(np.ascontiguousarray(images[done:end])).permute(0, 3, 1, 2)
        views = render(x.repeat_interleave(v, 0), ids.repeat(end - done), pad, hflip)
        out = torch.cat(
            [forward(teacher.normalise(views[i : i + batch])) for i in range(0, len(views), batch)]
        )
        if table is None:
            classes = out.shape[1]
            table = np.lib.format.open_memmap(
                folder / TABLE, mode="w+", dtype=np.float16, shape=(n, v, classes)
            )
        table[done:end] = out.view(end - done, v, -1).numpy().astype(np.float16)
        table.flush()
        done = end
        rate = (done - start_done) / (time.perf_counter() - t0)
        _write_meta(folder, {"key": key, "done": done, "images_per_s": rate * v, **(started or {})})
        log(f"teacher table: {done}/{n} images ({rate * v:.0f} views/s)")
    if done == n:
        meta = {"key": key, "done": n, "sha256": sha256_file(folder / TABLE), "complete": True}
        _write_meta(folder, {**meta, **(started or {})})
    return folder


def _read_meta(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / META
    if not path.is_file():
        return None
    meta = read_json(path, 1 << 20, "teacher table record")
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("done"), int)
        or not isinstance(meta.get("key"), dict)
    ):
        raise ZooError(
            f"{path} is damaged (no `key` and `done`): delete its folder and build the table again."
        )
    return meta


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    with atomic_path(Path(folder) / META) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


@dataclass
class TeacherTable:
    """A complete table, checked against what the student trains with; `lookup` gives fp32 logits."""

    folder: Path
    table: torch.Tensor  # (images, views, classes) float16
    meta: dict[str, Any]

    @classmethod
    def open(cls, folder: Path, key: dict[str, Any]) -> TeacherTable:
        meta = _read_meta(folder)
        if meta is None or not meta.get("complete"):
            done = f"{meta['done']}/{meta['key']['images']} images" if meta else "nothing"
            raise ZooError(
                f"the teacher table in {folder} is not complete ({done} for {', '.join(key['teacher'])}, "
                f"{key['images']} training images, pad {key['pad']}): build it with `zoo teacher-table "
                "--recipe RECIPE` (with the run's --train-limit, if any)."
            )
        if meta["key"] != key:
            diff = sorted(k for k in key if meta["key"].get(k) != key[k])
            raise ZooError(
                f"the teacher table in {folder} was made for another {', '.join(diff)}; build one for this run."
            )
        table = torch.from_numpy(np.array(np.load(folder / TABLE, mmap_mode="r")))
        return cls(Path(folder), table, meta)

    def lookup(self, index: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.table[index.cpu(), ids.cpu()].float()
