#!/usr/bin/env python3
"""Rule evaluation cost of 50 SLOs, osprey beside Prometheus, on the standard bench data.

The data is the shared harness's standard profile (../shared/bench/bench.py:
48 simulated GPU inference hosts, 2 h at 15 s), its inference-API series:
http_requests_total, http_request_duration_seconds, model_predictions_total
and model_inference_duration_seconds, which the SLOs read (the node and
DCGM series no SLO reads are left out, to keep the generated input small).
Both servers take the same samples by remote write, ending about a minute
before the measurement, so every window from 5m to 3d holds data.

50 SLOs over that data (availability and latency per handler, per cluster
and overall, generation success and inference latency per model; rolling
30d, 28d, 7d and 90d, calendar months and quarters; latency thresholds
between buckets; low-traffic protection on some) are turned into one rule
file by `osprey slo generate`, which both servers load with the same
evaluation interval (15 s) by a reload after an idle baseline.

Reported per server: CPU seconds per evaluation round (the process's
utime+stime over the measured rounds, less its idle rate), and the
evaluation time per round: the sum over the SLO groups of each group's
median (and worst) evaluationTime over the measured rounds, from
/api/v1/rules (groups run at different offsets within the interval, so
a round is not one timestamp), with the rule count and unhealthy rules.
Last, the values both servers recorded for the same SLOs (1h SLI, both
budgets) are compared: they differ only where Prometheus 2's closed
range windows and osprey's left-open ones (Prometheus 3's) read a
different sample at a window's start.

Usage: python3 benches/slo_eval.py [--osprey target/release/osprey]
       [--prometheus prometheus] [--bench ../shared/bench] [--rounds 8]
       [--profile standard]
"""

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from benchlib import free_port, proc_cpu_seconds, wait_ready

INTERVAL = 15
API_FAMILIES = {"http_requests", "http_request_duration_seconds", "model_predictions",
                "model_inference_duration_seconds"}


def load_harness(path):
    sys.path.insert(0, os.path.abspath(path))
    import bench  # noqa: E402  (the shared harness, found on --bench)
    return bench


def slo_specs():
    """50 SLOs in Sloth's format (with osprey's extensions) over the bench data."""
    handlers = ["/v1/predict", "/v1/embed", "/v1/batch", "/v1/models", "/v1/feedback", "/healthz", "/metrics"]
    clusters = ["serve-eu-1", "serve-us-1", "serve-ap-1"]
    models = [("resnet50", "v3"), ("resnet50", "v4"), ("bert-base", "v12"), ("llama-3-8b", "v1"),
              ("whisper-small", "v2")]
    buckets = "[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]"
    periods = ["30d", "30d", "28d", "7d", "90d", "month", "quarter"]
    slos = []

    def add(name, objective, sli, period, extra=""):
        slos.append(f"""  - name: {name}
    objective: {objective}
    sli:
{sli}    alerting:
      name: {''.join(p.capitalize() for p in name.replace('.', '-').split('-'))}Burn
      page_alert:
        labels:
          severity: page
      ticket_alert:
        labels:
          severity: ticket
    osprey:
      period: {period}
{extra}""")

    def selector(*matchers):
        return "{" + ",".join(('job="inference-api"',) + matchers) + "}"

    def events(matchers, bad, metric="http_requests_total"):
        return (f"""      events:
        error_query: sum(rate({metric}{selector(*matchers, bad)}[{{{{.window}}}}]))
        total_query: sum(rate({metric}{selector(*matchers)}[{{{{.window}}}}]))
""")

    def latency(histogram, matchers, threshold):
        return (f"""      latency:
        histogram: {histogram}
        selector: '{selector(*matchers)}'
        threshold: {threshold}
        buckets: {buckets}
""")

    n = 0
    for h in handlers:  # 7 availability, 14 latency
        key = h.strip("/").replace("/", "-")
        on = (f'handler="{h}"',)
        add(f"{key}-availability", 99.5, events(on, 'status=~"5.."'), periods[n % 7],
            "      min_events: 100\n" if n % 3 == 0 else "")
        n += 1
        add(f"{key}-latency-300ms", 95, latency("http_request_duration_seconds", on, 0.3), periods[n % 7])
        n += 1
        add(f"{key}-latency-2s", 99, latency("http_request_duration_seconds", on, 2), periods[n % 7],
            "      budget_method: events\n")
        n += 1
    for c in clusters:  # 3 availability, 3 latency, 3 not throttled
        on = (f'cluster="{c}"',)
        add(f"{c}-availability", 99.9, events(on, 'status=~"5.."'), periods[n % 7])
        n += 1
        add(f"{c}-latency-1s", 99, latency("http_request_duration_seconds", on, 1), periods[n % 7])
        n += 1
        add(f"{c}-not-throttled", 99, events(on, 'status="429"'), periods[n % 7], "      min_events: 500\n")
        n += 1
    for model, version in models:  # 5 generation success, 5 inference latency
        on = (f'model="{model}"', f'version="{version}"')
        add(f"{model}-{version}-generation", 95, events(on, 'outcome="error"', "model_predictions_total"),
            periods[n % 7], "      budget_method: events\n")
        n += 1
        add(f"{model}-{version}-inference-latency", 99,
            latency("model_inference_duration_seconds", on, 0.75), periods[n % 7])
        n += 1
    for c in clusters:  # 3 generation success per cluster
        add(f"{c}-generation", 99, events((f'cluster="{c}"',), 'outcome="error"', "model_predictions_total"), "30d")
    add("all-generation", 99, events((), 'outcome="error"', "model_predictions_total"), "28d")
    add("all-availability", 99.9, events((), 'status=~"5.."'), "30d")
    add("all-latency-2s", 99, latency("http_request_duration_seconds", (), 2), "30d")
    add("predict-embed-availability", 99.9, events(('handler=~"/v1/predict|/v1/embed"',), 'status=~"5.."'), "28d")
    add("predict-latency-500ms", 90, latency("http_request_duration_seconds", ('handler="/v1/predict"',), 0.5),
        "30d")
    add("embed-latency-100ms", 90, latency("http_request_duration_seconds", ('handler="/v1/embed"',), 0.1), "month")
    add("batch-latency-5s", 95, latency("http_request_duration_seconds", ('handler="/v1/batch"',), 5), "quarter")
    text = 'version: "prometheus/v1"\nservice: inference-api\nslos:\n' + "".join(slos)
    return text, len(slos)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
        return json.load(r)


