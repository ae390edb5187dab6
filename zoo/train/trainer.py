"""One trainer for every architecture, dataset and recipe.

One CPU for tests, one GPU for real (bf16 autocast, channels_last, optional torch.compile, the CIFAR
split resident on the device), many GPUs or nodes through `torchrun` (DDP). Checkpoints are written
atomically every epoch and `resume=True` continues exactly; metrics go to JSON Lines.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich import progress as rich_progress
from torch import nn

from zoo.data.datasets import CIFAR10, check_fits, dataset, find_dataset, num_classes, preprocess_spec
from zoo.data.loaders import DeviceCifarLoader, FolderDataset, ScaleAugment, holdout_split, render
from zoo.data.preprocess import preprocess
from zoo.errors import ZooError, at_least_one, device_choice, positive_number
from zoo.models import registry
from zoo.models.weights import save_safetensors
from zoo.train.lock import busy, hold, holder, release
from zoo.train.recipe import Recipe, lr_at, setting_differences
from zoo.train.runs import (
    CHECKPOINT,
    CURVES,
    METRICS,
    RUN,
    SUMMARY,
    WEIGHTS,
    invocation,
    metrics,
    own_command,
    read_json,
)
from zoo.train.runs import state as run_state
from zoo.train.teacher import Teacher, TeacherTable, distill_loss, split_sha256, table_dir
from zoo.utils.figures import pyplot, save
from zoo.utils.files import atomic_path, output_dir
from zoo.utils.machine import hardware
from zoo.utils.metrics import hits, top_k

AMP = ("auto", "bf16", "fp16", "fp32")


@dataclass
class TrainConfig:
    arch: str
    data: str | None
    recipe: Recipe
    out: Path
    _: KW_ONLY  # the options by name
    device: str = "auto"
    resume: bool = False
    compile: bool = False
    amp: str = "auto"  # auto: bf16 on CUDA (fp16 + GradScaler where it has no bf16), fp32 on CPU
    train_limit: int | None = None  # use only the first N training images (smoke runs)
    test_limit: int | None = None
    max_steps: int | None = None  # stop after this many steps (saved there: --resume continues from it)
    save_every: float = 10.0  # minutes between checkpoints inside an epoch (CIFAR loader, one process)
    progress: bool = True
    command: str = field(default_factory=own_command)

    def __post_init__(self) -> None:
        self.data = None if self.data is None else os.fspath(self.data)  # the API takes a Path too
        device_choice(self.device)
        if self.amp not in AMP:
            raise ZooError(f"--amp {self.amp!r} is not one of {', '.join(AMP)}.")
        at_least_one(train_limit=self.train_limit, test_limit=self.test_limit, max_steps=self.max_steps)
        positive_number("--save-every", self.save_every, "minutes")
        if "." in self.arch:  # a tag would silently train its architecture from scratch
            raise ZooError(
                f"{self.arch} is a weights tag; `zoo train` trains an architecture from scratch: "
                f"zoo train {self.arch.split('.')[0]}."
            )


def plan_device(choice: str, local_rank: int, world: int, cuda_devices: int) -> tuple[str, str | None]:
    """(the device this process trains on, the torch.distributed backend or None for one process).

    Under torchrun each rank takes its own GPU, cuda:LOCAL_RANK ("cuda" alone would put every rank on
    cuda:0); the backend follows the device actually trained on (NCCL for CUDA, gloo for the CPU, also
    when a GPU exists but --device cpu was asked for)."""
    if choice == "auto":
        choice = "cuda" if cuda_devices else "cpu"
    if choice.startswith("cuda"):
        if not cuda_devices:
            raise ZooError("--device cuda was asked for, but PyTorch sees no CUDA device here.")
        index = int(choice.split(":", 1)[1]) if ":" in choice else local_rank
        if world > 1 and ":" in choice:
            raise ZooError(
                "under torchrun each process takes cuda:LOCAL_RANK; pass --device cuda, not a number."
            )
        if index >= cuda_devices:
            raise ZooError(
                f"{choice if ':' in choice else f'cuda:{index}'} does not exist: {cuda_devices} CUDA devices here."
            )
        choice = f"cuda:{index}"
    return choice, (None if world == 1 else "nccl" if choice.startswith("cuda") else "gloo")


def _dist_and_device(choice: str) -> tuple[int, int, int, torch.device]:
    """(rank, local rank, world size, device): the device is set before the process group starts."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name, backend = plan_device(choice, local_rank, world, cuda_devices)
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if backend and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend)
        # ended when the process ends (after every run it trains, e.g. the degradation experiment's four),
        # so that NCCL/gloo shut down cleanly instead of warning about a leaked group
        atexit.register(_end_group)
    return int(os.environ.get("RANK", "0")), local_rank, world, device


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD as the recipe sets it: lr, momentum, Nesterov, and weight decay on the parameters it names."""
    o = recipe.optimizer
    return torch.optim.SGD(
        _param_groups(model, recipe), lr=float(o.lr), momentum=float(o.momentum), nesterov=bool(o.nesterov)
    )


def make_ema(model: nn.Module, recipe: Recipe) -> torch.optim.swa_utils.AveragedModel:
    """The exponential moving average of the weights and of the BatchNorm statistics (use_buffers), at
    the recipe's decay per step: what a recipe with an EMA evaluates and ships."""
    average = torch.optim.swa_utils.get_ema_multi_avg_fn(float(recipe.regularise.ema_decay))
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def _param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    wd = float(recipe.optimizer.weight_decay)
    if not recipe.optimizer.no_decay_on_norm_and_bias:
        return [{"params": list(model.parameters()), "weight_decay": wd}]
    decay = [p for p in model.parameters() if p.ndim > 1]
    other = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": other, "weight_decay": 0.0}]


