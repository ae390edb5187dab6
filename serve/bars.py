"""The parity bars: how closely an artifact of each precision must follow its PyTorch original, judged
on 95% confidence intervals by serve/parity.py. Light on purpose: the CLI's help states them."""

from __future__ import annotations

BARS = {
    "fp32": {"top1_agreement": 99.9},
    "fp16": {"top1_agreement": 99.5},
    "int8": {"top1_agreement": 97.0, "accuracy_drop": 0.5},
}
JUDGED_AS = {"bf16": "fp16"}  # bf16 compute (OpenVINO's default on CPUs with it) is held to the FP16 bar
_OPTIONS = {  # the bars a user may set: --fp32-bar, --fp16-bar, --int8-bar, --int8-max-drop
    "fp32_bar": ("fp32", "top1_agreement"),
    "fp16_bar": ("fp16", "top1_agreement"),
    "int8_bar": ("int8", "top1_agreement"),
    "int8_max_drop": ("int8", "accuracy_drop"),
}


def bars_with(**given: float | None) -> dict[str, dict[str, float]]:
    """BARS with the ones a user gave (keyword names as the options: fp32_bar, ..., int8_max_drop)."""
    out = {precision: dict(bar) for precision, bar in BARS.items()}
    for option, value in given.items():
        if value is not None:
            precision, key = _OPTIONS[option]
            out[precision][key] = value
    return out
