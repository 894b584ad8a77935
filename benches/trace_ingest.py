#!/usr/bin/env python3
"""Trace ingestion and search, osprey alone.

Sends OTLP/HTTP protobuf `ExportTraceServiceRequest`s (500 spans each:
100 traces of a training step with data_load, forward_pass, backward_pass
and optimizer_step children, the attributes and resource the Python SDK
sends) to a fresh osprey, then reports:

- spans per CPU-second of the osprey process while ingesting (the CPU
  time of the server only; the Python client's is not counted),
- bytes per span on disk in the trace blocks (and in the WAL),
- Jaeger and Tempo search latency over everything ingested (one million
  spans by default): the first call of each query (block indexes are
  already loaded by then) and the median of 10 after.

Request bodies are built once per template with the `opentelemetry-proto`
classes; each request gets fresh random trace and span IDs patched in
place, so every trace and span ID is distinct (attribute values and times
repeat across the requests made from one template).

Usage: python3 benches/trace_ingest.py [--osprey target/release/osprey]
       [--spans 1000000] [--threads 4] [--port 19210]
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from benchlib import free_port, proc_cpu_seconds, proc_memory_mib, wait_ready

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PER_REQUEST = 100
CHILDREN = ["data_load", "forward_pass", "backward_pass", "optimizer_step"]


def kv(key, value):
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def marker(i):
    return b"\xf0\x9fOSPREYTRACE" + i.to_bytes(3, "big")


def span_marker(trace, child):
    """A placeholder span ID: 8 bytes unique to (trace, child) in a body."""
    return b"\xf1S" + trace.to_bytes(3, "big") + child.to_bytes(1, "big") + b"ID"


def template(seed, now_ns):
    """One request body and the offsets of each trace's ID in it."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in [
        ("service.name", "trainer"),
        ("service.instance.id", f"worker-{seed % 8}"),
        ("host.name", f"gpu-node-{seed % 4}"),
        ("telemetry.sdk.language", "python"),
        ("telemetry.sdk.name", "opentelemetry"),
        ("telemetry.sdk.version", "1.39.1"),
    ]:
        rs.resource.attributes.append(kv(k, v))
    ss = rs.scope_spans.add()
    ss.scope.name = "train"
    ss.scope.version = "0.4.2"
    for t in range(TRACES_PER_REQUEST):
        step = seed * TRACES_PER_REQUEST + t
        start = now_ns - rng.randrange(0, 600_000_000_000)
        total = rng.randrange(50_000_000, 1_000_000_000)
        root = ss.spans.add()
        root.trace_id = marker(t)
        root.span_id = span_marker(t, 0)
        root.name = "training_step"
        root.kind = Span.SPAN_KIND_INTERNAL
        root.start_time_unix_nano = start
        root.end_time_unix_nano = start + total
        for k, v in [
            ("step", step),
            ("epoch", step // 1000),
            ("batch.size", 256),
            ("model.name", "resnet50"),
            ("loss", rng.random() * 2),
        ]:
            root.attributes.append(kv(k, v))
        offset = start
        for i, name in enumerate(CHILDREN):
            d = total // 5 + rng.randrange(0, total // 10)
            c = ss.spans.add()
            c.trace_id = marker(t)
            c.span_id = span_marker(t, i + 1)
            c.parent_span_id = root.span_id
            c.name = name
            c.kind = Span.SPAN_KIND_INTERNAL
            c.start_time_unix_nano = offset
            c.end_time_unix_nano = offset + d
            offset += d
            c.attributes.append(kv("device", f"cuda:{rng.randrange(8)}"))
            if name == "forward_pass":
                c.attributes.append(kv("tokens", rng.randrange(100_000, 200_000)))
                e = c.events.add()
                e.time_unix_nano = offset - d // 2
                e.name = "batch_loaded"
                e.attributes.append(kv("size", 256))
            if name == "backward_pass" and rng.random() < 0.02:
                c.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="nan loss"))
    body = req.SerializeToString()

    def where(m):
        found, at = [], body.find(m)
        while at >= 0:
            found.append(at)
            at = body.find(m, at + 1)
        return found

    # Each placeholder: its offsets and its length; a request writes one
    # random value into every offset of a placeholder (a root's span ID is
    # also its children's parent ID).
    offsets = []
    for t in range(TRACES_PER_REQUEST):
        found = where(marker(t))
        assert len(found) == 1 + len(CHILDREN), (t, len(found))
        offsets.append((found, 16))
        root = where(span_marker(t, 0))
        assert len(root) == 1 + len(CHILDREN), (t, len(root))
        offsets.append((root, 8))
        for i in range(len(CHILDREN)):
            offsets.append((where(span_marker(t, i + 1)), 8))
    return body, offsets


