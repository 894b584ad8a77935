#!/usr/bin/env python3
"""bench.py's query phase, one osprey build against another, beside
Prometheus and VictoriaMetrics.

bench.py runs each query on its three servers in turn (rotating the
order), so every osprey query finds its data out of the processor's
caches and its threads asleep: a warm loop of one query
(`query_replay.py`) measures sub-millisecond queries at half the latency
bench.py sees. This runs bench.py's own query phase (`run_queries`, same
queries, parameters and rotation) on the data that `bench.py --keep
--workdir W` left in W: Prometheus and VictoriaMetrics restart on their
kept ingest directories, and each osprey build gets a fresh server that
the kept remote-write bodies are replayed into (as `ingest_replay.py`
does). Every build is in the same rotation, so they meet the same
machine; the ratios to Prometheus are printed per build.

Usage: python3 benches/query_beside.py --workdir W --report REPORT
       [--runs 15] [--rounds 1] [--only q1,q2] [--extra 'expr;expr']
       BINARY [BINARY ...]

REPORT is that run's --out file (the data set's time span). --extra adds
instant queries (named x0, x1, ...), e.g. 'vector(1)' for the floor.

Results (2026-12-07, this 2-core machine, standard size, 15 runs, one
rotation of three builds; a2b7a97, then with the query endpoint in
block_in_place, then with the select's prefetching, median ms):
  hist_quantile 11.15, 8.74, 7.32 (Prometheus 28.8); topk 13.03, 10.31,
  9.01 (33.4); regex_matcher 0.64, 0.60, 0.49 (1.52); rate_sum_by 2.56,
  2.43, 1.89 (7.85); ratio_gauges 0.35, 0.32, 0.32 (0.79).
"""

import argparse
import glob
import json
import os
import shutil
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))

from ingest_replay import load_shards, send  # noqa: E402

import bench  # noqa: E402  (../shared/bench/bench.py)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="a bench.py --keep work directory")
    ap.add_argument("--report", required=True, help="that bench.py run's --out report")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated query names")
    ap.add_argument("--extra", default="", help="semicolon-separated instant queries")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--victoria-metrics", default=shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()

    runs = glob.glob(os.path.join(args.workdir, "osprey-bench-*"))
    if len(runs) != 1:
        sys.exit("expected one osprey-bench-* folder in %s, found %d" % (args.workdir, len(runs)))
    run = runs[0]
    with open(args.report) as f:
        d = json.load(f)["dataset"]
    ds = types.SimpleNamespace(start_ms=d["start_ms"], end_ms=d["end_ms"])
    cfg = types.SimpleNamespace(query_warmup=1, query_runs=args.runs)

    standard = bench.query_set()
    extra = [("x%d" % i, "instant", e, None)
             for i, e in enumerate(filter(None, args.extra.split(";")))]
    wanted = set(filter(None, args.only.split(","))) | {q[0] for q in extra}
    queries = [q for q in standard + extra if not args.only or q[0] in wanted]
    bench.query_set = lambda: queries

    shards = load_shards(os.path.join(run, "rw"))
    servers = {}
    try:
        prom = bench.PrometheusTarget(args.prometheus, None).make_server(run, "ingest1")
        prom.start(300)
        servers["prometheus"] = prom
        vm = bench.VictoriaMetricsTarget(args.victoria_metrics).make_server(run, "ingest1")
        vm.start()
        servers["victoriametrics"] = vm
        for i, binary in enumerate(args.binaries):
            tag = "beside%d" % i
            shutil.rmtree(os.path.join(run, "osprey-" + tag), ignore_errors=True)
            srv = bench.OspreyTarget(binary).make_server(run, tag)
            srv.start()
            servers["o%d" % i] = srv
            failed = send(srv.port, shards)
            if failed:
                sys.exit("%s: %d remote-write bodies refused" % (binary, failed))
        time.sleep(2)
        results = [bench.run_queries(servers, ds, cfg) for _ in range(args.rounds)]
    finally:
        for srv in servers.values():
            srv.stop(30)
            if srv.name == "osprey":
                shutil.rmtree(srv.datadir, ignore_errors=True)

    names = list(servers)
    builds = ["o%d" % i for i in range(len(args.binaries))]
    for i, binary in enumerate(args.binaries):
        print("o%d = %s" % (i, binary))
    print("%-18s" % "query" + "".join("%11s" % n[:10] for n in names)
          + "".join("%9s" % (b + "/prom") for b in builds))
    for q in queries:
        for res in results:
            med = {n: res[n][q[0]]["median_ms"] for n in names}
            line = "%-18s" % q[0] + "".join(
                "%11s" % ("%.2f" % med[n] if med[n] is not None else "ERR") for n in names)
            if med["prometheus"]:
                line += "".join("%9.2f" % (med[b] / med["prometheus"]) if med[b] else "%9s" % "ERR"
                                for b in builds)
            print(line)


if __name__ == "__main__":
    main()
