"""Figures for reports (training curves, Figure 6, bench plots): matplotlib is optional, headless, and
every PNG is written whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.utils.files import atomic_path
from zoo.utils.lazy import installed, lazy_import

matplotlib = lazy_import("matplotlib")
plt = lazy_import("matplotlib.pyplot")


def pyplot() -> Any | None:
    """matplotlib.pyplot on the headless Agg backend, or None when matplotlib is not installed."""
    if not installed("matplotlib"):
        return None
    matplotlib.use("Agg")
    return plt


def save(fig: Any, path: Path, dpi: int = 110) -> None:

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)

    plt.close(fig)