def group_times(port):
    out = {}
    for g in get(port, "/api/v1/rules")["data"]["groups"]:
        bad = sum(1 for r in g["rules"] if r.get("health") != "ok")
        out[g["name"]] = (g["evaluationTime"], g["lastEvaluation"], len(g["rules"]), bad)
    return out


def post(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--osprey", default=os.environ.get("OSPREY_BIN", "target/release/osprey"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"),
                    help="folder of the shared harness (bench.py)")
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--rounds", type=int, default=8, help="evaluation rounds measured")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    bench = load_harness(args.bench)
    cramjam = bench.ensure_cramjam()
    cfg = bench.parse_args(["--profile", args.profile])
    work = tempfile.mkdtemp(prefix="osprey-slo-eval-")
    procs = {}
    try:
        spec_text, n_slos = slo_specs()
        spec = os.path.join(work, "slos.yml")
        with open(spec, "w") as f:
            f.write(spec_text)
        rules = os.path.join(work, "slo-rules.yml")
        subprocess.run([args.osprey, "slo", "generate", "-o", rules, spec], check=True)
        with open(rules) as f:
            n_rules = sum(1 for line in f if line.startswith("  - record:") or line.startswith("  - alert:"))

        t0 = time.time()
        with open(cfg.node_template) as f:
            template = f.read()
        ds = bench.build_dataset(cfg, template)
        ds.series = [s for s in ds.series if s.family in API_FAMILIES]
        ds.n_series = len(ds.series)
        ds.n_samples = ds.n_series * ds.points
        man = bench.write_remote_write_bodies(ds, cfg, os.path.join(work, "rw"), cramjam, cfg.gen_jobs)
        shards = bench.load_bodies(os.path.join(work, "rw"))
        print(f"data: {ds.n_series} inference-API series x {ds.points} points at {cfg.interval:g}s "
              f"({ds.n_samples} samples, {args.profile} profile), generated in {time.time() - t0:.0f}s",
              flush=True)

        conf = os.path.join(work, "config.yml")
        empty = os.path.join(work, "empty.yml")
        with open(empty, "w") as f:
            f.write("groups: []\n")
        with open(conf, "w") as f:
            f.write(f"global:\n  evaluation_interval: {INTERVAL}s\nrule_files: [active-rules.yml]\n")
        shutil.copy(empty, os.path.join(work, "active-rules.yml"))
        ports = {"prometheus": free_port(), "osprey": free_port()}
        devnull = subprocess.DEVNULL
        procs["prometheus"] = subprocess.Popen(
            [args.prometheus, f"--config.file={conf}", f"--storage.tsdb.path={work}/prom",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--web.enable-lifecycle",
             "--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=30d"],
            stdout=devnull, stderr=open(os.path.join(work, "prometheus.log"), "wb"))
        procs["osprey"] = subprocess.Popen(
            [args.osprey, "server", "--config", conf, "--data-dir", f"{work}/osprey",
             "--listen", f"127.0.0.1:{ports['osprey']}"],
            stdout=devnull, stderr=open(os.path.join(work, "osprey.log"), "wb"))
        for name in procs:
            wait_ready(ports[name])
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                   "X-Prometheus-Remote-Write-Version": "0.1.0"}
        for name in procs:
            t1 = time.time()
            res = bench.send_bodies(ports[name], "/api/v1/write", shards, headers)
            print(f"{name}: ingested {res.get('samples', '?')} samples in {time.time() - t1:.1f}s "
                  f"(rejected {res.get('rejected_samples', res.get('errors', 0))})", flush=True)
        data_end = ds.end_ms / 1000.0

        # Idle baseline, then the SLO rules by a reload.
        idle_s = 2 * INTERVAL
        cpu0 = {n: proc_cpu_seconds(p.pid) for n, p in procs.items()}
        time.sleep(idle_s)
        idle_rate = {n: (proc_cpu_seconds(p.pid) - cpu0[n]) / idle_s for n, p in procs.items()}
        shutil.copy(rules, os.path.join(work, "active-rules.yml"))
        for name in procs:
            post(ports[name], "/-/reload")
        time.sleep(2 * INTERVAL + 2)  # two warm-up rounds
        cpu1 = {n: proc_cpu_seconds(p.pid) for n, p in procs.items()}
        t_start = time.time()
        rounds = {n: {} for n in procs}
        while time.time() - t_start < args.rounds * INTERVAL:
            time.sleep(INTERVAL / 3)
            for n in procs:
                for g, (et, last, nr, bad) in group_times(ports[n]).items():
                    rounds[n].setdefault(last, {})[g] = (et, nr, bad)
        elapsed = time.time() - t_start
        cpu2 = {n: proc_cpu_seconds(p.pid) for n, p in procs.items()}
        print(f"\n{n_slos} SLOs, {n_rules} rules in {n_slos * 4} groups (osprey slo generate), "
              f"evaluated every {INTERVAL}s; {elapsed:.0f}s measured, "
              f"{time.time() - data_end:.0f}s after the data's last sample")
        summary = {}
        for n in procs:
            n_rounds = elapsed / INTERVAL
            cpu = (cpu2[n] - cpu1[n] - idle_rate[n] * elapsed) / n_rounds
            # Each group runs once per interval at its own offset (Prometheus
            # spreads groups over the interval), so a round is not one
            # timestamp: the evaluation time per round is the sum over the
            # groups of each group's median evaluationTime over its
            # measured evaluations, and the worst the sum of each group's
            # worst.
            per_group = {}
            for groups in rounds[n].values():
                for g, (et, nr, bad) in groups.items():
                    per_group.setdefault(g, []).append((et, nr, bad))
            med = sum(statistics.median(et for et, _, _ in v) for v in per_group.values())
            worst = sum(max(et for et, _, _ in v) for v in per_group.values())
            evals = min((len(v) for v in per_group.values()), default=0)
            seen_rules = sum(v[-1][1] for v in per_group.values())
            bad = sum(max(b for _, _, b in v) for v in per_group.values())
            summary[n] = {"cpu_s_per_round": cpu, "eval_s_per_round_median": med, "eval_s_per_round_worst": worst,
                          "groups": len(per_group), "evaluations_per_group_min": evals,
                          "rules": seen_rules, "unhealthy": bad, "idle_cpu_per_s": idle_rate[n]}
            print(f"  {n:10s} CPU {cpu:6.3f} s per round ({cpu / INTERVAL * 100:5.1f}% of a core)  "
                  f"evaluation time per round median {med:6.3f} s, worst {worst:6.3f} s  "
                  f"groups {len(per_group)} (each evaluated {evals}+ times)  rules {seen_rules}  unhealthy {bad}  "
                  f"(idle {idle_rate[n]:.3f} CPU-s/s)")
        o, p = summary["osprey"], summary["prometheus"]
        print(f"  osprey/prometheus: CPU per round {o['cpu_s_per_round'] / p['cpu_s_per_round']:.2f}x, "
              f"evaluation time {o['eval_s_per_round_median'] / p['eval_s_per_round_median']:.2f}x")
        # The same rules over the same data should record the same values.
        # Prometheus 2.42's closed range windows and osprey's left-open ones
        # (Prometheus 3's) read one sample more or less at a window's start,
        # so the values agree to a small relative difference, not exactly.
        compared = {}
        for series in ["slo:sli_error:ratio_rate1h", "slo:period_error_budget_remaining:ratio",
                       "osprey_slo:period_error_budget_remaining_events:ratio"]:
            values = {}
            for n in procs:
                q = urllib.parse.quote(series)
                for r in get(ports[n], f"/api/v1/query?query={q}")["data"]["result"]:
                    values.setdefault(r["metric"]["sloth_id"], {})[n] = float(r["value"][1])
            pairs = [(v["osprey"], v["prometheus"]) for v in values.values() if len(v) == 2]
            finite = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
            worst_rel = max((abs(a - b) / max(abs(b), 1e-9) for a, b in finite), default=float("nan"))
            compared[series] = {"slos_both": len(pairs), "only_one": len(values) - len(pairs),
                                "max_relative_difference": worst_rel}
            print(f"  {series}: {len(pairs)} SLOs in both, {len(values) - len(pairs)} in one only, "
                  f"largest relative difference {worst_rel:.2e}")
        summary["values"] = compared
        print("JSON " + json.dumps({"slos": n_slos, "rules": n_rules, "series": ds.n_series,
                                    "points": ds.points, "interval_s": INTERVAL, "results": summary}))
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
