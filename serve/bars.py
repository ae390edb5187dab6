"""The parity bars: how closely an artifact of each precision must follow its PyTorch original, judged
on 95% confidence intervals by serve/parity.py. Light on purpose: the CLI's help states them."""

from __future__ import annotations

import math

from zoo.errors import ZooError

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
    """BARS with the ones a user gave (keyword names as the options: fp32_bar, ..., int8_max_drop).
    A bar that is not a number a check could fail (NaN, negative, an agreement above 100%) is refused."""
    out = {precision: dict(bar) for precision, bar in BARS.items()}
    for option, value in given.items():
        if value is None:
            continue
        precision, key = _OPTIONS[option]
        flag = "--" + option.replace("_", "-")
        if not math.isfinite(value) or value < 0:
            raise ZooError(f"{flag} must be a number of at least 0, not {value}.")
        if key == "top1_agreement" and value > 100:
            raise ZooError(f"{flag} is a percentage: at most 100, not {value}.")
        out[precision][key] = value
    return out


def looser(bars: dict[str, dict[str, float]]) -> list[str]:
    """The bars of `bars` that are looser than the zoo's own, as 'int8 top1_agreement 90.0 < 97.0'."""
    out = []
    for precision, own in BARS.items():
        for key, value in own.items():
            given = bars.get(precision, {}).get(key, value)
            if (given < value) if key == "top1_agreement" else (given > value):
                out.append(f"{precision} {key} {given:g} (the zoo's: {value:g})")
    return out
