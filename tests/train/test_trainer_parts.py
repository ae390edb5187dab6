"""The trainer's parts, each pinned by what it does (issue #27): weight decay where the recipe puts it, an
EMA that averages BatchNorm statistics too, an epoch order that changes from epoch to epoch and repeats
for the same seed and epoch, and top-1/top-5 that count every image when the last batch is short. Each
is checked against an independent computation, not against the code under test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zoo.data.loaders import DeviceCifarLoader
from zoo.data.preprocess import PreprocessSpec
from zoo.models import registry
from zoo.train.recipe import load_recipe
from zoo.train.trainer import evaluate_loader, make_ema, make_optimizer

SPEC = PreprocessSpec.from_dict({"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3})


def _norm_and_bias(model: nn.Module) -> set[int]:
    """The ids of the parameters of normalisation layers and of every bias, found by module type and
    name (not by the trainer's own rule, which is the number of dimensions)."""
    ids = set()
    for module in model.modules():
        norm = isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm)
        for name, p in module.named_parameters(recurse=False):
            if norm or name == "bias":
                ids.add(id(p))
    return ids


@pytest.mark.parametrize("recipe, exempt", [("cifar_zoo", True), ("cifar_budget", False)])
def test_weight_decay_spares_norm_and_bias_exactly_when_the_recipe_says_so(recipe, exempt):
    r = load_recipe(recipe).for_arch("resnet20")
    assert bool(r.optimizer.no_decay_on_norm_and_bias) is exempt  # what the recipe files say
    torch.manual_seed(0)
    model = registry.create_model("resnet20").train()
    with torch.no_grad():  # BatchNorm starts at weight 1, bias 0: give every parameter a value decay changes
        for p in model.parameters():
            p.add_(torch.rand_like(p) + 0.5)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    opt = make_optimizer(model, r)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # the step is weight decay alone
    opt.step()
    spared = _norm_and_bias(model)
    assert spared and len(spared) < len(before)
    for p in model.parameters():
        moved = not torch.equal(p.detach(), before[id(p)])
        # SGD's decay: p -= lr * wd * p, so a decayed parameter moves and a spared one does not
        assert moved is not (exempt and id(p) in spared), [n for n, q in model.named_parameters() if q is p]


def test_the_ema_averages_batchnorm_statistics_as_well_as_weights():
    r = load_recipe("cifar_zoo").for_arch("resnet20")
    decay = float(r.regularise.ema_decay)
    assert 0 < decay < 1
    model = registry.create_model("resnet20")
    ema = make_ema(model, r)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.bn1.running_mean.fill_(1.0)
        model.bn1.running_var.fill_(3.0)
        model.fc.weight.fill_(2.0)
    ema.update_parameters(model)
    start_mean = torch.zeros(model.bn1.running_mean.shape)  # BatchNorm's initial statistics
    start_var = torch.ones(model.bn1.running_var.shape)
    averaged = ema.module
    # the exponential average by hand: decay * old + (1 - decay) * new
    torch.testing.assert_close(averaged.bn1.running_mean, decay * start_mean + (1 - decay) * 1.0)
    torch.testing.assert_close(averaged.bn1.running_var, decay * start_var + (1 - decay) * 3.0)
    assert not torch.equal(averaged.fc.weight, model.fc.weight)


def _epoch_order(loader: DeviceCifarLoader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    loader.with_views = True
    return [int(i) for _, _, sel, _ in loader for i in sel]


def _loader(seed: int) -> DeviceCifarLoader:
    x = np.zeros((40, 32, 32, 3), np.uint8)
    return DeviceCifarLoader(x, np.arange(40) % 10, 8, SPEC, train=True, seed=seed)


def test_the_training_order_changes_each_epoch_and_repeats_for_the_same_seed_and_epoch():
    a, b = _loader(seed=1), _loader(seed=1)
    orders = [_epoch_order(a, e) for e in range(3)]
    assert all(sorted(o) == list(range(40)) for o in orders)  # each epoch sees every image once
    assert orders[0] != orders[1] != orders[2] != orders[0]
    assert _epoch_order(b, 1) == orders[1] and _epoch_order(b, 0) == orders[0]  # resumable
    assert _epoch_order(_loader(seed=2), 0) != orders[0]


def test_top1_and_top5_count_every_image_when_the_last_batch_is_short(cifar_dir):
    from zoo.data.datasets import CIFAR10

    data = CIFAR10(cifar_dir, "test")
    n, batch = 203, 50  # 4 full batches and one of 3
    model = registry.create_model("resnet20.cifar10", pretrained=True).eval()
    spec = registry.resolve("resnet20.cifar10")[1].preprocess
    loader = DeviceCifarLoader(data.images[:n], data.labels[:n], batch, spec, train=False)
    got = evaluate_loader(model, loader, torch.device("cpu"))
    # by hand: one forward pass over all n images, torch.topk, counted
    x = torch.from_numpy(np.stack([spec(data[i][0]) for i in range(n)]))
    with torch.no_grad():
        logits = model(x)
    y = torch.from_numpy(data.labels[:n])
    top5 = logits.topk(5, dim=1).indices
    assert got["n"] == n
    assert got["top1"] == pytest.approx(100 * (top5[:, 0] == y).sum().item() / n)
    assert got["top5"] == pytest.approx(100 * (top5 == y[:, None]).any(1).sum().item() / n)


def test_held_out_images_are_never_trained_on_and_are_the_ones_evaluated():
    """[train] holdout: every epoch draws each kept image once and no held-out one; the held-out loader
    reads exactly the held-out images; the choice is the same for every run of the split, whatever its
    seed, and a teacher table's index (the image's place in the whole split) names the same image."""
    from zoo.data.loaders import holdout_split

    n, held_n = 200, 40
    keep, held = holdout_split(n, held_n)
    assert len(held) == held_n and len(keep) == n - held_n and not set(keep) & set(held)
    assert sorted({*keep, *held}) == list(range(n))
    assert np.array_equal(holdout_split(n, held_n)[1], held) and not np.array_equal(held, np.arange(held_n))
    images = np.random.default_rng(1).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    for seed in (0, 3):
        loader = DeviceCifarLoader(images, labels, 16, SPEC, seed=seed, pad=1, subset=keep)
        loader.with_views = True
        for epoch in (0, 1):
            loader.set_epoch(epoch)
            drawn = torch.cat([batch[2] for batch in loader]).tolist()
            assert sorted(drawn) == sorted(keep)  # 160 = 10 batches of 16: each kept image once
            for _x, y, index, _ids in loader:  # rows are the images their indices name
                assert torch.equal(y, torch.from_numpy(labels)[index])
    val = DeviceCifarLoader(images, labels, 16, SPEC, train=False, subset=held)
    val.with_views = True
    assert torch.cat([b[2] for b in val]).tolist() == list(held)
    x = torch.cat([b[0] for b in val])
    by_hand = (torch.from_numpy(images[held]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, by_hand, atol=1e-5)  # unaugmented, as the test split is
