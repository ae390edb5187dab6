"""The architectures against independent references: torchvision's implementation and the paper's tables."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo import create_model, list_models
from zoo.cli import app
from zoo.models.flops import count_macs, count_params
from zoo.models.registry import archs

# He et al. 2015, Table 1 (FLOPs = multiply-adds) and Section 4.2 / Table 6 (CIFAR parameters).
PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
# Printed in millions with these decimals; "1.7M" for ResNet-110 is rounded (its exact count is 1.73M).
PAPER_CIFAR_PARAMS = {
    "resnet20": "0.27",
    "resnet32": "0.46",
    "resnet44": "0.66",
    "resnet56": "0.85",
    "resnet110": "1.7",
    "resnet1202": "19.4",
}


@pytest.mark.parametrize("arch", sorted(PAPER_GMACS))
def test_v1_multiply_adds_match_the_paper_within_3_percent(arch):
    macs = count_macs(create_model(arch, variant="v1"), 224) / 1e9
    assert macs == pytest.approx(PAPER_GMACS[arch], rel=0.03)


def test_v1_5_resnet50_multiply_adds_match_torchvisions_published_gflops():
    assert count_macs(create_model("resnet50"), 224) / 1e9 == pytest.approx(4.09, rel=0.005)


def test_v1_puts_the_bottleneck_stride_in_the_first_1x1_and_v1_5_in_the_3x3():
    v1, v15 = create_model("resnet50", variant="v1"), create_model("resnet50")
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("arch", sorted(PAPER_CIFAR_PARAMS))
def test_cifar_parameter_counts_match_the_paper_within_1_percent_or_its_printed_precision(arch):
    printed = PAPER_CIFAR_PARAMS[arch]
    half_unit = 0.5 * 10 ** -len(printed.split(".")[1])
    millions = count_params(create_model(arch)) / 1e6
    assert abs(millions - float(printed)) <= max(0.01 * float(printed), half_unit)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_torchvision_state_dict_loads_strictly_and_gives_identical_logits(arch, torchvision):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, arch)(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a swapped BN would show
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    ours = create_model(arch)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_the_table_in_archs_toml_is_what_the_modules_count():
    for name, spec in archs().items():
        if name in ("resnet1202", "plain1202", "resnet152", "plain152"):
            continue  # large; covered by the paper checks above
        model = create_model(name)
        assert count_params(model) == spec["params"], name
        assert count_macs(model, spec["input_size"]) / 1e9 == pytest.approx(spec["gmacs"], abs=1e-4), name


def test_option_a_has_no_shortcut_parameters_and_b_and_c_add_projections():
    a, b, c = (count_params(create_model("resnet20", shortcut=s)) for s in "ABC")
    assert a < b < c
    # B: projections only at the two stage changes (16->32, 32->64); C: on every one of the 9 blocks.
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    c_blocks = [blk for stage in (create_model("resnet20", shortcut="C").layer1,) for blk in stage]
    assert all(blk.downsample is not None for blk in c_blocks)


def test_option_a_subsamples_and_pads_zeros_on_both_sides_as_the_reference_checkpoints_do():
    import torch.nn.functional as F

    model = create_model("resnet20")
    for stage, planes in ((model.layer2, 32), (model.layer3, 64)):
        x = torch.randn(2, planes // 2, 16, 16)
        short = stage[0].downsample(x)
        # akamaster/pytorch_resnet_cifar10's LambdaLayer, verbatim: the identity lands in the middle
        theirs = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
        assert short.shape == (2, planes, 8, 8)
        assert torch.equal(short, theirs)
        assert short[:, : planes // 4].abs().sum() == 0 and short[:, -planes // 4 :].abs().sum() == 0


def test_imagenet_nets_accept_every_shortcut_option():
    x = torch.randn(1, 3, 64, 64)
    for s in "ABC":
        assert create_model("resnet50", shortcut=s)(x).shape == (1, 1000)


def test_plain_twins_have_no_shortcuts_and_the_same_depth():
    plain, res = create_model("plain20"), create_model("resnet20")
    assert count_params(plain) == count_params(res)  # option A shortcuts have no parameters
    assert all(
        not b.residual and b.downsample is None for s in (plain.layer1, plain.layer2, plain.layer3) for b in s
    )
    res.load_state_dict(plain.state_dict())  # same weights: only the shortcuts differ
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(plain(x), res(x))
    assert {"plain18", "plain34", "plain20", "plain56", "plain1202"} <= set(list_models("plain*"))


def test_he_initialisation_fan_out_and_zero_init_of_the_last_bn():
    torch.manual_seed(0)
    model = create_model("resnet50", zero_init_residual=True)
    w = model.layer3[0].conv2.weight  # 3x3, 256 out channels
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert all(b.bn3.weight.abs().sum() == 0 for b in model.layer1)
    assert all(
        b.bn2.weight.abs().sum() == 0 for b in create_model("resnet20", zero_init_residual=True).layer1
    )
    assert create_model("resnet50").layer1[0].bn3.weight.min() == 1


@pytest.mark.parametrize(
    ("arch", "shortcut"), [("resnet20", "A"), ("resnet20", "B"), ("plain20", "A"), ("resnet18", "B")]
)
def test_zero_init_leaves_no_channel_dead(arch, shortcut):
    """Breakage: zeroing every last BN. Under option A the zero-padded channels of a downsampling block
    then get zero branch + zero shortcut, ReLU(0) passes no gradient, and they stay zero for ever (the
    zoo's resnet20 trained so kept 16 of 64 channels); in a plain net the whole network is dead.
    After two SGD steps (the first wakes the zeroed branches) every BatchNorm scale gets a gradient."""
    torch.manual_seed(0)
    model = create_model(arch, shortcut=shortcut, zero_init_residual=True).train()
    side = 32 if arch.endswith("20") else 64
    x, y = torch.randn(8, 3, side, side), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x)[:, :10], y).backward()
        opt.step() if _ < 2 else None
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert (m.weight.grad != 0).all(), (
                f"{name}: {(m.weight.grad == 0).sum()} channels get no gradient"
            )
    if arch.startswith("resnet"):  # the residual blocks start as their shortcut on the identity channels
        model = create_model(arch, shortcut=shortcut, zero_init_residual=True).eval()
        x, block = torch.randn(2, 3, side, side), model.layer2[1]
        with torch.no_grad():
            h = model.layer2[0](model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))
            assert torch.equal(block(h), torch.relu(h))


def test_bad_options_are_clear_errors():
    from zoo import ZooError

    with pytest.raises(ZooError, match="shortcut"):
        create_model("resnet20", shortcut="D")
    with pytest.raises(ZooError, match="unknown model option"):
        create_model("resnet20", dropout=0.5)


runner = CliRunner()


def test_a_misspelt_architecture_names_close_matches():
    one_sentence(runner.invoke(app, ["train", "resnt20"]), "unknown model 'resnt20'", "resnet20")
