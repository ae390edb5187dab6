"""One preprocessing contract: the spec that travels with the weights, and its one implementation.

Every consumer (evaluation, calibration, parity, prediction, the web demo) calls `load_image` and
`preprocess`, so an exported model sees exactly the pixels its PyTorch original was measured on.
The eval transform equals torchvision's `Resize(resize) -> CenterCrop(crop) -> ToTensor -> Normalize`.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError
from zoo.utils.files import read_bytes
from zoo.utils.lazy import lazy_import

F = lazy_import("torch.nn.functional")
torch = lazy_import("torch")

MAX_SIDE = 4096  # the largest resize / crop a spec may ask for (ResNets are evaluated at 224-480 px)
# Larger images are refused before decoding (Pillow's own decompression-bomb threshold, ~89 MP).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
MAX_BYTES = 256 << 20  # and larger files before reading them (a FIFO or a device before opening it)
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """How to turn an RGB image into the model's input: resize the shorter side, centre-crop, normalise."""

    resize: int | None
    crop: int
    interpolation: str = "bilinear"
    antialias: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ZooError(f"preprocessing {problem}.")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.crop, self.crop)

    @property
    def shorter_side(self) -> int:
        """The shorter side an image is resized to before the crop (the crop where nothing is resized):
        the scale the images of the model's dataset are expected near."""
        return self.resize or self.crop

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def __call__(self, image: str | os.PathLike | bytes | Image.Image) -> np.ndarray:
        """The contract as a transform (torchvision's `weights.transforms()`): an image, a path or bytes
        -> the normalised CHW float32 array the model and every artifact exported from it take."""
        return preprocess(load_image(image), self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "") -> PreprocessSpec:
        """The spec a card, manifest or recipe describes; one sentence naming `where` when it is not one."""
        try:
            if not isinstance(d, dict) or "crop" not in d:
                raise ZooError("preprocessing must be a table with at least `crop` (and resize, mean, std).")
            known = {k: d[k] for k in ("crop", "interpolation", "antialias", "mean", "std") if k in d}
            return cls(resize=d.get("resize"), **known)
        except ZooError as e:
            raise ZooError(f"{where}: {e}" if where else str(e)) from None


def _side(v: Any, name: str, optional: bool = False) -> str | None:
    if optional and v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIDE:
        return f"`{name}` must be a whole number of pixels from 1 to {MAX_SIDE}, not {v!r}"
    return None


def _triple(v: Any, name: str, positive: bool) -> str | None:
    ok = (
        isinstance(v, list | tuple)
        and len(v) == 3
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        and (not positive or all(x > 0 for x in v))
    )
    kind = "positive " if positive else ""
    return None if ok else f"`{name}` must be 3 finite {kind}numbers (one per RGB channel), not {v!r}"


def _problem(s: PreprocessSpec) -> str | None:
    """What makes a spec unusable (None when it is fine)."""
    if not isinstance(s.interpolation, str) or s.interpolation not in _RESAMPLE:
        return f"`interpolation` {s.interpolation!r} is not one of {', '.join(_RESAMPLE)}"
    if not isinstance(s.antialias, bool):
        return f"`antialias` must be true or false, not {s.antialias!r}"
    return (
        _side(s.resize, "resize", optional=True)
        or _side(s.crop, "crop")
        or _triple(s.mean, "mean", positive=False)
        or _triple(s.std, "std", positive=True)
    )


def load_image(
    source: str | os.PathLike | bytes | Image.Image, max_pixels: int = MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Open any image a user can hand in as 8-bit RGB, upright (EXIF orientation applied).

    Grayscale, palette, CMYK, 16-bit and float images are converted; transparency is composited on white.
    A non-image, an empty or truncated file, or one larger than `max_pixels` raises ZooError, naming the
    image by `name` (default: its path, or "the image").
    """
    name = name or ("the image" if isinstance(source, bytes | Image.Image) else str(source))
    if isinstance(source, Image.Image):
        img = source
    else:
        data = source if isinstance(source, bytes) else read_bytes(Path(source), MAX_BYTES, "image")
        if not data:
            raise ZooError(f"{name} is empty (0 bytes).")
        try:
            with warnings.catch_warnings():  # the size is checked below, with a clearer message
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd files are not ours
                img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ZooError(f"{name} is not an image that Pillow can read.") from None
        except Image.DecompressionBombError:
            raise ZooError(
                f"{name} has more than twice the limit of {max_pixels:,} pixels (a decompression bomb?)."
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ZooError(f"{name} is truncated or corrupt ({e}).") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ZooError(
            f"{name} has {w}x{h} pixels, more than the limit of {max_pixels:,} (a decompression bomb?)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Truncated File Read", "Corrupt EXIF data"
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
        raise ZooError(f"{name} is truncated or corrupt ({e}).") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        elif img.mode != "F" and (img.mode.startswith("I;16") or arr.max(initial=0) > 255):
            arr = arr / 257.0  # 16-bit range onto 8-bit
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = (img.convert("LA") if img.mode == "La" else img).convert("RGBA")  # Pillow: La only to LA
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_and_crop(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """The exact crop the model sees (shown as such by the web demo)."""
    if spec.resize is not None:
        img = resize_shorter_side(img, spec.resize, spec)
    return _center_crop(img, spec.crop)


def preprocess(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One RGB image -> float32 CHW array, resized, cropped and normalised."""
    return normalize(resize_and_crop(img, spec), spec)


def normalize(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """An RGB image as it is -> float32 CHW array, scaled to [0, 1] and normalised by the spec."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def preprocess_batch(images: list[Image.Image], spec: PreprocessSpec) -> np.ndarray:
    """RGB images -> float32 NCHW batch."""
    return np.stack([preprocess(img, spec) for img in images])


def resize_shorter_side(img: Image.Image, size: int, spec: PreprocessSpec) -> Image.Image:
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return img
    new_long = int(size * long / short)  # torchvision truncates, as here
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if spec.antialias or (new_w >= w and new_h >= h):
        return img.resize((new_w, new_h), _RESAMPLE[spec.interpolation])
    return _resize_without_antialias(img, (new_w, new_h), spec.interpolation)


def _resize_without_antialias(img: Image.Image, size: tuple[int, int], interpolation: str) -> Image.Image:
    # What OpenCV and TensorFlow do by default; PIL always antialiases when shrinking.

    mode = {"lanczos": "bicubic"}.get(interpolation, interpolation)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    y = F.interpolate(x, size=(size[1], size[0]), mode=mode, antialias=False, **kwargs)
    arr = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")


def _center_crop(img: Image.Image, crop: int) -> Image.Image:
    w, h = img.size
    if w < crop or h < crop:  # pad with black, as torchvision's CenterCrop does
        padded = Image.new("RGB", (max(w, crop), max(h, crop)))
        padded.paste(img, ((max(w, crop) - w) // 2, (max(h, crop) - h) // 2))
        img, (w, h) = padded, padded.size
    left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))