def sender(port, templates, requests, counter, errors, lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random()
    while True:
        with lock:
            if counter[0] >= requests:
                return
            counter[0] += 1
            n = counter[0]
        body, offsets = templates[n % len(templates)]
        buf = bytearray(body)
        for found, width in offsets:
            value = rng.randbytes(width)
            for at in found:
                buf[at:at + width] = value
        conn.request("POST", "/v1/traces", body=bytes(buf),
                     headers={"Content-Type": "application/x-protobuf"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            with lock:
                errors.append(r.status)


def get(port, path):
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=300) as r:
        body = r.read()
    return time.perf_counter() - t0, json.loads(body)


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--templates", type=int, default=16)
    args = ap.parse_args()
    spans_per_request = TRACES_PER_REQUEST * (1 + len(CHILDREN))
    requests = args.spans // spans_per_request
    now_ns = time.time_ns()
    templates = [template(s, now_ns) for s in range(args.templates)]
    print(f"request body: {len(templates[0][0])} bytes for {spans_per_request} spans "
          f"({len(templates[0][0]) / spans_per_request:.0f} bytes/span on the wire)")
    port = args.port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "osprey.yml")
        with open(config, "w") as f:
            f.write("global: {}\n")
        data = os.path.join(tmp, "data")
        log = open(os.path.join(tmp, "log"), "w")
        proc = subprocess.Popen([args.osprey, "server", "--data-dir", data,
                                 "--listen", f"127.0.0.1:{port}", "--config", config],
                                stdout=log, stderr=log)
        try:
            wait_ready(port)
            cpu0, t0 = proc_cpu_seconds(proc.pid), time.time()
            counter, errors, lock = [0], [], threading.Lock()
            threads = [threading.Thread(target=sender,
                                        args=(port, templates, requests, counter, errors, lock))
                       for _ in range(args.threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cpu = proc_cpu_seconds(proc.pid) - cpu0
            wall = time.time() - t0
            spans = requests * spans_per_request
            print(f"ingested {spans} spans in {wall:.1f} s wall ({spans / wall:,.0f} spans/s), "
                  f"{cpu:.1f} CPU-s of osprey: {spans / cpu:,.0f} spans per CPU-second; "
                  f"{len(errors)} non-200 answers; RSS peak {proc_memory_mib(proc.pid, 'VmHWM'):.0f} MiB")
            # Let the maintenance pass (every second) cut the full blocks.
            time.sleep(5)
            blocks_dir = os.path.join(data, "traces", "blocks")
            block_spans = block_bytes = 0
            for b in os.listdir(blocks_dir):
                meta = os.path.join(blocks_dir, b, "meta.json")
                if os.path.exists(meta):
                    block_spans += json.load(open(meta))["spans"]
                    block_bytes += os.path.getsize(os.path.join(blocks_dir, b, "spans"))
            wal = dir_bytes(os.path.join(data, "traces", "wal"))
            if block_spans:
                print(f"blocks: {block_spans} spans in {block_bytes} bytes: "
                      f"{block_bytes / block_spans:.1f} bytes/span")
            if spans > block_spans:
                print(f"WAL: {spans - block_spans} spans in {wal} bytes: "
                      f"{wal / (spans - block_spans):.1f} bytes/span")
            now_us = time.time_ns() // 1000
            start_us = now_us - 3600 * 1_000_000
            q = urllib.parse.quote
            some_trace = get(port, f"/api/traces?service=trainer&limit=1&start={start_us}&end={now_us}")[1]["data"][0]["traceID"]
            queries = [
                ("jaeger: service+operation, limit 20",
                 f"/api/traces?service=trainer&operation=forward_pass&limit=20&start={start_us}&end={now_us}"),
                ("jaeger: minDuration=950ms",
                 f"/api/traces?service=trainer&minDuration=950ms&limit=20&start={start_us}&end={now_us}"),
                ("jaeger: tags error=true",
                 f"/api/traces?service=trainer&tags={q(json.dumps({'error': 'true'}))}&limit=20&start={start_us}&end={now_us}"),
                ("jaeger: tags step=1234 (attribute scan)",
                 f"/api/traces?service=trainer&tags={q(json.dumps({'step': '1234'}))}&limit=20&start={start_us}&end={now_us}"),
                ("jaeger: trace by ID", f"/api/traces/{some_trace}"),
                ("tempo: TraceQL name+duration",
                 "/api/search?q=" + q('{resource.service.name="trainer" && name="optimizer_step" && duration>250ms}')
                 + f"&limit=20&start={now_us // 1_000_000 - 3600}&end={now_us // 1_000_000}"),
            ]
            for name, path in queries:
                first, body = get(port, path)
                warm = sorted(get(port, path)[0] for _ in range(10))
                n = len(body.get("data") or body.get("traces") or [])
                print(f"{name}: {n} traces; first {first * 1000:.0f} ms, median "
                      f"{statistics.median(warm) * 1000:.0f} ms, max {warm[-1] * 1000:.0f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
