"""Table 6 of the paper, regenerated from data: for each CIFAR-10 depth, the paper's test error, the
public reference checkpoint's, and the zoo's own weights' (single crop and flip averaging), all taken from
`archs.toml` and the weights manifests, never typed."""

from __future__ import annotations

from typing import Any

from zoo.models import registry

DEPTHS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")


def rows() -> list[dict[str, Any]]:

    out = []
    for arch in DEPTHS:
        a = registry.archs()[arch]
        tags = [s for s in registry.pretrained_tags().values() if s.arch == arch and s.dataset == "cifar10"]
        reference = next((s for s in tags if s.tag == "akamaster"), None)
        own = next((s for s in tags if s.file is not None and not s.extra.get("untrained")), None)

        def error(spec, key: str = "top1") -> float | None:
            value = spec.metrics.get(key) if spec is not None else None
            return round(100.0 - value, 2) if value is not None else None

        out.append(
            {
                "arch": arch,
                "params_m": round(a["params"] / 1e6, 2),
                "paper": a.get("paper_error"),
                "reference": error(reference),
                "reference_tag": reference.name if reference else None,
                "zoo": error(own),
                "zoo_flip": error(own, "top1_flip"),
                "zoo_tag": own.name if own else None,
                "zoo_epochs": own.extra.get("epochs") if own else None,
            }
        )
    return out


TITLE = "Table 6 of He et al. 2015: CIFAR-10 test error (%), lower is better"
COLUMNS = ["net", "params (M)", "paper", "reference", "zoo", "zoo, flip", "zoo top-1", "zoo tag"]
FOOTNOTE = (
    "10,000 test images. paper: Table 6; reference: the public akamaster checkpoints, best test-split epoch "
    "of their runs (a selection on the test split); zoo: its final epoch, measured by `zoo eval` (single crop, "
    "and with flip averaging)."
)


def cells(table: list[dict[str, Any]]) -> list[list[str]]:
    """One row of strings a depth, in the order of COLUMNS."""

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    return [
        [
            r["arch"],
            f"{r['params_m']}",
            cell(r["paper"]),
            cell(r["reference"]),
            cell(r["zoo"]),
            cell(r["zoo_flip"]),
            cell(None if r["zoo"] is None else 100.0 - r["zoo"]),
            f"{r['zoo_tag']} ({r['zoo_epochs']} epochs)" if r["zoo_tag"] else "not trained yet",
        ]
        for r in table
    ]


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells(table)]
    return "\n".join([*lines, "", f"{TITLE}. {FOOTNOTE}"]) + "\n"
