"""The client against a real osprey: what it sends is what osprey counts,
and a model keeps logging, fast, while osprey is killed and started again."""

import random
import time

from osprey_client import Monitor


def wait_for(what, timeout, f):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = f()
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def records_in_window(osprey):
    result = osprey.query('sum(osprey_model_records{model="churn"})')
    return float(result[0]["value"][1]) if result else None


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def test_predictions_actuals_and_reference_reach_osprey(osprey):
    m = Monitor(osprey.url, "churn", flush_interval=0.1)
    rng = random.Random(7)
    assert m.set_reference(
        [
            {"features": {"age": rng.randint(20, 70), "city": rng.choice(["Oslo", "Bergen"])},
             "prediction": "stay", "actual": rng.choice(["stay", "churn"])}
            for _ in range(200)
        ]
    )
    now = time.time()
    for i in range(300):
        m.log_prediction(
            id=f"req-{i}",
            version="v1" if i % 3 else "v2",
            features={"age": rng.randint(20, 70), "city": rng.choice(["Oslo", "Bergen", "Tromsø"])},
            prediction=rng.choice(["stay", "churn"]),
            timestamp=now - 60 + i * 0.1,
            scores={"churn": 0.3, "stay": 0.7},
        )
    m.log_actuals([{"id": f"req-{i}", "actual": "stay", "timestamp": now} for i in range(0, 300, 2)])
    assert m.flush(30)
    s = m.stats()
    assert (s["predictions_sent"], s["actuals_sent"], s["reference_records_sent"]) == (300, 150, 200), (
        s,
        m.last_error,
    )
    assert s["request_failures"] == 0
    assert "churn" in osprey.get("/api/v1/models")["data"]
    assert wait_for("the model's evaluation", 30, lambda: records_in_window(osprey) == 300 or None)
    joined = wait_for(
        "the actuals to be joined",
        30,
        lambda: (r := osprey.query('sum(osprey_model_actuals_joined{model="churn"})')) and float(r[0]["value"][1]) or None,
    )
    assert joined == 150
    assert osprey.query('osprey_model_reference_records{model="churn"}')[0]["value"][1] == "200"
    m.close()


def test_osprey_killed_mid_stream(osprey):
    """Logs at about 2,000 predictions a second for 4 s; osprey is killed
    (SIGKILL) after 1 s and started again at 2.5 s."""
    m = Monitor(
        osprey.url,
        "churn",
        batch_size=100,
        flush_interval=0.05,
        max_buffer=1000,
        backoff=0.05,
        max_backoff=0.2,
        max_retries=3,
        timeout=2.0,
    )
    rng = random.Random(1)
    features = [{f"f{j}": rng.random() for j in range(20)} for _ in range(64)]
    latencies = []
    calls = 0
    start = time.monotonic()
    killed = restarted = False
    while (elapsed := time.monotonic() - start) < 4.0:
        if elapsed > 1.0 and not killed:
            osprey.kill()
            killed = True
            stats_at_kill = m.stats()
        if elapsed > 2.5 and not restarted:
            osprey.start()
            restarted = True
            stats_at_restart = m.stats()
        t0 = time.perf_counter()
        m.log_prediction(id=calls, version="v1", features=features[calls % 64], prediction=rng.random())
        latencies.append(time.perf_counter() - t0)
        calls += 1
        time.sleep(0.0005)
    assert m.flush(30)
    s = m.stats()
    print(
        f"\n{calls} calls; model-side call p50 {percentile(latencies, 50) * 1e6:.0f} us, "
        f"p99 {percentile(latencies, 99) * 1e6:.0f} us, max {max(latencies) * 1e6:.0f} us; {s}"
    )
    # Every call is accounted for, and some were lost while osprey was down.
    assert s["predictions_queued"] + s["dropped_buffer_full"] == calls
    assert s["predictions_sent"] + s["dropped_send_failed"] + s["rejected"] == s["predictions_queued"]
    assert s["rejected"] == 0 and s["buffered"] == 0
    assert s["dropped_send_failed"] + s["dropped_buffer_full"] > 0
    assert s["request_failures"] > 0 and s["retries"] > 0
    # Sending went on before the kill and again after the restart.
    assert stats_at_kill["predictions_sent"] > 0
    assert s["predictions_sent"] > stats_at_restart["predictions_sent"]
    # osprey holds what it acknowledged (its log survives kill -9): a
    # batch in flight at the kill may be stored without its answer, so
    # at most one batch more.
    held = wait_for(
        "the evaluation after the restart",
        30,
        lambda: (n := records_in_window(osprey)) is not None and n >= s["predictions_sent"] and n or None,
    )
    assert s["predictions_sent"] <= held <= s["predictions_sent"] + 100
    # A generous sanity bound for a loaded test machine; the 1 ms goal at
    # the 99th percentile is measured by benches/python_client.py.
    assert percentile(latencies, 99) < 0.02
    m.close()
