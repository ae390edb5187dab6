"""The registry and the weights: names, the manifest, hash checks, downloads (over a loopback HTTP
server; this machine has no internet), and import of torchvision checkpoints."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import one_sentence
from zoo import ZooError, create_model, list_models
from zoo.cli import app
from zoo.models import registry
from zoo.models.weights import append_manifest_entry, download, read_manifest, verify_hash, weights_file
from zoo.utils.paths import BUILTIN_WEIGHTS

TORCHVISION_TAGS = {  # as torchvision 0.28 publishes them: file-name hash prefix, acc@1
    "resnet18.tv_in1k": ("f37072fd", 69.758),
    "resnet34.tv_in1k": ("b627a593", 73.314),
    "resnet50.tv_in1k": ("0676ba61", 76.130),
    "resnet50.tv2_in1k": ("11ad3fa6", 80.858),
    "resnet101.tv_in1k": ("63fe2227", 77.374),
    "resnet101.tv2_in1k": ("cd907fc2", 81.886),
    "resnet152.tv_in1k": ("394f9c45", 78.312),
    "resnet152.tv2_in1k": ("f82ba261", 82.284),
}


@pytest.fixture()
def http_root(tmp_path):
    """A loopback HTTP server over a temporary folder; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bare_names_resolve_to_default_tags_and_tags_are_listed():
    assert registry.resolve("resnet50")[1].name == "resnet50.tv2_in1k"
    assert registry.resolve("resnet18")[1].name == "resnet18.tv_in1k"
    assert registry.resolve("resnet50.tv_in1k")[1].preprocess.resize == 256
    assert list_models("resnet5*") == ["resnet50", "resnet56"]
    assert "resnet50.tv2_in1k" in list_models("resnet50*", pretrained=True)
    assert all("." in n for n in list_models(pretrained=True))


def test_the_manifest_lists_torchvisions_v1_and_v2_checkpoints():
    tags = registry.pretrained_tags()
    for name, (prefix, top1) in TORCHVISION_TAGS.items():
        spec = tags[name]
        arch = name.split(".")[0]
        assert spec.url == f"https://download.pytorch.org/models/{arch}-{prefix}.pth"
        assert spec.sha256_prefix == prefix and spec.metrics["top1"] == top1
        assert spec.preprocess.resize == (232 if "tv2" in name else 256) and spec.num_classes == 1000


def test_unknown_names_are_errors_that_name_close_matches():
    with pytest.raises(ZooError, match="did you mean.*resnet50"):
        create_model("resnet05")
    with pytest.raises(ZooError, match="its tags are"):
        create_model("resnet50.nope")
    with pytest.raises(ZooError, match="no pretrained weights"):
        create_model("plain20", pretrained=True)


