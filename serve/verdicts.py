"""Whether an artifact may be run: the one policy that `zoo predict`, the web demo, `zoo triton` and
`zoo bench` honour. An artifact runs when its last parity check under the zoo's own bars passed; one that
failed, or was never checked, is refused in one sentence that says how to check it here or how to use it
anyway (ALLOW, which then prints a warning). A precision-sensitive verdict (int8 on fused CPU kernels,
bf16) measured on another class of CPU is used with a one-line note: such kernels compute differently
there (export/int8.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.export.artifact import read_card
from zoo.export.int8 import EXACT
from zoo.utils.machine import bf16_class, cpu_features, int8_class

ALLOW = "--allow-unverified"
MARKS = {"passed": "✅", "failed": "❌", "not validated": "·"}


@dataclass(frozen=True)
class Standing:
    status: str  # passed, failed, not validated
    reason: str  # why it failed, or why it has no verdict ("" when it passed)
    host_note: str = ""  # the verdict was measured on another class of CPU ("" when not)

    @property
    def mark(self) -> str:
        return MARKS[self.status]


def card_key(backend: str | None) -> str:
    """Where a card keeps the parity of the artifact run by `backend` (None: its own runtime)."""
    return f"parity_{backend}" if backend else "parity"


def standing(card: dict[str, Any], backend: str | None = None, features: list[str] | None = None) -> Standing:
    """The artifact's standing for `backend` on this CPU (or one with `features`), from its card."""
    result = card.get(card_key(backend))
    on = f" with {backend}" if backend else ""
    if not isinstance(result, dict) or not result:
        return Standing("not validated", f"it has never been checked{on} against its original")
    passed = result.get("verdict", {}).get("passed") if isinstance(result.get("verdict"), dict) else None
    if passed is None:
        why = result.get("failed") or result.get("skipped") or "its last check gave no verdict"
        return Standing("failed" if "failed" in result else "not validated", str(why))
    if not passed:
        failures = "; ".join(result["verdict"].get("failures") or ["outside its bar"])
        return Standing("failed", f"its last parity check{on} failed: {failures}")
    return Standing("passed", "", _host_note(result, features))


def _host_note(result: dict[str, Any], features: list[str] | None) -> str:
    """One clause when a precision-sensitive verdict was measured on another class of CPU than this one."""
    where = result.get("measured_on")
    candidate = result.get("candidate", {})
    if candidate.get("device", "cpu") != "cpu" or candidate.get("arithmetic") == EXACT:
        return ""  # a GPU's or exact arithmetic: the same on every CPU
    precision = candidate.get("precision")
    if precision not in ("int8", "bf16"):
        return ""
    if not isinstance(where, dict):
        return f"its {precision} verdict does not say which CPU it was measured on"
    here = cpu_features() if features is None else features
    kind, now = ("int8_class", int8_class(here)) if precision == "int8" else ("bf16_class", bf16_class(here))
    if where.get(kind) == now:
        return ""
    return (
        f"its {precision} verdict was measured on a CPU of class {where.get(kind)} ({where.get('cpu')}), "
        f"this one is {now}, whose kernels compute differently"
    )


def admit(
    directory: str | Path,
    backend: str | None = None,
    allow: bool = False,
    features: list[str] | None = None,
) -> list[str]:
    """The lines to show before running the artifact in `directory` (warnings, notes); raises ZooError
    with one sentence when its verdict refuses it and `allow` was not given."""
    card = read_card(Path(directory))
    s = standing(card, backend, features)
    check = f"`zoo parity {card['source']} {directory}" + (f" --backend {backend}`" if backend else "`")
    lines = []
    if s.status != "passed":
        if not allow:
            raise ZooError(
                f"{directory} is refused: {s.reason}. Check it here with {check}, "
                f"or use it anyway with {ALLOW}."
            )
        lines.append(f"warning: {directory}: {s.reason}; used anyway ({ALLOW}).")
    if s.host_note:
        lines.append(f"note: {directory}: {s.host_note}; check it here with {check}.")
    return lines
