"""Export these formats and check them: the one workflow behind `zoo export` and `zoo bench`.

Each target (see serve/targets.py) gets its artifact built or reused, then its parity against the PyTorch
original on real labelled images, and one status from one vocabulary, shown with one table of marks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from zoo.export.pipeline import Exported, ExportOptions, export_model
from zoo.models import registry
from zoo.serve import targets as table
from zoo.serve.parity import check_artifacts
from zoo.serve.verdicts import card_key

MARKS = {
    "ok": "✅",  # exported and within its parity bar (or the PyTorch original itself)
    "parity failed": "❌",  # exported, but outside its parity bar, or it could not be run for parity
    "failed": "❌",  # not exported, or could not be timed
    "not validated": "·",  # exported; no labelled images were at hand to check it on
    "timing only": "⏱",  # untrained weights: agreement says little and accuracy nothing
}
VERDICTS = {  # a status in the words of a table's verdict column, after its mark
    "ok": "passed",
    "parity failed": "failed parity",
    "failed": "failed",
    "not validated": "not validated (no labelled images)",
    "timing only": "timing only (untrained weights)",
}
SUCCESS = ("ok", "not validated", "timing only")  # the statuses a command exits 0 with


@dataclass
class Checked:
    target: str
    status: str  # a key of MARKS
    exported: Exported | None = None  # how its artifact came to be (None: the PyTorch original)
    parity: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def artifact(self):
        return self.exported.artifact if self.exported else None

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    @property
    def verdict(self) -> str:
        """The mark and its words: what a table says of this target."""
        return f"{self.mark} {VERDICTS[self.status]}"

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS

    def reason(self) -> str:
        """Why it is not ok, in one clause."""
        if self.message:
            return self.message
        failures = self.parity.get("verdict", {}).get("failures")
        return "failed its parity bar: " + "; ".join(failures) if failures else self.parity.get("failed", "")


def status_of(parity: dict[str, Any]) -> str:
    """The status an artifact's parity result gives it: a verdict, a failure to run, or no check."""
    passed = parity.get("verdict", {}).get("passed")
    if passed is None:
        return "parity failed" if "failed" in parity else "not validated"
    return "ok" if passed else "parity failed"


def export_and_check(
    tag: str,
    targets: list[str],
    options: ExportOptions,
    *,
    parity_images: int | None = None,
    parity_data: str | None = None,
    bars: dict | None = None,
    log: Callable[[str], None] = print,
    recheck: bool = True,
) -> list[Checked]:
    """Build (or reuse) the artifact of every target of the pretrained tag `tag`, check each against the
    PyTorch original on `parity_images` labelled test images (None: the whole split; 0: no check) of
    `parity_data` (None: `options.data`, then $ZOO_DATA), and say how each went, in `targets`' order.
    A reused artifact keeps the verdict its card holds when `recheck` is False or parity_images is 0."""
    wanted = [table.get(t) for t in targets]
    formats = list(dict.fromkeys(t.artifact for t in wanted if t.artifact))
    exported = (
        {r.format: r for r in export_model(tag, replace(options, formats=formats), log)} if formats else {}
    )
    built = [(exported[t.artifact], t.backend) for t in wanted if t.artifact]
    checks, runs = {}, []
    for made, backend in built:
        if made.artifact is None:
            continue
        kept = made.artifact.card.get(card_key(backend)) if made.status == "reused" else None
        if kept and (not recheck or parity_images == 0):
            checks[(made.artifact.path, backend)] = kept  # the verdict it holds: reused with it
        else:
            runs.append((made.artifact.path, backend))
    if parity_images != 0 and runs:
        count = "all" if parity_images is None else str(parity_images)
        log(
            f"parity: {len(runs)} artifact(s) against the PyTorch original on {count} labelled test images ..."
        )
        found = check_artifacts(tag, runs, parity_data or options.data, parity_images, bars)
        checks |= {(d, backend): found[(str(d), backend)] for d, backend in runs}
    reference = next((c["reference_top1"] for c in checks.values() if "reference_top1" in c), None)
    untrained = bool(registry.resolve(tag)[1].extra.get("untrained"))
    out = []
    for t in wanted:
        if t.artifact is None:  # the original: agreement with itself is 100% by definition
            out.append(Checked(t.name, "ok", parity={"top1_agreement": 100.0, "top1": reference}))
            continue
        made = exported[t.artifact]
        if made.artifact is None:
            out.append(Checked(t.name, "failed", made, message=made.message))
            continue
        parity = checks.get((made.artifact.path, t.backend), {})
        message = parity.get("skipped") or parity.get("failed", "")
        out.append(Checked(t.name, status_of(parity), made, parity, message))
    for c in out:
        if untrained and c.status in ("ok", "not validated"):
            c.status = "timing only"
    return out
