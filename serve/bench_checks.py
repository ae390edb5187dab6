"""What `zoo bench` says of its own figures before anyone quotes them (as trtexec warns when run-to-run
variation is high): an end-to-end time below the model-only time it contains, processes that disagree,
a long tail, too few timed runs, and a machine busier than its cores. Each check is one sentence in the
report's JSON (`checks`), under the table and in the Markdown; a speed-up computed from a row that a check
names is marked as such, not silently printed."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

SPREAD_LIMIT = 0.25  # the fresh processes' p50s may differ by this fraction of their median
TAIL_LIMIT = 3.0  # p99 above this multiple of p50: the run was disturbed
MIN_RUNS = 10  # timed calls per process below which a percentile says little


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def row_checks(row: dict[str, Any]) -> list[str]:
    """The sentences one timed row earns (none for a clean one)."""
    where, out = f"{row['format']} at batch {row['batch']}", []
    model, e2e = row.get("model_p50_ms"), row.get("e2e_p50_ms")
    if model and e2e is not None and e2e < model:
        out.append(
            f"{where}: end-to-end p50 {e2e:.3f} ms is below the model-only p50 {model:.3f} ms it contains: "
            "the machine's load changed between the two timings; rerun on an idle machine"
        )
    runs = [r for r in row.get("model_p50_ms_runs") or [] if r]
    if len(runs) > 1 and (max(runs) - min(runs)) / float(np.median(runs)) > SPREAD_LIMIT:
        spread = 100 * (max(runs) - min(runs)) / float(np.median(runs))
        out.append(
            f"{where}: its processes' p50s differ by {spread:.0f}% ({min(runs):.3f}-{max(runs):.3f} ms)"
        )
    p99 = row.get("model_p99_ms")
    if model and p99 and p99 > TAIL_LIMIT * model:
        out.append(f"{where}: p99 is {p99 / model:.1f}x p50: calls were interrupted")
    if row.get("model_runs") is not None and row["model_runs"] < MIN_RUNS:
        out.append(f"{where}: only {row['model_runs']} timed calls per process; give more --seconds")
    return out


def checks(rows: list[dict[str, Any]], loads: list[float | None], cores: int | None) -> list[str]:
    """Every sentence of a run: its rows' and, where the load average during it exceeded the cores, the
    machine's."""
    out = [c for row in rows for c in row_checks(row)]
    seen = [x for x in loads if x is not None]
    if seen and cores and max(seen) > cores:
        out.append(
            f"the machine's load average reached {max(seen):.1f} on {cores} cores during the run: other work "
            "shared the cores, so every figure is slower and noisier than on an idle machine"
        )
    return out


def suspect_formats(rows: list[dict[str, Any]]) -> set[str]:
    """The formats whose batch-1 row a check names (their speed-ups are marked, not claimed)."""
    return {r["format"] for r in rows if r["batch"] == 1 and row_checks(r)}
