#!/usr/bin/env python3
"""CPU cost per scrape of osprey's built-in exporters beside the programs
they replace.

Starts each exporter as its own process on a loopback port, scrapes it N
times in a row, and reports the exporter process's CPU seconds (user +
system, from /proc/<pid>/stat) divided by N, plus the response size and the
client's median latency:

- osprey exporter host  vs  prometheus-node-exporter with the same 11
  collectors (and, for context, with its default collectors);
- osprey exporter blackbox  vs  prometheus-blackbox-exporter, both probing
  the same local HTTP server with an http_2xx module;
- osprey exporter gpu (on a host without NVIDIA's driver this measures the
  `osprey_gpu_available 0` path only; dcgm-exporter is not packaged);
- osprey exporter container over the machine's own cgroups (cAdvisor is
  not packaged for Debian, so there is no reference run);
- osprey exporter redis  vs  prometheus-redis-exporter, both scraping one
  redis-server this script starts (with 1,000 keys);
- osprey exporter postgres  vs  prometheus-postgres-exporter, both
  scraping one PostgreSQL cluster this script creates with initdb (run as
  nobody when the script is root); the database server's own CPU is not
  counted, only the exporter's.

Programs that are not installed are skipped with a note. The exporters run
one at a time, so each has the machine to itself; on a busy machine run it
twice and compare.

Usage: python3 benches/exporter_cost.py [--scrapes 1000]
       [--osprey $CARGO_TARGET_DIR/release/osprey]
"""

import argparse
import glob
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import free_port, proc_cpu_seconds

HOST_COLLECTORS = [
    "cpu", "diskstats", "filesystem", "hwmon", "loadavg", "meminfo",
    "netdev", "pressure", "stat", "time", "uname",
]




