"""The residual networks of He et al. 2015, "Deep Residual Learning for Image Recognition".

Read top to bottom like the paper: the shortcuts (Section 3.3 and Table 3's options A/B/C), the two
blocks (Figure 5), the network (Table 1 for ImageNet, Section 4.2 for CIFAR-10), then the builder that
turns an entry of `archs.toml` into a module. State-dict keys equal torchvision's for the ImageNet nets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B", "C")
VARIANTS = ("v1", "v1.5")  # where a bottleneck's stride sits: first 1x1 (paper) or the 3x3 (torchvision)


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: identity, subsampled by the stride, zero-padded to the new width. Has no parameters.

    The new channels are split around the identity (half before, half after), so the identity sits in
    the middle, as in the most used PyTorch reproduction (akamaster/pytorch_resnet_cifar10, whose
    checkpoints therefore load unchanged). The original Torch code appends them instead: the two differ
    only by a fixed permutation of the channels, so either trains to the same accuracy.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        extra = out_ch - in_ch
        self.before, self.after, self.stride = extra // 2, extra - extra // 2, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after)) if self.before or self.after else x


def make_shortcut(option: str, in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """The shortcut of one block; None means the plain identity x."""
    same = in_ch == out_ch and stride == 1
    if option == "A":
        return None if same else PadShortcut(in_ch, out_ch, stride)
    if option == "B" and same:
        return None
    # B where dimensions change, C everywhere: a projection, named as torchvision names it.
    return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (Figure 5, left)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: str, residual: bool, **_: object):
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = residual
        self.downsample = make_shortcut(shortcut, in_ch, planes, stride) if residual else None

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand by 4 (Figure 5, right)."""

    expansion = 4

    def __init__(
        self, in_ch: int, planes: int, stride: int, shortcut: str, residual: bool, variant: str = "v1.5"
    ):
        super().__init__()
        out_ch = planes * self.expansion
        s1, s3 = (stride, 1) if variant == "v1" else (1, stride)
        self.conv1 = conv1x1(in_ch, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.downsample = make_shortcut(shortcut, in_ch, out_ch, stride) if residual else None

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def zero_last_bn(block: BasicBlock | Bottleneck) -> None:
    """Zero the scale of a residual block's last BatchNorm, so that the block starts as its shortcut,
    except in the channels an option-A shortcut pads with zeros: there a zero branch would add to a zero
    shortcut, and ReLU(0) passes no gradient, so those channels, and every channel the following blocks
    carry from them, would stay zero for the whole run (a trained ResNet-20 keeps 16 of its 64 channels)."""
    weight = block.last_bn().weight
    with torch.no_grad():
        weight.zero_()
        if isinstance(block.downsample, PadShortcut):
            pad = block.downsample
            weight[: pad.before] = 1.0
            weight[weight.numel() - pad.after :] = 1.0


class ResNet(nn.Module):
    """A stem, one stage per entry of `layers` (stride 2 at each stage start but the first), pool, fc.

    stem="imagenet": 7x7/2 conv and 3x3/2 max-pool (Table 1). stem="cifar": one 3x3 conv (Section 4.2).
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        num_classes: int = 1000,
        shortcut: str = "B",
        residual: bool = True,
        variant: str = "v1.5",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, not {shortcut!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        block_cls = BLOCKS[block]
        in_ch = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, in_ch, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(3, in_ch)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.stages = len(layers)
        for i, (planes, count) in enumerate(zip(widths, layers, strict=True)):
            blocks = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block_cls(in_ch, planes, stride, shortcut, residual, variant=variant))
                in_ch = planes * block_cls.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # He initialisation (He et al. 2015, "Delving Deep into Rectifiers"), as the paper says.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each residual block starts as its shortcut (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck) and m.residual:
                    zero_last_bn(m)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def build(spec: dict, **kwargs: object) -> ResNet:
    """Build the network an `archs.toml` entry describes; kwargs override it (num_classes, shortcut, ...)."""
    config = {
        "block": spec["block"],
        "layers": spec["layers"],
        "widths": spec["widths"],
        "stem": spec["family"],
        "num_classes": spec["num_classes"],
        "shortcut": spec["shortcut"],
        "residual": spec["residual"],
    }
    unknown = set(kwargs) - {"num_classes", "shortcut", "variant", "zero_init_residual"}
    if unknown:
        raise TypeError(f"unknown model option(s): {', '.join(sorted(unknown))}")
    config.update(kwargs)
    return ResNet(**config)
