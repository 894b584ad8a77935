"""The client's behaviour against a scripted fake osprey: the JSON it sends
(the prediction API's field names), batching, retries with backoff,
rejections, splitting, the bounded buffer, and that no call raises."""

import math
import threading
import time

import pytest

from osprey_client import Monitor


def quick(url, **kw):
    settings = dict(flush_interval=0.05, backoff=0.01, max_backoff=0.05, timeout=2.0)
    settings.update(kw)
    return Monitor(url, "churn", **settings)


def test_records_keep_the_api_field_names(fake):
    m = quick(fake.url)
    assert m.log_prediction(
        id="req-1",
        version="v2",
        features={"age": 41, "income": 52000.5, "city": "Oslo", "segment": None, "vip": True},
        prediction="churn",
        timestamp=1767225600.25,
        scores={"churn": 0.81, "stay": 0.19},
        shap={"age": 0.12},
    )
    assert m.log_prediction(id=7, version=3, features={"age": 30}, prediction=0.5)
    assert m.log_actual(id="req-1", actual="stay", timestamp=1767312000)
    assert m.flush(10)
    predictions = fake.records("predictions")
    assert predictions[0] == {
        "id": "req-1",
        "version": "v2",
        "timestamp": 1767225600.25,
        "features": {"age": 41, "income": 52000.5, "city": "Oslo", "segment": None, "vip": True},
        "prediction": "churn",
        "scores": {"churn": 0.81, "stay": 0.19},
        "shap": {"age": 0.12},
    }
    # No timestamp given: the time of the call.
    assert abs(predictions[1]["timestamp"] - time.time()) < 5
    assert set(predictions[1]) == {"id", "version", "timestamp", "features", "prediction"}
    assert fake.records("actuals") == [{"id": "req-1", "actual": "stay", "timestamp": 1767312000}]
    paths = {path for path, _, _ in fake.requests}
    assert paths == {"/api/v1/models/churn/predictions", "/api/v1/models/churn/actuals"}
    s = m.stats()
    assert (s["predictions_sent"], s["actuals_sent"], s["buffered"]) == (2, 1, 0)
    m.close()


def test_many_at_once_and_the_reference(fake):
    m = quick(fake.url, batch_size=10)
    n = m.log_predictions(
        [{"id": i, "version": "v1", "features": {"x": i}, "prediction": i % 2} for i in range(25)]
        + [{"id": 99, "features": {"x": 1}, "prediction": 1}]  # no version: invalid
    )
    assert n == 25
    assert m.log_actuals([{"id": i, "actual": 1} for i in range(5)]) == 5
    assert m.set_reference([{"features": {"x": 3}, "prediction": 1, "actual": 0}] * 4)
    assert m.flush(10)
    assert [r["id"] for r in fake.records("predictions")] == list(range(25))
    assert max(len(b["records"]) for p, _, b in fake.requests if p.endswith("predictions")) == 10
    assert fake.records("reference") == [{"features": {"x": 3}, "prediction": 1, "actual": 0}] * 4
    s = m.stats()
    assert s["dropped_invalid"] == 1 and "version" in m.last_error
    assert s["reference_records_sent"] == 4 and s["actuals_sent"] == 5
    m.close()


def test_bad_values_are_dropped_and_counted_never_raised(fake):
    m = quick(fake.url)
    bad = [
        dict(id=None, version="v1", features={}, prediction=1),
        dict(id=True, version="v1", features={}, prediction=1),
        dict(id=1, version=1.5, features={}, prediction=1),
        dict(id=1, version="v1", features=[1, 2], prediction=1),
        dict(id=1, version="v1", features={"x": object()}, prediction=1),
        dict(id=1, version="v1", features={"x": math.inf}, prediction=1),
        dict(id=1, version="v1", features={1: 2}, prediction=1),
        dict(id=1, version="v1", features={}, prediction=None),
        dict(id=1, version="v1", features={}, prediction=math.nan),
        dict(id=1, version="v1", features={}, prediction=1, scores={"a": "high"}),
        dict(id=1, version="v1", features={}, prediction=1, timestamp="yesterday"),
    ]
    for kwargs in bad:
        assert m.log_prediction(**kwargs) is False, kwargs
    assert m.log_actual(id=1, actual=[1]) is False
    assert m.set_reference([{"features": {"x": 1}}]) is False  # no prediction
    assert m.stats()["dropped_invalid"] == len(bad) + 2
    # A NaN feature is a missing one.
    assert m.log_prediction(id=1, version="v1", features={"x": math.nan}, prediction=1)
    assert m.flush(10)
    assert fake.records("predictions")[0]["features"] == {"x": None}
    m.close()


def test_numpy_scalars_and_datetimes():
    np = pytest.importorskip("numpy")
    import datetime

    from osprey_client import _encode_prediction

    data = _encode_prediction(
        np.int64(3),
        "v1",
        {"a": np.float32(0.5), "b": np.int32(2), "c": np.bool_(True), "d": np.float64("nan")},
        np.float64(1.25),
        datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        None,
        None,
        True,
    )
    assert data == (
        b'{"id":3,"version":"v1","timestamp":1767225600.0,'
        b'"features":{"a":0.5,"b":2,"c":true,"d":null},"prediction":1.25}'
    )


def test_retries_with_backoff_then_sends(fake):
    fake.script = [503, 503, 429]
    m = quick(fake.url, backoff=0.05, max_backoff=1.0)
    m.log_prediction(id=1, version="v1", features={"x": 1}, prediction=1)
    t0 = time.monotonic()
    assert m.flush(10)
    took = time.monotonic() - t0
    s = m.stats()
    assert (s["predictions_sent"], s["retries"], s["request_failures"], s["requests"]) == (1, 3, 3, 4)
    # 0.05 + 0.1 + 0.2 s, each within ±25%.
    assert took >= 0.35 * 0.75
    m.close()


