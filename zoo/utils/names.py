"""Names the zoo files things under (tags, datasets, label sets, presets): checked once, where they are
parsed, so that a name can never be a path (`../`, `/`, a NUL), a line break or a quote that ends up in a
file name, a manifest or a shell command."""

from __future__ import annotations

import re

from zoo.errors import ZooError

MAX_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")


def check_name(text: object, what: str = "name") -> str:
    """`text` when it is a name: a letter or digit, then letters, digits, `_`, `+` or `-`, at most 64 in all."""
    if isinstance(text, str) and _ok(text):
        return text
    shown = repr(text) if len(repr(text)) <= 80 else repr(text)[:77] + "..."
    raise ZooError(
        f"{what} {shown} is not a name: use at most {MAX_LENGTH} letters, digits, '_', '+' or '-', "
        "starting with a letter or digit."
    )


def split_tag(name: object) -> tuple[str, str]:
    """`ARCH.TAG` -> (arch, tag), each part a name; `ARCH` alone -> (arch, "")."""
    arch, dot, tag = name.partition(".") if isinstance(name, str) else ("", "", "")
    if not (_ok(arch) and (not dot or _ok(tag))):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ZooError(
            f"{shown} is not a model name: ARCH or ARCH.TAG, each part at most {MAX_LENGTH} letters, "
            "digits, '_', '+' or '-' (e.g. resnet50.tv2_in1k)."
        )
    return arch, tag


def _ok(text: str) -> bool:
    return len(text) <= MAX_LENGTH and bool(_NAME.fullmatch(text))
