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


def markdown(table: list[dict[str, Any]]) -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [
        "| net | params (M) | paper | reference (akamaster, best epoch) | zoo | zoo, flip | zoo tag |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table:
        tag = f"`{r['zoo_tag']}` ({r['zoo_epochs']} epochs)" if r["zoo_tag"] else "not trained yet"
        lines.append(
            f"| {r['arch']} | {r['params_m']} | {cell(r['paper'])} | {cell(r['reference'])} | {cell(r['zoo'])} "
            f"| {cell(r['zoo_flip'])} | {tag} |"
        )
    lines.append("")
    lines.append(
        "CIFAR-10 test error (%), 10,000 images. The reference figures are the best test-split epoch of "
        "their runs (a selection on the test split); the zoo's are its final epoch, measured by `zoo eval`."
    )
    return "\n".join(lines) + "\n"
