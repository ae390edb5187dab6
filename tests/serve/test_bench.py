"""The benchmark (zoo/serve/bench.py): what its figures are and how its workers run."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_bench_figures_are_medians_over_processes_not_means():
    """Breakage: medians_over_processes() averaging the processes (two repeats cannot tell a median from a mean)."""
    from zoo.serve.bench import medians_over_processes as combine

    runs = [
        [{"batch": 1, "model_p50_ms": v, "e2e_p50_ms": 2 * v, "peak_rss_mb": 10.0 + v}]
        for v in (1.0, 2.0, 10.0)
    ]
    (row,) = combine(runs)
    assert row["model_p50_ms"] == 2.0 and row["e2e_p50_ms"] == 4.0  # the mean would be 4.33 / 8.67
    assert row["model_p50_ms_runs"] == [1.0, 2.0, 10.0] and row["peak_rss_mb"] == 20.0 and row["repeats"] == 3


def test_the_bench_compares_with_eager_on_the_device_its_targets_run_on():
    from zoo.serve.bench import resolve_device

    assert resolve_device("auto", ["pytorch", "onnx", "onnx-int8-cpu"]) == "cpu"
    assert resolve_device("auto", ["pytorch", "trt-fp16"]) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", ["trt-fp16"]) == "cpu"  # what the user asked for stands


def test_a_bench_worker_that_runs_too_long_is_one_failed_row(tmp_path, cifar_tag, cifar_dir):
    from zoo.serve.bench import BenchOptions, bench

    o = BenchOptions(["pytorch"], [1], 0.1, repeats=1, out=tmp_path / "b", artifacts=tmp_path / "a")
    o.worker_timeout = 0.5  # a fresh Python with torch takes longer than that to start
    report = bench(cifar_tag, o, log=lambda _m: None)
    entry = report["summary"][0]
    assert entry["status"] == "failed" and "took longer than 0.5 s" in entry["message"] and not report["rows"]


def test_the_percentiles_are_the_named_ones_and_throughput_follows_from_batch_and_time():
    """summarise() against the standard library: p50/p90/p99 are statistics.quantiles' 50th/90th/99th
    cut points (inclusive, numpy's linear method), and images/s is batch x calls / total seconds."""
    import statistics

    from zoo.serve.bench import summarise

    rng = np.random.default_rng(3)
    times = rng.gamma(2.0, 3.0, 257)  # skewed like real latencies: every percentile differs
    cuts = statistics.quantiles(times.tolist(), n=100, method="inclusive")
    s = summarise(times, batch=8)
    assert s["runs"] == 257
    assert s["p50_ms"] == pytest.approx(cuts[49]) and s["p90_ms"] == pytest.approx(cuts[89])
    assert s["p99_ms"] == pytest.approx(cuts[98]) and s["p99_ms"] != pytest.approx(cuts[94])
    assert s["images_per_s"] == pytest.approx(8 * 257 / (sum(times.tolist()) / 1000))
