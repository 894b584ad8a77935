#!/usr/bin/env python3
"""Bench query latency on a fresh osprey head, one build against another.

Replays the remote-write bodies that `bench.py --keep --workdir W` left in
W/<run>/rw into a fresh server of each build in turn (as
`ingest_replay.py` does), then runs `bench.py`'s queries on it as
`bench.py` does (one keep-alive connection, a warm-up and then RUNS runs
of each, median), after one select of every series (bench.py's
verification step before its queries). Builds alternate round by round
(A, B, A, B), so a noisy machine hits them alike; compare rounds, not
one number.

bench.py measures osprey beside Prometheus and VictoriaMetrics, each run
on a newly generated data set and with the other servers up; this
isolates a change to osprey's own query path (the reference is the other
build) on one kept data set, in about 30 s a build.

The queries run against the head while it still holds the data (within a
minute of the server's start). With --block they wait until the server's
maintenance has cut the head into a block: that happens only when the
kept data is older than the server's own samples by more than the head's
span (the data set ages on disk; a fresh one keeps it in the head, as in
bench.py).

With --cpu N each query also runs N more times (a tenth of that for
count_by_name and the range queries) and the server's own CPU per query
is printed (user plus system from /proc, 10 ms ticks: use N in the
hundreds or more for the sub-millisecond queries). CPU is steadier than
latency on a shared machine.

Usage: python3 benches/query_replay.py --workdir W [--rounds 2] [--runs 15]
       [--only q1,q2] [--block] [--cpu N] BINARY [BINARY ...]

Results (2026-12-06, this 2-core machine, standard size, head, median ms
of 15 runs, two rounds each; 3a73765 before the session's query changes,
3ca9a1f after):
  hist_quantile 9.75, 9.47 -> 7.79, 8.29; topk 13.33, 12.22 -> 8.12, 8.43;
  regex_matcher 0.59, 0.51 -> 0.39, 0.40; avg_over_time 2.51, 2.06 ->
  1.67, 1.39; increase_1h 2.81, 2.82 -> 2.15, 1.91; count_by_name 32.7,
  28.0 -> 18.8, 18.7; range_all_1m 55.3, 46.2 -> 44.1, 43.0.
"""

import argparse
import glob
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))

from benchlib import fresh_osprey, proc_cpu_seconds, timed_get  # noqa: E402
from ingest_replay import load_shards, send  # noqa: E402

import bench  # noqa: E402  (../shared/bench/bench.py: the queries and their parameters)


class DataSet:
    def __init__(self, report):
        with open(report) as f:
            d = json.load(f)["dataset"]
        self.start_ms, self.end_ms = d["start_ms"], d["end_ms"]


def get(conn, url):
    status, body, seconds = timed_get(conn, url)
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}: {body[:200]!r}")
    return seconds


def run_once(binary, shards, ds, args):
    with fresh_osprey(binary, "query-replay-") as (server, port, data):
        failures = send(port, shards)
        if failures:
            raise RuntimeError(f"{failures} remote writes were not answered 204")
        time.sleep(3)
        if args.block:
            deadline = time.time() + 180
            while not any(n.startswith("01") for n in os.listdir(data)):
                if time.time() > deadline:
                    raise RuntimeError("no block after 3 minutes (is the data set too fresh?)")
                time.sleep(1)
            time.sleep(5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        at = "%.3f" % (ds.end_ms / 1000.0)
        get(conn, "/api/v1/query?" + urllib.parse.urlencode({"query": 'count({__name__=~".+"})', "time": at}))
        medians, cpu = {}, {}
        for qid, kind, expr, rng in bench.query_set():
            if args.only and qid not in args.only:
                continue
            path, params = bench.query_params(ds, kind, rng)
            url = path + "?" + urllib.parse.urlencode(dict(params, query=expr))
            get(conn, url)
            medians[qid] = statistics.median(get(conn, url) for _ in range(args.runs)) * 1000
            if args.cpu:
                heavy = kind == "range" or qid == "count_by_name"
                n = max(args.cpu // 10, 5) if heavy else args.cpu
                before = proc_cpu_seconds(server.pid)
                for _ in range(n):
                    get(conn, url)
                cpu[qid] = (proc_cpu_seconds(server.pid) - before) / n * 1000
        conn.close()
        return medians, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="the --workdir of a `bench.py --keep` run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--only", type=lambda s: set(s.split(",")), help="query ids, comma separated")
    ap.add_argument("--block", action="store_true", help="query after the head is cut into a block")
    ap.add_argument("--cpu", type=int, default=0,
                    help="also measure server CPU per query over this many more runs")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    ds = DataSet(os.path.join(args.workdir, "report.json"))
    rw = glob.glob(os.path.join(args.workdir, "osprey-bench-*", "rw"))
    if not rw:
        sys.exit(f"no osprey-bench-*/rw under {args.workdir}")
    shards = load_shards(rw[0])
    results = []
    for round_ in range(args.rounds):
        for binary in args.binaries:
            medians, cpu = run_once(binary, shards, ds, args)
            results.append((os.path.basename(binary), round_ + 1, medians, cpu))
            print(f"  {results[-1][0]} round {round_ + 1} done", file=sys.stderr, flush=True)
    ids = list(results[0][2])
    header = "query".ljust(18) + "".join(f"{name[:14]:>15}/{r}" for name, r, _, _ in results)
    print("latency, median ms")
    print(header)
    for qid in ids:
        print(qid.ljust(18) + "".join(f"{m[qid]:17.3f}" for _, _, m, _ in results))
    if args.cpu:
        print("server CPU ms per query")
        print(header)
        for qid in ids:
            print(qid.ljust(18) + "".join(f"{c[qid]:17.3f}" for _, _, _, c in results))


if __name__ == "__main__":
    sys.exit(main())