def _check_one_batch(images: int, batch_size: int, world: int) -> None:
    """Every epoch must hold a step (the last partial batch is dropped): refuse a smaller training set."""
    if images < batch_size * world:
        raise ZooError(f"{images} training images are fewer than one batch of {batch_size} per process.")


def _loaders(cfg: TrainConfig, spec, device, rank: int, world: int, channels_last: bool):

    r = cfg.recipe
    bs, seed, aug = int(r.train.batch_size), int(r.train.seed), r.augment
    train_ds, test_ds = find_dataset(r.dataset, cfg.data, "train"), find_dataset(r.dataset, cfg.data, "test")
    side = spec.shorter_side
    for ds in (train_ds, test_ds):  # before any work: data that does not fit the recipe's dataset
        check_fits(ds, num_classes(r.dataset), side, f"recipe {r.name} ({r.dataset})", cfg.data)
    if isinstance(train_ds, CIFAR10):
        xs, ys = train_ds.images[: cfg.train_limit], train_ds.labels[: cfg.train_limit]
        keep, held = holdout_split(len(ys), int(r.train.holdout))
        _check_one_batch(len(keep), bs, world)
        common = {"spec": spec, "device": device, "channels_last": channels_last}
        train = DeviceCifarLoader(
            xs,
            ys,
            bs,
            train=True,
            pad=int(aug.pad),
            hflip=bool(aug.hflip),
            cutout=int(aug.cutout),
            seed=seed,
            rank=rank,
            world=world,
            subset=keep if len(held) else None,
            **common,
        )
        test = DeviceCifarLoader(
            test_ds.images[: cfg.test_limit], test_ds.labels[: cfg.test_limit], 1000, train=False, **common
        )
        val = DeviceCifarLoader(xs, ys, 1000, train=False, subset=held, **common) if len(held) else None
        return train, test, len(keep), val
    # ImageFolder / ImageNet: decoded and augmented by DataLoader workers.

    augment = ScaleAugment(
        spec, tuple(aug.scale), int(aug.crop), bool(aug.hflip), float(aug.color_jitter), seed
    )
    as_tested = lambda img: torch.from_numpy(preprocess(img, spec))  # noqa: E731
    train_set = FolderDataset(train_ds, augment)
    test_set = FolderDataset(test_ds, as_tested)
    keep, held = holdout_split(min(cfg.train_limit or len(train_set), len(train_set)), int(r.train.holdout))
    val_set = torch.utils.data.Subset(FolderDataset(train_ds, as_tested), held) if len(held) else None
    train_set = torch.utils.data.Subset(train_set, keep)
    if cfg.test_limit:
        test_set = torch.utils.data.Subset(test_set, range(min(cfg.test_limit, len(test_set))))
    _check_one_batch(len(train_set), bs, world)
    sampler = torch.utils.data.DistributedSampler(train_set, world, rank, seed=seed) if world > 1 else None
    workers = min(8, os.cpu_count() or 1)
    train = torch.utils.data.DataLoader(
        train_set,
        bs,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",  # so that non_blocking copies overlap
        generator=torch.Generator().manual_seed(seed),
    )
    pin = device.type == "cuda"
    test = torch.utils.data.DataLoader(test_set, 100, num_workers=workers, pin_memory=pin)
    val = torch.utils.data.DataLoader(val_set, 100, num_workers=workers, pin_memory=pin) if val_set else None
    return train, test, len(train_set), val


