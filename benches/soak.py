#!/usr/bin/env python3
"""A soak: osprey scraping twice the standard bench load for an hour.

The standard bench profile holds 47,568 series; this soak serves twice
that (`--targets` x `--series-per-target`, 95,136 by default) from local
HTTP targets scraped every `--interval` seconds, while a client runs a
dashboard's worth of queries (instant and 1-hour range queries over
counters, gauges and histogram buckets) every `--query-every` seconds.
It reports, for the first and the last `--window` seconds of the run:

- RSS of the osprey process (sampled each query round), and its peak;
- each query's latency percentiles (p50, p90, p99);
- the scrape duration percentiles osprey records (`scrape_duration_seconds`);

and at the end the targets' completeness: `up` samples stored against the
scrapes due, and the longest gap between two of them.

Usage: python3 benches/soak.py [--osprey target/release/osprey]
       [--duration 3600] [--targets 24] [--series-per-target 3964]
       [--interval 15] [--query-every 15] [--window 600] [--out FILE]
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import free_port, proc_memory_mib, serve_exposition, wait_ready

MODES = ["user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice"]
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]

QUERIES = [
    ("rate_sum_by", "instant", "sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
    ("hist_quantile", "instant",
     "histogram_quantile(0.9, sum by (le, model) (rate(model_inference_duration_seconds_bucket[5m])))"),
    ("topk", "instant", "topk(10, soak_gauge)"),
    ("count_by_name", "instant", 'count by (__name__) ({__name__=~"soak_.+"})'),
    ("range_1h_rate", "range", "sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
    ("range_1h_hist", "range",
     "histogram_quantile(0.9, sum by (le, model) (rate(model_inference_duration_seconds_bucket[5m])))"),
]


class Target:
    """One host's exposition: CPU counters, an inference-latency histogram
    per model, and gauges up to `series` lines. Values move every scrape."""

    def __init__(self, index, series, seed):
        self.index = index
        self.rng = random.Random(seed + index)
        self.lock = threading.Lock()
        cpus = 8
        self.cpu = [[f'node_cpu_seconds_total{{cpu="{c}",mode="{m}"}} ', 0.0] for c in range(cpus) for m in MODES]
        self.models = ["ranker", "embedder", "classifier"]
        self.hist = {m: [0] * len(BUCKETS) for m in self.models}
        self.hist_sum = {m: 0.0 for m in self.models}
        used = len(self.cpu) + len(self.models) * (len(BUCKETS) + 2)
        self.gauges = [[f'soak_gauge{{shard="{i}"}} ', self.rng.random() * 100] for i in range(max(0, series - used))]

    def render(self):
        with self.lock:
            rng = self.rng
            out = ["# TYPE node_cpu_seconds_total counter\n"]
            for entry in self.cpu:
                entry[1] += rng.random() * 15
                out.append(f"{entry[0]}{entry[1]:.2f}\n")
            out.append("# TYPE model_inference_duration_seconds histogram\n")
            for m in self.models:
                counts = self.hist[m]
                for _ in range(20):
                    v = rng.expovariate(10)
                    self.hist_sum[m] += v
                    for i, le in enumerate(BUCKETS):
                        if le == "+Inf" or v <= float(le):
                            counts[i] += 1
                for i, le in enumerate(BUCKETS):
                    out.append(f'model_inference_duration_seconds_bucket{{model="{m}",le="{le}"}} {counts[i]}\n')
                out.append(f'model_inference_duration_seconds_sum{{model="{m}"}} {self.hist_sum[m]:.4f}\n')
                out.append(f'model_inference_duration_seconds_count{{model="{m}"}} {counts[-1]}\n')
            out.append("# TYPE soak_gauge gauge\n")
            for entry in self.gauges:
                entry[1] += rng.uniform(-1, 1)
                out.append(f"{entry[0]}{entry[1]:.3f}\n")
            return "".join(out).encode()


def get(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values):
    return {"n": len(values), "p50": percentile(values, 0.5), "p90": percentile(values, 0.9),
            "p99": percentile(values, 0.99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--osprey", default=os.environ.get("OSPREY_BIN", "target/release/osprey"))
    ap.add_argument("--duration", type=int, default=3600)
    ap.add_argument("--targets", type=int, default=24)
    ap.add_argument("--series-per-target", type=int, default=3964)
    ap.add_argument("--interval", type=int, default=15)
    ap.add_argument("--query-every", type=int, default=15)
    ap.add_argument("--window", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="osprey-soak-")
    targets = [Target(i, args.series_per_target, args.seed) for i in range(args.targets)]
    servers = [serve_exposition(t.render) for t in targets]
    port = free_port()
    static = ", ".join(f"'127.0.0.1:{p}'" for _, p in servers)
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"global:\n  scrape_interval: {args.interval}s\n  scrape_timeout: {min(10, args.interval)}s\n"
                f"scrape_configs:\n  - job_name: soak\n    static_configs:\n      - targets: [{static}]\n")
    log = open(os.path.join(work, "osprey.log"), "w")
    proc = subprocess.Popen([args.osprey, "server", "--config", config,
                             "--data-dir", os.path.join(work, "data"),
                             "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    rounds = []
    try:
        wait_ready(port)
        start = time.time()
        print(f"[soak] {args.targets} targets x {args.series_per_target} series every {args.interval}s "
              f"for {args.duration}s; osprey pid {proc.pid}", file=sys.stderr)
        while time.time() - start < args.duration:
            t0 = time.time()
            if proc.poll() is not None:
                raise SystemExit(f"osprey exited with {proc.returncode}; see {work}/osprey.log")
            latencies = {}
            now = time.time()
            for name, kind, q in QUERIES:
                params = {"query": q}
                path = "/api/v1/query"
                if kind == "range":
                    path = "/api/v1/query_range"
                    params.update({"start": now - 3600, "end": now, "step": "60"})
                q0 = time.perf_counter()
                answer = get(port, path, params)
                latencies[name] = time.perf_counter() - q0
                if answer.get("status") != "success":
                    raise SystemExit(f"{name}: {answer}")
            scrape = get(port, "/api/v1/query", {"query": 'scrape_duration_seconds{job="soak"}'})
            durations = [float(s["value"][1]) for s in scrape["data"]["result"]]
            rounds.append({"t": t0 - start, "rss_mib": proc_memory_mib(proc.pid),
                           "latency_s": latencies, "scrape_s": durations})
            if len(rounds) % 20 == 0:
                print(f"[soak] {t0 - start:6.0f}s rss {rounds[-1]['rss_mib']:.0f} MiB, "
                      + ", ".join(f"{k} {v * 1000:.1f}ms" for k, v in latencies.items()), file=sys.stderr)
            time.sleep(max(0.0, args.query_every - (time.time() - t0)))
        elapsed = time.time() - start
        peak = proc_memory_mib(proc.pid, "VmHWM")
        # Completeness: every target's `up` samples over the run (less the
        # first interval, when the first scrape may not have happened yet).
        span = int(elapsed - 2 * args.interval)
        up = get(port, "/api/v1/query", {"query": f'count_over_time(up{{job="soak"}}[{span}s])'})
        gaps = get(port, "/api/v1/query_range", {
            "query": 'timestamp(up{job="soak"})', "start": time.time() - span, "end": time.time(),
            "step": str(args.interval)})
        longest_gap = 0.0
        for s in gaps["data"]["result"]:
            ts = sorted({float(v[1]) for v in s["values"]})
            longest_gap = max([longest_gap] + [b - a for a, b in zip(ts, ts[1:])])
        stored = [float(s["value"][1]) for s in up["data"]["result"]]
        due = span / args.interval
        head = get(port, "/api/v1/status/tsdb", {})["data"]["headStats"]["numSeries"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for server, _ in servers:
            server.shutdown()

    first = [r for r in rounds if r["t"] >= min(300, args.duration / 4) and r["t"] < args.window + 300] or rounds[:1]
    last = [r for r in rounds if r["t"] >= elapsed - args.window]
    result = {
        "duration_s": round(elapsed),
        "series": args.targets * args.series_per_target,
        "head_series": head,
        "rss_first_mib": percentile([r["rss_mib"] for r in first], 0.5),
        "rss_last_mib": percentile([r["rss_mib"] for r in last], 0.5),
        "peak_rss_mib": peak,
        "queries": {name: {"first": summary([r["latency_s"][name] for r in first]),
                           "last": summary([r["latency_s"][name] for r in last])} for name, _, _ in QUERIES},
        "scrape_duration": {"first": summary([d for r in first for d in r["scrape_s"]]),
                            "last": summary([d for r in last for d in r["scrape_s"]])},
        "up_samples_min": min(stored) if stored else 0, "up_samples_due": due,
        "longest_up_gap_s": longest_gap,
    }
    growth = result["rss_last_mib"] - result["rss_first_mib"]
    print(f"series {result['series']} (head {head}), {result['duration_s']} s")
    print(f"RSS median MiB: first window {result['rss_first_mib']:.0f}, last window {result['rss_last_mib']:.0f} "
          f"(growth {growth:+.0f} MiB, {100 * growth / max(1, result['rss_first_mib']):+.1f} %), peak {peak:.0f}")
    print(f"{'query':16} {'first p50/p90/p99 ms':>26} {'last p50/p90/p99 ms':>26}")
    for name, q in result["queries"].items():
        f, l = q["first"], q["last"]
        print(f"{name:16} {f['p50'] * 1e3:8.1f} {f['p90'] * 1e3:8.1f} {f['p99'] * 1e3:8.1f} "
              f"{l['p50'] * 1e3:8.1f} {l['p90'] * 1e3:8.1f} {l['p99'] * 1e3:8.1f}")
    sd = result["scrape_duration"]
    print(f"{'scrape_duration':16} {sd['first']['p50'] * 1e3:8.1f} {sd['first']['p90'] * 1e3:8.1f} "
          f"{sd['first']['p99'] * 1e3:8.1f} {sd['last']['p50'] * 1e3:8.1f} {sd['last']['p90'] * 1e3:8.1f} "
          f"{sd['last']['p99'] * 1e3:8.1f}")
    print(f"up samples per target: min {result['up_samples_min']:.0f} of {due:.0f} due; "
          f"longest gap {longest_gap:.0f} s (interval {args.interval} s)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
