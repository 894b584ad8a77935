#!/usr/bin/env python3
"""Scrape cost, osprey beside Prometheus.

Starts N fake targets on loopback (each serves S series of the Prometheus
text format, values changing every scrape), then runs Prometheus and osprey
side by side with the same scrape config for a while, and reports for each
server: CPU seconds per million samples scraped and RSS at the end.

Both servers scrape the same targets at the same time, so machine noise hits
both alike; only the ratio between them means anything.

Usage: python3 benches/scrape_cost.py [--targets 200] [--series 1000]
       [--interval 5] [--seconds 180] [--osprey target/release/osprey]
"""

import argparse
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import free_port, proc_cpu_seconds, proc_memory_mib, wait_ready



def make_handler(series, seed):
    rng = random.Random(seed)
    names = [f"fake_metric_{i % 50}" for i in range(series)]

    class Handler(http.server.BaseHTTPRequestHandler):
        counter = 0

        def do_GET(self):
            Handler.counter += 1
            lines = []
            for i, name in enumerate(names):
                # Counters that grow and gauges that wander, as real targets do.
                v = Handler.counter * (i % 7 + 1) if i % 2 == 0 else rng.randint(0, 1000)
                lines.append(f'{name}{{idx="{i}",shard="{i % 10}"}} {v}\n')
            body = "".join(lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler




def query_scalar(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as r:
        data = json.load(r)
    result = data["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0



def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", type=int, default=5, help="scrape interval, seconds")
    ap.add_argument("--seconds", type=int, default=180, help="measured time")
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = ap.parse_args()

    servers = []
    ports = []
    for t in range(args.targets):
        port = free_port()
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), make_handler(args.series, t))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        ports.append(port)

    work = tempfile.mkdtemp(prefix="osprey-scrape-cost-")
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: {args.interval}s\n  scrape_timeout: {args.interval}s\n")
        f.write("scrape_configs:\n  - job_name: fake\n    static_configs:\n      - targets:\n")
        for p in ports:
            f.write(f"        - '127.0.0.1:{p}'\n")

    prom_port, osp_port = free_port(), free_port()
    procs = {
        "prometheus": subprocess.Popen(
            [args.prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={work}/prom",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "osprey": subprocess.Popen(
            [args.osprey, "server", "--config", cfg, "--data-dir", f"{work}/osprey",
             "--listen", f"127.0.0.1:{osp_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    ports_of = {"prometheus": prom_port, "osprey": osp_port}
    try:
        for name in procs:
            wait_ready(ports_of[name])
        # Let every target be scraped once before measuring.
        time.sleep(args.interval * 2)
        start = {n: (proc_cpu_seconds(p.pid), query_scalar(ports_of[n], "count(up == 1)"))
                 for n, p in procs.items()}
        t0 = time.time()
        time.sleep(args.seconds)
        elapsed = time.time() - t0
        print(f"scrape cost: {args.targets} targets x {args.series} series every {args.interval}s, "
              f"{elapsed:.0f}s measured")
        results = {}
        for n, p in procs.items():
            cpu = proc_cpu_seconds(p.pid) - start[n][0]
            # Samples scraped in the window: sum of scrape_samples_scraped over it.
            scraped = query_scalar(ports_of[n], f"sum(sum_over_time(scrape_samples_scraped[{int(elapsed)}s]))")
            rss = proc_memory_mib(p.pid)
            per_million = cpu / (scraped / 1e6) if scraped else float("nan")
            results[n] = (cpu, scraped, per_million, rss)
            print(f"  {n:10s} cpu {cpu:7.2f}s  samples {scraped/1e6:7.2f}M  "
                  f"cpu-s per M samples {per_million:6.3f}  RSS {rss:7.1f} MiB  targets up {start[n][1]:.0f}")
        o, p = results["osprey"], results["prometheus"]
        print(f"  osprey/prometheus: cpu per sample {o[2] / p[2]:.2f}x, RSS {o[3] / p[3]:.2f}x")
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in servers:
            s.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