def train_step(
    net: nn.Module,
    opt,
    x: torch.Tensor,
    y: torch.Tensor,
    smoothing: float,
    bf16: bool,
    soft: torch.Tensor | None = None,
    distill=None,
    scaler=None,
):
    """One SGD step (bf16 autocast when asked, or fp16 with `scaler`, a GradScaler; the loss in fp32);
    returns (logits, loss). With `soft`, the teacher's logits for this batch, the loss is the recipe's
    distillation loss (`distill`: its section)."""
    dtype = torch.float16 if scaler is not None else torch.bfloat16
    with torch.autocast(x.device.type, dtype=dtype, enabled=bf16 or scaler is not None):
        logits = net(x)
        if soft is None:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
        else:
            loss = distill_loss(
                logits.float(), soft, y, float(distill.temperature), float(distill.weight), smoothing
            )
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:  # fp16: scale the loss so small gradients do not flush to zero; skip steps that overflowed
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return logits, loss


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader, device: torch.device, bf16: bool = False) -> dict[str, float]:
    """top-1, top-5 (in %) and mean loss of `model` over a loader of (images, labels): in fp32, or under
    bf16 autocast (2.5x faster on a CPU; for the log between epochs, never for a published figure)."""
    model.eval()
    correct1 = correct5 = n = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        first, among = hits(top_k(logits), y)
        correct1 += int(first.sum())
        correct5 += int(among.sum())
        n += len(y)
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss / n, "n": n}


@dataclass
class Run:
    """One run's training state: what every epoch works on, and what a checkpoint saves and restores."""

    cfg: TrainConfig
    model: nn.Module
    opt: torch.optim.Optimizer
    ema: nn.Module | None
    loaders: tuple  # (train, test, number of training images)
    device: torch.device
    rank: int
    world: int
    bf16: bool
    net: nn.Module | None = None  # the model as trained: wrapped in DDP and/or compiled
    epoch: int = 0  # the next epoch to train
    step: int = 0
    wall: float = 0.0
    plateau: dict = field(default_factory=lambda: {"best": float("inf"), "bad": 0, "scale": 1.0})
    warm: bool = False  # the paper's warm-up lr, until the train error falls below the recipe's bar
    soft: Any = None  # distillation: batch (x, y, image indices, view ids) -> the teacher's logits
    scaler: Any = None  # fp16 training: torch.amp.GradScaler
    distilled: dict | None = None  # what the summary records of the teacher and its table
    partial: dict | None = None  # restored from a checkpoint saved inside an epoch: where that epoch stood
    lock: Any = None  # rank 0: the run folder's lock (zoo.train.lock), held until train() ends
    stopped_by: Any = None  # the signal (signal.Signals) that asked the run to save itself and stop
    epoch_now: int = 0  # the epoch being trained (0-based)

    @property
    def recipe(self) -> Recipe:
        return self.cfg.recipe

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loaders[0])

    @property
    def total(self) -> int:
        return self.recipe.total_steps(self.steps_per_epoch)

    @property
    def epochs(self) -> int:
        return self.recipe.epochs(self.steps_per_epoch)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train `cfg.arch` with `cfg.recipe`; returns the summary written to out/summary.json."""
    if os.environ.get("RANK", "0") == "0":  # torchrun's rank 0 is the one that writes the folder
        _check_folder(cfg)  # before any work
    run, progress = _start(cfg), None
    try:
        progress = _progress(cfg.progress and run.rank == 0 and sys.stderr.isatty())
        row = None
        with _stop_on_signals(run):
            for epoch in range(run.epoch, run.epochs):
                row = _train_epoch(run, epoch, progress)
                if row is None:  # stopped by --max-steps or a signal inside an epoch: saved there
                    break
                if run.rank == 0:
                    _end_epoch(run, epoch, row, progress)
                if run.world > 1:  # rank 0 tested and stepped the plateau schedule: every process follows
                    _share_schedule(run)
        if run.stopped_by is not None and row is None:  # (a signal after the last step: it finishes)
            _stopped(run)
        divergence = replica_divergence(run.model) if run.world > 1 else None
        schedules = schedules_by_rank(run) if run.world > 1 else None
        summary = _finish(run, divergence, schedules)
        if run.world > 1:
            torch.distributed.barrier()
        return summary
    finally:
        if progress is not None:
            progress.stop()  # the terminal as it was, however the run ends
        release(run.lock)


@contextlib.contextmanager
def _stop_on_signals(run: Run):
    """SIGTERM (a scheduler, a spot machine taken back, a session ending) or Ctrl-C: the run saves itself
    after the step under way and exits, losing no step, where it would lose up to --save-every minutes.
    A second signal acts at once, as it would without the zoo. Only where a run can be saved inside an
    epoch (CIFAR, one process) and in the main thread, where Python takes signals."""
    asked = (signal.SIGTERM, signal.SIGINT)
    if not _resumable(run) or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in asked}

    def stop(signum, _frame) -> None:
        run.stopped_by = signal.Signals(signum)
        for s, handler in before.items():
            signal.signal(s, handler)

    for s in asked:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _resumable(run: Run) -> bool:
    """Whether the run can be saved inside an epoch: the CIFAR loader's batches can be drawn again."""
    return isinstance(run.loaders[0], DeviceCifarLoader) and run.world == 1


