"""The web demo: its handlers on good and bad input, a live loopback server driven by gradio_client,
a real headless Chromium, and a bounded load test (8 clients x 25 requests)."""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("gradio", reason="the web demo needs gradio: pip install 'resnet-zoo[app]'")

from zoo import ZooError  # noqa: E402
from zoo.cli import app  # noqa: E402
from zoo.serve.demo import MAX_UPLOAD, RuntimeCache, badge, build_demo, classify, drawn_images, launch  # noqa: E402
from zoo.utils.ports import free_port  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def artifacts(checked_artifacts):
    return checked_artifacts[0]  # tests/conftest.py: the session's checked export


@pytest.fixture(scope="module")
def cifar_image(tmp_path_factory, cifar_dir) -> Path:
    from zoo.data.datasets import CIFAR10

    img, _ = CIFAR10(cifar_dir, "test")[3]
    path = tmp_path_factory.mktemp("img") / "cifar-3.png"
    img.save(path)
    return path


def test_handler_classifies_a_real_image_and_shows_the_crop(artifacts, cifar_tag, cifar_image):
    cache = RuntimeCache(artifacts)
    assert cache.formats(cifar_tag) == ["pytorch", "onnx", "onnx-int8-cpu"]
    cand, orig, status, crop = classify(cache, str(cifar_image), cifar_tag, "onnx")
    assert len(cand) == 5 and len(orig) == 5 and "same top-1" in status and "ms median" in status
    assert max(cand, key=cand.get) == max(orig, key=orig.get) and crop.size == (32, 32)
    assert cache.get(cifar_tag, "onnx") is cache.get(cifar_tag, "onnx")  # loaded once, reused


@pytest.mark.parametrize("fmt", ["onnx-int8-cpu", "onnx"])
def test_the_handler_answers_with_the_artifact_chosen_not_the_original(
    artifacts, cifar_tag, cifar_image, fmt
):
    """The candidate column is the chosen artifact's own scores (its runtime opened here, without the
    demo), and the original column PyTorch's: INT8 and FP32 ONNX Runtime scores differ from PyTorch's in
    their low digits, so a handler that ran PyTorch twice (or the wrong artifact) could not pass."""
    from zoo.data.preprocess import load_image, preprocess
    from zoo.serve.predict import top_k
    from zoo.serve.runtimes import open_runtime

    cand, orig, _status, _crop = classify(RuntimeCache(artifacts), str(cifar_image), cifar_tag, fmt)
    with open_runtime(artifacts / cifar_tag / fmt) as rt, open_runtime(cifar_tag) as torch_rt:
        x = preprocess(load_image(cifar_image), rt.preprocess)[None]
        own = {t["label"]: t["prob"] for t in top_k(rt.run(x), rt.labels, 5)[0]}
        reference = {t["label"]: t["prob"] for t in top_k(torch_rt.run(x), torch_rt.labels, 5)[0]}
    assert cand == own and orig == reference
    assert cand != orig  # the two columns come from two different runtimes


def test_the_crop_is_shown_enlarged_pixel_for_pixel():
    from zoo.serve.demo import enlarged

    crop = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    big = enlarged(crop)
    assert big.size == (224, 224)
    np.testing.assert_array_equal(np.asarray(big)[::7, ::7], np.asarray(crop))


def test_badge_says_same_within_top5_or_disagree():
    top = [{"index": i} for i in range(5)]
    assert "same" in badge(top, top)
    assert "within" in badge([{"index": 3}], top)
    assert "disagree" in badge([{"index": 9}], top)


def _save(img: Image.Image, path: Path, fmt: str) -> str:
    img.save(path, fmt)
    return str(path)