def test_download_checks_the_hash_before_the_file_appears(http_root, tmp_path):
    root, url = http_root
    payload = b"weights" * 1000
    (root / "w.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "w.bin"
    assert download(f"{url}/w.bin", dest, sha256=good).read_bytes() == payload
    other = tmp_path / "cache" / "x.bin"
    with pytest.raises(ZooError, match="discarded"):
        download(f"{url}/w.bin", other, sha256="0" * 64)
    assert not other.exists() and list(other.parent.iterdir()) == [dest]  # no partial file left
    with pytest.raises(ZooError, match="cannot download"):
        download(f"{url}/missing.bin", tmp_path / "m.bin", sha256=good)
    with pytest.raises(ZooError, match="no hash"):
        download(f"{url}/w.bin", tmp_path / "n.bin")
    assert not (tmp_path / "n.bin").exists()


def _torchvision_style_checkpoint(root: Path, arch: str = "resnet18") -> tuple[Path, str, dict]:
    torch.manual_seed(1)
    state = create_model(arch).state_dict()
    raw = root / "tmp.pth"
    torch.save(state, raw)
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    published = root / f"{arch}-{prefix}.pth"
    raw.rename(published)
    return published, prefix, state


def _publish(zoo_cache: Path, url: str, prefix: str | None, sha256: str | None = None) -> None:
    """A user-manifest tag whose weights are published at `url`: with the hash prefix in the file name,
    like torchvision's, or with the file's whole sha256, like the paper's reference checkpoints."""
    entry = {
        "arch": "resnet18",
        "url": url,
        "sha256_prefix": prefix,
        "sha256": sha256,
        "dataset": "imagenet1k",
        "labels": "imagenet1k",
        "preprocess": {"resize": 256, "crop": 224},
    }
    append_manifest_entry(zoo_cache / "weights" / "manifest.toml", "resnet18.loopback", entry)
    registry.reload()


def test_a_published_pth_is_downloaded_verified_converted_and_loaded(http_root, zoo_cache):
    root, url = http_root
    pth, prefix, state = _torchvision_style_checkpoint(root)
    _publish(zoo_cache, f"{url}/{pth.name}", prefix)
    spec = registry.pretrained_tags()["resnet18.loopback"]
    model = create_model("resnet18.loopback", pretrained=True)
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v)
    st = weights_file(spec)
    assert st.suffix == ".safetensors" and st.is_relative_to(zoo_cache)
    # A corrupted cached file is an error that leaves it untouched.
    st.write_bytes(st.read_bytes()[:-8] + b"corrupt!")
    before = st.read_bytes()
    with pytest.raises(ZooError, match="untouched"):
        create_model("resnet18.loopback", pretrained=True)
    assert st.read_bytes() == before


def test_a_wrong_published_hash_is_refused(http_root, zoo_cache):
    root, url = http_root
    pth, _, _ = _torchvision_style_checkpoint(root)
    _publish(zoo_cache, f"{url}/{pth.name}", None, sha256="deadbeef" * 8)
    with pytest.raises(ZooError, match="not the published"):
        create_model("resnet18.loopback", pretrained=True)
    assert not (zoo_cache / "downloads" / pth.name).exists()
    # a prefix is taken only as torchvision publishes it: in the file name, so it cannot be another file's
    (zoo_cache / "weights" / "manifest.toml").unlink()
    _publish(zoo_cache, f"{url}/{pth.name}", "deadbeef")
    with pytest.raises(ZooError, match="found in the url's file name"):
        create_model("resnet18.loopback", pretrained=True)


def test_importing_a_torchvision_checkpoint_writes_safetensors_and_a_manifest_entry(
    tmp_path, zoo_cache, torchvision
):
    torch.manual_seed(2)
    tv = torchvision.models.resnet34(weights=None).eval()
    pth = tmp_path / "resnet34-mine.pth"
    torch.save({"model": tv.state_dict()}, pth)  # wrapped, as training scripts save it
    from zoo.models.checkpoints import import_checkpoint

    spec = import_checkpoint(pth, "resnet34.mine", preprocess="imagenet_232")
    manifest = tomllib.loads((zoo_cache / "weights" / "manifest.toml").read_text())
    entry = manifest["weights"]["resnet34.mine"]
    assert entry["sha256"] == hashlib.sha256(spec.file.read_bytes()).hexdigest()
    assert entry["preprocess"]["resize"] == 232
    model = create_model("resnet34.mine", pretrained=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x), rtol=0, atol=0)
    assert "resnet34.mine" in list_models(pretrained=True)
    with pytest.raises(ZooError, match="already exists"):
        import_checkpoint(pth, "resnet34.mine")


def test_a_checkpoint_of_another_architecture_is_refused_and_nothing_is_written(tmp_path, zoo_cache):
    pth = tmp_path / "r18.pth"
    torch.save(create_model("resnet18").state_dict(), pth)
    from zoo.models.checkpoints import import_checkpoint

    with pytest.raises(ZooError, match="do not fit resnet50"):
        import_checkpoint(pth, "resnet50.wrong")
    assert not (zoo_cache / "weights").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match="not a readable PyTorch checkpoint"):
        import_checkpoint(tmp_path / "junk.pth", "resnet18.junk")