def _stopped(run: Run) -> None:
    """After a signal: say where the run saved itself and how to continue it, then exit as signalled."""
    go_on = run_state(run.cfg.out)["continue_with"] or f"zoo train ... --out {run.cfg.out} --resume"
    print(
        f"{run.stopped_by.name}: the run saved itself after step {run.step:,} (epoch {run.epoch_now + 1}); "
        f"continue it with `{go_on}`.",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(128 + int(run.stopped_by))


def _check_folder(cfg: TrainConfig) -> None:
    """Refuse a folder another process trains now (see zoo.train.lock), and training afresh into one that
    holds a run, which would overwrite it (as `transformers`' Trainer refuses a non-empty output_dir)."""
    if cfg.resume and not (cfg.out / CHECKPOINT).is_file():  # said before data is read or a folder made
        raise ZooError(f"nothing to resume: {cfg.out / CHECKPOINT} does not exist.")
    if not cfg.out.is_dir():
        return
    who = holder(cfg.out)
    if who is not None:
        raise ZooError(busy(cfg.out, who))
    if cfg.resume or not ((cfg.out / CHECKPOINT).is_file() or (cfg.out / SUMMARY).is_file()):
        return
    try:
        st = run_state(cfg.out)
        how = f"{st['epochs_done']} / {st['epochs_planned'] or '?'} epochs"
    except ZooError:  # a damaged record: the checkpoint alone says there is a run
        how, st = "a checkpoint", {"complete": False}
    then = (
        "it is finished: train into another --out, or delete the folder to train it again"
        if st["complete"]
        else "continue it with --resume, or train into another --out (or delete the folder to start again)"
    )
    raise ZooError(f"{cfg.out} already holds a run ({how}); {then}.")


def _end_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _global_error(run: Run, correct: torch.Tensor, n: int) -> float:
    """The training error of this step's batch over every process (the paper's warm-up ends on it)."""
    if run.world == 1:
        return 1 - correct.item() / n
    t = torch.tensor([float(correct.item()), float(n)], device=run.device)
    torch.distributed.all_reduce(t)
    return 1 - (t[0] / t[1]).item()


def _share_schedule(run: Run) -> None:
    """Rank 0's schedule state (plateau best, patience count, lr scale; warm-up) on every process."""
    p = run.plateau
    t = torch.tensor(
        [p["best"], p["bad"], p["scale"], float(run.warm)], dtype=torch.float64, device=run.device
    )
    torch.distributed.broadcast(t, 0)
    run.plateau = {"best": t[0].item(), "bad": int(t[1].item()), "scale": t[2].item()}
    run.warm = bool(t[3].item())


def schedules_by_rank(run: Run) -> list[dict[str, float]]:
    """Every process's lr scale and warm-up state at the end: one entry per rank, all equal when the
    processes followed one schedule."""
    mine = torch.tensor([run.plateau["scale"], float(run.warm)], dtype=torch.float64, device=run.device)
    every = [torch.zeros_like(mine) for _ in range(run.world)]
    torch.distributed.all_gather(every, mine)
    return [{"lr_scale": t[0].item(), "warm": bool(t[1].item())} for t in every]


def check_trainable(name: str, r: Recipe) -> None:
    """`name` is an architecture of the recipe's dataset; one sentence otherwise (an unknown name: with
    close matches)."""
    arch, _ = registry.resolve(name)
    family = registry.archs()[arch]["family"]
    if family != dataset(r.dataset)["family"]:
        raise ZooError(f"{name} is one of the {family} nets, and recipe {r.name} trains {r.dataset}.")


def _start(cfg: TrainConfig) -> Run:
    """The model, optimiser, EMA and data of a run, fresh or restored from its checkpoint."""
    rank, _, world, device = _dist_and_device(cfg.device)
    r = cfg.recipe
    torch.manual_seed(int(r.train.seed))
    check_trainable(cfg.arch, r)
    model = registry.create_model(cfg.arch, num_classes=num_classes(r.dataset), **r.model.options()).to(
        device
    )
    model = model.to(memory_format=torch.channels_last)  # faster for these convs on CUDA and x86 CPUs alike
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(False)
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and cuda_bf16)
    fp16 = cfg.amp == "fp16" or (cfg.amp == "auto" and device.type == "cuda" and not cuda_bf16)
    if fp16 and device.type != "cuda":
        raise ZooError("--amp fp16 is for GPUs without bf16; on a CPU use bf16 or fp32.")
    loaders = _loaders(cfg, preprocess_spec(r.dataset), device, rank, world, channels_last=True)
    opt = make_optimizer(model, r)
    ema = make_ema(model, r) if r.regularise.ema_decay else None
    run = Run(cfg, model, opt, ema, loaders, device, rank, world, bf16, warm=_needs_warmup(cfg.arch, r))
    run.scaler = torch.amp.GradScaler("cuda") if fp16 else None
    if float(r.distill.weight) > 0:
        run.soft, run.distilled = _teacher(loaders[0], r, device)
    output_dir(cfg.out, "run folder")
    run.lock = hold(cfg.out) if rank == 0 else None  # this process's alone until train() ends
    try:
        if cfg.resume:
            _restore(run, cfg.out / CHECKPOINT)
        elif rank == 0:
            (cfg.out / METRICS).unlink(missing_ok=True)
        if rank == 0:
            _record_run(run)
        run.net = model
        if world > 1:
            run.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if cfg.compile:
            run.net = torch.compile(run.net)
    except BaseException:  # a refused resume (another recipe, a damaged checkpoint) frees the folder
        release(run.lock)
        raise
    return run


