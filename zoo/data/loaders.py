"""Training data loaders: CIFAR-10 resident on the device (the whole uint8 split, augmented there, so
2 CPU cores never starve a GPU), and an ImageFolder loader with the paper's scale augmentation.

Normalisation uses the tag's PreprocessSpec; for 32x32 CIFAR images it is exactly `zoo.preprocess`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from zoo.data.preprocess import PreprocessSpec, load_image
from zoo.errors import ZooError

HOLDOUT_SEED = 20151210  # the paper's arXiv date: one held-out choice per split size, whatever the run's seed


def holdout_split(n: int, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """(the indices trained on, the `holdout` indices held out) of a split of `n` images, each sorted; the
    held-out ones a seeded random choice, so every run that holds out as many from the same split holds out
    the same images (and a teacher table of the whole split serves its training images by their index)."""
    if not 0 <= holdout < n:
        raise ZooError(
            f"[train] holdout = {holdout} leaves no training images of the {n} in the split; hold out fewer."
        )
    held = np.sort(np.random.default_rng(HOLDOUT_SEED).permutation(n)[:holdout])
    return np.setdiff1d(np.arange(n), held), held


class DeviceCifarLoader:
    """Batches of normalised float images from a uint8 NHWC array kept on `device`.

    Per-epoch seeding (seed, epoch) makes the order and the augmentation a function of the epoch alone,
    so a resumed run sees exactly the batches the interrupted one would have. `rank`/`world` shard each
    epoch's permutation for DDP. `subset`: the indices of the images it draws from (a held-out split's
    complement, or the held-out images themselves); batches name images by their index in `images`.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        spec: PreprocessSpec,
        device: torch.device | str = "cpu",
        train: bool = True,
        pad: int = 4,
        hflip: bool = True,
        cutout: int = 0,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        channels_last: bool = False,
        subset: np.ndarray | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.subset = None if subset is None else torch.as_tensor(np.asarray(subset, dtype=np.int64))
        self.x = (
            torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).contiguous()
        )
        self.y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(self.device)
        self.batch_size, self.train, self.pad, self.hflip, self.cutout = batch_size, train, pad, hflip, cutout
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.channels_last = channels_last
        self.with_views = False  # set by distillation: batches then carry their image indices and view ids
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1) * 255

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def size(self) -> int:
        """How many images it draws from."""
        return len(self.y) if self.subset is None else len(self.subset)

    def _indices(self) -> torch.Tensor:
        every = torch.arange(len(self.y)) if self.subset is None else self.subset
        if not self.train:
            return every
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = every[torch.randperm(len(every), generator=g)]
        per_rank = len(every) // self.world
        return perm[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        n = self.size if not self.train else self.size // self.world
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __iter__(self):
        idx = self._indices()
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 7_919)
        for b in range(len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size].to(self.device)
            x, ids = self.x[sel], None
            if self.train:
                x, ids = crop_and_flip(x, self.pad, self.hflip, g, with_ids=True)
            x = (x.float() - self.mean) / self.std
            if self.train and self.cutout:
                x = x * cutout_mask(len(x), x.shape[-2:], self.cutout, g).to(x.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            # with_views: which image and which of its views each row is (a teacher table's keys)
            yield (x, self.y[sel], sel, ids) if self.with_views else (x, self.y[sel])


def crop_and_flip(
    x: torch.Tensor, pad: int, hflip: bool, g: torch.Generator, with_ids: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad by `pad`, take a random crop of the original size, and flip half the images (uint8 NCHW).
    With `with_ids`, also the index of each image's view (`view_ids`), by which a teacher table is read."""
    b = x.shape[0]
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    flip = (torch.rand(b, generator=g) < 0.5) if hflip else None
    ids = view_ids(oy, ox, flip, pad)
    out = render(x, ids, pad, hflip)
    return (out, ids) if with_ids else out


def view_count(pad: int, hflip: bool) -> int:
    """How many distinct views the crop-and-flip augmentation has: 9 x 9 x 2 = 162 for pad 4."""
    return (2 * pad + 1) ** 2 * (2 if hflip else 1)


def view_ids(oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor | None, pad: int) -> torch.Tensor:
    """The index of each (row offset, column offset, flip) view: (oy x (2 pad + 1) + ox) x 2 + flip."""
    ids = oy * (2 * pad + 1) + ox
    return ids if flip is None else ids * 2 + flip.long()


def render(x: torch.Tensor, ids: torch.Tensor, pad: int, hflip: bool) -> torch.Tensor:
    """The views `ids` (one per image) of the uint8 NCHW images `x`: the crop and flip they name."""
    dev = x.device
    ids = ids.to(dev)
    flip = (ids % 2).bool() if hflip else None
    pos = ids // 2 if hflip else ids
    oy, ox = pos // (2 * pad + 1), pos % (2 * pad + 1)
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = oy[:, None] + torch.arange(h, device=dev)
    cols = ox[:, None] + torch.arange(w, device=dev)
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def cutout_mask(n: int, size: tuple[int, int], side: int, g: torch.Generator) -> torch.Tensor:
    """(n, 1, H, W) float mask that zeroes one side x side square per image, centred on a uniformly drawn
    pixel and clipped at the border (DeVries & Taylor 2017). Applied after normalisation, so the square
    holds the dataset mean, as in their code."""
    h, w = size
    cy = torch.randint(0, h, (n,), generator=g)
    cx = torch.randint(0, w, (n,), generator=g)
    rows, cols = torch.arange(h), torch.arange(w)
    inside_y = (rows[None, :] >= (cy - side // 2)[:, None]) & (
        rows[None, :] < (cy - side // 2 + side)[:, None]
    )
    inside_x = (cols[None, :] >= (cx - side // 2)[:, None]) & (
        cols[None, :] < (cx - side // 2 + side)[:, None]
    )
    return (~(inside_y[:, :, None] & inside_x[:, None, :])).float()[:, None]


class ScaleAugment:
    """The paper's ImageNet training augmentation (Section 3.4): shorter side drawn from [256, 480],
    a random 224 crop, a horizontal flip, colour jitter; then the spec's normalisation."""

    def __init__(
        self, spec: PreprocessSpec, scale=(256, 480), crop=224, hflip=True, color_jitter=0.4, seed=0
    ):
        self.spec, self.scale, self.crop, self.hflip, self.jitter = spec, scale, crop, hflip, color_jitter
        self.rng = np.random.default_rng(seed)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        s = int(self.rng.integers(self.scale[0], self.scale[1] + 1))
        w, h = img.size
        img = img.resize(
            (s, max(s, round(h * s / w))) if w <= h else (max(s, round(w * s / h)), s), Image.BILINEAR
        )
        w, h = img.size
        left, top = int(self.rng.integers(0, w - self.crop + 1)), int(self.rng.integers(0, h - self.crop + 1))
        img = img.crop((left, top, left + self.crop, top + self.crop))
        if self.hflip and self.rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhance(img).enhance(float(self.rng.uniform(1 - self.jitter, 1 + self.jitter)))
        arr = (
            np.asarray(img, dtype=np.float32) / 255.0 - np.asarray(self.spec.mean, np.float32)
        ) / np.asarray(self.spec.std, np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())


class FolderDataset(torch.utils.data.Dataset):
    """An ImageFolder-style dataset (zoo.data) with a transform from PIL image to tensor."""

    def __init__(self, base, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        path, label = self.base.samples[i]
        return self.transform(load_image(path)), label
