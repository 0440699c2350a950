"""Plain helpers for tests: tiny random models built in memory, a progress that interrupts a run,
servers on free ports (an app under uvicorn, a stand-in for the Hugging Face Hub).

(tests/conftest.py builds the on-disk tiny Llama with its tokenizer; this module is importable by
name from any test because pytest puts tests/ on sys.path for that conftest.)
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from graft.progress import NullProgress

# the tiny Llama's linear layers: name -> (in_features, out_features), in each of LAYERS layers
LINEARS = {"q_proj": (64, 64), "k_proj": (64, 32), "v_proj": (64, 32), "o_proj": (64, 64),
           "gate_proj": (64, 128), "up_proj": (64, 128), "down_proj": (128, 64)}
LAYERS = 2
VOCAB = 97
TOKEN = "test-token-123"  # the API token of test servers
IDS = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=64, tie_word_embeddings=True, initializer_range=0.2,
    )).eval()


def bert(num_labels: int = 3, layers: int = 2, heads: int = 2):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=64,
        max_position_embeddings=64, num_labels=num_labels,
    )).eval()


class Recorder:
    """A Progress that keeps what it is told: events ("start", task, total), ("advance", task, n, fields),
    ("finish", task), and the logged lines."""

    def __init__(self):
        self.logs, self.events = [], []

    def start(self, task, total=None, completed=0):
        self.events.append(("start", task, total))

    def advance(self, task, n=1, **fields):
        self.events.append(("advance", task, n, fields))

    def log(self, message):
        self.logs.append(message)

    def finish(self, task):
        self.events.append(("finish", task))


class StopAfter(NullProgress):
    """Raises KeyboardInterrupt once `steps` training steps are done, as Ctrl-C would: train() then
    checkpoints that step, marks the run interrupted and re-raises."""

    def __init__(self, steps: int):
        self.steps, self.done = steps, 0

    def advance(self, task, n=1, **fields):
        if task == "train":
            self.done += n
            if self.done == self.steps:
                raise KeyboardInterrupt


def run_graft(*args, cwd=None, pythonpath=None, timeout: float = 300, env=None) -> subprocess.CompletedProcess:
    """The `graft` command in a fresh Python, as a user runs it (wide columns so tables are not cut);
    offline unless `env` (added to this process's) says otherwise."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore",
           **(env or {})}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", "from graft.cli import main; main()", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@contextmanager
def running(app):
    """`app` under uvicorn on a free port; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to `n` for a block (a tiny model only loses time to a second thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def fake_hub(repo_id: str, files: dict[str, bytes], commit: str = "c" * 40):
    """A local stand-in for the Hugging Face Hub serving one model repo (what snapshot_download asks:
    revision info, the file tree, HEAD and GET of each file). Yields (endpoint URL, paths requested);
    any other repo is a 404 the Hub way (X-Error-Code: RepoNotFound)."""
    requested: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._answer(head=True)

        def do_GET(self):
            self._answer(head=False)

        def _answer(self, head: bool):
            path = self.path.split("?")[0]
            requested.append(path)
            if path.startswith(f"/api/models/{repo_id}/revision/"):
                return self._send(json.dumps({"id": repo_id, "sha": commit,
                                              "siblings": [{"rfilename": f} for f in files]}).encode(), head)
            if path.startswith(f"/api/models/{repo_id}/tree/"):
                return self._send(json.dumps([{"type": "file", "path": f, "size": len(b), "oid": _git_oid(b)}
                                              for f, b in files.items()]).encode(), head)
            if path.startswith(f"/{repo_id}/resolve/"):
                name = path.split("/resolve/", 1)[1].split("/", 1)[1]
                if name in files:
                    return self._send(files[name], head, [("X-Repo-Commit", commit), ("ETag", f'"{_git_oid(files[name])}"')])
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if path.startswith("/api/models/") else "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, body: bytes, head: bool, headers=()):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requested
    finally:
        server.shutdown()
        server.server_close()


def _git_oid(blob: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()
