# SPDX-License-Identifier: AGPL-3.0-or-later
"""Shared helpers for the weights and ONNX tests: tiny models, manifests, a file server.

The HTTP server listens on 127.0.0.1 only, on a free port, and its behaviour is picked
by the first path segment: ``/good/F``, ``/missing/F`` (404), ``/flaky/F`` (500 for the
first ``flaky_failures`` requests), ``/slow/F`` (silent for ``slow_seconds``),
``/truncated/F`` (announces the full length, sends half), ``/wrong/F`` (same length,
other bytes) and ``/redirect/F`` (302 to ``/good/F``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

#: Tiny timeouts keep failure tests fast; a few retries still exercise the backoff.
FAST_POLICY_KWARGS = {
    "connect_timeout": 2.0,
    "read_timeout": 0.3,
    "attempts": 3,
    "backoff": 0.01,
}
#: The longest any test server stays up; a forgotten server stops by itself.
SERVER_LIFETIME = 60.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_entry(
    name: str,
    version: str,
    content: bytes,
    *,
    urls: list[str] | None = None,
    file: str | None = None,
    input_spec: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid manifest entry (as JSON data) for ``content``."""
    file = file or f"{name}-v{version}.onnx"
    entry = {
        "name": name,
        "version": version,
        "file": file,
        "sha256": sha256_hex(content),
        "size": len(content),
        "urls": urls
        or [
            "https://github.com/plom-clustering/plom_clustering_plugin/releases/"
            f"download/weights-{name}-{version}/{file}"
        ],
        "input": input_spec
        or {
            "name": "ink",
            "shape": [-1, 1, 8, 8],
            "dtype": "float32",
            "normalisation": {"ink": "white-on-black", "range": [0, 1]},
        },
        "output": output or {"meaning": "probabilities", "labels": ["A", "B", "C"]},
        "licence": "CC0-1.0",
        "training_data": "synthetic test data",
        "training_command": "none: built by the test",
        "seed": 0,
        "metrics": {},
    }
    entry.update(extra)
    return entry


def write_manifest(
    folder: Path,
    entries: list[dict[str, Any]],
    defaults: dict[str, str] | None = None,
) -> Path:
    """Write a manifest file named like the real one into ``folder``."""
    path = Path(folder) / "weights_manifest.json"
    data: dict[str, Any] = {"schema_version": 1, "models": entries}
    if defaults is not None:
        data["defaults"] = defaults
    path.write_text(json.dumps(data, indent=1))
    return path


def tiny_onnx_model(
    *,
    height: int = 8,
    width: int = 8,
    classes: int = 3,
    softmax: bool = True,
    rank: int = 4,
    input_name: str = "ink",
    batch: int | None = None,
    dtype: str = "float32",
    seed: int = 0,
) -> tuple[bytes, np.ndarray]:
    """A Flatten -> MatMul (-> Softmax) classifier; returns its bytes and its weights.

    The batch axis is dynamic unless ``batch`` is given.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    weights = np.random.default_rng(seed).normal(size=(height * width, classes))
    weights = weights.astype(dtype)
    batch_dim: int | str = batch if batch is not None else "N"
    shape = [batch_dim, 1, height, width] if rank == 4 else [batch_dim, height, width]
    nodes = [
        helper.make_node("Flatten", [input_name], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["scores"], ["out"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["scores"], ["out"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, elem, shape)],
        [helper.make_tensor_value_info("out", elem, [batch_dim, classes])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # old enough for any onnxruntime the plugin supports
    onnx.checker.check_model(model)
    return model.SerializeToString(), weights


class _Handler(BaseHTTPRequestHandler):
    server: WeightsServer

    def do_GET(self):  # noqa: N802 - the name http.server calls
        server = self.server
        parts = self.path.strip("/").split("/", 1)
        mode, name = (parts + [""])[:2]
        with server.count_lock:
            server.hits[self.path] += 1
            hit = server.hits[self.path]
        content = server.files.get(name)
        if content is None or mode == "missing":
            return self._status(404)
        if mode == "flaky" and hit <= server.flaky_failures:
            return self._status(500)
        if mode == "slow":
            server.stopping.wait(server.slow_seconds)
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/good/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "wrong":
            content = bytes(b ^ 0xFF for b in content)
        if mode == "good" and server.good_delay:
            server.stopping.wait(server.good_delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if mode == "truncated":
            content = content[: len(content) // 2]
        try:
            self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to do
        if mode == "truncated":
            self.close_connection = True

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the signature http.server uses
        pass  # keep the test output clean


class WeightsServer(ThreadingHTTPServer):
    """A file server on 127.0.0.1 with scripted failures; use as a context manager."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = dict(files)
        self.hits: Counter[str] = Counter()
        self.count_lock = threading.Lock()
        self.stopping = threading.Event()
        self.flaky_failures = 2
        self.slow_seconds = 5.0
        self.good_delay = 0.0
        # A short poll keeps shutdown() quick: tests start and stop many servers.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._deadline = threading.Timer(SERVER_LIFETIME, self.stop)
        self._deadline.daemon = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def base(self, mode: str) -> str:
        """The base URL whose files behave as ``mode`` says."""
        return f"{self.url}/{mode}"

    def hits_for(self, mode: str, name: str) -> int:
        with self.count_lock:
            return self.hits[f"/{mode}/{name}"]

    def start(self) -> WeightsServer:
        self._thread.start()
        self._deadline.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases handlers that are waiting on purpose
        self._deadline.cancel()
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(5)
        self.server_close()

    def __enter__(self) -> WeightsServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
