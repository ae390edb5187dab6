"""`zoo bench-triton`: a bounded load test of an artifact served by a real Triton server on loopback.

N concurrent clients each send M requests of real encoded test images to the ensemble (image bytes in,
top-5 labels out) and stop by themselves; every latency is kept. The same artifact is served twice, with
Triton's dynamic batching on and off, so the report shows what batching buys. JSON and Markdown out.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import at_least_one
from zoo.export.artifact import read_card
from zoo.serve.triton import model_name, write_repository
from zoo.serve.tritonserver import TritonServer
from zoo.utils import machine
from zoo.utils.files import atomic_path, temp_dir
from zoo.utils.lazy import lazy_import

http = lazy_import("tritonclient.http")


def load_test(
    url: str, model: str, images: list[bytes], clients: int = 8, requests: int = 50
) -> dict[str, Any]:
    """`clients` threads, each with its own HTTP client, send `requests` requests one after another."""
    at_least_one(clients=clients, requests=requests)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        c = http.InferenceServerClient(url, network_timeout=120.0)
        out = [http.InferRequestedOutput("PROBABILITIES", class_count=5)]
        for j in range(requests):
            data = np.frombuffer(images[(k * requests + j) % len(images)], dtype=np.uint8)
            x = http.InferInput("IMAGE", [len(data)], "UINT8")
            x.set_data_from_numpy(data)
            t0 = time.perf_counter()
            try:
                c.infer(model, [x], outputs=out)
            except Exception as e:  # every failure is counted and the first is shown, none stops the test
                with lock:
                    failures.append(str(e))
                continue
            latencies[k].append((time.perf_counter() - t0) * 1e3)
        c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.concatenate([np.asarray(v) for v in latencies]) if any(latencies) else np.zeros(0)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
    return {
        "clients": clients,
        "requests_per_client": requests,
        "succeeded": int(len(ms)),
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "requests_per_s": float(len(ms) / wall),
        "wall_s": wall,
    }


def bench_triton(
    artifact: Path, images: list[bytes], out: Path, clients: int = 8, requests: int = 50, log=print
) -> dict[str, Any]:
    """Serve `artifact` with dynamic batching on, then off, load-test each; write the report."""
    card = read_card(artifact)
    runs = {}
    for batching in (True, False):
        out.mkdir(parents=True, exist_ok=True)
        repo = temp_dir(out, "triton-repository")
        try:
            write_repository(artifact, repo, "cpu", dynamic_batching=batching)
            with TritonServer(repo) as server:
                load_test(server.url, model_name(card), images, clients=1, requests=5)  # warm-up
                key = "dynamic_batching" if batching else "no_batching"
                log(f"load test, {key.replace('_', ' ')}: {clients} clients x {requests} requests ...")
                runs[key] = load_test(server.url, model_name(card), images, clients, requests)
        finally:
            shutil.rmtree(repo, ignore_errors=True)
    report = {
        "model": card["source"],
        "format": card["format"],
        "ensemble": model_name(card),
        "images": len(images),
        "hardware": machine.hardware(),
        "versions": machine.versions(("resnet-zoo", "onnxruntime", "tritonclient", "nvidia-pytriton")),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": runs,
    }
    write_report(report, out)
    return report


def markdown(report: dict[str, Any]) -> str:
    cols = ["dynamic batching", "clients x requests", "failures", "p50 ms", "p95 ms", "p99 ms", "req/s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for key, r in report["runs"].items():
        lines.append(
            f"| {'on' if key == 'dynamic_batching' else 'off'} | {r['clients']} x {r['requests_per_client']} | "
            f"{r['failures']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests_per_s']:.0f} |"
        )
    hw = report["hardware"]
    lines += [
        "",
        f"{report['ensemble']} (image bytes in, top-5 out) on a Triton server on loopback, "
        f"{hw.get('cpu')} ({hw.get('cpu_count')} CPUs), {report['created']}; {report['images']} real test images.",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:

    stem = out / f"triton-{report['ensemble']}"
    with atomic_path(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(report))