def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def wait_ready(url, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            fetch(url)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("did not answer")


def measure(name, argv, url, scrapes, warmup, env=None):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    try:
        wait_ready(url, proc)
        for _ in range(warmup):
            fetch(url)
        before = proc_cpu_seconds(proc.pid)
        latencies = []
        size = 0
        for _ in range(scrapes):
            t = time.perf_counter()
            size = len(fetch(url))
            latencies.append(time.perf_counter() - t)
        cpu = proc_cpu_seconds(proc.pid) - before
        return {
            "name": name,
            "cpu_ms_per_scrape": cpu / scrapes * 1000,
            "median_latency_ms": statistics.median(latencies) * 1000,
            "bytes": size,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_port(port, seconds=30):
    import socket
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_redis(tmp):
    """A redis-server with 1,000 keys, or None when it is not installed."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if not server:
        return None, None
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    if cli:
        keys = "".join(f"SET key{i} {i}\n" for i in range(1000))
        subprocess.run([cli, "-p", str(port)], input=keys.encode(), stdout=subprocess.DEVNULL,
                       check=False)
    return proc, port


def start_postgres(tmp):
    """A PostgreSQL cluster on a free port, or None without the server."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not bins:
        return None, None
    initdb, postgres = os.path.join(bins[-1], "initdb"), os.path.join(bins[-1], "postgres")
    run_as = {}
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        run_as = {"user": 65534, "group": 65534}
        os.chown(tmp, 65534, 65534)
    data = os.path.join(tmp, "pgdata")
    subprocess.run([initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, **run_as)
    port = free_port()
    proc = subprocess.Popen([postgres, "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", data,
                             "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **run_as)
    wait_port(port)
    time.sleep(1)  # past "the database system is starting up"
    return proc, port


def stop(proc):
    if proc is None:
        return
    proc.send_signal(2)  # PostgreSQL's fast shutdown; redis-server stops too
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class OkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    target_dir = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--osprey", default=os.path.join(target_dir, "release", "osprey"))
    args = ap.parse_args()
    if not os.path.exists(args.osprey):
        sys.exit(f"{args.osprey} not found; build it with cargo build --release -p osprey")

    # The probe target for both blackbox exporters.
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OkHandler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    target_url = f"http://127.0.0.1:{target.server_address[1]}/"

    tmp = tempfile.mkdtemp()
    bb_config = os.path.join(tmp, "blackbox.yml")
    with open(bb_config, "w") as f:
        f.write(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
            "    http:\n      preferred_ip_protocol: ip4\n"
        )

    runs = []
    port = free_port()
    runs.append(("osprey host", [args.osprey, "exporter", "host", "--listen", f"127.0.0.1:{port}"],
                 f"http://127.0.0.1:{port}/metrics"))
    node_exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node_exporter:
        port = free_port()
        argv = [node_exporter, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults"]
        argv += [f"--collector.{c}" for c in HOST_COLLECTORS]
        runs.append(("node_exporter (same 11 collectors)", argv, f"http://127.0.0.1:{port}/metrics"))
        port = free_port()
        runs.append(("node_exporter (default collectors)",
                     [node_exporter, f"--web.listen-address=127.0.0.1:{port}"],
                     f"http://127.0.0.1:{port}/metrics"))
    else:
        print("note: prometheus-node-exporter not installed; skipped", file=sys.stderr)
    port = free_port()
    runs.append(("osprey gpu", [args.osprey, "exporter", "gpu", "--listen", f"127.0.0.1:{port}"],
                 f"http://127.0.0.1:{port}/metrics"))
    port = free_port()
    probe = f"/probe?module=http_2xx&target={target_url}"
    runs.append(("osprey blackbox (http_2xx)",
                 [args.osprey, "exporter", "blackbox", "--listen", f"127.0.0.1:{port}",
                  "--config", bb_config],
                 f"http://127.0.0.1:{port}{probe}"))
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if blackbox:
        port = free_port()
        runs.append(("blackbox_exporter (http_2xx)",
                     [blackbox, f"--config.file={bb_config}", f"--web.listen-address=127.0.0.1:{port}"],
                     f"http://127.0.0.1:{port}{probe}"))
    else:
        print("note: prometheus-blackbox-exporter not installed; skipped", file=sys.stderr)
    port = free_port()
    runs.append(("osprey container (this machine's cgroups)",
                 [args.osprey, "exporter", "container", "--listen", f"127.0.0.1:{port}"],
                 f"http://127.0.0.1:{port}/metrics"))

    redis_dir = tempfile.mkdtemp()
    redis, redis_port = start_redis(redis_dir)
    if redis is not None:
        redis_addr = f"redis://127.0.0.1:{redis_port}"
        port = free_port()
        runs.append(("osprey redis", [args.osprey, "exporter", "redis", "--listen",
                                      f"127.0.0.1:{port}", f"--redis.addr={redis_addr}"],
                     f"http://127.0.0.1:{port}/metrics"))
        reference = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")
        if reference:
            port = free_port()
            runs.append(("redis_exporter 1.45", [reference, f"--redis.addr={redis_addr}",
                                                 f"--web.listen-address=127.0.0.1:{port}"],
                         f"http://127.0.0.1:{port}/metrics"))
        else:
            print("note: prometheus-redis-exporter not installed; skipped", file=sys.stderr)
    else:
        print("note: redis-server not installed; Redis skipped", file=sys.stderr)

    pg_dir = tempfile.mkdtemp()
    postgres, pg_port = start_postgres(pg_dir)
    pg_env = None
    if postgres is not None:
        pg_env = dict(os.environ, DATA_SOURCE_NAME=(
            f"postgresql://postgres@127.0.0.1:{pg_port}/postgres?sslmode=disable"))
        port = free_port()
        runs.append(("osprey postgres", [args.osprey, "exporter", "postgres", "--listen",
                                         f"127.0.0.1:{port}"],
                     f"http://127.0.0.1:{port}/metrics"))
        reference = shutil.which("prometheus-postgres-exporter") or shutil.which("postgres_exporter")
        if reference:
            port = free_port()
            runs.append(("postgres_exporter 0.11", [reference,
                                                    f"--web.listen-address=127.0.0.1:{port}"],
                         f"http://127.0.0.1:{port}/metrics"))
        else:
            print("note: prometheus-postgres-exporter not installed; skipped", file=sys.stderr)
    else:
        print("note: PostgreSQL server not installed; PostgreSQL skipped", file=sys.stderr)

    results = []
    try:
        for name, argv, url in runs:
            env = pg_env if "postgres" in name else None
            try:
                results.append(measure(name, argv, url, args.scrapes, args.warmup, env))
            except (RuntimeError, OSError) as e:
                print(f"note: {name} failed: {e}", file=sys.stderr)
    finally:
        target.shutdown()
        stop(redis)
        stop(postgres)
        for d in (tmp, redis_dir, pg_dir):
            shutil.rmtree(d, ignore_errors=True)

    print(f"{args.scrapes} sequential scrapes each, CPU of the exporter process only")
    print(f"{'exporter':40} {'CPU ms/scrape':>14} {'median ms':>10} {'bytes':>8}")
    for r in results:
        print(f"{r['name']:40} {r['cpu_ms_per_scrape']:14.3f} {r['median_latency_ms']:10.3f} {r['bytes']:8d}")


if __name__ == "__main__":
    main()