def test_every_kind_of_bad_or_odd_input_gets_a_visible_message_or_a_result(artifacts, cifar_tag, tmp_path):
    cache = RuntimeCache(artifacts)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)
    for bad, words in (
        (None, "no image"),
        (str(text), "not an image"),
        (str(empty), "empty"),
        (str(huge), "pixels"),
    ):
        cand, orig, status, crop = classify(cache, bad, cifar_tag, "onnx")
        assert cand == {} and crop is None and status.startswith("⚠️") and words in status, status
    odd = {
        "gray": _save(Image.new("L", (64, 48), 120), tmp_path / "g.png", "PNG"),
        "rgba": _save(Image.new("RGBA", (64, 48), (200, 10, 10, 128)), tmp_path / "a.png", "PNG"),
        "cmyk": _save(Image.new("CMYK", (64, 48), (0, 200, 200, 0)), tmp_path / "c.jpg", "JPEG"),
    }
    for name, path in odd.items():
        cand, _, status, crop = classify(cache, path, cifar_tag, "onnx-int8-cpu")
        assert len(cand) == 5 and crop.mode == "RGB", (name, status)
    assert classify(cache, str(odd["gray"]), "", "onnx")[2].startswith("⚠️")


def test_without_test_images_the_examples_are_drawn_and_the_demo_says_why(tmp_path, monkeypatch, capsys):
    import zoo.serve.demo as demo

    def absent(*_a, **_k):
        raise ZooError("no labelled cifar10 images: cannot download it (no connection)")

    monkeypatch.setattr(demo, "find_dataset", absent)
    examples = demo.example_images("resnet20.cifar10", tmp_path, 3)
    assert [caption for _, caption in examples] == [f"drawn picture {i}" for i in range(3)]
    assert capsys.readouterr().err == (
        "note: the demo's examples are drawn pictures: no labelled cifar10 images: cannot download it "
        "(no connection)\n"
    )


def test_drawn_examples_exist_without_data(tmp_path):
    paths = drawn_images(tmp_path, 3)
    assert len(paths) == 3 and all(Image.open(p).size == (256, 256) for p in paths)


