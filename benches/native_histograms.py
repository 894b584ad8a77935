#!/usr/bin/env python3
"""Native histograms: bytes per sample on disk, osprey against Prometheus 2.42.

Generates --series latency histograms (integer native histograms, schema
--schema, default 3 as client libraries use) scraped every 15 s over
--hours hours (default 12): each interval adds about 200 observations
drawn from a log-normal latency (median 50 ms), so buckets appear early
and then grow by a few counts a scrape; every series restarts (a counter
reset) every 5 hours. The same remote-write 1.0 requests (one per 15
minutes of data, all series) go to:

  (a) osprey (`osprey server`, debug or release build);
  (b) Prometheus 2.42 (`--enable-feature=native-histograms
      --web.enable-remote-write-receiver --web.enable-admin-api`).

Then each writes a snapshot that includes its head (`POST
/api/v1/admin/tsdb/snapshot`), so every sample is in a block in both, and
the script reports, over the snapshot's blocks, the chunk bytes (the
`chunks/` segment files) and the whole block bytes per sample (samples
from each block's `meta.json`). Each server runs alone, one after the
other.

Usage: python3 benches/native_histograms.py [--series 100] [--hours 12]
       [--schema 3] [--osprey target/debug/osprey] [--keep DIR]

Results (2026-12-05, this machine, debug build of osprey, defaults:
100 series, 12 h, 288,100 samples, about 57 buckets a histogram):

  store          samples     chunk B  B/sample     block B  B/sample
  osprey          288100     6957117     24.15     6976645     24.22
  prometheus      288100    11539941     40.06    11605929     40.28
  osprey / prometheus, chunk bytes per sample: 0.603; whole blocks: 0.601

With --schema 5 --series 40 --hours 6 (57,640 samples, about 230
buckets): osprey 54.75 chunk bytes a sample, Prometheus 98.61: 0.555.

The goal was at most 0.7 (0.726 before whole-number bucket counts became
one Rice-coded bit stream, docs/format/chunks.md). What is left is mostly
the entropy of the data: the sum is a full-precision float (about 6.6
bytes a sample), and each of ~57 buckets grows by a Poisson-distributed
few counts a scrape (about 2.5 bits each).
"""

import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_ready  # noqa: E402

INTERVAL_MS = 15_000


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def key(field, wire):
    return uvarint((field << 3) | wire)


def length_delimited(field, body):
    return key(field, 2) + uvarint(len(body)) + body


def snappy_literal(raw):
    """A valid snappy block of literals only (no compression needed)."""
    out = bytearray(uvarint(len(raw)))
    for i in range(0, len(raw), 60000):
        chunk = raw[i:i + 60000]
        out.append(61 << 2)
        out += struct.pack("<H", len(chunk) - 1)
        out += chunk
    return bytes(out)


def spans_of(indexes):
    """Spans (offset, length) and the ordered index list of a sorted set."""
    spans = []
    previous_end = None
    for i in indexes:
        if previous_end is not None and i == previous_end:
            spans[-1][1] += 1
        else:
            offset = i if previous_end is None else i - previous_end
            spans.append([offset, 1])
        previous_end = i + 1
    return spans


def histogram_message(t, schema, counts, total, total_sum):
    """prometheus.Histogram with integer counts and bucket deltas."""
    indexes = sorted(counts)
    body = key(1, 0) + uvarint(total)
    body += key(3, 1) + struct.pack("<d", total_sum)
    body += key(4, 0) + uvarint(zigzag(schema))
    body += key(5, 1) + struct.pack("<d", 2.0 ** -128)
    body += key(6, 0) + uvarint(0)
    for offset, length in spans_of(indexes):
        span = key(1, 0) + uvarint(zigzag(offset)) + key(2, 0) + uvarint(length)
        body += length_delimited(11, span)
    deltas = bytearray()
    previous = 0
    for i in indexes:
        deltas += uvarint(zigzag(counts[i] - previous))
        previous = counts[i]
    body += length_delimited(12, bytes(deltas))
    body += key(15, 0) + uvarint(t)
    return body


def generate(series, hours, schema, end_ms, seed=42):
    """Yields (request_end_ms, [(labels, [(t, message bytes)])]) per 15 min."""
    rng = random.Random(seed)
    n_samples = hours * 3600 * 1000 // INTERVAL_MS
    start = end_ms - n_samples * INTERVAL_MS
    state = []
    for s in range(series):
        state.append({
            "labels": [("__name__", "http_request_duration_seconds"), ("job", "api"),
                       ("instance", f"pod-{s}"), ("route", f"/v1/predict/{s % 7}")],
            "counts": {}, "total": 0, "sum": 0.0,
            "median": 0.02 + 0.06 * rng.random(),
            "rate": 100 + rng.randrange(200),
            "reset_every": 5 * 3600 * 1000 // INTERVAL_MS,
            "phase": rng.randrange(1000),
        })
    per_request = 15 * 60 * 1000 // INTERVAL_MS
    batch = [[] for _ in range(series)]
    scale = 2 ** schema
    for k in range(n_samples + 1):
        t = start + k * INTERVAL_MS
        for s, st in enumerate(state):
            if (k + st["phase"]) % st["reset_every"] == 0 and k > 0:
                st["counts"], st["total"], st["sum"] = {}, 0, 0.0
            n = max(0, int(rng.gauss(st["rate"], math.sqrt(st["rate"]))))
            for _ in range(n):
                v = rng.lognormvariate(math.log(st["median"]), 0.6)
                index = math.ceil(math.log2(v) * scale)
                st["counts"][index] = st["counts"].get(index, 0) + 1
                st["sum"] += v
            st["total"] += n
            batch[s].append((t, histogram_message(t, schema, st["counts"], st["total"], st["sum"])))
        if (k + 1) % per_request == 0 or k == n_samples:
            yield t, [(state[s]["labels"], batch[s]) for s in range(series)]
            batch = [[] for _ in range(series)]


