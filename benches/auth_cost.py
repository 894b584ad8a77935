#!/usr/bin/env python3
"""The cost of authentication: osprey open beside osprey with a web config.

Runs two `osprey server`s at once on loopback, one without a web config
(everybody is an admin, as Prometheus without one) and one with
`basic_auth_users` (bcrypt cost --cost) and a bearer token. Clients then
scrape `/metrics` over keep-alive connections, as a Prometheus scraping
osprey does, in rounds that alternate the servers so machine noise hits
both alike. Reported per mode: the server's CPU microseconds per request
(from /proc) and the requests per second the clients saw.

  open      no web config, no credentials         (the reference)
  basic     basic auth, the right password        (bcrypt once, then cached)
  bearer    a bearer token
  bcrypt    basic auth, a wrong password          (bcrypt on every request)

The `bcrypt` mode measures what a request costs when verification is not
cached: one bcrypt per request. The goal (issue 18): `basic` and `bearer`
within 5 % of `open`.

Usage: python3 benches/auth_cost.py [--osprey target/release/osprey]
       [--seconds 10] [--rounds 3] [--clients 4] [--cost 10]
       [--path /metrics]
"""

import argparse
import base64
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import free_port, proc_cpu_seconds, wait_ready

TOKEN = "bench-token-0123456789abcdef"


def bcrypt_hash(password, cost):
    try:
        import bcrypt
    except ImportError:
        sys.exit("needs the Python bcrypt module: pip install bcrypt")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def start(osprey, data_dir, port, web_config, log):
    args = [osprey, "server", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"]
    if web_config:
        args += ["--web.config.file", web_config]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)


def load(port, path, headers, seconds, clients):
    """Requests answered by `port` within `seconds` from `clients` threads
    on keep-alive connections; fails on an unexpected status."""
    counts = [0] * clients
    statuses = set()
    stop = time.time() + seconds

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.time() < stop:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses.add(response.status)
            counts[i] += 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), statuses


def measure(proc, port, path, headers, seconds, clients):
    cpu0 = proc_cpu_seconds(proc.pid)
    t0 = time.time()
    n, statuses = load(port, path, headers, seconds, clients)
    elapsed = time.time() - t0
    cpu = proc_cpu_seconds(proc.pid) - cpu0
    return {"requests": n, "us_per_request": cpu / max(n, 1) * 1e6, "rps": n / elapsed,
            "statuses": sorted(statuses)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--cost", type=int, default=10, help="bcrypt cost of the hashes")
    ap.add_argument("--path", default="/metrics")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="osprey-auth-bench-")
    web = os.path.join(tmp, "web.yml")
    with open(web, "w") as f:
        f.write("basic_auth_users:\n")
        f.write(f"  bench: '{bcrypt_hash('bench-password', args.cost)}'\n")
        f.write(f"bearer_tokens:\n  - name: bench-token\n    token: {TOKEN}\n    role: viewer\n")
    procs = []
    try:
        open_port, auth_port = free_port(), free_port()
        log = open(os.path.join(tmp, "servers.log"), "w")
        open_proc = start(args.osprey, os.path.join(tmp, "open"), open_port, None, log)
        procs.append(open_proc)
        auth_proc = start(args.osprey, os.path.join(tmp, "auth"), auth_port, web, log)
        procs.append(auth_proc)
        wait_ready(open_port)
        wait_ready(auth_port)

        def basic(password):
            token = base64.b64encode(f"bench:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}

        modes = [
            ("open", open_proc, open_port, {}, 200),
            ("basic", auth_proc, auth_port, basic("bench-password"), 200),
            ("bearer", auth_proc, auth_port, {"Authorization": f"Bearer {TOKEN}"}, 200),
            ("bcrypt", auth_proc, auth_port, basic("wrong-password"), 401),
        ]
        results = {name: [] for name, *_ in modes}
        # Warm up: page caches, the password cache, the first scrape.
        for name, proc, port, headers, _ in modes:
            load(port, args.path, headers, 1, args.clients)
        for r in range(args.rounds):
            order = modes if r % 2 == 0 else list(reversed(modes))
            for name, proc, port, headers, want in order:
                seconds = args.seconds if name != "bcrypt" else max(args.seconds / 2, 2)
                m = measure(proc, port, args.path, headers, seconds, args.clients)
                if m["statuses"] != [want]:
                    sys.exit(f"{name}: statuses {m['statuses']}, expected {want}")
                results[name].append(m)

        print(f"osprey {args.osprey}, {args.clients} clients, GET {args.path}, "
              f"{args.rounds} rounds of {args.seconds:g} s, bcrypt cost {args.cost}")
        print(f"{'mode':8} {'CPU us/request':>15} {'requests/s':>11} {'vs open':>8}  rounds (us/request)")
        ref = statistics.median(m["us_per_request"] for m in results["open"])
        for name, *_ in modes:
            us = statistics.median(m["us_per_request"] for m in results[name])
            rps = statistics.median(m["rps"] for m in results[name])
            rounds = " ".join(f"{m['us_per_request']:.0f}" for m in results[name])
            print(f"{name:8} {us:15.1f} {rps:11.0f} {100 * (us - ref) / ref:+7.1f}%  {rounds}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