def test_local_weights_with_a_bad_hash_are_an_error_and_stay_untouched(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"abc")
    with pytest.raises(ZooError, match="untouched"):
        verify_hash(f, sha256="0" * 64)
    assert f.read_bytes() == b"abc"


def test_every_local_file_in_the_builtin_manifest_matches_its_hash():
    for spec in read_manifest(BUILTIN_WEIGHTS / "manifest.toml").values():
        if spec.file is not None:
            assert verify_hash(spec.file, spec.sha256) == spec.sha256


def test_every_tag_of_the_zoos_own_names_a_recipe_file_that_exists_and_trained_it():
    """A shipped tag's recipe is a file of the repository (or a link, for a reference checkpoint), and the
    one its command trained with; its `changes_from_paper` are that recipe's own."""
    from zoo.train.recipe import load_recipe

    root = BUILTIN_WEIGHTS.parent
    own = [s for s in read_manifest(BUILTIN_WEIGHTS / "manifest.toml").values() if s.file is not None]
    assert own
    for spec in own:
        if spec.recipe.startswith("https://"):
            continue
        assert (root / spec.recipe).is_file(), f"{spec.name}: {spec.recipe} is not a file of the repository"
        recipe = load_recipe(str(root / spec.recipe))
        assert f"--recipe {recipe.name}" in spec.command or spec.recipe in spec.command, spec.name
        changes = spec.extra.get("changes_from_paper", [])
        assert set(recipe.doc["changes"]) <= set(changes), spec.name


REFERENCE_TOP1 = {"resnet20.akamaster": 91.73, "resnet56.akamaster": 93.39}  # their 8.27% / 6.61% error


@pytest.fixture()
def reference_mirror(http_root, data, monkeypatch):
    """The two shared reference checkpoints, served under their published file names at $ZOO_MIRROR."""
    import shutil

    root, url = http_root
    folder = data / "reference-weights"
    if not (folder / "resnet20-12fca82f.th").is_file():
        from tests.conftest import missing

        missing(f"the reference checkpoints are not under {folder}")
    for f in folder.glob("*.th"):
        shutil.copyfile(f, root / f.name)
    monkeypatch.setenv("ZOO_MIRROR", url)
    return root


def test_every_reference_tag_names_its_published_file_hash_and_preprocessing():
    tags = {n: s for n, s in registry.pretrained_tags().items() if n.endswith(".akamaster")}
    assert sorted(s.arch for s in tags.values()) == sorted(f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202))
    for spec in tags.values():
        name = spec.url.rsplit("/", 1)[-1]
        assert spec.url.startswith("https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/")
        assert (spec.sha256 or spec.sha256_prefix)[:8] == name.split("-")[1].removesuffix(".th")
        assert spec.preprocess.mean == (0.485, 0.456, 0.406) and spec.preprocess.crop == 32
        assert not spec.default and spec.metrics["top1"] > 91


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_TOP1))
def test_reference_checkpoints_download_verify_and_reproduce_their_published_accuracy(
    name, reference_mirror, zoo_cache, cifar_dir
):
    """Through the real download path (a loopback mirror), with plain load_state_dict semantics."""
    from zoo.evaluate import evaluate

    spec = registry.pretrained_tags()[name]
    raw = torch.load(reference_mirror / spec.url.rsplit("/", 1)[-1], map_location="cpu", weights_only=True)
    model = create_model(name, pretrained=True)
    theirs = {k.removeprefix("module.").replace("linear.", "fc."): v for k, v in raw["state_dict"].items()}
    plain = create_model(spec.arch)
    plain.load_state_dict(theirs)  # what users do with the state dict in their own code
    for k, v in model.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k]), k
    result = evaluate([name], split="test")
    assert result["n"] == 10_000
    assert result["top1"] == pytest.approx(REFERENCE_TOP1[name], abs=0.005)
    assert result["top1"] == pytest.approx(spec.metrics["top1"], abs=0.005)
    assert (zoo_cache / "downloads" / spec.url.rsplit("/", 1)[-1]).is_file()


