"""The web demo: classify an image with an exported artifact, side by side with its PyTorch original.

The handlers are plain functions (tested directly); `build_demo` wires them into a Gradio Blocks app that
follows its inputs: an upload, a pasted picture, a click on an example, another model or artifact each
classify again at once, and what the previous input produced is cleared first. Runtimes are opened once and
reused; a bad input gives a visible message and the app keeps serving.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoo.data.datasets import find_dataset
from zoo.data.labels import load_labels
from zoo.data.preprocess import load_image, preprocess, resize_and_crop
from zoo.errors import ZooError
from zoo.export.artifact import artifact_dirs, read_card
from zoo.export.pipeline import ExportOptions
from zoo.models import registry
from zoo.serve.checked_export import export_and_check
from zoo.serve.predict import top_k
from zoo.serve.runtimes import Runtime, open_runtime
from zoo.serve.verdicts import admit, standing
from zoo.utils.files import atomic_path
from zoo.utils.lazy import lazy_import
from zoo.utils.paths import cache_dir

gr = lazy_import("gradio")

PYTORCH = "pytorch"
DEMO_FORMATS = ["onnx", "onnx-fp16", "onnx-int8", "onnx-int8-cpu"]


class RuntimeCache:
    """Each (model, format) runtime is opened once, on first use, and shared by every request. An artifact
    is opened only as its verdict allows (serve/verdicts.py): `allow_unverified` runs the refused ones too,
    with the warning shown beside each answer."""

    def __init__(self, artifacts: Path, allow_unverified: bool = False) -> None:
        self.artifacts = Path(artifacts)
        self.allow_unverified = allow_unverified
        self._runtimes: dict[tuple[str, str], Runtime] = {}
        self.notes: dict[tuple[str, str], list[str]] = {}  # the verdict's warnings and notes per runtime
        self._lock = threading.Lock()

    def formats(self, tag: str) -> list[str]:

        found = [p.name for p in artifact_dirs(self.artifacts / tag)]
        return [PYTORCH, *found]

    def standing(self, tag: str, fmt: str):
        """The verdict standing of an artifact (None for the PyTorch original or an unreadable card)."""
        if fmt == PYTORCH:
            return None
        try:
            return standing(read_card(self.artifacts / tag / fmt))
        except ZooError:
            return None

    def choices(self, tag: str) -> list[tuple[str, str]]:
        """(label, format) pairs for the dropdown: each artifact marked with its verdict."""
        out = []
        for fmt in self.formats(tag):
            s = self.standing(tag, fmt)
            label = fmt if s is None else f"{fmt}  {s.mark} {s.status}" + (" (other CPU)" * bool(s.host_note))
            out.append((label, fmt))
        return out

    def get(self, tag: str, fmt: str) -> Runtime:
        key = (tag, fmt)
        with self._lock:
            if key not in self._runtimes:
                source = tag if fmt == PYTORCH else self.artifacts / tag / fmt
                if fmt != PYTORCH:
                    self.notes[key] = admit(source, allow=self.allow_unverified)
                self._runtimes[key] = open_runtime(source, shared=True)
            return self._runtimes[key]

    def forget(self, tag: str) -> None:
        """Drop the runtimes of `tag`'s artifacts (after an export or check rewrote them)."""
        with self._lock:
            for key in [k for k in self._runtimes if k[0] == tag and k[1] != PYTORCH]:
                self._runtimes.pop(key).close()
                self.notes.pop(key, None)


TIMED_RUNS = 10  # warm runs at most (one more, untimed, warms up first)
TIMING_BUDGET_S = 0.25  # ... and no more runs once this much time was spent timing


def _timed_top5(rt: Runtime, batch: np.ndarray) -> tuple[list[dict[str, Any]], list[float]]:
    """The top-5, and the latencies (ms) of warm runs, as `zoo bench` measures them: the first run
    (allocation, lazy initialisation) is not timed, and at most about TIMING_BUDGET_S is spent timing."""
    logits = rt.run(batch)
    rt.synchronize()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < TIMED_RUNS and (not times or time.perf_counter() - start < TIMING_BUDGET_S):
        t0 = time.perf_counter()
        rt.run(batch)
        rt.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return top_k(logits, rt.labels, 5)[0], times


def latency(times: list[float]) -> str:
    """'2.41 ms median (2.30-2.95 ms, 10 warm runs)': a single number would hide how much it moves."""

    def ms(v: float) -> str:
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"

    runs = f"{len(times)} warm run{'s' * (len(times) != 1)}"
    if len(times) == 1:
        return f"{ms(times[0])} ms ({runs})"
    return f"{ms(float(np.median(times)))} ms median ({ms(min(times))}-{ms(max(times))} ms, {runs})"


def _as_label(top: list[dict[str, Any]]) -> dict[str, float]:
    return {t["label"]: t["prob"] for t in top}


