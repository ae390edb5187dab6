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


def _row(fmt="onnx", batch=1, p50=2.0, e2e=3.0, p99=2.5, runs=(2.0, 2.1), n=50):
    return {
        "format": fmt,
        "batch": batch,
        "model_p50_ms": p50,
        "e2e_p50_ms": e2e,
        "model_p99_ms": p99,
        "model_p50_ms_runs": list(runs),
        "model_runs": n,
        "model_images_per_s": 1000 * batch / p50,
    }


@pytest.mark.parametrize(
    "row, words",
    [
        (_row(), None),
        (
            _row(p50=1202.0, e2e=145.0, p99=1300.0, runs=(1202.0, 1210.0)),
            "below the model-only p50 1202.000 ms",
        ),
        (_row(runs=(1.0, 2.0)), "processes' p50s differ by 67%"),
        (_row(p99=9.0), "p99 is 4.5x p50"),
        (_row(n=4), "only 4 timed calls"),
    ],
    ids=["clean", "e2e-below-model", "spread", "tail", "few-runs"],
)
def test_the_bench_names_figures_that_cannot_be_trusted(row, words):
    """The figures of the issue (p50 1,202 ms with an end-to-end p50 of 145 ms) and the other ways a run
    disagrees with itself each earn one sentence; a clean row none."""
    from zoo.serve.bench_checks import checks, row_checks

    found = row_checks(row)
    assert (found == []) if words is None else (len(found) == 1 and words in found[0]), found
    assert checks([row], [1.0], 2) == found  # a load below the cores adds nothing
    busy = checks([row], [0.5, 5.3], 2)
    assert busy[-1].startswith("the machine's load average reached 5.3 on 2 cores")


def _report(rows, summary, checks=()):
    return {
        "model": "resnet20.cifar10",
        "untrained": False,
        "hardware": {"cpu": "test CPU", "cpu_count": 2, "versions": {}},
        "options": {"repeats": 1, "seconds": 0.1},
        "created": "now",
        "rows": rows,
        "summary": summary,
        "fastest": None,
        "checks": list(checks),
    }


def test_a_speedup_from_a_suspect_row_is_marked_and_the_checks_are_written_under_the_table():
    from zoo.serve.bench import markdown, summary_cells

    eager = _row("pytorch", p50=500.0, e2e=510.0, p99=520.0, runs=(500.0, 505.0))
    fast = _row("onnx", p50=1.0, e2e=0.5, p99=1.2, runs=(1.0, 1.01))  # e2e below model: suspect
    summary = [
        {"format": f, "status": "ok", "by_batch": {1: r}, "speedup_vs_eager_b1": 500.0 / r["model_p50_ms"]}
        for f, r in (("pytorch", eager), ("onnx", fast))
    ]
    from zoo.serve.bench_checks import checks

    report = _report([eager, fast], summary, checks([eager, fast], [], 2))
    cells = {c[0]: c for c in summary_cells(report)}
    assert cells["onnx"][-1] == "500.0× ⚠" and cells["pytorch"][-1] == "1.0×"
    text = markdown(report)
    assert "⚠ onnx at batch 1: end-to-end p50 0.500 ms is below" in text
    assert "in 1 fresh process taken" in text  # not "1 fresh processes"


def test_the_summary_is_a_well_formed_markdown_table_with_each_figure_in_its_column():
    """Every line of the table has one cell a column, under the header's names; the parity figures (top-1
    and the agreement with the original) and the timings land in their own columns, formatted."""
    from zoo.serve.bench import SUMMARY_COLUMNS, markdown

    rows = [_row("onnx", 1, p50=2.0, e2e=3.0, p99=2.5, runs=(1.9, 2.2)), _row("onnx", 8, p50=4.0)]
    summary = [
        {
            "format": "onnx",
            "status": "ok",
            "size_mb": 1.234,
            "parity": {"top1": 91.236, "top1_agreement": 99.55, "images": 1000},
            "by_batch": {1: rows[0], 8: rows[1]},
            "speedup_vs_eager_b1": 3.04,
        }
    ]
    text = markdown(_report(rows, summary))
    assert "parity on 1000 labelled test images" in text  # the count the checks used, not "all"
    table = [line for line in text.splitlines() if line.startswith("|")]
    header, rule, body = table[0], table[1], table[2:]
    assert [c.strip() for c in header.strip("|").split("|")] == SUMMARY_COLUMNS
    assert rule == "|" + " --- |" * len(SUMMARY_COLUMNS)
    (row,) = body
    cells = dict(zip(SUMMARY_COLUMNS, [c.strip() for c in row.strip("|").split("|")], strict=True))
    assert cells == {
        "format": "onnx",
        "status": "ok",
        "size MB": "1.23",
        "top-1": "91.24",
        "agreement": "99.55%",
        "p50 ms b1 (per process)": "2.000 (1.900–2.200)",
        "p99 ms b1": "2.500",
        "e2e p50 ms b1": "3.000",
        "best img/s": "2000",  # batch 8 at 4 ms: 8 x 1000 / 4
        "vs eager b1": "3.0×",
    }


def test_the_chart_has_a_tick_per_batch_the_spread_and_the_formats_not_timed(tmp_path):
    from zoo.serve.bench import chart

    rows = [_row("onnx", b, p50=b * 1.0, runs=(b * 0.9, b * 1.2)) for b in (1, 8, 64)]
    summary = [
        {"format": "onnx", "status": "ok"},
        {"format": "onnx-int8", "status": "failed", "message": "could not be exported"},
    ]
    fig = chart(_report(rows, summary))
    latency = fig.axes[0]
    assert list(latency.get_xticks()) == [1, 8, 64]
    assert [t.get_text() for t in latency.get_xticklabels()] == ["1", "8", "64"]
    labels = [t.get_text() for t in latency.get_legend().get_texts()]
    assert "onnx" in labels and "onnx-int8: failed, not timed" in labels
    bars = [c for c in latency.collections if c.get_segments()]  # the process range at each batch
    assert bars and len(bars[0].get_segments()) == 3
    (low, high) = bars[0].get_segments()[1][:, 1]  # batch 8: from 7.2 to 9.6 ms
    assert (low, high) == pytest.approx((7.2, 9.6))
    # latency and throughput side by side; the bench's warnings counted in the title
    left, right = (ax.get_position() for ax in fig.axes[:2])
    assert left.y0 == pytest.approx(right.y0) and left.x1 < right.x0
    assert fig._suptitle.get_text() == "resnet20.cifar10 on test CPU"
    warned = chart(_report(rows, summary, checks=["onnx at batch 1: something", "onnx at batch 8: else"]))
    assert warned._suptitle.get_text() == "resnet20.cifar10 on test CPU: 2 warning(s), see the report"


def test_the_end_to_end_bench_times_the_bytes_a_deployment_receives(data):
    """Breakage: the photos re-encoded as PNG (a different decode, so different end-to-end figures) instead
    of the JPEG files themselves; CIFAR-10, which has no files, as PNG that decodes to its exact pixels."""
    import io

    from PIL import Image

    from zoo.data.datasets import find_dataset
    from zoo.serve.bench import encoded_images

    photos = find_dataset("imagenet1k", data)
    got = encoded_images(photos, 3)
    assert got == [path.read_bytes() for path, _ in photos.samples[:3]]
    assert all(b[:2] == b"\xff\xd8" for b in got)  # JPEG files, as they are on disk
    cifar = find_dataset("cifar10", data, "test")
    (png,) = encoded_images(cifar, 1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(cifar[0][0]))