def _teacher(loader, r: Recipe, device: torch.device):
    """(batch -> the teacher's logits for each row's uncut view, the summary's record) for the recipe's
    [distill] section: the stored table ("auto") or the teacher run on each batch ("")."""
    if not isinstance(loader, DeviceCifarLoader):
        raise ZooError(f"recipe {r.name}: distillation is implemented for the CIFAR loader, not {r.dataset}.")
    d, aug = r.distill, r.augment
    teacher = Teacher(list(d.teacher), device)
    loader.with_views = True
    images = loader.x.permute(0, 2, 3, 1).cpu().numpy()
    key = teacher.key(
        int(aug.pad), bool(aug.hflip), split_sha256(images, loader.y.cpu().numpy()), len(images)
    )
    record = {"teacher": teacher.tags, "teacher_sha256": teacher.sha256, "temperature": d.temperature}
    record["weight"] = d.weight
    if d.table:
        if d.table != "auto":
            raise ZooError(f'recipe {r.name}: [distill] table must be "auto" or "", not {d.table!r}.')
        table = TeacherTable.open(table_dir(key), key)
        # the table by its name, as `zoo runs` lists it and weights/teacher-tables/<name>.json records it
        record |= {"table": table.folder.name, "table_sha256": table.meta["sha256"]}
        return (lambda batch: table.lookup(batch[2], batch[3]).to(device)), record

    forward = teacher.runner(torch.get_num_threads())  # ONNX Runtime on a CPU, as the table

    def online(batch):  # the uncut view (before cutout), as the table holds it
        views = render(loader.x[batch[2]], batch[3], int(aug.pad), bool(aug.hflip))
        return forward(teacher.normalise(views)).to(device)

    return online, record | {"table": None}


