#!/usr/bin/env python3
"""Rule evaluation cost, osprey beside Prometheus.

Serves S series (default 100,000: 100 metrics x 1,000 series, each with a
`job` of 10 values and an `instance` of 100) from one loopback target that
both servers scrape every 15 s, and loads the same rule file into both:
R recording rules (default 1,000) in G groups (default 10) with a 15 s
interval, mixing rate/sum-by, avg-by, histogram_quantile-free aggregations
and ratios, each over one metric's 1,000 series.

After a warm-up it reads each group's `evaluationTime` from
`/api/v1/rules` several times and reports, per server, the median and the
worst group evaluation time and how much of the interval that is, plus
CPU seconds over the measured window.

Usage: python3 benches/rule_eval.py [--series-per-metric 1000]
       [--metrics 100] [--rules 1000] [--groups 10] [--seconds 120]
       [--osprey target/release/osprey]
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import free_port, proc_cpu_seconds, wait_ready

INTERVAL = 15



def make_handler(metrics, per_metric):
    # One body per scrape interval, built once and served to both servers,
    # so the generator's own CPU does not crowd out the servers measured.
    cache = {"bucket": None, "body": b""}
    lock = threading.Lock()

    def body_for(bucket):
        out = []
        for m in range(metrics):
            out.append(f"# TYPE bench_requests_{m}_total counter\n")
            for i in range(per_metric):
                v = bucket * (i % 7 + 1) + m
                out.append(f'bench_requests_{m}_total{{job="job{i % 10}",instance="inst{i // 10}",code="{200 if i % 20 else 500}"}} {v}\n')
        return "".join(out).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            bucket = int(time.time() // INTERVAL)
            with lock:
                if cache["bucket"] != bucket:
                    cache["bucket"] = bucket
                    cache["body"] = body_for(bucket)
                body = cache["body"]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def rules_yaml(n_rules, n_groups, metrics):
    kinds = [
        "sum by (job) (rate(bench_requests_{m}_total[1m]))",
        "sum by (job, code) (rate(bench_requests_{m}_total[1m]))",
        "avg by (instance) (bench_requests_{m}_total)",
        "sum by (job) (rate(bench_requests_{m}_total{{code=\"500\"}}[1m])) / sum by (job) (rate(bench_requests_{m}_total[1m]))",
        "max by (job) (bench_requests_{m}_total)",
    ]
    lines = ["groups:"]
    per_group = n_rules // n_groups
    r = 0
    for g in range(n_groups):
        lines.append(f"  - name: bench_{g}")
        lines.append(f"    interval: {INTERVAL}s")
        lines.append("    rules:")
        for _ in range(per_group):
            m = r % metrics
            expr = kinds[r % len(kinds)].format(m=m)
            lines.append(f"      - record: bench:rule_{r}")
            lines.append(f"        expr: '{expr}'")
            r += 1
    return "\n".join(lines) + "\n"



def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return json.load(r)



def group_times(port):
    data = get(port, "/api/v1/rules")["data"]["groups"]
    out = {}
    for g in data:
        bad = [r for r in g["rules"] if r.get("health") != "ok"]
        out[g["name"]] = (g["evaluationTime"], len(g["rules"]), len(bad))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", type=int, default=100)
    ap.add_argument("--series-per-metric", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=120, help="measured time")
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = ap.parse_args()

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), make_handler(args.metrics, args.series_per_metric))
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    work = tempfile.mkdtemp(prefix="osprey-rule-eval-")
    with open(os.path.join(work, "rules.yml"), "w") as f:
        f.write(rules_yaml(args.rules, args.groups, args.metrics))
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: {INTERVAL}s\n  scrape_timeout: {INTERVAL}s\n  evaluation_interval: {INTERVAL}s\n")
        f.write("rule_files: [rules.yml]\n")
        f.write(f"scrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")

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
    ports = {"prometheus": prom_port, "osprey": osp_port}
    try:
        for name in procs:
            wait_ready(ports[name])
        # Two scrapes, so rates have two samples, and a few evaluations.
        time.sleep(INTERVAL * 5)
        start_cpu = {n: proc_cpu_seconds(p.pid) for n, p in procs.items()}
        samples = {n: [] for n in procs}
        t0 = time.time()
        while time.time() - t0 < args.seconds:
            time.sleep(INTERVAL)
            for n in procs:
                samples[n].append(group_times(ports[n]))
        elapsed = time.time() - t0
        total_series = args.metrics * args.series_per_metric
        print(f"rule evaluation: {args.rules} recording rules in {args.groups} groups every {INTERVAL}s "
              f"over {total_series} scraped series, {elapsed:.0f}s measured")
        summary = {}
        for n in procs:
            times = [t for snap in samples[n] for (t, _, _) in snap.values()]
            n_rules = max((sum(r for (_, r, _) in snap.values()) for snap in samples[n]), default=0)
            unhealthy = max((sum(b for (_, _, b) in snap.values()) for snap in samples[n]), default=0)
            cpu = proc_cpu_seconds(procs[n].pid) - start_cpu[n]
            med = statistics.median(times) if times else float("nan")
            worst = max(times) if times else float("nan")
            summary[n] = (med, worst, cpu)
            print(f"  {n:10s} group eval median {med*1000:8.1f} ms  worst {worst*1000:8.1f} ms "
                  f"({worst / INTERVAL * 100:5.1f}% of the interval)  rules {n_rules}  unhealthy {unhealthy}  "
                  f"cpu {cpu:6.1f}s")
        o, p = summary["osprey"], summary["prometheus"]
        print(f"  osprey/prometheus: median group eval {o[0] / p[0]:.2f}x, worst {o[1] / p[1]:.2f}x, cpu {o[2] / p[2]:.2f}x")
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        srv.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
