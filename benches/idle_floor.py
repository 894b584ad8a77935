#!/usr/bin/env python3
"""The latency floor of one HTTP request, osprey beside Prometheus and
VictoriaMetrics.

`bench.py` queries its targets in rotation, so each server sits idle for
the other two's requests before its own: a query's median there is the
server's work plus the time an idle server and client take to exchange one
request on loopback. This bench measures that second part alone. It starts
the three servers on empty data folders and sends each, in the same
rotation and with an idle gap before every request (`--gap`, 2 ms by
default, about what the others' answers take), two requests that do no
storage work:

- its health check (`/-/healthy`, VictoriaMetrics's `/health`);
- the instant query `1`.

It reports each server's median and 25th percentile. With `--report`
(a `bench.py` report with Prometheus's query timings) it also prints, per
bench query, the latency that "0.3 times Prometheus's" asks of osprey
beside osprey's measured floor: a target below the floor cannot be met by
any query engine behind this HTTP stack on this machine.

Usage: python3 benches/idle_floor.py [--osprey target/release/osprey]
       [--prometheus prometheus] [--victoria-metrics victoria-metrics]
       [--rounds 300] [--gap 0.002] [--report REPORT] [--out FILE]
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from benchlib import free_port, stop_process, timed_get, wait_ready

HERE = os.path.dirname(os.path.abspath(__file__))


def start_servers(args, work):
    """Starts the three servers on empty folders under `work`; returns
    (name, process, port, health path) for each."""
    servers = []
    port = free_port()
    servers.append(("osprey", subprocess.Popen(
        [args.osprey, "server", "--data-dir", os.path.join(work, "osprey"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "/-/healthy"))
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global: {}\n")
    port = free_port()
    servers.append(("prometheus", subprocess.Popen(
        [args.prometheus, "--config.file", config,
         "--storage.tsdb.path", os.path.join(work, "prometheus"),
         "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "/-/healthy"))
    port = free_port()
    servers.append(("victoriametrics", subprocess.Popen(
        [args.victoria_metrics, "-storageDataPath", os.path.join(work, "vm"),
         "-httpListenAddr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "/health"))
    return servers


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--osprey", default=os.path.join(HERE, "..", "target", "release", "osprey"))
    p.add_argument("--prometheus", default="prometheus")
    p.add_argument("--victoria-metrics", default="victoria-metrics")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--gap", type=float, default=0.002, help="idle seconds before each request")
    p.add_argument("--report", help="a bench.py report: prints 0.3x Prometheus per query")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="osprey-idle-floor-")
    servers = []
    try:
        servers = start_servers(args, work)
        for _, _, port, health in servers:
            wait_ready(port, path=health)
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                 for _, _, port, _ in servers]
        requests = [("health", None), ("query 1", "/api/v1/query?query=1")]
        results = {name: {} for name, _, _, _ in servers}
        for label, path in requests:
            times = [[] for _ in servers]
            for rnd in range(args.rounds + 10):
                order = list(range(len(servers)))
                order = order[rnd % len(order):] + order[:rnd % len(order)]
                for i in order:
                    time.sleep(args.gap)
                    status, _, seconds = timed_get(conns[i], path or servers[i][3])
                    if status != 200:
                        raise SystemExit(f"{servers[i][0]} answered {status} to {path}")
                    if rnd >= 10:
                        times[i].append(seconds * 1000)
            for (name, _, _, _), ts in zip(servers, times):
                results[name][label] = {
                    "median_ms": round(statistics.median(ts), 3),
                    "p25_ms": round(statistics.quantiles(ts, n=4)[0], 3),
                }
        for label, _ in requests:
            print("%-8s " % label + "  ".join(
                "%s median %.3f ms (p25 %.3f)" % (name, r[label]["median_ms"], r[label]["p25_ms"])
                for name, r in results.items()))
        out = {"gap_s": args.gap, "rounds": args.rounds, "results": results}
        if args.report:
            with open(args.report) as f:
                report = json.load(f)["results"]
            floor = results["osprey"]["query 1"]["median_ms"]
            rows = []
            for qid, q in sorted(report["prometheus"]["queries"].items()):
                if q.get("median_ms") is None:
                    continue
                target = 0.3 * q["median_ms"]
                mine = report.get("osprey", {}).get("queries", {}).get(qid, {}).get("median_ms")
                rows.append({"query": qid, "prometheus_ms": q["median_ms"],
                             "target_ms": round(target, 3), "osprey_ms": mine,
                             "target_below_floor": target < floor})
                print("%-18s 0.3x Prometheus = %7.3f ms  osprey %s ms%s" % (
                    qid, target, mine,
                    "  (below osprey's floor of %.3f ms)" % floor if target < floor else ""))
            out["targets"] = rows
        if args.out:
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    finally:
        for _, proc, _, _ in servers:
            stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
