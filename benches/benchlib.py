"""Helpers shared by the benchmark scripts in this folder: loopback ports,
a process's CPU time and memory from /proc, waiting for a server and
stopping one, a fresh osprey server in a folder of its own."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    """A free TCP port on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_seconds(pid):
    """User plus system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_mib(pid, field="VmRSS"):
    """A memory line of /proc/PID/status in MiB: VmRSS now, VmHWM at peak."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(port, deadline=60, path="/-/ready"):
    """Waits until http://127.0.0.1:PORT/PATH answers 200."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not become ready")


def stop_process(proc, timeout=60):
    """Asks a child process to stop (SIGTERM), kills it after `timeout`
    seconds, and reaps it."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def timed_get(conn, url):
    """GET `url` on a keep-alive `http.client` connection; returns the
    status, the body and the seconds from sending to the body read."""
    started = time.perf_counter()
    conn.request("GET", url)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, time.perf_counter() - started


@contextlib.contextmanager
def fresh_osprey(binary, prefix):
    """Starts `binary server` on a new data folder (under a temporary
    folder named with `prefix`) and a free loopback port, and waits until
    it is ready; yields (process, port, data folder). On leaving, stops
    the server and removes the folder (its log, server.log, with it)."""
    work = tempfile.mkdtemp(prefix=prefix)
    data = os.path.join(work, "data")
    port = free_port()
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen(
        [binary, "server", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(port)
        yield server, port, data
    finally:
        stop_process(server)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def serve_exposition(render):
    """Serves `render()` (bytes of the text exposition format) at every
    path of a new loopback HTTP server in a daemon thread; returns the
    server and its port. For scrape targets in benches."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port
