"""`zoo eval`: the paper's test protocols (single crop, flip, 10-crop, multi-scale) and ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo import ZooError, create_model
from zoo.cli import app
from zoo.data.preprocess import PreprocessSpec, load_image, normalize, resize_shorter_side
from zoo.evaluate import SCALES, _views, evaluate
from zoo.models import registry

runner = CliRunner()
SPEC = PreprocessSpec(resize=256, crop=224)


def test_ten_crop_views_are_the_four_corners_the_centre_and_their_flips(imagenet_sample):
    img = load_image(next((imagenet_sample / "images").glob("*.jpg")))
    views = _views(img, SPEC, "10crop")
    assert len(views) == 10 and all(v.shape == (3, 224, 224) for v in views)
    big = normalize(resize_shorter_side(img, 256, SPEC), SPEC)
    h, w = big.shape[1:]
    np.testing.assert_array_equal(views[0], big[:, :224, :224])  # top-left
    np.testing.assert_array_equal(views[2], big[:, :224, w - 224 :])  # top-right
    np.testing.assert_array_equal(views[4], big[:, h - 224 :, :224])  # bottom-left
    np.testing.assert_array_equal(views[6], big[:, h - 224 :, w - 224 :])  # bottom-right
    np.testing.assert_array_equal(views[1], views[0][:, :, ::-1])  # its flip
    np.testing.assert_array_equal(
        views[8], big[:, (h - 224) // 2 : (h - 224) // 2 + 224, (w - 224) // 2 : (w - 224) // 2 + 224]
    )


def test_multiscale_views_resize_the_shorter_side_to_each_scale(imagenet_sample):
    img = load_image(next((imagenet_sample / "images").glob("*.jpg")))
    views = _views(img, SPEC, "multiscale")
    assert [min(v.shape[1:]) for v in views] == list(SCALES)


@pytest.fixture()
def random_imagenet_tag(tmp_path, zoo_cache):
    """A resnet18 tag with random weights: the protocols' mechanics need no trained ImageNet model."""
    from zoo import create_model
    from zoo.models.checkpoints import import_checkpoint

    torch.manual_seed(0)
    pth = tmp_path / "r18.pth"
    torch.save(create_model("resnet18").state_dict(), pth)
    return import_checkpoint(pth, "resnet18.random", preprocess="imagenet_256").name


@pytest.mark.parametrize("protocol", ["single", "flip", "10crop", "multiscale"])
def test_every_protocol_runs_on_the_imagenet_sample(protocol, random_imagenet_tag, imagenet_sample):
    result = evaluate([random_imagenet_tag], str(imagenet_sample), protocol=protocol, limit=3, batch_size=2)
    assert (
        result["n"] == 3 and result["protocol"] == protocol and 0 <= result["top1"] <= result["top5"] <= 100
    )


def test_an_ensemble_averages_softmax_and_of_one_model_with_itself_equals_the_model(
    random_imagenet_tag, imagenet_sample
):
    one = evaluate([random_imagenet_tag], str(imagenet_sample), limit=20)
    two = evaluate([random_imagenet_tag, random_imagenet_tag], str(imagenet_sample), limit=20)
    assert (one["top1"], one["top5"]) == (two["top1"], two["top5"]) and len(two["models"]) == 2


def test_eval_cli_json_and_bad_protocol(cifar_tag, data):
    result = runner.invoke(app, ["eval", cifar_tag, "--limit", "200", "--protocol", "flip", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"top1", "top5", "n"} <= set(doc) and doc["n"] == 200
    bad = runner.invoke(app, ["eval", cifar_tag, "--protocol", "5crop"])
    assert bad.exit_code == 1 and "protocol" in bad.output


def test_a_bare_weights_file_says_its_architecture_through_the_metadata_it_was_saved_with(tmp_path):
    """The fast half of the next test: what save_safetensors writes is what load_model reads back."""
    from zoo import create_model
    from zoo.evaluate import load_model
    from zoo.models.weights import save_safetensors

    state = create_model("resnet32").state_dict()
    save_safetensors(state, tmp_path / "a.safetensors", metadata={"arch": "resnet32", "dataset": "cifar10"})
    model, _, _, dataset = load_model(str(tmp_path / "a.safetensors"))
    assert len(model.layer1) == 5 and dataset == "cifar10"  # resnet32: 5 blocks a stage
    save_safetensors(state, tmp_path / "b.safetensors")
    with pytest.raises(ZooError, match="cannot tell the architecture"):
        load_model(str(tmp_path / "b.safetensors"))


@pytest.mark.slow
def test_a_run_folder_and_a_bare_weights_file_load_as_the_architecture_and_dataset_they_record(tmp_path):
    """`zoo eval RUN_DIR` reads the run's summary.json (arch and dataset); a weights file alone is read
    through its safetensors metadata, as `zoo train` writes it."""
    from zoo import create_model
    from zoo.evaluate import load_model
    from zoo.models.weights import save_safetensors

    torch.manual_seed(0)
    original = create_model("resnet18").eval()  # an ImageNet net: 1000 classes, not CIFAR-10's 10
    run = tmp_path / "run"
    save_safetensors(original.state_dict(), run / "weights.safetensors", metadata={"arch": "resnet18"})
    (run / "summary.json").write_text(json.dumps({"arch": "resnet18", "dataset": "imagenet1k"}))
    model, spec, name, dataset = load_model(str(run))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)
    assert (dataset, spec.crop, name) == ("imagenet1k", 224, str(run))
    bare = tmp_path / "elsewhere" / "w.safetensors"
    save_safetensors(original.state_dict(), bare, metadata={"arch": "resnet18", "dataset": "imagenet1k"})
    model, spec, _, dataset = load_model(str(bare))
    assert (dataset, spec.crop, model.fc.out_features) == ("imagenet1k", 224, 1000)
    (run / "summary.json").write_text(json.dumps({"arch": "resnet34", "dataset": "imagenet1k"}))
    with pytest.raises(ZooError, match=r"run/weights\.safetensors do not fit resnet34"):
        load_model(str(run))