def test_a_mirror_serving_another_file_is_refused(http_root, zoo_cache, monkeypatch):
    root, url = http_root
    spec = registry.pretrained_tags()["resnet20.akamaster"]
    torch.save({"state_dict": create_model("resnet20").state_dict()}, root / spec.url.rsplit("/", 1)[-1])
    monkeypatch.setenv("ZOO_MIRROR", url)
    with pytest.raises(ZooError, match="not the published"):
        create_model("resnet20.akamaster", pretrained=True)


@pytest.mark.slow
def test_reference_tags_export_check_bench_and_serve_like_any_tag(
    reference_mirror, zoo_cache, cifar_dir, tmp_path
):
    """Every format, `zoo parity`, `zoo bench` and the demo work with a reference tag and its own
    preprocessing (ImageNet mean/std at 32x32)."""

    from typer.testing import CliRunner

    from zoo.cli import app

    runner = CliRunner()
    tag = "resnet20.akamaster"
    out = tmp_path / "a"
    formats = "onnx,onnx-fp16,onnx-int8,onnx-int8-cpu"
    exported = runner.invoke(
        app,
        [
            "export",
            tag,
            "--formats",
            formats,
            "--artifacts",
            str(out),
            "--calib-size",
            "128",
            "--parity-images",
            "2000",
        ]
        + ["--json"],
    )
    assert exported.exit_code == 0, exported.output
    rows = json.loads(exported.stdout)
    assert [r["format"] for r in rows] == formats.split(",") and all(r["ok"] for r in rows)
    assert all(r["parity"]["images"] == 2000 and r["parity"]["verdict"]["passed"] for r in rows)
    card = json.loads((out / tag / "onnx" / "card.json").read_text())
    assert card["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    checked = runner.invoke(app, ["parity", tag, "--artifacts", str(out), "--limit", "1000", "--json"])
    assert checked.exit_code == 0 and len(json.loads(checked.stdout)) == 4
    args = [
        "bench",
        tag,
        "--formats",
        "pytorch,onnx-int8-cpu",
        "--batch",
        "1",
        "--seconds",
        "0.2",
        "--repeats",
        "1",
    ]
    benched = runner.invoke(app, [*args, "--artifacts", str(out), "--out", str(tmp_path / "b"), "--json"])
    assert benched.exit_code == 0, benched.output
    assert [e["status"] for e in json.loads(benched.stdout)["summary"]] == ["ok", "ok"]
    gradio = pytest.importorskip("gradio", reason="the web demo needs gradio")
    assert gradio
    from zoo.data.datasets import CIFAR10
    from zoo.serve.demo import RuntimeCache, classify

    image = tmp_path / "ship.png"
    CIFAR10(cifar_dir, "test")[1][0].save(image)
    cand, orig, status, crop = classify(RuntimeCache(out), str(image), tag, "onnx-int8-cpu")
    assert len(cand) == 5 and max(cand, key=cand.get) == max(orig, key=orig.get), status


def test_a_cached_download_is_checked_against_the_whole_published_hash(http_root, zoo_cache):
    root, url = http_root
    pth, _, state = _torchvision_style_checkpoint(root)
    _publish(zoo_cache, f"{url}/{pth.name}", None, sha256=hashlib.sha256(pth.read_bytes()).hexdigest())
    model = create_model("resnet18.loopback", pretrained=True)
    assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"])
    fetched = zoo_cache / "downloads" / pth.name
    assert fetched.is_file()
    for converted in (zoo_cache / "weights").glob("resnet18.loopback-*"):
        converted.unlink()  # so the next load converts the cached download again
    fetched.write_bytes(fetched.read_bytes()[:-8] + b"corrupt!")
    with pytest.raises(ZooError, match="untouched"):
        create_model("resnet18.loopback", pretrained=True)
    assert not list((zoo_cache / "weights").glob("resnet18.loopback-*"))


def test_a_mirror_given_with_a_trailing_slash_serves_the_published_file(http_root, zoo_cache, monkeypatch):
    from zoo.models.weights import mirrored

    root, url = http_root
    pth, prefix, state = _torchvision_style_checkpoint(root)
    published = f"https://download.example.org/models/{pth.name}"  # unreachable here: the mirror serves it
    _publish(zoo_cache, published, prefix)
    monkeypatch.setenv("ZOO_MIRROR", url + "/")
    assert mirrored(published) == f"{url}/{pth.name}"
    model = create_model("resnet18.loopback", pretrained=True)
    assert torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_a_manifest_entry_reads_back_with_every_field(tmp_path):
    """append_manifest_entry writes what tomllib reads back unchanged, and read_manifest keeps every field:
    the known ones as WeightSpec fields, the rest in `extra`."""
    from zoo.data.preprocess import PreprocessSpec

    pre = {
        "resize": 36,
        "crop": 32,
        "interpolation": "bicubic",
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.2, 0.2],
    }
    entry = {
        "arch": "resnet20",
        "dataset": "cifar10",
        "labels": "cifar10",
        "preprocess": pre,
        "file": "w.safetensors",
        "url": "https://example.org/a/w-abababab.pth",
        "sha256": "ab" * 32,
        "sha256_prefix": "abababab",
        "default": True,
        "metrics": {"top1": 91.5, "protocol": "single"},
        "recipe": "cifar_budget",
        "command": 'zoo train resnet20 --note "C:\\runs"\nand a second line',
        "rename": {"linear.": "fc."},
        "paper": "He et al. 2015",
        "untrained": False,
    }
    manifest = tmp_path / "manifest.toml"
    append_manifest_entry(manifest, "resnet20.mine", entry)
    assert tomllib.loads(manifest.read_text())["weights"]["resnet20.mine"] == entry
    spec = read_manifest(manifest)["resnet20.mine"]
    assert (spec.name, spec.arch, spec.dataset, spec.labels) == (
        "resnet20.mine",
        "resnet20",
        "cifar10",
        "cifar10",
    )
    assert spec.preprocess == PreprocessSpec(**pre) and spec.file == tmp_path / "w.safetensors"
    assert (spec.url, spec.sha256, spec.sha256_prefix) == (
        entry["url"],
        entry["sha256"],
        entry["sha256_prefix"],
    )
    assert spec.default is True and spec.metrics == entry["metrics"] and spec.recipe == "cifar_budget"
    assert spec.command == entry["command"] and spec.rename == {"linear.": "fc."}
    assert spec.extra == {"paper": "He et al. 2015", "untrained": False}
    # the fields an entry needs: what the weights are for, where they are, and the hash they are held to
    least = {k: entry[k] for k in ("arch", "dataset", "labels", "preprocess", "file", "sha256")}
    append_manifest_entry(manifest, "resnet20.least", least)
    bare = read_manifest(manifest)["resnet20.least"]
    assert (bare.recipe, bare.command, bare.metrics, bare.rename, bare.extra) == ("", "", {}, {}, {})
    assert (bare.url, bare.sha256_prefix, bare.default) == (None, None, False)
    assert bare.file == tmp_path / "w.safetensors" and bare.sha256 == "ab" * 32
    for needed in ("file", "sha256"):
        append_manifest_entry(
            manifest, f"resnet20.no{needed}", {k: v for k, v in least.items() if k != needed}
        )
        with pytest.raises(ZooError, match=f"resnet20.no{needed}"):
            read_manifest(manifest)
        manifest.write_text(manifest.read_text().split('[weights."resnet20.no')[0])
    with pytest.raises(ZooError, match=r"resnet20\.mine is already in .*manifest\.toml; choose another tag"):
        append_manifest_entry(manifest, "resnet20.mine", entry)
    append_manifest_entry(manifest, "resnet32.mislabelled", entry)
    with pytest.raises(ZooError, match=r"'resnet32\.mislabelled'.*the name must be 'resnet20\.TAG'"):
        read_manifest(manifest)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state_dict", "ema"])