@pytest.fixture(scope="module")
def server(artifacts, cifar_tag):
    demo = build_demo([cifar_tag], artifacts, concurrency=2)
    port = free_port()
    launch(
        demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_live_server_top_label_matches_zoo_predict(server, artifacts, cifar_tag, cifar_image):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    _picture, cand, _orig, status, _crop = client.predict(
        handle_file(str(cifar_image)), None, cifar_tag, "onnx-int8-cpu", api_name="/classify"
    )
    served = cand["label"]
    cli = CliRunner().invoke(
        app,
        [
            "predict",
            "--artifact",
            str(artifacts / cifar_tag / "onnx-int8-cpu"),
            str(cifar_image),
            "--json",
            "--topk",
            "1",
        ],
    )
    assert cli.exit_code == 0 and served == json.loads(cli.stdout)[0]["top"][0]["label"], status


@pytest.fixture(scope="module")
def odd_and_bad_uploads(tmp_path_factory, cifar_dir) -> tuple[dict[str, Path], dict[str, Path]]:
    """The same real photo in every odd form a user uploads, and files that are not images at all."""
    from zoo.data.datasets import CIFAR10

    folder = tmp_path_factory.mktemp("uploads")
    base = CIFAR10(cifar_dir, "test")[7][0].resize((64, 64), Image.Resampling.BICUBIC)
    odd = {}

    def save(name: str, img: Image.Image, fmt: str, **kw) -> None:
        odd[name] = folder / f"{name}.{fmt.lower()}"
        img.save(odd[name], fmt, **kw)

    gray16 = (np.asarray(base.convert("L"), np.uint16) * 257).astype(np.uint16)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((64, 64)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    save("gray", base.convert("L"), "PNG")
    save("sixteen-bit", Image.fromarray(gray16), "PNG")
    save("rgba", rgba, "PNG")
    save("palette", base.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    save("cmyk", base.convert("CMYK"), "JPEG", quality=95)
    save("exif-rotated", base.rotate(90, expand=True), "JPEG", exif=exif, quality=95)
    save("gif", base, "GIF")
    bad = {"text": folder / "notes.jpg", "empty": folder / "empty.png", "truncated": folder / "cut.png"}
    bad["text"].write_text("not an image")
    bad["empty"].write_bytes(b"")
    bad["truncated"].write_bytes(odd["gray"].read_bytes()[:200])
    bad["bomb"] = folder / "bomb.png"
    Image.new("1", (12000, 12000)).save(bad["bomb"])
    return odd, bad


def _cli_predict(artifact: Path, image: Path) -> tuple[int, dict]:
    r = CliRunner().invoke(app, ["predict", "--artifact", str(artifact), str(image), "--json", "--topk", "5"])
    return r.exit_code, json.loads(r.stdout)[0]


def test_live_server_sees_each_uploaded_file_exactly_as_zoo_predict(
    server, artifacts, cifar_tag, odd_and_bad_uploads
):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    odd, bad = odd_and_bad_uploads
    artifact = artifacts / cifar_tag / "onnx-int8-cpu"
    for name, path in odd.items():
        _picture, cand, _orig, status, _crop = client.predict(
            handle_file(str(path)), None, cifar_tag, "onnx-int8-cpu", api_name="/classify"
        )
        code, cli = _cli_predict(artifact, path)
        served = [(c["label"], c["confidence"]) for c in cand["confidences"]]
        assert code == 0 and served == [(t["label"], t["prob"]) for t in cli["top"]], (name, status)
    for name, path in bad.items():
        _picture, cand, _orig, status, _crop = client.predict(
            handle_file(str(path)), None, cifar_tag, "onnx-int8-cpu", api_name="/classify"
        )
        code, cli = _cli_predict(artifact, path)
        sentence = cli["error"].replace(str(path), path.name)
        assert code == 1 and not cand.get("confidences") and status == f"⚠️ {sentence}", (name, status)


def test_the_latency_shown_is_the_median_of_warm_runs_with_their_range_and_count(
    artifacts, cifar_tag, cifar_image, monkeypatch
):
    """A runtime whose runs take known times: the warm-up (300 ms) is left out, the median (40 ms, where
    the mean would be 56) is shown with the range and the number of runs."""
    from zoo.serve import demo

    monkeypatch.setattr(demo, "TIMED_RUNS", 5)
    monkeypatch.setattr(demo, "TIMING_BUDGET_S", 30.0)
    cache = RuntimeCache(artifacts)
    rt = cache.get(cifar_tag, "onnx")
    sleeps = iter([0.3, 0.02, 0.03, 0.04, 0.10, 0.09])
    original_run = rt.run
    monkeypatch.setattr(rt, "run", lambda batch: time.sleep(next(sleeps)) or original_run(batch))
    _, _, status, _ = classify(cache, str(cifar_image), cifar_tag, "onnx")
    line = next(line for line in status.splitlines() if line.startswith("onnx:"))
    found = re.search(r"([\d.]+) ms median \(([\d.]+)-([\d.]+) ms, (\d+) warm runs\)", line)
    median, low, high, runs = found.groups()
    assert int(runs) == 5 and next(sleeps, None) is None  # every planned run made, no more
    assert float(median) == pytest.approx(40, abs=8) and float(low) == pytest.approx(20, abs=8)
    assert float(high) == pytest.approx(100, abs=15)  # not the 300 ms warm-up


def test_the_pytorch_original_alone_is_not_compared_with_itself(artifacts, cifar_tag, cifar_image):
    cand, orig, status, crop = classify(RuntimeCache(artifacts), str(cifar_image), cifar_tag, "pytorch")
    assert len(cand) == 5 and orig == {} and crop is not None
    assert "same top-1" not in status and "choose an exported artifact" in status


def test_bounded_load_8_clients_x_25_requests_no_failures(server, cifar_tag, cifar_image):
    from gradio_client import Client, handle_file

    def client_run(_: int) -> list[float]:
        client = Client(server, verbose=False)
        times = []
        for _ in range(25):
            t0 = time.perf_counter()
            _picture, cand, *_ = client.predict(
                handle_file(str(cifar_image)), None, cifar_tag, "onnx-int8-cpu", api_name="/classify"
            )
            assert cand["label"]
            times.append(time.perf_counter() - t0)
        return times

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client_run, range(8)))
    latencies = np.concatenate(results)
    assert len(latencies) == 200
    print(
        f"load test: 200 requests from 8 clients, 0 failures, p50 {1e3 * np.percentile(latencies, 50):.0f} ms, "
        f"p95 {1e3 * np.percentile(latencies, 95):.0f} ms"
    )


def test_an_upload_above_the_limit_is_refused_before_it_is_stored(server, tmp_path):
    """Gradio's upload route answers 413 for a file over the zoo's limit, and keeps nothing of it."""
    import urllib.error
    import urllib.request

    limit = int(MAX_UPLOAD.removesuffix("mb")) * 1024 * 1024  # Gradio's "mb" is MiB
    boundary = "zooboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + b"\0" * (limit + 1024) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{server}gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 413
    small = urllib.request.Request(
        f"{server}gradio_api/upload",
        data=head + b"\0" * 1024 + f"\r\n--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert urllib.request.urlopen(small, timeout=60).status == 200  # the control: a small one is taken


def test_every_input_clears_the_last_answers_at_once_then_classifies(tmp_path, cifar_tag):
    """An upload, a paste or webcam picture, a change of artifact and a change of model each first clear the
    outputs (unqueued, so at once) and then classify: no stale top-5 beside a new input while the model runs.
    The browser test drives the upload and the model; the paste box cannot be driven headless, so the
    wiring itself is read from the app. With no models named, the app offers every tag with local weights."""
    demo = build_demo([cifar_tag], tmp_path)
    by_label = {getattr(b, "label", None): b._id for b in demo.blocks.values()}
    by_id = {getattr(b, "elem_id", None): b._id for b in demo.blocks.values()}
    fns = list(demo.fns.values())
    triggers = {
        (by_id["upload"], "change"),
        (by_label["paste / webcam"], "change"),
        (by_id["artifact"], "input"),
        (by_id["model"], "change"),
    }
    for trigger in triggers:
        (first,) = [f for f in fns if trigger in [tuple(t) for t in f.targets]]
        assert first.fn.__name__ == "cleared" and first.queue is False, trigger
        assert first.fn() == (None, None, None, "", None)  # every output emptied
        chain, f = [], first
        while (nxt := [g for g in fns if g.trigger_after == fns.index(f)]) and len(chain) < 5:
            f = nxt[0]
            chain.append(f.fn.__name__)
        assert chain[-1] == "run_classify", (trigger, chain)
    # each column says what it shows (the project's own spelling of PyTorch)
    labels = {getattr(b, "elem_id", None): getattr(b, "label", None) for b in demo.blocks.values()}
    assert labels["preview"] == "your image" and labels["artifact-top5"] == "artifact top-5"
    assert labels["original-top5"] == "PyTorch original top-5"
    weights = Path(__file__).resolve().parents[2] / "weights"
    shipped = sorted(p.name.removesuffix(".safetensors") for p in weights.glob("*.safetensors"))
    default = build_demo(artifacts=tmp_path)  # the test session's own empty cache: the shipped weights alone
    (model,) = [b for b in default.blocks.values() if getattr(b, "elem_id", None) == "model"]
    assert sorted(value for _label, value in model.choices) == shipped and "resnet20.cifar10" in shipped


def test_the_demo_deletes_uploads_after_a_while(artifacts, cifar_tag):
    from zoo.serve.demo import UPLOADS_KEPT_S

    demo = build_demo([cifar_tag], artifacts)
    assert demo.delete_cache == (UPLOADS_KEPT_S, UPLOADS_KEPT_S) and 0 < UPLOADS_KEPT_S <= 3600


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
OTHER_TAG = "resnet32.cifar10"  # a second shipped model, with no artifacts here: PyTorch alone


def _top_label(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} h2, #{elem_id} .output-class").first.inner_text(timeout=30_000).strip()


def test_headless_chromium_follows_the_users_inputs_and_clears_stale_answers(
    artifacts, cifar_image, tmp_path, cifar_tag
):
    """A real browser, as a user goes: an upload is classified without a click; switching the model
    clears the old model's answers and answers with the new one; a click on an example thumbnail
    classifies that example; a file that is not an image shows the CLI's sentence. A screenshot a step
    (tests/serve/last-demo-*.png)."""
    if CHROMIUM is None:
        from tests.conftest import missing

        missing("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from zoo.serve.demo import example_images, examples_dir

    demo = build_demo([OTHER_TAG, cifar_tag], artifacts)  # listed in depth order: resnet20 first
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    shots = []

    def shot(page, name: str) -> None:
        shots.append(tmp_path / f"{name}.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

    cache = RuntimeCache(artifacts)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            about = page.locator("#about").inner_text()
            assert "10 classes" in about and "32x32" in about and "airplane" in about
            status = page.locator("#status")

            # 1. an upload is classified at once: no button pressed
            page.locator("#upload input[type=file]").set_input_files(str(cifar_image))
            status.get_by_text("same top-1").wait_for(timeout=60_000)
            shot(page, "1-upload")
            cand, orig, _, _ = classify(cache, str(cifar_image), cifar_tag, "onnx")
            assert _top_label(page, "artifact-top5") == max(cand, key=cand.get)
            assert _top_label(page, "original-top5") == max(orig, key=orig.get)
            assert page.locator("#preview img").count() == 1  # the picture, not just its file name

            # 2. another model: the old answers go, the new model answers alone (no artifact of it here)
            page.locator("#model input").click()
            page.get_by_role("option", name=OTHER_TAG).click()
            status.get_by_text("PyTorch original").wait_for(timeout=60_000)
            shot(page, "2-other-model")
            other, _, _, _ = classify(cache, str(cifar_image), OTHER_TAG, "pytorch")
            assert _top_label(page, "artifact-top5") == max(other, key=other.get)
            assert "%" not in page.locator("#original-top5").inner_text()  # resnet20's column is gone
            assert page.locator("#artifact input").input_value() == "pytorch"

            # 3. a click on an example thumbnail classifies that example
            example, caption = example_images(OTHER_TAG, examples_dir())[2]
            page.locator("#examples img").nth(2).click()
            status.get_by_text("32x32 image").wait_for(timeout=60_000)
            page.wait_for_function(
                "n => document.querySelector('#upload').innerText.includes(n)", arg=Path(example).stem
            )
            status.get_by_text("PyTorch original").wait_for(timeout=60_000)
            shot(page, "3-example")
            seen, _, _, _ = classify(cache, example, OTHER_TAG, "pytorch")
            assert _top_label(page, "artifact-top5") == max(seen, key=seen.get)
            assert caption in page.locator("#examples").inner_text()  # thumbnails named by their class

            # 4. a file that is not an image: the CLI's sentence, and no stale answer beside it
            text = tmp_path / "notes.jpg"
            text.write_text("not an image")
            page.locator("#upload button[aria-label='Clear']").click()
            page.locator("#upload input[type=file]").set_input_files(str(text))
            status.get_by_text("notes.jpg is not an image that Pillow can read.").wait_for(timeout=60_000)
            shot(page, "4-not-an-image")
            assert "%" not in page.locator("#artifact-top5").inner_text()
            browser.close()
    finally:
        demo.close()
    for path in shots:
        assert path.stat().st_size > 10_000
        shutil.copyfile(path, Path(__file__).parent / f"last-demo-{path.name}")


def test_the_export_button_exports_the_missing_onnx_artifacts(cifar_tag, tmp_path, cifar_dir):
    from zoo.serve.demo import DEMO_FORMATS, export_missing

    cache = RuntimeCache(tmp_path)
    assert cache.formats(cifar_tag) == ["pytorch"]
    steps: list[str] = []  # what the button's progress shows, step by step
    # exported and checked as `zoo export` does (on the first 1,000 test images here, to keep CI short)
    message = export_missing(cache, cifar_tag, log=steps.append, parity_images=1000)
    assert [line.split(":")[0] for line in message.splitlines()] == [f"✅ {f}" for f in DEMO_FORMATS]
    assert any(s.startswith("parity:") for s in steps) and any("onnx-int8: built" in s for s in steps)
    from zoo.export.artifact import read_card

    cards = [read_card(tmp_path / cifar_tag / f) for f in DEMO_FORMATS]
    assert all(c["parity"]["verdict"]["passed"] and c["parity"]["images"] == 1000 for c in cards)
    assert cache.formats(cifar_tag) == ["pytorch", *sorted(DEMO_FORMATS)]
    assert export_missing(cache, cifar_tag) == f"all ONNX artifacts of {cifar_tag} are exported."
