"""`zoo bench-train`: how fast the trainer trains here, per architecture and setting, and where an
epoch's time goes (input pipeline, SGD steps, EMA, evaluation). Real CIFAR-10 images through the
trainer's own loader and step; JSON with the hardware and versions.

An epoch estimate adds what the trainer spends besides its steps: the input pipeline, the EMA update and
the evaluation of the test split every `eval_every` epochs, so it is comparable with a training log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.data.datasets import find_dataset, preprocess_spec
from zoo.data.loaders import DeviceCifarLoader
from zoo.models import registry
from zoo.train.trainer import evaluate_loader, train_step
from zoo.utils.machine import hardware, version

# name: (precision, channels_last, batch, threads, torch.compile); threads None: all cores. The fp32
# one-thread pair is `zoo train` on a CPU as the runs go (two one-thread runs side by side), eager and with
# --compile; bf16 pays only where the CPU has it (AVX-512 BF16), and is emulated, slowly, elsewhere.
SETTINGS = {
    "fp32-nchw-b128": ("fp32", False, 128, None, False),
    "bf16-nchw-b256": ("bf16", False, 256, None, False),
    "bf16-cl-b128": ("bf16", True, 128, None, False),
    "bf16-cl-b256": ("bf16", True, 256, None, False),
    "bf16-cl-b512": ("bf16", True, 512, None, False),
    "bf16-cl-b256-1thread": ("bf16", True, 256, 1, False),
    "fp32-cl-b256-1thread": ("fp32", True, 256, 1, False),
    "fp32-cl-b256-1thread-compiled": ("fp32", True, 256, 1, True),
}


@dataclass
class Timing:
    images_per_s: float
    step_ms: float
    steps: int


def _steps(model, opt, loader, bf16: bool, seconds: float, ema=None) -> Timing:
    """Steps over real batches until `seconds` have passed (after 3 untimed warm-up steps)."""
    model.train()
    batches = iter(loader)
    times: list[float] = []
    start = None
    images = 0
    while start is None or time.perf_counter() - start < seconds:
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        t0 = time.perf_counter()
        train_step(model, opt, x, y, 0.0, bf16)
        if ema is not None:
            ema.update_parameters(model)
        if len(times) >= 3 and start is None:
            start = time.perf_counter()
        elif start is not None:
            images += len(y)
        times.append(time.perf_counter() - t0)
    timed = times[4:] or times
    return Timing(images / (time.perf_counter() - start), 1e3 * float(np.median(timed)), len(timed))


def bench_train(
    archs: list[str], settings: list[str], seconds: float, data: str | None, eval_every: int = 5
) -> dict[str, Any]:

    train, test = find_dataset("cifar10", data, "train"), find_dataset("cifar10", data, "test")
    spec = preprocess_spec("cifar10")
    default_threads = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    for arch in archs:
        for name in settings:
            precision, channels_last, batch, threads, compiled = SETTINGS[name]
            torch.set_num_threads(threads or default_threads)
            torch.manual_seed(0)
            model = registry.create_model(arch, zero_init_residual=True)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
            loader = DeviceCifarLoader(
                train.images, train.labels, batch, spec, train=True, channels_last=channels_last
            )
            net = torch.compile(model) if compiled else model  # compiled in the untimed warm-up steps
            t = _steps(net, opt, loader, precision == "bf16", seconds)
            rows.append(
                {
                    "arch": arch,
                    "setting": name,
                    "precision": precision,
                    "channels_last": channels_last,
                    "batch": batch,
                    "threads": threads or default_threads,
                    "compiled": compiled,
                    "images_per_s": t.images_per_s,
                    "step_ms_median": t.step_ms,
                    "steps": t.steps,
                }
            )
        torch.set_num_threads(default_threads)
        rows.append(_epoch_breakdown(arch, train, test, spec, seconds, eval_every))
    return {
        "kind": "zoo bench-train",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hardware(),  # torch_threads: the default, restored above
        "versions": {
            "torch": torch.__version__,
            "numpy": version("numpy"),
            "resnet-zoo": version("resnet-zoo"),
        },
        "options": {"seconds": seconds, "eval_every": eval_every, "settings": settings},
        "rows": rows,
    }


EVAL_SAMPLE = 2000  # test images the evaluation's time is measured on
PIPELINE_SAMPLE = 40  # training batches (of 256) the input pipeline's time is measured on


def _epoch_breakdown(arch, train, test, spec, seconds, eval_every) -> dict[str, Any]:
    """The recipe as the trainer runs it on the CPU (fp32: `--amp auto` computes in bf16 only on a GPU;
    channels_last, batch 256, EMA): where one epoch's time goes."""
    torch.manual_seed(0)
    model = registry.create_model(arch, zero_init_residual=True).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DeviceCifarLoader(train.images, train.labels, 256, spec, train=True, channels_last=True)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.998), use_buffers=True
    )
    steps = _steps(model, opt, loader, False, seconds)
    with_ema = _steps(model, opt, loader, False, seconds, ema)
    t0, n = time.perf_counter(), 0
    for i, (_, y) in enumerate(loader):  # the input pipeline alone, timed on PIPELINE_SAMPLE batches
        n += len(y)
        if i + 1 >= PIPELINE_SAMPLE:
            break
    pipeline_s = (time.perf_counter() - t0) * 50_000 / n
    # the evaluation between epochs, timed on the first EVAL_SAMPLE test images and scaled to the split
    sample = min(EVAL_SAMPLE, len(test.images))
    test_loader = DeviceCifarLoader(
        test.images[:sample], test.labels[:sample], 1000, spec, train=False, channels_last=True
    )
    t0 = time.perf_counter()
    evaluate_loader(model, test_loader, torch.device("cpu"))  # as the trainer between epochs, in fp32
    eval_s = (time.perf_counter() - t0) * len(test.images) / sample
    sgd_s = 50_000 / steps.images_per_s
    ema_s = 50_000 / with_ema.images_per_s - sgd_s
    epoch_s = sgd_s + max(0.0, ema_s) + pipeline_s + eval_s / eval_every
    return {
        "arch": arch,
        "setting": "epoch estimate (the recipe as `zoo train` runs it on the CPU: fp32, channels_last, "
        f"batch 256, EMA, eval every {eval_every} epochs)",
        "images_per_s": 50_000 / epoch_s,
        "epoch_s": epoch_s,
        "breakdown_s": {
            "sgd_steps": sgd_s,
            "ema_update": max(0.0, ema_s),
            "input_pipeline": pipeline_s,
            "evaluation_per_epoch": eval_s / eval_every,
            "evaluation_of_the_test_split": eval_s,
            "evaluation_timed_on_images": sample,
        },
    }