def test_checkpoints_wrapped_by_training_scripts_are_unwrapped(tmp_path, wrapper):
    from zoo.models.weights import read_checkpoint

    state = create_model("resnet20").state_dict()
    torch.save({wrapper: {f"module.{k}": v for k, v in state.items()}, "epoch": 7}, tmp_path / "c.pth")
    read = read_checkpoint(tmp_path / "c.pth")
    assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)
    torch.save({"epoch": 7, "lr": 0.1}, tmp_path / "bare.pth")
    with pytest.raises(ZooError, match=r"bare\.pth does not hold a state dict of tensors"):
        read_checkpoint(tmp_path / "bare.pth")


def test_loading_a_local_weights_file_checks_its_hash(zoo_cache, cifar_tag):
    """Breakage: `weights_file` skips `verify_hash` for local files."""
    from zoo.models.weights import append_manifest_entry

    spec = registry.pretrained_tags()[cifar_tag]
    copy = zoo_cache / "weights" / "tampered.safetensors"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec.file, copy)
    entry = {
        "arch": spec.arch,
        "file": copy.name,
        "sha256": hashlib.sha256(spec.file.read_bytes()).hexdigest(),
        "dataset": "cifar10",
        "labels": "cifar10",
        "preprocess": spec.preprocess.to_dict(),
    }
    append_manifest_entry(zoo_cache / "weights" / "manifest.toml", f"{spec.arch}.tampered", entry)
    registry.reload()
    create_model(f"{spec.arch}.tampered", pretrained=True)  # intact: loads
    data = bytearray(copy.read_bytes())
    data[-3] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="sha256"):
        create_model(f"{spec.arch}.tampered", pretrained=True)