def request_body(batch):
    out = bytearray()
    for labels, samples in batch:
        ts = b""
        for name, value in labels:
            ts += length_delimited(1, length_delimited(1, name.encode()) + length_delimited(2, value.encode()))
        for _, message in samples:
            ts += length_delimited(4, message)
        out += length_delimited(1, ts)
    return snappy_literal(bytes(out))


def post(url, body, headers):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as r:
        return r.status, r.read()


def run_server(name, command, port, data_dir, snapshot_root, bodies):
    log = open(os.path.join(os.path.dirname(data_dir), f"{name}.log"), "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, deadline=120)
        base = f"http://127.0.0.1:{port}"
        samples = 0
        for body, n in bodies:
            status, answer = post(base + "/api/v1/write", body, {
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            if status // 100 != 2:
                raise RuntimeError(f"{name}: remote write answered {status}: {answer[:300]}")
            samples += n
        status, answer = post(base + "/api/v1/admin/tsdb/snapshot", b"", {})
        snapshot = json.loads(answer)["data"]["name"]
        return samples, os.path.join(snapshot_root, snapshot)
    finally:
        process.terminate()
        process.wait(timeout=120)
        log.close()


def block_sizes(snapshot_dir):
    """(chunk bytes, block bytes, samples) over the blocks of a snapshot."""
    chunk_bytes = block_bytes = samples = 0
    for entry in sorted(os.listdir(snapshot_dir)):
        block = os.path.join(snapshot_dir, entry)
        meta_path = os.path.join(block, "meta.json")
        if not os.path.isfile(meta_path):
            continue
        with open(meta_path) as f:
            meta = json.load(f)
        stats = meta.get("stats", {})
        samples += stats.get("numSamples", stats.get("num_samples", 0))
        for root, _, files in os.walk(block):
            for file in files:
                size = os.path.getsize(os.path.join(root, file))
                block_bytes += size
                if os.path.basename(root) == "chunks":
                    chunk_bytes += size
    return chunk_bytes, block_bytes, samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--schema", type=int, default=3)
    parser.add_argument("--osprey", default="target/debug/osprey")
    parser.add_argument("--prometheus", default="prometheus")
    parser.add_argument("--keep", default=None, help="keep the data here")
    args = parser.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="nhist-bench-")
    os.makedirs(work, exist_ok=True)
    end_ms = (int(time.time()) - 600) * 1000
    bodies = []
    for _, batch in generate(args.series, args.hours, args.schema, end_ms):
        bodies.append((request_body(batch), sum(len(s) for _, s in batch)))
    total = sum(n for _, n in bodies)
    print(f"{args.series} series, {total} histogram samples, "
          f"{sum(len(b) for b, _ in bodies)} bytes of requests")

    results = {}
    port = free_port()
    data = os.path.join(work, "osprey", "data")
    os.makedirs(data, exist_ok=True)
    # A config of its own, so osprey scrapes nothing (not even itself).
    osprey_config = os.path.join(work, "osprey", "osprey.yml")
    with open(osprey_config, "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")
    samples, snapshot = run_server(
        "osprey", [args.osprey, "server", "--config", osprey_config, "--data-dir", data,
                   "--listen", f"127.0.0.1:{port}"],
        port, data, os.path.join(data, "snapshots"), bodies)
    results["osprey"] = block_sizes(snapshot)

    port = free_port()
    data = os.path.join(work, "prometheus", "data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(work, "prometheus", "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")
    samples, snapshot = run_server(
        "prometheus", [args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                       f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
                       "--web.enable-admin-api", "--enable-feature=native-histograms"],
        port, data, os.path.join(data, "snapshots"), bodies)
    results["prometheus"] = block_sizes(snapshot)

    print(f"{'store':<12}{'samples':>10}{'chunk B':>12}{'B/sample':>10}{'block B':>12}{'B/sample':>10}")
    for name, (chunks, blocks, n) in results.items():
        print(f"{name:<12}{n:>10}{chunks:>12}{chunks / max(n, 1):>10.2f}{blocks:>12}{blocks / max(n, 1):>10.2f}")
    o, p = results["osprey"], results["prometheus"]
    if o[2] and p[2]:
        print(f"osprey / prometheus, chunk bytes per sample: "
              f"{(o[0] / o[2]) / (p[0] / p[2]):.3f}; whole blocks: {(o[1] / o[2]) / (p[1] / p[2]):.3f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
