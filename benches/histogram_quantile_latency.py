#!/usr/bin/env python3
"""histogram_quantile over native histograms: query latency, osprey against Prometheus 2.42.

Writes the same remote-write 1.0 requests as benches/native_histograms.py
(--series latency histograms, schema --schema, one sample every 15 s over
--hours hours, a counter reset every 5 hours) to osprey and then to
Prometheus 2.42 (`--enable-feature=native-histograms`), each server alone,
and times these queries against each (median of --runs, after one warm-up):

  instant  histogram_quantile(0.9, sum by (route) (rate(http_request_duration_seconds[5m])))
  instant  histogram_quantile(0.99, rate(http_request_duration_seconds[5m]))
  instant  histogram_quantile(0.5, http_request_duration_seconds)
  range    the first one over the last hour, step 60 s

Prometheus 2.42 interpolates linearly inside an exponential bucket and
Prometheus 3 (and osprey) exponentially, so the values differ slightly;
this script compares time only (it checks both answer the same number of
series).

Usage: python3 benches/histogram_quantile_latency.py [--series 100]
       [--hours 2] [--schema 3] [--runs 7] [--osprey target/debug/osprey]

Say which osprey build was measured: a debug build is several times slower
than a release build.

Results (2026-12-05, this machine: 2 cores shared with other builds, load
average 4-10; release build of osprey; defaults: 100 series, 2 h, 48,100
samples, medians of 7, two runs):

  query          osprey ms  prometheus ms   ratio
  instant sum by route          5.0-7.4   22.5-26.4   0.19-0.33
  instant per series            3.3-3.5   22.2-24.8   0.13-0.16
  instant plain selector        4.6-6.2    6.6-7.4    0.63-0.93
  range 1h/60s sum by route    100-129    1129-1277   0.09-0.10

A debug build of osprey measured 320 / 273 / 3179 ms for the first two and
the range query (Prometheus 65 / 55 / 2314 ms in that run).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_ready  # noqa: E402
from native_histograms import generate, post, request_body  # noqa: E402

METRIC = "http_request_duration_seconds"
QUERIES = [
    ("instant", f"histogram_quantile(0.9, sum by (route) (rate({METRIC}[5m])))"),
    ("instant", f"histogram_quantile(0.99, rate({METRIC}[5m]))"),
    ("instant", f"histogram_quantile(0.5, {METRIC})"),
    ("range 1h/60s", f"histogram_quantile(0.9, sum by (route) (rate({METRIC}[5m])))"),
]


def get(base, kind, query, end_s):
    if kind == "instant":
        params = {"query": query, "time": f"{end_s:.3f}"}
        path = "/api/v1/query"
    else:
        params = {"query": query, "start": f"{end_s - 3600:.3f}", "end": f"{end_s:.3f}", "step": "60"}
        path = "/api/v1/query_range"
    url = base + path + "?" + urllib.parse.urlencode(params)
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as r:
        body = r.read()
    elapsed = time.perf_counter() - started
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise RuntimeError(f"{query}: {body[:300]}")
    return elapsed, len(answer["data"]["result"])


def measure(name, command, port, bodies, end_s, runs, log_path):
    log = open(log_path, "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, deadline=120)
        base = f"http://127.0.0.1:{port}"
        for body, _ in bodies:
            status, answer = post(base + "/api/v1/write", body, {
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            if status // 100 != 2:
                raise RuntimeError(f"{name}: remote write answered {status}: {answer[:300]}")
        out = []
        for kind, query in QUERIES:
            get(base, kind, query, end_s)  # warm-up
            times, series = [], 0
            for _ in range(runs):
                elapsed, series = get(base, kind, query, end_s)
                times.append(elapsed)
            out.append((statistics.median(times), series))
        return out
    finally:
        process.terminate()
        process.wait(timeout=120)
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--schema", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--osprey", default="target/debug/osprey")
    parser.add_argument("--prometheus", default="prometheus")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="hq-latency-")
    try:
        end_ms = (int(time.time()) - 600) * 1000
        bodies = [(request_body(batch), sum(len(s) for _, s in batch))
                  for _, batch in generate(args.series, args.hours, args.schema, end_ms)]
        end_s = end_ms / 1000
        print(f"{args.series} series, {sum(n for _, n in bodies)} histogram samples")

        port = free_port()
        data = os.path.join(work, "osprey", "data")
        os.makedirs(data)
        config = os.path.join(work, "osprey", "osprey.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        ours = measure("osprey", [args.osprey, "server", "--config", config, "--data-dir", data,
                                  "--listen", f"127.0.0.1:{port}"],
                       port, bodies, end_s, args.runs, os.path.join(work, "osprey.log"))

        port = free_port()
        data = os.path.join(work, "prometheus", "data")
        os.makedirs(data)
        config = os.path.join(work, "prometheus", "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        theirs = measure("prometheus", [args.prometheus, f"--config.file={config}",
                                        f"--storage.tsdb.path={data}",
                                        f"--web.listen-address=127.0.0.1:{port}",
                                        "--web.enable-remote-write-receiver",
                                        "--enable-feature=native-histograms"],
                         port, bodies, end_s, args.runs, os.path.join(work, "prometheus.log"))

        print(f"{'query':<14}{'osprey ms':>12}{'prometheus ms':>15}{'ratio':>8}{'series':>9}  expression")
        for (kind, query), (o, on), (p, pn) in zip(QUERIES, ours, theirs):
            if on != pn:
                print(f"  note: osprey answered {on} series, prometheus {pn}")
            print(f"{kind:<14}{o * 1000:>12.1f}{p * 1000:>15.1f}{o / p:>8.2f}{on:>9}  {query}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
