"""Fuzzing `load_image` with mutated real images: whatever the bytes, the loader returns an 8-bit RGB
image or refuses in one sentence (ZooError); it never raises anything else. Bounded in count and time."""

from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz test needs hypothesis (the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from zoo.data.preprocess import load_image  # noqa: E402
from zoo.errors import ZooError  # noqa: E402

EXAMPLES = 3000  # inputs tried per run (the closing note reports this figure)
TRIED: list[str] = []


def _seeds() -> list[bytes]:
    """One real photo (a CIFAR-10 test image when the data is here, else a drawn one) in 8 encodings."""
    from tests.conftest import data_root

    root = data_root()
    if root is not None and (root / "cifar10" / "test.npz").is_file():
        from zoo.data.datasets import CIFAR10

        img = CIFAR10(root / "cifar10", "test")[11][0].resize((48, 40))
    else:
        img = Image.linear_gradient("L").convert("RGB").resize((48, 40))
    out = []
    for fmt, mode in (
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "P"),
        ("JPEG", "RGB"),
        ("JPEG", "CMYK"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("TIFF", "I;16"),
    ):
        buf = io.BytesIO()
        (img.convert("L").convert(mode) if mode == "I;16" else img.convert(mode)).save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero-run"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at : at + draw(st.integers(1, 64))] = b"\0" * 8
    return bytes(data)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_load_image_never_raises_anything_but_one_sentence(tmp_path_factory, data):
    TRIED.append("x")
    path = tmp_path_factory.getbasetemp() / "fuzz.bin"
    path.write_bytes(data)
    for source in (path, data):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    img = load_image(source, max_pixels=4_000_000)
                finally:
                    assert not caught, [str(w.message) for w in caught]  # only the zoo's own words
        except ZooError as e:
            message = str(e)
            assert message and "\n" not in message and message.endswith((".", ")", "?")), message
        else:
            assert img.mode == "RGB" and img.size[0] > 0 and img.size[1] > 0


def test_the_fuzz_run_tried_what_it_says():
    """Run after the fuzz test (file order): it tried EXAMPLES inputs, or it did not run at all."""
    assert len(TRIED) in (0, EXAMPLES), len(TRIED)
    print(f"fuzz: {len(TRIED)} mutated images tried")
