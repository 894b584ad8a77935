#!/usr/bin/env python3
"""The bench queries under concurrency, osprey beside VictoriaMetrics.

Runs on the data `bench.py --workloads ingest --keep --workdir DIR --out
REPORT` left behind: the osprey and VictoriaMetrics data directories its
ingest workload filled from the same generated series, and the data set's
time span from its report. Each server is started alone on its directory (so
the two never share the CPUs), and `bench.py`'s own query set is run
against it twice:

- one client: every query in turn, `--rounds` times;
- `--clients` clients at once (8 by default), each running the whole set
  `--rounds` times, each client starting at a different query, so every
  query meets a mix of the others.

It reports each query's median and p90 latency in both modes, the 8-client
latency ratio osprey/VictoriaMetrics per query, and the queries answered per
second of wall time with all clients busy. Both servers answer the same
queries over the same time range (bench.py's, from its report) and must
return the same number of series.

Usage: python3 benches/query_concurrency.py --workdir DIR --report REPORT
       [--osprey target/release/osprey] [--victoria-metrics victoria-metrics]
       [--clients 8] [--rounds 5] [--out FILE]
"""

import argparse
import glob
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

from benchlib import free_port, proc_cpu_seconds, stop_process, timed_get, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import bench  # noqa: E402  (the harness's own query set and time ranges)


class Span:
    """The data set's first and last sample times, as bench.py's Dataset."""

    def __init__(self, start_ms, end_ms):
        self.start_ms = start_ms
        self.end_ms = end_ms


def data_span(report_path):
    """The bench data's time span, from bench.py's report."""
    with open(report_path) as f:
        ds = json.load(f)["dataset"]
    return Span(int(ds["start_ms"]), int(ds["end_ms"]))


def requests(span):
    out = []
    for qid, kind, expr, rng in bench.query_set():
        path, params = bench.query_params(span, kind, rng)
        out.append((qid, path + "?" + urllib.parse.urlencode(dict(params, query=expr))))
    return out


def series_count(body):
    data = json.loads(body)
    if data.get("status") != "success":
        raise RuntimeError("%s: %s" % (data.get("errorType"), data.get("error")))
    result = data["data"]["result"]
    return len(result) if isinstance(result, list) else 1


def client(port, order, rounds, times, counts, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        for _ in range(rounds):
            for qid, url in order:
                status, body, dt = timed_get(conn, url)
                if status != 200:
                    errors.append("%s: HTTP %d %s" % (qid, status, body[:200]))
                    return
                times[qid].append(dt)
                counts[qid] = series_count(body)
    except Exception as e:  # reported, and the run fails
        errors.append("%s" % e)
    finally:
        conn.close()


def run_clients(port, reqs, clients, rounds):
    """`clients` threads, client i starting at query i; returns per-query
    latencies, series counts and the wall time with all of them running."""
    times = {qid: [] for qid, _ in reqs}
    counts, errors = {}, []
    threads = []
    for i in range(clients):
        k = i % len(reqs)
        order = reqs[k:] + reqs[:k]
        threads.append(threading.Thread(target=client, args=(port, order, rounds, times, counts, errors)))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    return times, counts, wall


def summarize(times):
    out = {}
    for qid, ts in times.items():
        ts = sorted(ts)
        out[qid] = {
            "median_ms": round(statistics.median(ts) * 1000, 2),
            "p90_ms": round(ts[min(len(ts) - 1, int(0.9 * len(ts)))] * 1000, 2),
            "runs": len(ts),
        }
    return out


def measure(name, argv, port, reqs, args):
    log_path = os.path.join(args.workdir, "concurrency-%s.log" % name)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, deadline=300)
        run_clients(port, reqs, 1, 1)  # warm-up: caches, page cache, first-use paths
        one, counts, _ = run_clients(port, reqs, 1, args.rounds)
        cpu0 = proc_cpu_seconds(proc.pid)
        many, counts_many, wall = run_clients(port, reqs, args.clients, args.rounds)
        cpu = proc_cpu_seconds(proc.pid) - cpu0
        if counts != counts_many:
            raise RuntimeError("%s: series counts differ between 1 and %d clients" % (name, args.clients))
        n = args.clients * args.rounds * len(reqs)
        return {
            "one_client": summarize(one),
            "clients": summarize(many),
            "series": counts,
            "queries_per_second": round(n / wall, 2),
            "server_cpu_ms_per_query": round(cpu * 1000 / n, 2),
        }
    finally:
        stop_process(proc)


def only_dir(pattern):
    found = sorted(p for p in glob.glob(pattern) if os.path.isdir(p))
    if not found:
        sys.exit("no %s: run bench.py --workloads ingest --keep --workdir DIR first" % pattern)
    return found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="a bench.py --keep work directory")
    ap.add_argument("--report", required=True, help="that bench.py run's --out report")
    ap.add_argument("--osprey", default=os.environ.get("OSPREY_BIN", "target/release/osprey"))
    ap.add_argument("--victoria-metrics", default=shutil.which("victoria-metrics") or "victoria-metrics")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()

    run_dir = only_dir(os.path.join(args.workdir, "osprey-bench-*"))
    osprey_data = only_dir(os.path.join(run_dir, "osprey-ingest*"))
    vm_data = only_dir(os.path.join(run_dir, "victoriametrics-ingest*"))

    reqs = requests(data_span(args.report))
    port = free_port()
    osprey_argv = [args.osprey, "server", "--data-dir", osprey_data, "--listen", "127.0.0.1:%d" % port]
    report = {"clients": args.clients, "rounds": args.rounds}
    report["osprey"] = measure("osprey", osprey_argv, port, reqs, args)
    vm_port = free_port()
    vm_argv = [args.victoria_metrics, "-storageDataPath=" + vm_data, "-httpListenAddr=127.0.0.1:%d" % vm_port,
               "-retentionPeriod=100y", "-search.disableCache", "-search.latencyOffset=1s",
               "-search.maxUniqueTimeseries=10000000"]
    report["victoriametrics"] = measure("victoriametrics", vm_argv, vm_port, reqs, args)

    o, v = report["osprey"], report["victoriametrics"]
    mismatched = [q for q in o["series"] if o["series"][q] != v["series"].get(q)]
    report["series_mismatch"] = mismatched
    print("%-18s %10s %10s %10s %10s %8s" % ("query", "osprey 1c", "VM 1c", "osprey %dc" % args.clients,
                                           "VM %dc" % args.clients, "ratio"))
    ratios = []
    for qid, _ in reqs:
        r = o["clients"][qid]["median_ms"] / v["clients"][qid]["median_ms"]
        ratios.append(r)
        print("%-18s %10.1f %10.1f %10.1f %10.1f %7.2fx" % (
            qid, o["one_client"][qid]["median_ms"], v["one_client"][qid]["median_ms"],
            o["clients"][qid]["median_ms"], v["clients"][qid]["median_ms"], r))
    report["ratio_max"] = round(max(ratios), 3)
    report["ratio_geomean"] = round(statistics.geometric_mean(ratios), 3)
    print("queries/s with %d clients: osprey %.1f, VictoriaMetrics %.1f" % (
        args.clients, o["queries_per_second"], v["queries_per_second"]))
    print("server CPU per query: osprey %.1f ms, VictoriaMetrics %.1f ms" % (
        o["server_cpu_ms_per_query"], v["server_cpu_ms_per_query"]))
    print("latency ratio at %d clients: worst %.2fx, geomean %.2fx" % (
        args.clients, report["ratio_max"], report["ratio_geomean"]))
    if mismatched:
        print("series counts differ for: %s" % ", ".join(mismatched))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
