"""Fixtures: a scripted fake osprey (the standard library's HTTP server, for
the client's own behaviour: retries, rejections, splitting) and a real
osprey binary (``OSPREY_BIN``, else ``target/debug/osprey`` of this
repository), started on a free loopback port and always stopped."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent

# The tests import the installed package when there is one on the path
# (the cargo test installs it), else the source beside them.
try:
    import osprey_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeOsprey:
    """Answers each POST with the next scripted status (then 200), and
    keeps every request: (path, headers, parsed JSON body)."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    raw = gzip.decompress(raw)
                body = json.loads(raw)
                with fake.lock:
                    fake.requests.append((self.path, dict(self.headers), body))
                    step = fake.script.pop(0) if fake.script else 200
                status, message = step if isinstance(step, tuple) else (step, "scripted")
                if status == 200:
                    n = len(body["records"])
                    out = {"status": "success", "data": {"records": n, "joined": 0, "waiting": 0}}
                else:
                    out = {"status": "error", "errorType": "bad_data", "error": message}
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def records(self, kind):
        with self.lock:
            return [r for path, _, body in self.requests if path.endswith("/" + kind) for r in body["records"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeOsprey()
    yield server
    server.close()


def osprey_binary():
    path = os.environ.get("OSPREY_BIN") or str(REPO / "target" / "debug" / "osprey")
    if not os.path.isfile(path):
        if os.environ.get("OSPREY_REQUIRE_EXTERNAL") == "1":
            pytest.fail(f"OSPREY_REQUIRE_EXTERNAL=1 but no osprey binary at {path} (set OSPREY_BIN)")
        pytest.skip(f"no osprey binary at {path}: build it or set OSPREY_BIN")
    return path


class Osprey:
    """A real `osprey server` child process on a fixed port, so it can be
    killed and started again at the same address."""

    CONFIG = (
        "models:\n"
        "  - name: churn\n"
        "    task: classification\n"
        "    window: 1h\n"
        "    evaluation_interval: 1s\n"
    )

    def __init__(self, binary, directory):
        self.binary = binary
        self.directory = pathlib.Path(directory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.directory / "osprey.yml"
        self.config.write_text(self.CONFIG)
        self.process = None

    def start(self):
        log = open(self.directory / "osprey.log", "ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "server",
                "--data-dir",
                str(self.directory / "data"),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--config",
                str(self.config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("osprey exited: " + (self.directory / "osprey.log").read_text())
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("osprey did not become ready")

    def kill(self):
        """SIGKILL: no chance to answer what is in flight."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def query(self, expr):
        return self.get("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]


@pytest.fixture
def osprey(tmp_path):
    server = Osprey(osprey_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