def test_gives_up_after_the_retries_and_counts(fake):
    fake.script = [500] * 10
    m = quick(fake.url, max_retries=2)
    m.log_prediction(id=1, version="v1", features={"x": 1}, prediction=1)
    assert m.flush(10)
    s = m.stats()
    assert (s["dropped_send_failed"], s["predictions_sent"], s["requests"]) == (1, 0, 3)
    assert "500" in m.last_error
    m.close()


def test_a_rejected_record_is_dropped_and_the_rest_sent(fake):
    fake.script = [(400, "records[1].features.x: the feature holds numbers; got a string")]
    m = quick(fake.url, flush_interval=5)
    for i in range(3):
        m.log_prediction(id=i, version="v1", features={"x": i}, prediction=1)
    assert m.flush(10)
    sent = [p for p, _, _ in fake.requests]
    assert len(sent) == 2
    assert [r["id"] for r in fake.requests[1][2]["records"]] == [0, 2]
    s = m.stats()
    assert (s["rejected"], s["predictions_sent"]) == (1, 2)
    assert "records[1].features.x" in m.last_error
    m.close()


def test_too_large_is_split(fake):
    fake.script = [413]
    m = quick(fake.url, flush_interval=5)
    for i in range(4):
        m.log_prediction(id=i, version="v1", features={"x": i}, prediction=1)
    assert m.flush(10)
    sizes = [len(b["records"]) for _, _, b in fake.requests]
    assert sizes == [4, 2, 2]
    assert m.stats()["predictions_sent"] == 4
    m.close()


def test_gzip_and_headers(fake):
    m = quick(fake.url, gzip=True, headers={"Authorization": "Bearer t"})
    m.log_prediction(id=1, version="v1", features={"x": 1}, prediction=1)
    assert m.flush(10)
    _, headers, body = fake.requests[0]
    assert headers["Content-Encoding"] == "gzip" and headers["Authorization"] == "Bearer t"
    assert body["records"][0]["id"] == 1
    m.close()


def test_osprey_unreachable_bounded_buffer_and_fast_calls():
    # Nothing listens there: every request fails at once.
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    m = Monitor(url, "churn", max_buffer=100, flush_interval=0.01, backoff=0.2, max_retries=1)
    worst = 0.0
    accepted = 0
    for i in range(5000):
        t0 = time.perf_counter()
        accepted += m.log_prediction(id=i, version="v1", features={"x": i}, prediction=1)
        worst = max(worst, time.perf_counter() - t0)
    s = m.stats()
    assert s["dropped_buffer_full"] == 5000 - accepted > 0
    assert s["buffered"] <= 100
    # A generous sanity bound; the measured percentiles are in
    # benches/python_client.py.
    assert worst < 0.5, worst
    m.close(timeout=0.5)
    s = m.stats()
    assert s["predictions_queued"] == accepted
    assert s["dropped_send_failed"] + s["predictions_sent"] == accepted
    assert m.log_prediction(id=1, version="v1", features={}, prediction=1) is False
    assert m.stats()["dropped_closed"] == 1


def test_calls_from_many_threads(fake):
    m = quick(fake.url, batch_size=100)

    def work(t):
        for i in range(500):
            m.log_prediction(id=f"{t}-{i}", version="v1", features={"x": i}, prediction=1)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.flush(30)
    ids = [r["id"] for r in fake.records("predictions")]
    assert len(ids) == len(set(ids)) == 4000
    m.close()


def test_metrics_text(fake):
    m = quick(fake.url)
    m.log_prediction(id=1, version="v1", features={"x": 1}, prediction=1)
    m.flush(10)
    text = m.metrics_text()
    assert 'osprey_client_records_total{model="churn",outcome="predictions_sent"} 1' in text
    assert 'osprey_client_requests_total{model="churn"} 1' in text
    m.close()


def test_construction_checks():
    with pytest.raises(ValueError):
        Monitor("osprey:9090", "churn")
    with pytest.raises(ValueError):
        Monitor("http://osprey:9090", "bad name")
    with pytest.raises(ValueError):
        Monitor("http://osprey:9090", "churn", batch_size=0)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_worker_starts_empty_with_its_own_thread(fake):
    import os

    m = quick(fake.url, flush_interval=30)
    m.log_prediction(id="parent", version="v1", features={"x": 1}, prediction=1)
    pid = os.fork()
    if pid == 0:  # the child: its buffer is empty, its own thread sends
        code = 1
        try:
            if m.stats()["buffered"] == 0:
                m.log_prediction(id="child", version="v1", features={"x": 2}, prediction=1)
                code = 0 if m.flush(10) and m.stats()["predictions_sent"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert m.flush(10)
    ids = sorted(r["id"] for r in fake.records("predictions"))
    assert ids == ["child", "parent"]
    m.close()


def test_an_unexpected_error_in_the_thread_drops_the_batch_not_the_thread(fake):
    m = quick(fake.url)
    real = m._post
    calls = []

    def broken(path, body):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("unexpected")
        return real(path, body)

    m._post = broken
    m.log_prediction(id=1, version="v1", features={"x": 1}, prediction=1)
    assert m.flush(10)
    m.log_prediction(id=2, version="v1", features={"x": 1}, prediction=1)
    assert m.flush(10)
    s = m.stats()
    assert (s["dropped_send_failed"], s["predictions_sent"]) == (1, 1)
    assert "RuntimeError" in m.last_error
    assert [r["id"] for r in fake.records("predictions")] == [2]
    m.close()