runner = CliRunner()


def test_importing_a_missing_or_corrupt_safetensors_is_one_sentence(tmp_path, zoo_cache):
    one_sentence(
        runner.invoke(app, ["import-weights", str(tmp_path / "no.safetensors"), "resnet20.x"]),
        "does not exist",
    )
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    one_sentence(
        runner.invoke(app, ["import-weights", str(bad), "resnet20.x"]), "not a readable safetensors file"
    )


def test_a_manifest_entry_is_replaced_in_place_every_other_line_kept(tmp_path):
    """`zoo publish --replace` rewrites one entry (its sub-tables too) where it stands; the comments above
    the next entry and at the end of the file stay, and an entry that is not there is one sentence."""
    from zoo.models.weights import replaced_manifest_entry

    manifest = tmp_path / "manifest.toml"
    text = (
        "# the zoo's weights\n[preprocess.cifar10]  # native 32x32\nresize = 32\n\n"
        '[weights."resnet20.a"]\narch = "resnet20"\nchanges = [\n    "x",\n]\n\n'
        '[weights."resnet20.a".metrics]\ntop1 = 90.0\n\n'
        '# the next one, with its comment\n[weights."resnet32.b"]\narch = "resnet32"\n\n# the end\n'
    )
    manifest.write_text(text)
    new = replaced_manifest_entry(manifest, "resnet20.a", {"arch": "resnet20", "metrics": {"top1": 93.1}})
    a_block = text[text.index('[weights."resnet20.a"]') : text.index("# the next one")]
    assert new == text.replace(
        a_block,
        '[weights."resnet20.a"]\narch = "resnet20"\n\n[weights."resnet20.a".metrics]\ntop1 = 93.1\n\n',
    )
    last = replaced_manifest_entry(manifest, "resnet32.b", {"arch": "resnet32", "file": "b.safetensors"})
    assert last == text.replace('arch = "resnet32"\n\n', 'arch = "resnet32"\nfile = "b.safetensors"\n\n')
    with pytest.raises(ZooError, match="nothing of it to replace"):
        replaced_manifest_entry(manifest, "resnet20.c", {"arch": "resnet20"})
