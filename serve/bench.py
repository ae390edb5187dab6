"""`zoo bench`: a model x formats x batch sizes, measured honestly in one run.

Warm-up first (memory first touched is slow), device synchronisation around every timed call, p50/p90/p99
latency and throughput per batch size, model-only next to end-to-end (image decode and preprocessing
included), peak memory, and the hardware, versions and thread counts recorded with the numbers. Writes
JSON, CSV and a PNG plot. Nothing here is a stored constant: every figure is measured in the run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.datasets import find_dataset
from zoo.data.preprocess import load_image, preprocess
from zoo.errors import ZooError
from zoo.export.artifact import update_card
from zoo.export.pipeline import EXPORT_PACKAGES, ExportOptions
from zoo.models import registry
from zoo.models.checkpoints import untrained as register
from zoo.serve import targets
from zoo.serve.bench_checks import checks, load_average, suspect_formats
from zoo.serve.checked_export import export_and_check
from zoo.serve.runtimes import RUNTIMES, Runtime, TorchRuntime, open_runtime, runtime_for
from zoo.serve.verdicts import ALLOW
from zoo.utils import machine
from zoo.utils.figures import pyplot, save
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import
from zoo.utils.progress import step

torch = lazy_import("torch")

UNVERIFIED = ("parity failed", "not validated")  # statuses of artifacts the bench times only if allowed


@dataclass
class BenchOptions:
    formats: list[str] = field(default_factory=lambda: ["pytorch", "onnx", "onnx-int8-cpu"])
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    seconds: float = 2.0  # timed per (format, batch), after warm-up
    warmup: float = 0.5
    min_runs: int = 10
    e2e_images: int = 64
    parity_images: int | None = None  # None: the whole labelled split
    threads: int | None = None
    repeats: int = 3  # fresh processes per format, taken in turns
    device: str = "auto"  # where the PyTorch baselines (and a built pt2) run; auto: where the targets run
    untrained: bool = False  # time the architecture with seeded random weights (zoo.checkpoints.untrained)
    out: Path = Path("bench")
    artifacts: Path = Path("artifacts")
    data: str | None = None  # dataset root for calibration, parity and images (None: $ZOO_DATA)
    allow_unverified: bool = False  # also time artifacts that failed their check or were never checked
    worker_timeout: float | None = None  # seconds a format's timing process may take (None: from the options)


def hardware() -> dict[str, Any]:

    runtimes = (cls.distribution for cls in RUNTIMES.values())
    return {
        **machine.hardware(),
        "versions": machine.versions(tuple(dict.fromkeys((*EXPORT_PACKAGES, *runtimes)))),
    }


def time_calls(fn, sync, seconds: float, warmup: float, min_runs: int, cuda: bool = False) -> np.ndarray:
    """Per-call times in ms after `warmup` seconds of untimed calls; each call synchronised. On a GPU the
    time is taken by CUDA events recorded on the stream around the call."""
    end = time.perf_counter() + warmup
    while time.perf_counter() < end:
        fn()
        sync()
    times: list[float] = []
    stop = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < stop:
        if cuda:
            start, done = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            done.record()
            done.synchronize()
            times.append(start.elapsed_time(done))
        else:
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


def summarise(times_ms: np.ndarray, batch: int) -> dict[str, float]:
    p50, p90, p99 = np.percentile(times_ms, [50, 90, 99])
    return {
        "runs": int(len(times_ms)),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "images_per_s": float(batch * len(times_ms) / (times_ms.sum() / 1e3)),
    }


def encoded_images(dataset, n: int) -> list[bytes]:
    """Real test images as the bytes a deployment receives: the files themselves, or PNG for CIFAR arrays."""
    out = []
    for i in range(min(n, len(dataset))):
        sample = getattr(dataset, "samples", None)
        if sample is not None:
            out.append(Path(sample[i][0]).read_bytes())
        else:
            buf = io.BytesIO()
            dataset[i][0].save(buf, "PNG")
            out.append(buf.getvalue())
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_runtime(
    rt: Runtime, batches: list[int], images: list[bytes], o: BenchOptions, label: str | None = None
) -> list[dict[str, Any]]:
    """Rows of timings per batch size, labelled `label` (default: the runtime's own format)."""
    c, h, w = rt.input_shape
    rows = []
    for b in batches:
        x = np.random.default_rng(0).standard_normal((b, c, h, w)).astype(np.float32)
        on_device = device_timings(rt, x, o) if not (rt.max_batch and b > rt.max_batch) else {}
        host = summarise(
            time_calls(lambda x=x: rt.run(x), rt.synchronize, o.seconds, o.warmup, o.min_runs), b
        )
        # model-only: on a GPU the device-resident run timed by CUDA events (copies apart), else the run
        model = on_device.pop("model") if on_device else host
        picks = [images[i % len(images)] for i in range(b)] if images else []

        def end_to_end(picks=picks) -> None:
            rt.run(np.stack([preprocess(load_image(p), rt.preprocess) for p in picks]))

        e2e = (
            summarise(time_calls(end_to_end, rt.synchronize, o.seconds, o.warmup, o.min_runs), b)
            if picks
            else {}
        )
        rows.append(
            {
                "format": label or rt.format,
                "backend": rt.backend,
                "device": rt.device,
                "precision": rt.precision,
                "batch": b,
                **{f"model_{k}": v for k, v in model.items()},
                **({f"host_{k}": v for k, v in host.items()} if on_device else {}),
                **on_device,
                **{f"e2e_{k}": v for k, v in e2e.items()},
                "peak_rss_mb": _rss_mb(),
                # above an engine's profile maximum the batch runs in chunks of that size (Runtime.run)
                **({"chunked_by": rt.max_batch} if rt.max_batch and b > rt.max_batch else {}),
            }
        )
    return rows


def device_timings(rt: Runtime, x: np.ndarray, o: BenchOptions) -> dict[str, Any]:
    """On a GPU runtime that can run device-resident batches: the model alone (CUDA events, no copies),
    the host-to-device and device-to-host copies apart, and the peak GPU memory. {} on the CPU."""
    if not rt.device.startswith("cuda"):
        return {}

    free_before = torch.cuda.mem_get_info(rt.device)[0]
    dev = torch.from_numpy(x).to(rt.device)
    if rt.run_device(dev) is None:
        return {}
    torch.cuda.reset_peak_memory_stats(rt.device)
    sync = rt.synchronize
    model = summarise(
        time_calls(lambda: rt.run_device(dev), sync, o.seconds, o.warmup, o.min_runs, cuda=True), len(x)
    )
    pinned = torch.from_numpy(x).pin_memory()
    h2d = time_calls(lambda: dev.copy_(pinned, non_blocking=True), sync, 0.2, 0.05, 10, cuda=True)
    out = rt.run_device(dev)
    host_out = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
    d2h = time_calls(lambda: host_out.copy_(out, non_blocking=True), sync, 0.2, 0.05, 10, cuda=True)
    return {
        "model": model,
        "h2d_p50_ms": float(np.median(h2d)),
        "d2h_p50_ms": float(np.median(d2h)),
        # the device's own count (TensorRT allocates outside PyTorch's allocator): memory in use by this
        # process's runtime and batch, beside what PyTorch's allocator saw
        "gpu_used_mb": (torch.cuda.mem_get_info(rt.device)[1] - torch.cuda.mem_get_info(rt.device)[0])
        / 2**20,
        "gpu_batch_mb": max(0, free_before - torch.cuda.mem_get_info(rt.device)[0]) / 2**20,
        "torch_allocator_peak_mb": torch.cuda.max_memory_allocated(rt.device) / 2**20,
        "timing": "CUDA events on the device-resident batch; copies timed apart from pinned memory",
    }


def time_in_fresh_process(tag: str, fmt: str, artifact: Path | None, o: BenchOptions) -> list[dict[str, Any]]:
    """Time one format in a new Python process: runtimes sharing a process disturb each other's thread
    pools (ONNX Runtime measured 2x slower after eager PyTorch had run), and peak memory is per format."""
    timing = ("batches", "seconds", "warmup", "min_runs", "e2e_images", "threads", "device", "data")
    job = {"tag": tag, "format": fmt, "artifact": str(artifact) if artifact else None}
    job["options"] = {k: getattr(o, k) for k in timing}
    limit = o.worker_timeout or 600 + 20 * o.seconds * len(o.batches)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "zoo.serve.bench", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:  # a slow compile (max-autotune) is one failed row, not a traceback
        raise ZooError(f"timing {fmt} took longer than {limit:g} s and was stopped") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ZooError(f"timing {fmt} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(job: dict[str, Any]) -> list[dict[str, Any]]:

    o = BenchOptions(**job["options"])
    if o.threads:
        torch.set_num_threads(o.threads)
    target = targets.get(job["format"])
    if job["artifact"] is None:  # the baselines run on the device the artifacts are compared on
        rt = TorchRuntime(job["tag"], device=o.device, compiled=target.compiled)
    else:
        rt = open_runtime(job["artifact"], backend=target.backend, threads=o.threads)
    spec = registry.resolve(job["tag"])[1]
    images = encoded_images(find_dataset(spec.dataset, o.data, "test"), o.e2e_images)
    with rt:
        return bench_runtime(rt, o.batches, images, o, label=target.name)


def medians_over_processes(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per batch size from the rows of several fresh-process runs of one format: each timing is
    the median over the runs, and every run's p50 is kept, so the spread between processes shows."""
    out = []
    for same_batch in zip(*runs, strict=True):
        row = dict(same_batch[0])
        for key in row:
            if key.startswith(("model_", "e2e_")):
                row[key] = float(np.median([r[key] for r in same_batch]))
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in same_batch)
        row["repeats"] = len(same_batch)
        row["model_p50_ms_runs"] = [r["model_p50_ms"] for r in same_batch]
        out.append(row)
    return out


def bench(tag: str, o: BenchOptions, log=print) -> dict[str, Any]:
    """Export what is missing (reusing what exists), check parity, time every format; write the report.

    Each format is timed in `o.repeats` fresh processes, taken in turns (format A, B, C, A, B, C, ...), so
    that a slow spell of a shared machine falls on every format alike; the figures are medians over them."""
    spec = _spec(tag, o.untrained)
    if o.threads:
        torch.set_num_threads(o.threads)
    o = replace(o, device=resolve_device(o.device, o.formats))

    checked = export_and_check(
        spec.name,
        o.formats,
        ExportOptions(out=o.artifacts, data=o.data, use_existing=True, device=o.device),
        parity_images=o.parity_images,
        log=log,
    )
    find_dataset(spec.dataset, o.data, "test")  # one clear sentence now if the data is missing
    summary = {c.target: _summary_entry(c) for c in checked}
    for c in checked:  # the verdict policy (serve/verdicts.py): unverified artifacts are not timed
        if c.status in UNVERIFIED:
            why = c.reason() or "it was never checked against its original"
            if o.allow_unverified:
                summary[c.target]["warning"] = f"timed although {why} ({ALLOW})"
            else:
                summary[c.target] |= {
                    "refused": True,
                    "message": f"not timed: {why}; {ALLOW} times it anyway",
                }
    timed = {
        c.target: c.artifact.path if c.artifact else None
        for c in checked
        if c.status != "failed" and not summary[c.target].get("refused")
    }
    runs: dict[str, list[list[dict[str, Any]]]] = {fmt: [] for fmt in timed}
    loads = [load_average()]
    with step(
        f"timing {len(timed)} target(s) x {o.repeats} process(es)", total=len(timed) * o.repeats
    ) as advance:
        for r in range(o.repeats):
            for fmt in [f for f in timed if summary[f]["status"] != "failed"]:
                log(f"timing {fmt} (process {r + 1} of {o.repeats}) ...")
                try:
                    runs[fmt].append(time_in_fresh_process(spec.name, fmt, timed[fmt], o))
                except ZooError as e:
                    summary[fmt] |= {"status": "failed", "message": str(e)}
                advance()
    loads.append(load_average())
    rows = []
    for fmt, done in runs.items():
        if summary[fmt]["status"] != "failed" and done:
            by_batch = medians_over_processes(done)
            rows += by_batch
            summary[fmt]["by_batch"] = {row["batch"]: row for row in by_batch}
    eager1 = next((r["model_p50_ms"] for r in rows if r["format"] == targets.EAGER and r["batch"] == 1), None)
    for entry in summary.values():
        one = entry.get("by_batch", {}).get(1)
        if one and eager1:
            entry["speedup_vs_eager_b1"] = eager1 / one["model_p50_ms"]
    report = {
        "model": spec.name,
        "untrained": bool(spec.extra.get("untrained")),
        "hardware": hardware(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in o.__dict__.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
        "summary": list(summary.values()),
        "fastest": fastest(list(summary.values())),
        # what the bench says of its own figures (serve/bench_checks.py): empty when nothing is suspect
        "checks": checks(rows, loads, os.cpu_count()),
        "load_average": {"before": loads[0], "after": loads[-1], "cores": os.cpu_count()},
    }
    for fmt, path in timed.items():
        if path is not None and "by_batch" in summary[fmt]:
            record = {k: report[k] for k in ("created", "hardware")} | {"rows": summary[fmt]["by_batch"]}
            update_card(path, **{targets.get(fmt).card_key: record})
    write_report(report, Path(o.out))
    return report


def resolve_device(device: str, formats: list[str]) -> str:
    """`auto`: cuda when a target runs on a GPU (an engine, or ONNX Runtime's cuda / tensorrt provider) and
    PyTorch sees one, so that "vs eager" compares like with like; else cpu."""
    if device != "auto":
        return device
    on_gpu = any(
        t.artifact and runtime_for(t.artifact, t.backend).on_gpu(t.backend) for t in map(targets.get, formats)
    )
    return "cuda" if on_gpu and torch.cuda.is_available() else "cpu"


def fastest(summary: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The artifact + runtime pair with the lowest batch-1 latency among those within their parity bar
    (untrained weights: timing only), with the ratio of the next best to it."""
    ok = [e for e in summary if e["status"] in ("ok", "timing only") and 1 in e.get("by_batch", {})]
    ranked = sorted(ok, key=lambda e: e["by_batch"][1]["model_p50_ms"])
    if not ranked:
        return None
    best = {"format": ranked[0]["format"], "p50_ms_b1": ranked[0]["by_batch"][1]["model_p50_ms"]}
    if len(ranked) > 1:
        runner_up = ranked[1]["by_batch"][1]["model_p50_ms"]
        best |= {"runner_up": ranked[1]["format"], "ratio": runner_up / best["p50_ms_b1"]}
    return best


def _spec(tag: str, untrained: bool):
    """The weights to time: the tag's, or with `untrained` seeded random ones registered for it."""
    if untrained:
        return register(tag)
    spec = registry.resolve(tag)[1]
    if spec is None:
        raise ZooError(
            f"{tag} has no pretrained weights to benchmark; time its architecture with --untrained."
        )
    return spec


def _summary_entry(c) -> dict[str, Any]:
    """A format's line of the report before timing: its status, size and parity."""
    entry: dict[str, Any] = {"format": c.target, "status": c.status}
    if c.exported is None:
        return entry | {"size_mb": None, "parity": {"top1_agreement": 100.0, "top1": c.parity.get("top1")}}
    if c.artifact is None:
        return entry | {"message": c.message}
    entry |= {
        "size_mb": c.artifact.card["size_bytes"] / 1e6,
        "parity": {k: c.parity.get(k) for k in ("top1", "reference_top1", "top1_agreement", "images")},
    }
    return entry | ({"message": c.message} if c.message else {})


SUMMARY_COLUMNS = [
    "format",
    "status",
    "size MB",
    "top-1",
    "agreement",
    "p50 ms b1 (per process)",
    "p99 ms b1",
    "e2e p50 ms b1",
    "best img/s",
    "vs eager b1",
]


def summary_cells(report: dict[str, Any]) -> list[list[str]]:
    """The summary table in the style of Ultralytics' benchmark, one row of text cells per format:
    the one rendering of it, for the terminal and for Markdown."""

    def num(v: Any, fmt: str, unit: str = "") -> str:
        return "-" if v is None else format(v, fmt) + unit

    rows = []
    suspect = suspect_formats(report.get("rows", []))  # a speed-up from a row a check names is marked
    for e in report["summary"]:
        by_batch = {int(b): r for b, r in e.get("by_batch", {}).items()}  # keys are strings once in JSON
        one = by_batch.get(1, {})
        runs = one.get("model_p50_ms_runs") or []
        spread = f" ({'–'.join(format(r, '.3f') for r in (min(runs), max(runs)))})" if len(runs) > 1 else ""
        parity = e.get("parity") or {}
        rows.append(
            [
                e["format"],
                e["status"]
                + (" (not timed)" if e.get("refused") else " (timed anyway)" * bool(e.get("warning"))),
                num(e.get("size_mb"), ".2f"),
                num(parity.get("top1"), ".2f"),
                num(parity.get("top1_agreement"), ".2f", "%"),
                num(one.get("model_p50_ms"), ".3f") + spread,
                num(one.get("model_p99_ms"), ".3f"),
                num(one.get("e2e_p50_ms"), ".3f"),
                num(max((r["model_images_per_s"] for r in by_batch.values()), default=None), ".0f"),
                num(e.get("speedup_vs_eager_b1"), ".1f", "×")
                + (" ⚠" if e.get("speedup_vs_eager_b1") and {e["format"], targets.EAGER} & suspect else ""),
            ]
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The summary as a Markdown table (what the README shows), with the run's hardware under it."""
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + " --- |" * len(SUMMARY_COLUMNS),
        *("| " + " | ".join(row) + " |" for row in summary_cells(report)),
    ]
    hw, o = report["hardware"], report["options"]
    v = hw.get("versions", {})
    if report.get("fastest"):
        lines += ["", fastest_sentence(report["fastest"])]
    if report.get("checks"):
        lines += ["", *(f"⚠ {c}." for c in report["checks"])]
    repeats = o.get("repeats")
    lines += [
        "",
        f"{report['model']}{' (untrained: timing only)' if report.get('untrained') else ''} on "
        f"{hw.get('gpu') or hw.get('cpu')} ({hw.get('cpu_count')} CPUs), torch {v.get('torch')}, "
        f"onnxruntime {v.get('onnxruntime')}, {report['created']}; each format in {repeats} fresh "
        f"process{'es' if repeats != 1 else ''} taken in turns, medians over them; {o.get('seconds')} s timed per batch size; "
        f"parity on {_parity_count(report)} labelled test images, bars judged on 95% confidence intervals.",
    ]
    return "\n".join(lines) + "\n"


def fastest_sentence(best: dict[str, Any]) -> str:
    ahead = f", {best['ratio']:.2f}× ahead of {best['runner_up']}" if "runner_up" in best else ""
    return (
        f"Fastest within its parity bar: {best['format']} ({best['p50_ms_b1']:.3f} ms p50 at batch 1{ahead})."
    )


def _parity_count(report: dict[str, Any]) -> str:
    counts = {(e.get("parity") or {}).get("images") for e in report.get("summary", [])} - {None}
    return ", ".join(str(c) for c in sorted(counts)) or str(report["options"].get("parity_images") or "all")


def write_report(report: dict[str, Any], out: Path) -> None:

    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{report['model']}"
    with atomic_path(out / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(markdown(report))
    if report["rows"]:
        with atomic_path(out / f"{stem}.csv") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=sorted({k for r in report["rows"] for k in r}))
            writer.writeheader()
            writer.writerows(report["rows"])
        plot(report, out / f"{stem}.png")


def plot(report: dict[str, Any], path: Path) -> None:
    """The chart as a PNG (nothing without matplotlib)."""
    fig = chart(report)
    if fig is not None:
        save(fig, path)


def chart(report: dict[str, Any]):
    """Latency and throughput against batch size, one line a format: a tick at each batch timed, the
    range of the fresh processes' p50s as bars, formats that were not timed named in the legend."""
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    status = {e["format"]: e["status"] for e in report["summary"]}
    batches = sorted({r["batch"] for r in report["rows"]})
    for fmt in dict.fromkeys(r["format"] for r in report["rows"]):
        rs = sorted((r for r in report["rows"] if r["format"] == fmt), key=lambda r: r["batch"])
        bad = status.get(fmt) in UNVERIFIED  # timed with --allow-unverified: dashed, grey, and labelled
        style = {"linestyle": "--", "color": "0.6", "marker": "x"} if bad else {"marker": "o"}
        label = f"{fmt} ({status[fmt]})" if bad else fmt
        x, p50 = [r["batch"] for r in rs], [r["model_p50_ms"] for r in rs]
        # the spread between the fresh processes: the lowest and highest of their p50s
        runs = [r.get("model_p50_ms_runs") or [r["model_p50_ms"]] for r in rs]
        low = [m - min(rr) for m, rr in zip(p50, runs, strict=True)]
        high = [max(rr) - m for m, rr in zip(p50, runs, strict=True)]
        line = a.errorbar(x, p50, yerr=[low, high], capsize=3, label=label, **style)
        color = line[0].get_color()
        b.plot(x, [r["model_images_per_s"] for r in rs], label=label, **{**style, "color": color})
    for e in report["summary"]:  # what was not timed is named on the chart, not left out silently
        if e["format"] not in {r["format"] for r in report["rows"]} and e["status"] != "ok":
            for ax in (a, b):
                ax.plot(
                    [],
                    [],
                    linestyle="none",
                    marker="x",
                    color="red",
                    label=f"{e['format']}: {e['status']}, not timed",
                )
    a.set(
        xscale="log", yscale="log", xlabel="batch", ylabel="p50 latency (ms, model only; bars: process range)"
    )
    b.set(xscale="log", yscale="log", xlabel="batch", ylabel="images/s (model only)")
    for ax in (a, b):
        ax.set_xticks(batches)  # a tick at each batch size timed, written as a plain number
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    suspect = report.get("checks") or []
    title = f"{report['model']} on {report['hardware']['cpu']}"
    fig.suptitle(title + (f": {len(suspect)} warning(s), see the report" if suspect else ""), fontsize=9)
    return fig


if __name__ == "__main__":  # one format timed in this fresh process: python -m serve.bench JOB_JSON
    import sys

    print(json.dumps(_worker(json.loads(sys.argv[1]))))
