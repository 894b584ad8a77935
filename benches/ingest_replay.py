#!/usr/bin/env python3
"""Remote-write ingest CPU, one osprey build against another.

Replays the remote-write bodies that `bench.py --keep --workdir W` left in
W/<run>/rw (snappy protobuf, one file per sender with a manifest) into a
fresh server of each build in turn, 8 connections at once as bench.py
sends them, and prints the server's CPU seconds and wall time per run.
Builds alternate run by run (A, B, A, B, ...), so a noisy machine hits
them alike; compare the CPU seconds, not one run.

bench.py measures osprey against VictoriaMetrics; this isolates a change
to osprey's own ingest path (the reference is the other build), and takes
about 10 s a run at the standard size where bench.py takes minutes.

With --text W/<run>/text-ms it posts the run's text files to the text
import endpoint instead, two at once (bench.py's text import).

Usage: python3 benches/ingest_replay.py (--rw DIR | --text DIR)
       [--rounds 4] [--perf FILE] BINARY [BINARY ...]

Results (2026-12-06, this 2-core machine, standard size: 7,680 bodies,
22.8 M samples, 47,568 series, server CPU seconds per run):
  the label hash folding 16 bytes a step (9b2ebe7): 17.21, 16.79 ->
  14.75, 15.19; batched lookups with overlapped cache misses (c1b80ec):
  15.80, 14.37, 14.46, 14.36 -> 14.19, 14.39, 14.20, 14.24.
Text import (2026-12-06, 104 files, 22.8 M samples): a huge-page mapping
for large bodies (450e2ae) 9.30 -> 8.09 s; staged runs of one series
(2f2378d) 7.57 -> 6.51 s.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from benchlib import fresh_osprey, proc_cpu_seconds, proc_memory_mib

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def load_shards(rw_dir):
    """Each sender's bodies, in order, as (bytes, samples) pairs."""
    with open(os.path.join(rw_dir, "manifest.json")) as f:
        manifest = json.load(f)
    shards = []
    for shard in manifest["shards"]:
        with open(os.path.join(rw_dir, shard["file"]), "rb") as f:
            data = f.read()
        shards.append([(data[o:o + n], samples) for o, n, samples in shard["bodies"]])
    return shards


def send(port, shards):
    """Sends every shard's bodies over its own connection, all at once;
    returns the number of answers other than 204."""
    failures = [0] * len(shards)

    def worker(index, bodies):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for body, _ in bodies:
            conn.request("POST", "/api/v1/write", body=body, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                failures[index] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(failures)


def send_text(port, paths, concurrency=2):
    """Posts each text file to /api/v1/import/prometheus, `concurrency`
    requests at once as bench.py's text import does; returns the number of
    answers other than 204."""
    queue = list(paths)
    lock = threading.Lock()
    failures = [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if not queue:
                    break
                path = queue.pop(0)
            with open(path, "rb") as f:
                body = f.read()
            conn.request("POST", "/api/v1/import/prometheus", body=body,
                         headers={"Content-Type": "text/plain"})
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                with lock:
                    failures[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures[0]


def idle(pid, max_wait=30.0, window=1.0, threshold=0.05):
    """Waits until `pid` uses under `threshold` cores over `window` seconds,
    at most `max_wait` seconds (bench.py's settling before it reads RSS)."""
    end = time.time() + max_wait
    while time.time() < end:
        before = proc_cpu_seconds(pid)
        time.sleep(window)
        if proc_cpu_seconds(pid) - before <= threshold * window:
            return


def head_series(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/api/v1/status/tsdb")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body["data"]["headStats"]["numSeries"]


class Text:
    """The text files of a kept bench.py run (its text-ms folder)."""

    def __init__(self, folder):
        self.paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))


def run_once(binary, shards, perf_file=None, rss=False, hold=0):
    with fresh_osprey(binary, "ingest-replay-") as (server, port, _):
        time.sleep(1)
        perf = None
        if perf_file:
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(server.pid), "-o", perf_file],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        try:
            cpu0, wall0 = proc_cpu_seconds(server.pid), time.perf_counter()
            if isinstance(shards, Text):
                failures = send_text(port, shards.paths)
            else:
                failures = send(port, shards)
            cpu1, wall1 = proc_cpu_seconds(server.pid), time.perf_counter()
            mem = None
            if rss:
                idle(server.pid)
                resident = proc_memory_mib(server.pid) * 2**20
                peak = proc_memory_mib(server.pid, "VmHWM") * 2**20
                mem = (resident, peak, head_series(port))
            if hold:
                print(f"  holding server pid {server.pid} port {port} for {hold} s", flush=True)
                time.sleep(hold)
            return cpu1 - cpu0, wall1 - wall0, failures, mem
        finally:
            if perf:
                perf.send_signal(2)
                perf.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rw", help="the rw folder of a kept bench.py run")
    ap.add_argument("--text", help="instead of --rw: the text-ms folder of a kept bench.py run, "
                                   "posted to the text import endpoint two files at once")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--perf", help="record a profile of the first build's first run here")
    ap.add_argument("--rss", action="store_true",
                    help="after each run, wait until the server is idle (at most 30 s, as "
                         "bench.py does) and print its resident bytes per head series")
    ap.add_argument("--hold", type=int, default=0,
                    help="keep each server this many seconds after its run, for inspection")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    if args.text:
        shards = Text(args.text)
        print(f"{len(shards.paths)} text files, two requests at once")
    elif args.rw:
        shards = load_shards(args.rw)
        samples = sum(n for bodies in shards for _, n in bodies)
        print(f"{sum(len(b) for b in shards)} bodies, {samples:,} samples, {len(shards)} connections")
    else:
        ap.error("one of --rw and --text is needed")
    cpu = {b: [] for b in args.binaries}
    rss = {b: [] for b in args.binaries}
    for round_ in range(args.rounds):
        for binary in args.binaries:
            perf = args.perf if round_ == 0 and binary == args.binaries[0] else None
            seconds, wall, failures, mem = run_once(binary, shards, perf, args.rss, args.hold)
            cpu[binary].append(seconds)
            line = f"  {os.path.basename(binary):24s} cpu {seconds:6.2f} s  wall {wall:6.2f} s"
            if mem:
                resident, peak, series = mem
                per = resident / series if series else 0
                line += f"  rss {resident / 2**20:7.1f} MiB ({per:.0f} B/series of {series:,})" \
                        f"  peak {peak / 2**20:7.1f} MiB"
                rss[binary].append(per)
            if failures:
                line += f"  {failures} answers other than 204"
            print(line, flush=True)
    for binary, runs in cpu.items():
        runs = sorted(runs)
        print(f"{os.path.basename(binary):24s} median cpu {statistics.median(runs):.2f} s "
              f"({', '.join(f'{r:.2f}' for r in runs)})"
              + (f", rss {statistics.median(rss[binary]):.0f} B/series" if rss[binary] else ""))


if __name__ == "__main__":
    sys.exit(main())