def _record_run(run: Run) -> None:
    """out/run.json: what the folder trains and the command that started it, written when a run starts
    (and when a run older than this file is resumed), so that `zoo runs` can say what a folder is before
    it finishes."""
    path = run.cfg.out / RUN
    if run.cfg.resume and path.is_file():
        return
    record = {
        "arch": run.cfg.arch,
        "dataset": run.recipe.dataset,
        "recipe": run.recipe.name,
        "epochs": run.epochs,
        **invocation(run.cfg.data, run.cfg.command),  # the command, where it ran, where the images came from
        "recipe_doc": run.recipe.doc,  # what it trains with, before its first epoch ends (zoo curves)
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def _restore(run: Run, ckpt: Path) -> None:
    """Continue exactly where the checkpoint ended: weights, optimiser, EMA, counters, schedule state."""
    if not ckpt.is_file():
        raise ZooError(f"nothing to resume: {ckpt} does not exist.")
    state = read_train_checkpoint(ckpt, run.device)
    _check_same_recipe(
        state.get("recipe") or {}, run.recipe.doc, ckpt, _trains(run.cfg), _trained(state, ckpt)
    )
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    run.epoch, run.step, run.wall = state["epoch"] + 1, state["step"], state["wall"]
    run.plateau, run.warm = state["plateau"], state["warm"]
    run.partial = state.get("partial")  # saved inside epoch run.epoch: its batches done and running sums
    if run.rank == 0:
        _keep_rows_until(run.cfg.out / METRICS, run.epoch, state.get("row"))


def _train_epoch(run: Run, epoch: int, progress) -> dict[str, Any] | None:
    """One epoch of SGD steps; its metrics row, or None when --max-steps stopped it part-way.

    Inside an epoch the run is saved every --save-every minutes and where --max-steps stops it, so a kill
    loses minutes, not an epoch (resnet110 trains ~33 min an epoch on one core): the checkpoint holds the
    batches done and the epoch's running sums, and a resumed epoch draws its batches again (the CIFAR
    loader's are a function of the epoch alone), skipping those done without training on them."""
    r, device, loader = run.recipe, run.device, run.loaders[0]
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    elif isinstance(getattr(loader, "sampler", None), torch.utils.data.DistributedSampler):
        loader.sampler.set_epoch(epoch)
    run.net.train()
    t0, seen, done = time.perf_counter(), 0, 0
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    if run.partial is not None:
        p, run.partial = run.partial, None
        done, seen, t0 = int(p["batches"]), int(p["seen"]), t0 - float(p["elapsed_s"])
        loss_sum, correct = p["loss_sum"].to(device), p["correct"].to(device)
    resumable = _resumable(run)  # saving inside an epoch needs batches that can be drawn again
    run.epoch_now = epoch
    saved = time.perf_counter()
    total, smoothing = run.total, float(r.regularise.label_smoothing)
    task = progress.add_task(f"epoch {epoch + 1}/{run.epochs}", total=len(loader)) if progress else None
    if task is not None:
        progress.update(task, advance=done)
    for b, batch in enumerate(loader):
        if b < done:  # trained before the checkpoint this run resumed from
            continue
        x, y = batch[0], batch[1]
        if run.step >= total or (run.cfg.max_steps is not None and run.step >= run.cfg.max_steps):
            if task is not None:
                progress.remove_task(task)
            if run.step >= total:
                return _epoch_row(run, epoch, t0, seen, loss_sum, correct)
            if resumable and b > 0:
                _save_inside(run, epoch, b, seen, t0, loss_sum, correct)
            return None
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)  # ImageNet batches arrive NCHW
        lr = float(r.schedule.warmup_lr) if run.warm else lr_at(r, run.step, total)
        for g in run.opt.param_groups:
            g["lr"] = lr * run.plateau["scale"]
        soft = run.soft(batch) if run.soft is not None else None
        logits, loss = train_step(run.net, run.opt, x, y, smoothing, run.bf16, soft, r.distill, run.scaler)
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        batch_correct = (logits.argmax(1) == y).sum()
        loss_sum += loss.detach() * len(y)
        correct += batch_correct
        seen += len(y)
        run.step += 1
        if run.warm and _global_error(run, batch_correct, len(y)) < float(
            r.schedule.warmup_until_train_error
        ):
            run.warm = False  # on every process at the same step: decided from all their batches
        if task is not None:
            progress.update(
                task, advance=1, description=f"epoch {epoch + 1}/{run.epochs} loss {loss.item():.3f}"
            )
        if run.stopped_by is not None:  # a signal: saved after this step (its last one too), then out
            if task is not None:
                progress.remove_task(task)
            _save_inside(run, epoch, b + 1, seen, t0, loss_sum, correct)
            return None
        if resumable and b + 1 < len(loader) and time.perf_counter() - saved >= 60 * run.cfg.save_every:
            _save_inside(run, epoch, b + 1, seen, t0, loss_sum, correct)
            saved = time.perf_counter()
    if task is not None:
        progress.remove_task(task)
    return _epoch_row(run, epoch, t0, seen, loss_sum, correct)


def _save_inside(run: Run, epoch: int, batches: int, seen: int, t0: float, loss_sum, correct) -> None:
    """The checkpoint after `batches` batches of `epoch`, with what its row needs to come out as if the
    epoch had never stopped: the batches done, images seen, time spent and running sums."""
    elapsed = time.perf_counter() - t0
    partial = {
        "batches": batches,
        "seen": seen,
        "elapsed_s": elapsed,
        "loss_sum": loss_sum,
        "correct": correct,
    }
    _save_checkpoint(run.cfg.out / CHECKPOINT, run, epoch - 1, partial)


def _epoch_row(run: Run, epoch: int, t0: float, seen: int, loss_sum, correct) -> dict[str, Any]:
    """The epoch's metrics row, over every process's images. Every epoch sees at least one batch: the
    schedule's epochs are ceil(steps / steps per epoch), and a training set smaller than one batch is
    refused before the first step."""
    if run.world > 1:
        for t in (loss_sum, correct):
            torch.distributed.all_reduce(t)
        seen *= run.world
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    epoch_time = time.perf_counter() - t0
    run.wall += epoch_time
    return {
        "epoch": epoch + 1,
        "step": run.step,
        "lr": run.opt.param_groups[0]["lr"],
        "train_loss": loss_sum.item() / seen,
        "train_top1": 100.0 * correct.item() / seen,
        "images_per_s": seen / epoch_time,
        "wall_s": run.wall,
        # a run resumed with another OMP_NUM_THREADS trains at another speed: publish reports each apart
        **({"threads": torch.get_num_threads()} if run.device.type == "cpu" else {}),
    }


