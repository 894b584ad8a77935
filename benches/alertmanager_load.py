#!/usr/bin/env python3
"""Alert manager load: osprey beside Debian's Alertmanager on one stream.

Runs `osprey alertmanager` and `prometheus-alertmanager` with the same
config (group_by [alertname, group], group_wait 1s, group_interval 10s,
repeat_interval 1h, one webhook receiver each, pointing at one loopback
sink under different paths). Then posts A active alerts (default 10,000)
spread over G groups (default 1,000) to both, in batches of 64 as
Prometheus's notifier does, and re-posts all of them every 15 s (the rule
engine's resend interval) for the measured window.

Reports per implementation: notifications received, groups notified,
notification latency per group (first notification time minus the time
the group's first alert was posted; group_wait is 1 s of that) as p50 /
p99 / max, CPU seconds (utime + stime from /proc) over the whole run, and
peak RSS.

Usage: python3 benches/alertmanager_load.py [--alerts 10000] [--groups 1000]
       [--seconds 60] [--osprey target/release/osprey]
"""

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import free_port, proc_cpu_seconds, proc_memory_mib

BATCH = 64
RESEND = 15



class Sink(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Both alert managers flush ~1,000 groups within a second or two; the
    # default listen backlog (5) would refuse most of those connections
    # and measure retries instead of notification latency.
    request_queue_size = 4096

    def __init__(self, addr):
        super().__init__(addr, SinkHandler)
        self.lock = threading.Lock()
        self.first = {}  # (impl, groupKey) -> receive time
        self.count = {}  # impl -> notifications


class SinkHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        now = time.time()
        impl = self.path.strip("/")
        try:
            group = json.loads(body)["groupLabels"].get("group", "")
        except Exception:
            group = ""
        with self.server.lock:
            self.server.count[impl] = self.server.count.get(impl, 0) + 1
            self.server.first.setdefault((impl, group), now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def config(sink_port, impl):
    return f"""
route:
  receiver: hook
  group_by: [alertname, group]
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: 'http://127.0.0.1:{sink_port}/{impl}'}}]
"""


def wait_ready(port):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"port {port} did not become ready")




def post(port, alerts):
    body = json.dumps(alerts).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--alertmanager", default=shutil.which("prometheus-alertmanager") or "")
    args = ap.parse_args()
    if not args.alertmanager:
        raise SystemExit("prometheus-alertmanager not found (apt-get install prometheus-alertmanager)")

    sink = Sink(("127.0.0.1", 0))
    sink_port = sink.server_address[1]
    threading.Thread(target=sink.serve_forever, daemon=True).start()

    tmp = tempfile.mkdtemp(prefix="am-load-")
    procs = {}
    ports = {}
    for impl in ("osprey", "alertmanager"):
        path = os.path.join(tmp, f"{impl}.yml")
        with open(path, "w") as f:
            f.write(config(sink_port, impl))
        port = free_port()
        ports[impl] = port
        data = os.path.join(tmp, f"{impl}-data")
        log = open(os.path.join(tmp, f"{impl}.log"), "w")
        if impl == "osprey":
            cmd = [args.osprey, "alertmanager", "--config", path,
                   "--listen", f"127.0.0.1:{port}", "--data-dir", data]
        else:
            cmd = [args.alertmanager, f"--config.file={path}", f"--storage.path={data}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                   "--log.level=warn"]
        procs[impl] = subprocess.Popen(cmd, stdout=log, stderr=log)
    for impl in procs:
        wait_ready(ports[impl])
    cpu_start = {impl: proc_cpu_seconds(p.pid) for impl, p in procs.items()}

    per_group = max(1, args.alerts // args.groups)
    ends = time.time() + 3600
    alerts = []
    for i in range(args.alerts):
        group = i // per_group
        alerts.append({
            "labels": {"alertname": "LoadTest", "group": f"g{group:04d}",
                       "instance": f"i{i:05d}", "severity": "warning"},
            "annotations": {"summary": f"alert {i} of the load test"},
            "endsAt": rfc3339(ends),
        })

    posted_at = {}  # group -> time its first alert was posted (to both)
    start = time.time()
    last_pass = None
    passes = 0
    first_pass = None
    while True:
        pass_start = time.time()
        for b in range(0, len(alerts), BATCH):
            batch = alerts[b:b + BATCH]
            now = time.time()
            for a in batch:
                posted_at.setdefault(a["labels"]["group"], now)
            # Alternate who goes first so neither side is always ahead.
            order = ("osprey", "alertmanager") if (b // BATCH) % 2 == 0 else ("alertmanager", "osprey")
            for impl in order:
                post(ports[impl], batch)
        passes += 1
        last_pass = time.time() - pass_start
        if first_pass is None:
            first_pass = last_pass
        if time.time() - start >= args.seconds:
            break
        time.sleep(max(0.0, RESEND - (time.time() - pass_start)))
    time.sleep(3)

    print(f"{args.alerts} alerts in {args.groups} groups, {passes} posting passes "
          f"(first took {first_pass:.1f}s, last {last_pass:.1f}s), {time.time() - start:.0f}s run")
    print(f"{'':14}{'notifications':>14}{'groups':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU s':>8}{'RSS MiB':>9}")
    for impl, p in procs.items():
        cpu = proc_cpu_seconds(p.pid) - cpu_start[impl]
        rss = proc_memory_mib(p.pid, "VmHWM")
        latencies = []
        with sink.lock:
            for (who, group), t in sink.first.items():
                if who == impl and group in posted_at:
                    latencies.append((t - posted_at[group]) * 1000)
            count = sink.count.get(impl, 0)
        print(f"{impl:14}{count:>14}{len(latencies):>8}{percentile(latencies, 50):>9.0f}"
              f"{percentile(latencies, 99):>9.0f}{max(latencies or [0]):>9.0f}{cpu:>8.2f}{rss:>9.1f}")
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        p.wait(timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