def _test_images(tag: str, cifar_dir: Path, n: int):
    """The CIFAR-10 test split and its first n images normalised by hand (mean/std of the tag)."""
    from zoo.data.datasets import CIFAR10

    spec = registry.pretrained_tags()[tag].preprocess
    test = CIFAR10(cifar_dir, "test")
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)
    x = (test.images[:n].astype(np.float32) / 255 - mean) / std
    return test, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def test_flip_evaluation_averages_both_views(cifar_tag, cifar_dir):
    """Breakage: flip (and 10-crop) evaluation using only the first view."""
    from zoo.evaluate import evaluate

    n = 1000
    test, x = _test_images(cifar_tag, cifar_dir, n)
    model = create_model(cifar_tag, pretrained=True)
    with torch.no_grad():
        single = model(x).softmax(1)
        both = (single + model(x.flip(3)).softmax(1)) / 2
    labels = torch.from_numpy(test.labels[:n])
    single_top1 = 100 * (single.argmax(1) == labels).sum().item() / n  # exact: counts, not float32 means
    flip_top1 = 100 * (both.argmax(1) == labels).sum().item() / n
    assert single_top1 != flip_top1  # the views disagree somewhere: the test can tell them apart
    assert evaluate([cifar_tag], protocol="flip", limit=n)["top1"] == pytest.approx(flip_top1, abs=1e-9)
    assert evaluate([cifar_tag], protocol="single", limit=n)["top1"] == pytest.approx(single_top1, abs=1e-9)


def test_an_ensemble_averages_the_softmax_of_different_models(cifar_tag, cifar_dir, tmp_path):
    """Breakage: an ensemble that keeps one model (a model with itself cannot tell)."""
    from safetensors.torch import save_file

    from zoo.evaluate import evaluate

    n = 500
    test, x = _test_images(cifar_tag, cifar_dir, n)
    labels = torch.from_numpy(test.labels[:n])
    top1 = lambda p: 100 * (p.argmax(1) == labels).sum().item() / n  # noqa: E731  (exact: a count)
    trained = create_model(cifar_tag, pretrained=True).eval()
    with torch.no_grad():
        a = trained(x).softmax(1)
    # A weak but different second model: the trained one with noise on its convolutions, the noise
    # halved until the model is still fair (how much noise a net tolerates depends on its weights).
    other = create_model("resnet20").eval()
    for scale in (0.4, 0.2, 0.1, 0.05, 0.025):
        torch.manual_seed(1)
        with torch.no_grad():
            state = {
                k: v + scale * v.std() * torch.randn_like(v) if v.ndim == 4 else v
                for k, v in trained.state_dict().items()
            }
            other.load_state_dict(state)
            b = other(x).softmax(1)
        if top1(b) > 50:
            break
    path = tmp_path / "other.safetensors"
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(path),
        metadata={"arch": "resnet20", "dataset": "cifar10"},
    )
    assert len({top1(a), top1(b), top1(a + b)}) == 3 and top1(b) > 50  # three different answers
    result = evaluate([cifar_tag, str(path)], limit=n)
    assert result["top1"] == pytest.approx(top1(a + b), abs=1e-9) and len(result["models"]) == 2


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_eval_limit_must_be_positive(limit, cifar_tag, cifar_dir):
    one_sentence(runner.invoke(app, ["eval", cifar_tag, "--limit", limit]), "--limit must be at least 1")


def test_an_ensemble_of_two_datasets_is_refused_before_any_weights_are_fetched(zoo_cache, cifar_tag):
    """Breakage: resnet50's torchvision weights were downloaded (or their download failed) before the
    ensemble was found to mix CIFAR-10 and ImageNet."""
    one_sentence(
        runner.invoke(app, ["eval", cifar_tag, "resnet50", "--limit", "10"]),
        "an ensemble needs models of one dataset, not cifar10, imagenet1k",
    )
    assert not list(Path(zoo_cache).rglob("*.pth"))
    one_sentence(runner.invoke(app, ["eval", "plain20"]), "plain20 has no pretrained weights yet")