def _end_epoch(run: Run, epoch: int, row: dict[str, Any], progress) -> None:
    """Rank 0, after an epoch: test when due, step a plateau schedule, save the checkpoint, log the row."""
    r, last = run.recipe, epoch + 1 == run.epochs
    plateau = r.schedule.name == "plateau"
    if (epoch + 1) % int(r.train.eval_every) == 0 or last or plateau:
        quick = run.bf16 and not last  # the last epoch in fp32 (the run's result), the others as trained
        metrics = evaluate_loader(run.ema or run.model, run.loaders[1], run.device, bf16=quick)
        row |= {f"test_{k}": v for k, v in metrics.items()} | {"test_precision": "bf16" if quick else "fp32"}
        if run.loaders[3] is not None:  # the held-out training images, which recipes are compared on
            held = evaluate_loader(run.ema or run.model, run.loaders[3], run.device, bf16=quick)
            row |= {f"val_{k}": v for k, v in held.items()}
    if plateau:
        _plateau_step(run.plateau, row["test_loss"], r)
    # The checkpoint (holding the row) first, then the row in the log: a kill between the two leaves an
    # epoch that is checkpointed but not logged, which the resume logs from the checkpoint; it logs nothing
    # twice (rows past the checkpoint's epoch are dropped on resume).
    _save_checkpoint(run.cfg.out / CHECKPOINT, run, epoch, row=row)
    _append_jsonl(run.cfg.out / METRICS, row)
    _log(row, run.epochs, progress)


def replica_divergence(model: nn.Module) -> float:
    """The largest |difference| between any process's parameters and rank 0's. DDP replicas apply the
    same all-reduced gradients, so anything but 0.0 means the processes trained different models."""
    flat = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    reference = flat.clone()
    torch.distributed.broadcast(reference, 0)
    diff = (flat - reference).abs().max()
    torch.distributed.all_reduce(diff, op=torch.distributed.ReduceOp.MAX)
    return diff.item()


def _finish(run: Run, divergence: float | None, schedules: list | None = None) -> dict[str, Any]:
    """Rank 0: the final weights (the EMA's when there is one), summary.json and the training curves."""
    cfg, ema = run.cfg, run.ema
    summary: dict[str, Any] = {}
    if run.rank == 0:
        final = ema.module if ema is not None else run.model
        rows = metrics(cfg.out)
        last = rows[-1] if rows else {}
        summary = {
            "arch": cfg.arch.split(".")[0],
            "recipe": cfg.recipe.name,
            "recipe_file": cfg.recipe.file,
            "recipe_doc": cfg.recipe.doc,
            "dataset": cfg.recipe.dataset,
            "train_images": run.loaders[2],
            "steps": run.step,
            "total_steps": run.total,
            "complete": run.step >= run.total,
            "epochs_done": last.get("epoch", 0),
            "top1": last.get("test_top1"),
            "top5": last.get("test_top5"),
            "test_images": last.get("test_n"),
            **(
                {"val_top1": last.get("val_top1"), "val_images": last.get("val_n")} if "val_n" in last else {}
            ),
            "ema": ema is not None,
            "wall_s": run.wall,
            "world_size": run.world,
            "replica_max_abs_diff": divergence,  # None for one process
            "schedule_by_rank": schedules,  # None for one process
            "hardware": hardware(run.device),
            "command": cfg.command,
            **({"distillation": run.distilled} if run.distilled else {}),
        }
        state = {k: v.detach().cpu() for k, v in final.state_dict().items()}
        save_safetensors(
            state,
            cfg.out / WEIGHTS,
            metadata={"arch": summary["arch"], "dataset": summary["dataset"], "recipe": cfg.recipe.name},
        )
        with atomic_path(cfg.out / SUMMARY) as tmp:
            tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        _plot(cfg.out)
    return summary


