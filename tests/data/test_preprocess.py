"""The one preprocessing contract: equal to torchvision's eval transform on real photos, and robust to
every image a user can hand in."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data.preprocess import PreprocessSpec, load_image, preprocess, preprocess_batch, resize_and_crop
from zoo.errors import ZooError

V1 = PreprocessSpec(resize=256, crop=224)
V2 = PreprocessSpec(resize=232, crop=224)


def _photos(root: Path, n: int = 40) -> list[Path]:
    files = sorted((root / "images").glob("*.jpg"))
    return files[:: max(1, len(files) // n)][:n]


@pytest.mark.parametrize("spec", [V1, V2], ids=["resize256", "resize232"])
def test_equals_torchvisions_eval_transform_on_real_photos(spec, imagenet_sample, torchvision):
    from torchvision import transforms as T

    theirs = T.Compose(
        [
            T.Resize(spec.resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(spec.crop),
            T.ToTensor(),
            T.Normalize(spec.mean, spec.std),
        ]
    )
    worst = 0.0
    for path in _photos(imagenet_sample):
        img = load_image(path)
        ours = preprocess(img, spec)
        ref = theirs(Image.open(path).convert("RGB")).numpy()
        assert ours.shape == ref.shape == (3, 224, 224)
        worst = max(worst, float(np.abs(ours - ref).max()))
    # Same PIL resize, same crop offsets: only float rounding differs (1 ulp of values near 2.6).
    assert worst < 1e-5, f"max abs difference after normalisation {worst}"


def test_without_antialias_matches_torch_interpolate_on_tensors(imagenet_sample, torchvision):
    from torchvision.transforms import functional as TF

    spec = PreprocessSpec(resize=128, crop=112, antialias=False)
    path = _photos(imagenet_sample, 1)[0]
    img = load_image(path)
    ours = np.asarray(resize_and_crop(img, spec), dtype=np.int16)
    t = TF.pil_to_tensor(img).float()
    t = TF.center_crop(TF.resize(t, 128, antialias=False), 112).round().clamp(0, 255)
    ref = t.permute(1, 2, 0).numpy().astype(np.int16)
    assert np.abs(ours - ref).max() <= 1


def test_batch_is_nchw_float32():
    imgs = [Image.new("RGB", (300, 200), (255, 0, 0)), Image.new("RGB", (100, 500), (0, 0, 255))]
    batch = preprocess_batch(imgs, V1)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    red = (1.0 - 0.485) / 0.229
    assert np.allclose(batch[0, 0], red, atol=1e-5)


def test_small_images_are_upscaled_and_cifar_images_pass_through_unchanged():
    cifar = PreprocessSpec(resize=32, crop=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = preprocess(Image.fromarray(arr), cifar)
    assert np.allclose(out, (arr.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, atol=1e-6)
    assert preprocess(Image.new("RGB", (10, 20)), V1).shape == (3, 224, 224)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_grayscale_palette_and_cmyk_become_rgb():
    gray = load_image(_save(Image.new("L", (8, 8), 77), "PNG"))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (77, 77, 77)
    pal = Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert load_image(_save(pal, "PNG")).getpixel((3, 3)) == (10, 200, 30)
    cmyk = load_image(_save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=100))
    r, g, b = cmyk.getpixel((4, 4))
    assert r > 240 and g < 15 and b < 15  # pure cyan-free red


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    img = load_image(_save(rgba, "PNG"))
    assert img.getpixel((5, 5)) == (255, 255, 255) and img.getpixel((0, 0)) == (255, 0, 0)
    half = load_image(_save(Image.new("LA", (4, 4), (0, 128)), "PNG"))
    assert half.getpixel((1, 1))[0] in (127, 128)


def test_a_palette_image_with_a_transparent_index_is_composited_on_white():
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 30, 10] + [0, 0, 0] * 254)
    pal.putpixel((0, 0), 0)  # index 0 is the transparent one
    pal.info["transparency"] = 0
    img = load_image(_save(pal, "PNG"))
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((2, 2)) == (200, 30, 10)


def test_16_bit_images_with_small_values_are_still_16_bit_values():
    """A dark 16-bit image (every value below 256) is scaled by 1/257 like any 16-bit image, not read as 8-bit."""
    arr = np.full((4, 4), 200, dtype=np.uint16)
    img = load_image(_save(Image.fromarray(arr), "PNG"))
    assert img.getpixel((1, 1)) == (1, 1, 1)  # round(200 / 257)


@pytest.mark.parametrize("size", [(20, 27), (21, 40), (32, 5)])
def test_a_crop_larger_than_the_image_pads_it_as_torchvisions_center_crop_does(size, torchvision):
    img = Image.fromarray(np.random.default_rng(0).integers(1, 255, (*size[::-1], 3), dtype=np.uint8))
    spec = PreprocessSpec(resize=None, crop=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    ours = np.asarray(resize_and_crop(img, spec))
    theirs = np.asarray(torchvision.transforms.CenterCrop(32)(img))
    assert ours.shape == (32, 32, 3) and np.array_equal(ours, theirs)


def test_images_handed_in_already_open_are_converted_like_files():
    """The web demo and the Python API hand in PIL images, in modes no file stores (premultiplied alpha,
    big-endian 16-bit): they become the same RGB pixels."""
    half = Image.new("LA", (4, 4), (0, 128))
    assert load_image(half).getpixel((1, 1)) == load_image(_save(half, "PNG")).getpixel((1, 1))
    premultiplied = Image.new("RGBA", (4, 4), (200, 40, 0, 128)).convert("RGBa")
    r, g, b = load_image(premultiplied).getpixel((1, 1))
    assert abs(r - 227) <= 1 and abs(g - 147) <= 1 and abs(b - 127) <= 1  # 200 * 128/255 + 255 * 127/255
    assert load_image(half.convert("La")).getpixel((1, 1)) == load_image(half).getpixel((1, 1))
    big_endian = np.full((4, 4), 128 * 257, ">u2")  # mid-grey in 16 bits
    big_endian[0, 0] = 0
    wide = load_image(Image.frombytes("I;16B", (4, 4), big_endian.tobytes()))
    assert wide.getpixel((1, 1)) == (128, 128, 128) and wide.getpixel((0, 0)) == (0, 0, 0)


def test_lanczos_without_antialias_falls_back_to_bicubic():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    lanczos = PreprocessSpec(resize=40, crop=32, interpolation="lanczos", antialias=False)
    bicubic = PreprocessSpec(resize=40, crop=32, interpolation="bicubic", antialias=False)
    assert np.array_equal(
        np.asarray(resize_and_crop(img, lanczos)), np.asarray(resize_and_crop(img, bicubic))
    )
    # with antialias, Lanczos itself: Pillow's LANCZOS filter, which neither bicubic nor bilinear equals
    antialiased = np.asarray(
        resize_and_crop(img, PreprocessSpec(resize=40, crop=32, interpolation="lanczos"))
    )
    by_hand = {
        f: np.asarray(img.resize((53, 40), f).crop((10, 4, 42, 36)))  # shorter side 40, then the centre 32
        for f in (Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.BILINEAR)
    }
    assert np.array_equal(antialiased, by_hand[Image.Resampling.LANCZOS])
    assert not np.array_equal(antialiased, by_hand[Image.Resampling.BICUBIC])
    assert not np.array_equal(antialiased, by_hand[Image.Resampling.BILINEAR])


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic", "lanczos"])
def test_an_antialiased_resize_honours_its_interpolation_as_torchvision_does(torchvision, interpolation):
    """Resize(shorter side) + CenterCrop of torchvision on a PIL image, mode by mode; and the modes differ,
    so a resize that ignored the spec's interpolation could not pass for all four."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

    img = Image.fromarray(np.random.default_rng(4).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    spec = PreprocessSpec(resize=40, crop=32, interpolation=interpolation, antialias=True)
    tv = Compose([Resize(40, InterpolationMode(interpolation), antialias=True), CenterCrop(32)])
    ours = np.asarray(resize_and_crop(img, spec))
    assert np.array_equal(ours, np.asarray(tv(img)))
    others = [m for m in ("nearest", "bilinear", "bicubic", "lanczos") if m != interpolation]
    for other in others:
        assert not np.array_equal(ours, np.asarray(resize_and_crop(img, PreprocessSpec(40, 32, other))))


def test_a_photo_with_corrupt_exif_data_still_loads():
    """Pillow only warns about a broken EXIF block (cameras and editors write them); the pixels are fine."""
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06"
    photo = _save(Image.new("RGB", (8, 6), (10, 120, 240)), "JPEG", quality=100, exif=exif)
    img = load_image(photo)
    r, g, b = img.getpixel((4, 3))
    assert img.size == (8, 6) and abs(r - 10) <= 3 and abs(g - 120) <= 3 and abs(b - 240) <= 3


def test_16_bit_images_are_scaled_to_8_bit():
    arr = np.full((6, 6), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    img = load_image(_save(Image.fromarray(arr), "PNG"))
    assert img.mode == "RGB" and img.getpixel((3, 3)) == (255, 255, 255) and img.getpixel((0, 0)) == (0, 0, 0)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(_save(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    assert sum(out.getpixel((10, 5))) > 600 and sum(out.getpixel((10, 35))) < 100  # white half now on top


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not an image"),
        (None, "truncated or corrupt"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_bad_files_are_one_clear_error(tmp_path, content, message):
    if content is None:
        content = _save(Image.new("RGB", (256, 256), (9, 9, 9)), "JPEG")[:600]
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ZooError, match=message) as e:
        load_image(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("side", [12000, 20000], ids=["over-limit", "over-twice-the-limit"])
def test_decompression_bombs_are_refused_before_decoding(tmp_path, side):
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # a few KiB on disk, 144 or 400 MP once decoded
    assert path.stat().st_size < 200_000
    with pytest.raises(ZooError, match="decompression bomb"):
        load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ZooError, match="cannot read"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ZooError, match="is a folder, not a file"):
        load_image(tmp_path)


def test_spec_round_trips_through_a_dict_and_rejects_unknown_interpolation():
    assert PreprocessSpec.from_dict(V2.to_dict()) == V2
    with pytest.raises(ZooError, match="interpolation"):
        PreprocessSpec(resize=256, crop=224, interpolation="area")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"crop": 0}, "`crop` must be"),
        ({"resize": 3.5}, "`resize` must be"),
        ({"mean": [0.5, "x", 0.5]}, "`mean` must be"),
        ({"std": [0.2, 0.0, 0.2]}, "`std` must be 3 finite positive"),  # after a usable mean and sides
        ({"std": [0.2, float("nan"), 0.2]}, "`std` must be 3 finite positive"),
    ],
)
def test_each_unusable_spec_field_is_named_even_when_the_others_are_fine(change, words):
    with pytest.raises(ZooError, match=words):
        PreprocessSpec.from_dict({**V2.to_dict(), **change})