def badge(candidate: list[dict[str, Any]], original: list[dict[str, Any]]) -> str:
    """Same top-1 / top-1 within the original's top-5 / disagree."""
    if candidate[0]["index"] == original[0]["index"]:
        return "✅ same top-1"
    if candidate[0]["index"] in {t["index"] for t in original}:
        return "🟡 top-1 within the original's top-5"
    return "❌ disagree"


def classify(
    cache: RuntimeCache, image: Any, tag: str, fmt: str
) -> tuple[dict, dict, str, Image.Image | None]:
    """(artifact top-5, PyTorch top-5, status markdown, the exact crop the model saw); never raises.
    With the PyTorch original chosen there is nothing to compare: its top-5 fills the first column alone."""
    try:
        if image is None or (isinstance(image, str) and not image):
            raise ZooError("no image: upload, paste or drop one, or pick an example.")
        if not tag:
            raise ZooError("choose a model first.")
        # An uploaded file is read by the CLI's own loader from its bytes (16-bit, alpha, CMYK, EXIF and
        # every refusal exactly as `zoo predict`); only pasted or webcam pictures arrive as pixels.
        img = _read(image)
        fmt = fmt or PYTORCH
        candidate = cache.get(tag, fmt)
        batch = preprocess(img, candidate.preprocess)[None]
        top_c, ms_c = _timed_top5(candidate, batch)
        seen = resize_and_crop(img, candidate.preprocess)
        size = f"{img.width}x{img.height} image seen as a {seen.width}x{seen.height} crop"
        footer = f"  \n<small>latency: model only, batch 1; {size}</small>"
        if fmt == PYTORCH:
            status = (
                f"**PyTorch original**: {top_c[0]['label']}, {latency(ms_c)}  \n"
                "choose an exported artifact to compare it with the original" + footer
            )
            return _as_label(top_c), {}, status, seen
        top_o, ms_o = _timed_top5(cache.get(tag, PYTORCH), batch)
        notes = "".join(f"  \n⚠️ {line}" for line in cache.notes.get((tag, fmt), []))
        status = (
            f"**{badge(top_c, top_o)}**  \n{fmt}: {top_c[0]['label']}, {latency(ms_c)}  \n"
            f"PyTorch: {top_o[0]['label']}, {latency(ms_o)}{footer}{notes}"
        )
        return _as_label(top_c), _as_label(top_o), status, seen
    except ZooError as e:  # the CLI's sentence, with the upload's own name instead of its temporary path
        message = str(e).replace(image, Path(image).name) if isinstance(image, str) and image else str(e)
        return {}, {}, f"⚠️ {message}", None
    except Exception as e:  # the app keeps serving whatever a request does; the user sees why
        return {}, {}, f"⚠️ could not classify this input ({type(e).__name__}: {str(e)[:200]}).", None


