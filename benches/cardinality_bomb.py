#!/usr/bin/env python3
"""The cardinality bomb, measured (docs/limits.md).

A bomb target adds BOMB new series at every scrape (a user-ID label,
`--per-scrape` of them each time) until `--total` new series have been
offered, while `--normal` ordinary targets expose a steady set of series.
osprey scrapes them all at the same interval, twice: once without
`limits:` and once with them. For each run it reports

- peak RSS (VmHWM) of the osprey process and its head series at the end;
- the normal targets' completeness: samples stored per series against the
  scrapes due in the run, and the largest gap between two samples;
- the normal targets' scrape timing: the slowest `scrape_duration_seconds`
  and the spread of the interval between their `up` samples;
- the bomb's refusals (`osprey_series_limit_rejections_total`) and its
  `lastError`.

Usage: python3 benches/cardinality_bomb.py [--osprey target/release/osprey]
       [--total 1000000] [--per-scrape 50000] [--interval 2]
       [--normal 5] [--normal-series 200]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import free_port, proc_memory_mib, serve_exposition, stop_process, wait_ready


def normal_target(series):
    count = [0]

    def render():
        count[0] += 1
        lines = ["# TYPE normal_requests_total counter"]
        for i in range(series):
            lines.append(f'normal_requests_total{{path="/p{i}"}} {count[0] * 10 + i}')
        return ("\n".join(lines) + "\n").encode()

    return render


def bomb_target(per_scrape, total, state):
    def render():
        with state["lock"]:
            n = state["scrapes"]
            state["scrapes"] += 1
        start = n * per_scrape
        count = max(0, min(per_scrape, total - start))
        state["offered"] = min(total, start + count)
        parts = ["# TYPE bomb_requests_total counter\n"]
        parts.extend(f'bomb_requests_total{{user_id="u{start + i}"}} 1\n' for i in range(count))
        return "".join(parts).encode()

    return render


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
        return json.loads(r.read())


def export(port, selector, start_ms):
    query = urllib.parse.urlencode({"match[]": selector, "start": start_ms / 1000})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/export?{query}", timeout=300) as r:
        return [json.loads(line) for line in r.read().splitlines() if line.strip()]


def instant(port, query):
    q = urllib.parse.urlencode({"query": query})
    return get_json(port, f"/api/v1/query?{q}")["data"]["result"]


def run(args, limits, label):
    normal_servers = [serve_exposition(normal_target(args.normal_series)) for _ in range(args.normal)]
    state = {"lock": threading.Lock(), "scrapes": 0, "offered": 0}
    bomb_server, bomb_port = serve_exposition(bomb_target(args.per_scrape, args.total, state))
    tmp = tempfile.mkdtemp(prefix="osprey-bomb-")
    port = args.port or free_port()
    targets = ", ".join(f"'127.0.0.1:{p}'" for _, p in normal_servers)
    config = (
        f"global:\n  scrape_interval: {args.interval}s\n  scrape_timeout: {args.interval}s\n"
        f"scrape_configs:\n  - job_name: normal\n    static_configs:\n      - targets: [{targets}]\n"
        f"  - job_name: bomb\n    static_configs:\n      - targets: ['127.0.0.1:{bomb_port}']\n"
    )
    if limits:
        config += limits
    with open(os.path.join(tmp, "osprey.yml"), "w") as f:
        f.write(config)
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen(
        [args.osprey, "server", "--config", os.path.join(tmp, "osprey.yml"),
         "--data-dir", os.path.join(tmp, "data"), "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port)
        started_ms = int(time.time() * 1000)
        # Until the bomb has offered everything, then two more intervals.
        deadline = time.time() + args.max_seconds
        bomb_error = ""
        while state["offered"] < args.total and time.time() < deadline:
            time.sleep(1)
            try:
                for t in get_json(port, "/api/v1/targets")["data"]["activeTargets"]:
                    if t["labels"]["job"] == "bomb" and t["lastError"]:
                        bomb_error = t["lastError"]
            except Exception:
                pass
        time.sleep(2 * args.interval)
        ended_ms = int(time.time() * 1000)
        peak_rss = proc_memory_mib(proc.pid, "VmHWM")
        rss = proc_memory_mib(proc.pid, "VmRSS")
        tsdb = get_json(port, "/api/v1/status/tsdb?limit=1")["data"]
        head_series = tsdb["headStats"]["numSeries"]
        rejections = sum(r["count"] for r in tsdb.get("seriesLimits", {}).get("rejections", []))
        # Completeness: every normal series' samples over the run.
        series = export(port, "normal_requests_total", started_ms)
        due = (ended_ms - started_ms) / 1000 / args.interval
        counts = [len([t for t in s["timestamps"] if started_ms <= t <= ended_ms]) for s in series]
        gaps = []
        for s in series:
            ts = [t for t in s["timestamps"] if started_ms <= t <= ended_ms]
            gaps.extend(b - a for a, b in zip(ts, ts[1:]))
        ups = export(port, 'up{job="normal"}', started_ms)
        intervals = []
        for s in ups:
            ts = s["timestamps"]
            intervals.extend((b - a) / 1000 for a, b in zip(ts, ts[1:]))
        slowest = instant(port, 'max(max_over_time(scrape_duration_seconds{job="normal"}[10m]))')
        bomb_slowest = instant(port, 'max(max_over_time(scrape_duration_seconds{job="bomb"}[10m]))')
        result = {
            "run": label,
            "bomb_series_offered": state["offered"],
            "bomb_scrapes": state["scrapes"],
            "seconds": round((ended_ms - started_ms) / 1000, 1),
            "peak_rss_mib": round(peak_rss, 1),
            "rss_end_mib": round(rss, 1),
            "head_series": head_series,
            "rejections": rejections,
            "bomb_last_error": bomb_error[:200],
            "normal_series": len(series),
            "normal_expected_series": args.normal * args.normal_series,
            "normal_samples_min": min(counts) if counts else 0,
            "normal_scrapes_due": round(due, 1),
            # Samples of the least complete normal series per scrape due.
            "normal_completeness_min": round(min(counts) / max(1, int(due)), 3) if counts else 0,
            "normal_max_gap_s": round(max(gaps) / 1000, 3) if gaps else None,
            "normal_interval_min_s": round(min(intervals), 3) if intervals else None,
            "normal_interval_max_s": round(max(intervals), 3) if intervals else None,
            "normal_scrape_duration_max_s": float(slowest[0]["value"][1]) if slowest else None,
            "bomb_scrape_duration_max_s": float(bomb_slowest[0]["value"][1]) if bomb_slowest else None,
        }
        return result
    finally:
        stop_process(proc)
        log.close()
        bomb_server.shutdown()
        for server, _ in normal_servers:
            server.shutdown()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--osprey", default="target/release/osprey")
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--per-scrape", type=int, default=50_000)
    parser.add_argument("--interval", type=int, default=2)
    parser.add_argument("--normal", type=int, default=5)
    parser.add_argument("--normal-series", type=int, default=200)
    parser.add_argument("--max-head-series", type=int, default=200_000)
    parser.add_argument("--bomb-per-minute", type=int, default=60_000)
    parser.add_argument("--max-seconds", type=int, default=300)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", choices=["limits", "no-limits"])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    limits = (
        f"limits:\n  max_head_series: {args.max_head_series}\n"
        f"  jobs:\n    bomb:\n      max_new_series_per_minute: {args.bomb_per_minute}\n"
    )
    results = []
    if args.only != "limits":
        results.append(run(args, None, "no limits"))
        print(json.dumps(results[-1]), flush=True)
    if args.only != "no-limits":
        results.append(run(args, limits, "limits"))
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
