#!/usr/bin/env python3
"""Anomaly detection quality: precision and recall per anomaly kind.

Generates labelled synthetic series (one sample a minute for nine days: a
daily cycle of +-30 %, a small weekly one, 2 % noise) and injects anomalies
into the last day only, one kind per set of series:

- spike: 3 minutes at +6 to +12 noise sigmas (up or down);
- level shift: +-25 % of the level for 3 hours;
- seasonal break: 2 hours whose values are those of 12 hours away (the
  daily cycle's opposite phase): every value is one the series takes
  every day, only at the wrong time.

It imports them with `osprey import`, starts `osprey server` on the data,
and evaluates over the last day, at every minute (range queries):

- trailing: `abs(anomaly_score(synth[1h])) > 3`;
- seasonal: `abs(anomaly_score_seasonal(synth[8d], 1800, 86400, 604800)) > 3`
  (the same half hour on each of the last seven days and a week ago);
- fixed threshold: per series, flag values outside its own q and 1 - q
  quantiles over the last day, with q tuned per kind, over the labels
  themselves, to the best F1 (a threshold tuned on the answers: an
  optimistic baseline).

A flagged minute is an alert step; consecutive flagged minutes are one
episode. Recall: the share of injected anomalies with a flagged minute
between their start and 10 minutes after their end. Precision: the share
of episodes that overlap such a window. Both per kind, for each detector.

Usage: python3 benches/anomaly_detection.py [--osprey target/release/osprey]
       [--series-per-kind 30] [--seed 23] [--keep]
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_ready  # noqa: E402

MINUTE = 60
DAY = 86400
DAYS = 9
GRACE = 10 * MINUTE
KINDS = ("spike", "level_shift", "seasonal_break")
DETECTORS = {
    "trailing": "abs(anomaly_score(synth[1h])) > 3",
    "seasonal": "abs(anomaly_score_seasonal(synth[8d], 1800, 86400, 604800)) > 3",
}
QUANTILE_GRID = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def generate(rng, kind, index, start):
    """One series: its values (one a minute from `start`) and the labelled
    anomaly windows `(from, to)` in Unix seconds."""
    n = DAYS * DAY // MINUTE
    level = rng.uniform(50, 500)
    phase = rng.uniform(0, 2 * math.pi)
    sigma = 0.02 * level

    def normal(t):
        day = math.sin(2 * math.pi * t / DAY + phase)
        week = math.sin(2 * math.pi * t / (7 * DAY) + phase)
        return level * (1 + 0.3 * day + 0.03 * week)

    times = [start + i * MINUTE for i in range(n)]
    values = [normal(t) + rng.gauss(0, sigma) for t in times]
    windows = []
    last_day = (DAYS - 1) * DAY // MINUTE
    # Three anomalies in the last day, at least 4 hours apart.
    slots = sorted(rng.sample(range(2, 22, 4), 3))
    for hour in slots:
        at = last_day + hour * 60 + rng.randrange(0, 60)
        if kind == "spike":
            length = 3
            size = rng.uniform(6, 12) * sigma * rng.choice((-1, 1))
            for i in range(at, at + length):
                values[i] += size
        elif kind == "level_shift":
            length = 180
            size = 0.25 * level * rng.choice((-1, 1))
            for i in range(at, at + length):
                values[i] += size
        else:
            length = 120
            for i in range(at, at + length):
                values[i] = normal(times[i] + DAY / 2) + rng.gauss(0, sigma)
        windows.append((times[at], times[at + length - 1]))
    return times, values, windows


def write_openmetrics(path, series):
    with open(path, "w") as f:
        f.write("# TYPE synth gauge\n")
        for (kind, index), (times, values, _) in series.items():
            prefix = 'synth{kind="%s",series="%d"} ' % (kind, index)
            f.writelines("%s%r %d\n" % (prefix, v, t) for t, v in zip(times, values))
        f.write("# EOF\n")


def query_range(port, query, start, end, step):
    params = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{params}", timeout=600) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{query}: HTTP {e.code}: {e.read().decode()[:500]}")
    if body.get("status") != "success":
        raise SystemExit(f"{query}: {body}")
    flagged = {}
    for s in body["data"]["result"]:
        key = (s["metric"]["kind"], int(s["metric"]["series"]))
        flagged[key] = {int(float(t)) for t, _ in s["values"]}
    return flagged


def episodes(flagged_times):
    out = []
    for t in sorted(flagged_times):
        if out and t - out[-1][1] <= MINUTE:
            out[-1][1] = t
        else:
            out.append([t, t])
    return out


def score(flags, series, kind):
    """Precision and recall of one detector's flags over one kind's series."""
    found = total = true_episodes = all_episodes = 0
    for key, (_, _, windows) in series.items():
        if key[0] != kind:
            continue
        times = flags.get(key, set())
        for a, b in windows:
            total += 1
            found += any(a <= t <= b + GRACE for t in times)
        for a, b in episodes(times):
            all_episodes += 1
            true_episodes += any(a <= wb + GRACE and b >= wa for wa, wb in windows)
    precision = true_episodes / all_episodes if all_episodes else float("nan")
    return precision, found / total, all_episodes


def threshold_flags(series, kind, q, start, end):
    flags = {}
    for key, (times, values, _) in series.items():
        if key[0] != kind:
            continue
        day = sorted(v for t, v in zip(times, values) if start <= t <= end)
        lo = day[int(q * (len(day) - 1))]
        hi = day[int((1 - q) * (len(day) - 1))]
        flags[key] = {t for t, v in zip(times, values) if start <= t <= end and (v < lo or v > hi)}
    return flags


def f1(p, r):
    return 0.0 if not (p > 0 and r > 0) else 2 * p * r / (p + r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--osprey", default=os.environ.get("OSPREY_BIN", "target/release/osprey"))
    ap.add_argument("--series-per-kind", type=int, default=30)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.osprey):
        raise SystemExit(f"osprey binary {args.osprey} not found; build it with cargo build --release -p osprey")

    rng = random.Random(args.seed)
    # Whole minutes, ending an hour ago, so the server's retention keeps it all.
    start = (int(time.time()) // 3600 - 1) * 3600 - DAYS * DAY
    series = {}
    for kind in KINDS:
        for i in range(args.series_per_kind):
            series[(kind, i)] = generate(rng, kind, i, start)
    eval_start = start + (DAYS - 1) * DAY
    eval_end = start + DAYS * DAY - MINUTE

    work = tempfile.mkdtemp(prefix="osprey-anomaly-")
    server = None
    try:
        om = os.path.join(work, "synth.om.txt")
        write_openmetrics(om, series)
        data = os.path.join(work, "data")
        subprocess.run([args.osprey, "import", "--data-dir", data, om], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        server = subprocess.Popen([args.osprey, "server", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port)
        results = {}
        for name, query in DETECTORS.items():
            t0 = time.time()
            flags = query_range(port, query, eval_start, eval_end, MINUTE)
            took = time.time() - t0
            results[name] = {kind: score(flags, series, kind) for kind in KINDS}
            print(f"{name}: {query} ({took:.1f} s for {len(series)} series x 1440 steps)", flush=True)
        tuned = {}
        for kind in KINDS:
            best = None
            for q in QUANTILE_GRID:
                p, r, n = score(threshold_flags(series, kind, q, eval_start, eval_end), series, kind)
                if best is None or f1(p, r) > f1(best[1][0], best[1][1]):
                    best = (q, (p, r, n))
            tuned[kind] = best[0]
            results.setdefault("threshold", {})[kind] = best[1]
        print(f"threshold: outside the per-series q..1-q quantiles, q tuned per kind on the labels: {tuned}")
        print()
        print(f"{args.series_per_kind} series per kind, 3 anomalies each; last day, every minute")
        print(f"{'detector':<10} {'kind':<15} {'precision':>9} {'recall':>7} {'episodes':>9}")
        for name, per_kind in results.items():
            for kind in KINDS:
                p, r, n = per_kind[kind]
                print(f"{name:<10} {kind:<15} {p:>9.2f} {r:>7.2f} {n:>9}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