def read_train_checkpoint(path: Path, device) -> dict:
    """A `zoo train` checkpoint, read without executing code (weights_only); one sentence if unreadable."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for truncated, foreign or crafted files
        raise ZooError(
            f"{path} cannot be read as a `zoo train` checkpoint ({type(e).__name__}): it is truncated, "
            "foreign or holds code; start the run again without --resume."
        ) from None
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "step"} <= set(state):
        raise ZooError(f"{path} is not a `zoo train` checkpoint; start the run again without --resume.")
    return state


def _trains(cfg: TrainConfig) -> dict[str, Any]:
    """What a run trains beyond its recipe: the network, and the images it sees (smoke runs' subsets)."""
    return {"arch": cfg.arch, "train_limit": cfg.train_limit, "test_limit": cfg.test_limit}


def _trained(state: dict, ckpt: Path) -> dict[str, Any]:
    """`_trains` of the run a checkpoint continues; for a checkpoint older than that record, its arch from
    the folder's run.json (plain20 and resnet20 share every weight's name: only the record tells them apart)."""
    if isinstance(state.get("trains"), dict):
        return state["trains"]
    try:
        record = read_json(ckpt.parent / RUN) or {}
    except ZooError:
        record = {}
    return {"arch": record["arch"]} if isinstance(record.get("arch"), str) else {}


def _check_same_recipe(saved: dict, now: dict, ckpt: Path, trains: dict, trained: dict) -> None:
    """Resuming must continue the same run: the same network on the same images, and any training setting
    that differs is refused, by name."""
    diffs = [
        f"{k}: {trained[k]!r} -> {trains[k]!r}" for k in trains if k in trained and trained[k] != trains[k]
    ]
    diffs += [f"{key}: {a!r} -> {b!r}" for key, a, b in setting_differences(saved, now)]
    if diffs:
        raise ZooError(
            f"--resume with other settings than the run in {ckpt.parent} ({'; '.join(diffs[:4])}): "
            "resume with its own recipe and options, or train into a new --out."
        )


def _needs_warmup(arch: str, r: Recipe) -> bool:
    return arch.split(".")[0] in r.schedule.warmup_archs and r.schedule.warmup_lr is not None


def _plateau_step(state: dict, value: float, r: Recipe) -> None:
    if value < state["best"] - 1e-4:
        state["best"], state["bad"] = value, 0
    else:
        state["bad"] += 1
        if state["bad"] >= int(r.schedule.patience):
            state["scale"] *= float(r.schedule.gamma)
            state["bad"] = 0


def _save_checkpoint(
    path: Path, run: Run, epoch: int, partial: dict | None = None, row: dict | None = None
) -> None:
    """The run after epoch `epoch` (0-based; -1: none yet) and, when saved inside the next one, `partial`:
    its batches done and running sums (what `_train_epoch` resumes from); at an epoch's end, `row`: its
    metrics row, which a resume logs if a kill came between this save and the row."""
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "ema": run.ema.state_dict() if run.ema else None,
        "epoch": epoch,
        "step": run.step,
        "wall": run.wall,
        "plateau": run.plateau,
        "warm": run.warm,
        "recipe": run.recipe.doc,
        "trains": _trains(run.cfg),
        "partial": partial,
        "row": row,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _keep_rows_until(path: Path, epoch: int, last: dict | None = None) -> None:
    """Drop metrics rows of epochs after `epoch` (logged by a run killed after its last checkpoint), and
    log `last`, the checkpointed epoch's own row, if a kill came before it was logged."""
    rows = metrics(path.parent)  # a damaged log is one sentence naming its line, not a traceback
    lines = [line for line in path.read_text().splitlines() if line.strip()] if rows else []
    kept = [line for line, row in zip(lines, rows, strict=True) if row["epoch"] <= epoch]
    if len(kept) != len(lines):
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))
    if isinstance(last, dict) and last.get("epoch") == epoch and epoch not in {r["epoch"] for r in rows}:
        _append_jsonl(path, last)


def _append_jsonl(path: Path, row: dict) -> None:
    """Add a row as a whole new file renamed into place: a kill, a full disk or a reader at that moment
    (`zoo runs` beside a live run) sees the log before or after the row, never half a line."""
    before = path.read_text() if path.is_file() else ""
    with atomic_path(path) as tmp:
        tmp.write_text(before + json.dumps(row) + "\n")


def _progress(enabled: bool):
    if not enabled:
        return None
    p = rich_progress.Progress(
        rich_progress.TextColumn("{task.description}"),
        rich_progress.BarColumn(),
        rich_progress.MofNCompleteColumn(),
        rich_progress.TimeRemainingColumn(),
    )
    p.start()
    return p


def _log(row: dict, epochs: int, progress) -> None:
    test = f"test {row['test_top1']:.2f}% / {row['test_top5']:.2f}%  " if "test_top1" in row else ""
    test = (f"held-out {row['val_top1']:.2f}%  " if "val_top1" in row else "") + test
    line = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  train {row['train_top1']:.2f}%  "
        f"{test}lr {row['lr']:.4f}  {row['images_per_s']:.0f} img/s  {row['wall_s']:.0f}s"
    )
    if progress is not None:
        progress.console.print(line)
    else:  # stderr, so that `--json` leaves stdout to the one JSON document
        print(line, file=sys.stderr, flush=True)


def _plot(out: Path) -> None:
    """training_curves.png from metrics.jsonl (needs matplotlib; skipped with a note otherwise)."""
    plt = pyplot()
    if plt is None:
        print(
            f"note: matplotlib is not installed, so no {CURVES} (pip install matplotlib).",
            file=sys.stderr,
        )
        return
    rows = metrics(out)
    if not rows:  # stopped (--max-steps) before the first epoch ended
        return
    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [100 - r["train_top1"] for r in rows], label="train error")
    tested = [r for r in rows if "test_top1" in r]
    a.plot([r["epoch"] for r in tested], [100 - r["test_top1"] for r in tested], label="test error")
    held = [r for r in rows if "val_top1" in r]
    if held:
        a.plot([r["epoch"] for r in held], [100 - r["val_top1"] for r in held], label="held-out error")
    a.set_xlabel("epoch"), a.set_ylabel("top-1 error (%)"), a.legend(), a.grid(alpha=0.3)
    b.plot(ep, [r["train_loss"] for r in rows], label="train loss")
    b.plot([r["epoch"] for r in tested], [r["test_loss"] for r in tested], label="test loss")
    b.set_xlabel("epoch"), b.set_yscale("log"), b.legend(), b.grid(alpha=0.3)
    save(fig, out / CURVES)
