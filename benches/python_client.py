#!/usr/bin/env python3
"""The model-side cost of the Python client (clients/python): how long
`Monitor.log_prediction` takes in the model server's thread while osprey
is up, after it is killed (SIGKILL) and once it is back.

A model thread logs predictions of 30 features (20 numeric, 10
categorical, with scores) at a steady rate (--rate, default 2,000 a
second) for three phases of --phase seconds: osprey up, osprey killed,
osprey started again on the same port. Each call is timed with
perf_counter; reported per phase and overall: p50, p99, p99.9 and the
worst call, with the client's counters. The goal: p99 under 1 ms in
every phase.

Usage: python3 benches/python_client.py [--osprey target/release/osprey]
       [--rate 2000] [--phase 5]
"""

import argparse
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "clients" / "python"))

from benchlib import free_port, wait_ready  # noqa: E402
from osprey_client import Monitor  # noqa: E402

GOAL_P99_SECONDS = 0.001


def start(binary, data, port, log):
    return subprocess.Popen(
        [binary, "server", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def percentiles(values):
    s = sorted(values)

    def at(p):
        return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1e6

    return at(50), at(99), at(99.9), s[-1] * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = HERE.parent / "target" / "release" / "osprey"
    if not default.exists():
        default = HERE.parent / "target" / "debug" / "osprey"
    parser.add_argument("--osprey", default=str(default))
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--phase", type=float, default=5)
    args = parser.parse_args()

    rng = random.Random(3)
    cities = ["Oslo", "Bergen", "Tromsø", "Bodø", "Stavanger"]
    features = [
        {**{f"x{j}": rng.gauss(0, 1) for j in range(20)}, **{f"c{j}": rng.choice(cities) for j in range(10)}}
        for _ in range(256)
    ]
    tmp = tempfile.mkdtemp(prefix="osprey-client-bench-")
    port = free_port()
    log = open(os.path.join(tmp, "osprey.log"), "ab")
    server = start(args.osprey, os.path.join(tmp, "data"), port, log)
    try:
        wait_ready(port)
        monitor = Monitor(f"http://127.0.0.1:{port}", "bench", backoff=0.2, max_backoff=2.0)
        phases = {"up": [], "killed": [], "back": []}
        period = 1.0 / args.rate
        i = 0
        for phase in phases:
            if phase == "killed":
                server.send_signal(signal.SIGKILL)
                server.wait()
            elif phase == "back":
                server = start(args.osprey, os.path.join(tmp, "data"), port, log)
            end = time.monotonic() + args.phase
            next_call = time.monotonic()
            while time.monotonic() < end:
                p = rng.random()
                t0 = time.perf_counter()
                monitor.log_prediction(
                    id=i,
                    version="v1",
                    features=features[i % 256],
                    prediction="yes" if p > 0.5 else "no",
                    scores={"yes": p, "no": 1 - p},
                )
                phases[phase].append(time.perf_counter() - t0)
                i += 1
                next_call += period
                delay = next_call - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        monitor.flush(60)
        stats = monitor.stats()
        monitor.close()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"log_prediction, 30 features, {args.rate:.0f} calls/s, {args.phase:.0f} s per phase (microseconds)")
    print(f"{'phase':<8} {'calls':>7} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8}")
    everything = []
    worst_p99 = 0.0
    for phase, values in phases.items():
        everything += values
        p50, p99, p999, top = percentiles(values)
        worst_p99 = max(worst_p99, p99)
        print(f"{phase:<8} {len(values):>7} {p50:>7.0f} {p99:>7.0f} {p999:>7.0f} {top:>8.0f}")
    p50, p99, p999, top = percentiles(everything)
    print(f"{'all':<8} {len(everything):>7} {p50:>7.0f} {p99:>7.0f} {p999:>7.0f} {top:>8.0f}")
    print(f"counters: {stats}")
    met = worst_p99 < GOAL_P99_SECONDS * 1e6
    print(f"goal p99 < {GOAL_P99_SECONDS * 1e6:.0f} us in every phase: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