def enlarged(crop: Image.Image | None, at_least: int = 224) -> Image.Image | None:
    """The crop scaled up by a whole factor with nearest-neighbour, so every model pixel stays exact."""
    if crop is None or min(crop.size) >= at_least:
        return crop
    k = -(-at_least // min(crop.size))
    return crop.resize((crop.width * k, crop.height * k), Image.Resampling.NEAREST)


def crop_file(crop: Image.Image | None, folder: Path) -> str | None:
    """The crop as a PNG file named by its content and written atomically. Gradio copies a returned file
    atomically into its cache, whereas it rewrites a returned PIL image in place, so concurrent requests
    with the same picture could be served a half-written file."""
    if crop is None:
        return None
    buf = io.BytesIO()
    crop.save(buf, "PNG")
    path = folder / f"{hashlib.sha256(buf.getvalue()).hexdigest()[:24]}.png"
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
    return str(path)


def export_missing(
    cache: RuntimeCache, tag: str, log=lambda _m: None, parity_images: int | None = None
) -> str:
    """Export and check the ONNX artifacts of `tag` that are not there yet, as `zoo export` does
    (calibrated on its own dataset, parity on its labelled test split, or its first `parity_images`), so
    each card carries a verdict; `log` hears each step. Returns one line per artifact with its verdict."""
    try:
        missing = [f for f in DEMO_FORMATS if f not in cache.formats(tag)]
        if not missing:
            return f"all ONNX artifacts of {tag} are exported."
        options = ExportOptions(missing, cache.artifacts)
        checked = export_and_check(tag, missing, options, parity_images=parity_images, log=log)
        cache.forget(tag)
        lines = []
        for c in checked:
            agreement = c.parity.get("top1_agreement")
            figure = f" ({agreement:.2f}% top-1 agreement)" if agreement is not None else ""
            lines.append(
                f"{c.mark} {c.target}: {c.status}{figure}" + (f" — {c.reason()}" if not c.ok else "")
            )
        return "  \n".join(lines)
    except ZooError as e:
        return f"⚠️ {e}"


def example_images(tag: str, folder: Path, n: int = 8) -> list[tuple[str, str]]:
    """(image file, caption) pairs: real test images of the tag's dataset, each captioned with its true
    class (the file name keeps the test index), when $ZOO_DATA has them; else pictures the project draws."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        spec = registry.resolve(tag)[1]
        dataset = find_dataset(spec.dataset, None, "test")
        names = load_labels(spec.labels)
        picks = np.linspace(0, len(dataset) - 1, n).astype(int)
        out = []
        for i in picks:
            img, label = dataset[int(i)]
            path = folder / f"{spec.dataset}-{int(i)}-{label}.png"
            if not path.exists():
                img.save(path)
            out.append((str(path), names[label]))
        return out
    except ZooError as e:  # said once, on standard error as the fetch's own note: the demo runs on
        print(f"note: the demo's examples are drawn pictures: {e}", file=sys.stderr)
        return [(str(p), f"drawn picture {i}") for i, p in enumerate(drawn_images(folder, n))]


def drawn_images(folder: Path, n: int) -> list[Path]:
    """Simple pictures drawn here (no third-party images are committed): sky, sea, shapes."""
    out = []
    for i in range(n):
        img = Image.new("RGB", (256, 256), (70 + 30 * i % 180, 130, 200))
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 170, 256, 256), fill=(40, 90 + 20 * i % 120, 60))
        draw.ellipse((60 + 10 * i, 60, 150 + 10 * i, 150), fill=(240, 200 - 20 * i % 150, 40))
        path = folder / f"drawn-{i}.png"
        img.save(path)
        out.append(path)
    return out


def describe(tag: str) -> str:
    """What the model sees, for the line under its name: its classes and its input size."""
    try:
        spec = registry.resolve(tag)[1]
    except ZooError as e:
        return f"⚠️ {e}"
    names, p = load_labels(spec.labels), spec.preprocess
    shown = ", ".join(names[:10]) + (f", ... ({len(names):,} in all)" if len(names) > 10 else "")
    sized = f"shorter side resized to {p.resize}, then" if p.resize and p.resize != p.crop else "resized and"
    return (
        f"**{len(names):,} classes** of {spec.dataset}: {shown}.  \n"
        f"**Input {p.crop}x{p.crop}**: every picture is {sized} centre-cropped to {p.crop}x{p.crop} "
        "pixels, and the model can only answer with one of these classes."
    )


def model_order(tags: list[str]) -> list[str]:
    """resnet20, resnet32, resnet44, resnet56, resnet110: numbers in names compared as numbers."""
    return sorted(tags, key=lambda t: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", t)])


def _read(image: Any) -> Image.Image:
    """A file path, pasted pixels or an already decoded picture, as `zoo predict` reads it; ZooError if not."""
    return load_image(image if not isinstance(image, np.ndarray) else Image.fromarray(image))


def decoded(image: Any) -> Image.Image | None:
    """An upload (file path) or pasted pixels read once, as `zoo predict` reads them; None if unreadable
    (classify then reads it again only to say why)."""
    try:
        if image is None or (isinstance(image, str) and not image):
            return None
        return _read(image)
    except Exception:  # noqa: BLE001  (classify says why; the preview just stays empty)
        return None


def preview(img: Image.Image | None, folder: Path) -> str | None:
    """The picture as the zoo read it (orientation applied), at most 320 px, as a file; None if unreadable."""
    if img is None:
        return None
    img = img.copy()
    img.thumbnail((320, 320))
    return crop_file(enlarged(img, 128), folder)


def _default(cache: RuntimeCache, tag: str) -> str:
    """The first exported artifact that passed its check (so the page compares something), else PyTorch."""
    passed = [f for f in cache.formats(tag)[1:] if getattr(cache.standing(tag, f), "status", "") == "passed"]
    return passed[0] if passed else PYTORCH


MAX_UPLOAD = "50mb"  # a photo; Gradio refuses a larger upload (HTTP 413) before it is stored
UPLOADS_KEPT_S = 600


def examples_dir() -> Path:
    return cache_dir() / "demo-examples"


def launch(demo, **options: Any) -> None:
    """`demo.launch(**options)` with the zoo's upload limit, serving the example images (a click on one puts
    it in the upload box): every way the demo is started goes through here."""
    demo.launch(max_file_size=MAX_UPLOAD, allowed_paths=[str(examples_dir())], **options)


def build_demo(
    models: list[str] | None = None,
    artifacts: Path = Path("artifacts"),
    concurrency: int = 2,
    allow_unverified: bool = False,
):
    """The Gradio Blocks app. `models`: the tags offered (default: every tag whose weights are local)."""
    tags = model_order(
        models
        or [s.name for s in registry.pretrained_tags().values() if s.file is not None]
        or list(registry.pretrained_tags())
    )
    cache = RuntimeCache(artifacts, allow_unverified)
    # each model's examples, read from its dataset once
    examples_of = functools.cache(lambda tag: example_images(tag, examples_dir()))
    examples = examples_of(tags[0])
    shown = Path(tempfile.gettempdir()) / "resnet-zoo-demo-crops"  # Gradio serves files from the temp dir
    # uploads (and Gradio's copies of outputs) are deleted UPLOADS_KEPT_S after they were made
    with gr.Blocks(title="resnet-zoo", delete_cache=(UPLOADS_KEPT_S, UPLOADS_KEPT_S)) as demo:
        gr.Markdown(
            "# resnet-zoo\nClassify an image with an exported artifact, next to its PyTorch original. "
            "Upload a picture or click an example: it is classified at once."
        )
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    model = gr.Dropdown(tags, value=tags[0], label="model", elem_id="model")
                    fmt = gr.Dropdown(
                        cache.choices(tags[0]),
                        value=_default(cache, tags[0]),
                        label="artifact / backend",
                        elem_id="artifact",
                    )
                about = gr.Markdown(describe(tags[0]), elem_id="about")
                with gr.Row():
                    # The file itself, untouched: gr.Image would re-encode it (16-bit to 8-bit, alpha dropped)
                    upload = gr.File(
                        label="image file (read exactly as `zoo predict` reads it)",
                        type="filepath",
                        height=140,
                        elem_id="upload",
                    )
                    picture = gr.Image(
                        label="your image", interactive=False, type="filepath", height=200, elem_id="preview"
                    )
                gallery = gr.Gallery(
                    examples,
                    label="examples: real test images (click one)",
                    columns=8,
                    height=140,
                    allow_preview=False,
                    elem_id="examples",
                )
                with gr.Accordion("paste or webcam", open=False):
                    pasted = gr.Image(type="pil", sources=["clipboard", "webcam"], label="paste / webcam")
                with gr.Row():
                    run = gr.Button("Classify again", variant="primary")
                    export = gr.Button("Export and check missing ONNX artifacts")
            with gr.Column():
                status = gr.Markdown("upload an image, paste one or click an example.", elem_id="status")
                with gr.Row():
                    candidate = gr.Label(num_top_classes=5, label="artifact top-5", elem_id="artifact-top5")
                    original = gr.Label(
                        num_top_classes=5, label="PyTorch original top-5", elem_id="original-top5"
                    )
                crop = gr.Image(
                    label="what the model saw (the exact crop, enlarged)",
                    interactive=False,
                    type="filepath",
                    elem_id="crop",
                )
        outputs = [picture, candidate, original, status, crop]

        def refresh(tag: str):
            """The artifacts of the model chosen, what it sees, and examples from its own dataset."""
            choices = gr.update(choices=cache.choices(tag), value=_default(cache, tag))
            return choices, describe(tag), examples_of(tag)

        def cleared(message: str = ""):
            return None, None, None, message, None

        def run_export(tag: str, progress=gr.Progress()):  # noqa: B008  (Gradio's progress idiom)
            progress(0, desc=f"exporting {tag} ...")
            return export_missing(cache, tag, log=lambda m: progress(None, desc=m))

        def run_classify(file, pasted_, tag, fmt_):
            image = file if file is not None else pasted_
            if image is None:
                return cleared("upload an image, paste one or click an example.")
            img = decoded(image)  # once: the preview and the model see the same decoded picture
            cand, orig, status_, seen = classify(cache, image if img is None else img, tag, fmt_)
            return (
                preview(img, shown),
                cand or None,
                orig or None,
                status_,
                crop_file(enlarged(seen), shown),
            )

        def pick(tag: str, evt: gr.SelectData):
            return examples_of(tag)[evt.index][0]

        inputs = [upload, pasted, model, fmt]
        # a new input clears what the last one produced at once, then classifies (the slow part, queued)
        upload.change(cleared, None, outputs, queue=False).then(run_classify, inputs, outputs)
        pasted.change(cleared, None, outputs, queue=False).then(run_classify, inputs, outputs)
        gallery.select(pick, model, upload)  # fills the upload box, whose change classifies
        fmt.input(cleared, None, outputs, queue=False).then(run_classify, inputs, outputs)
        model.change(cleared, None, outputs, queue=False).then(refresh, model, [fmt, about, gallery]).then(
            run_classify, inputs, outputs
        )
        run.click(run_classify, inputs, outputs, api_name="classify")
        export.click(run_export, model, status).then(refresh, model, [fmt, about, gallery])
    demo.queue(default_concurrency_limit=concurrency, max_size=128)
    demo.zoo_cache = cache
    return demo
