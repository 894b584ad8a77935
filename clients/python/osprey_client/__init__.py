"""Log a model's predictions and actuals to osprey from Python.

    from osprey_client import Monitor

    monitor = Monitor("http://osprey:9090", "churn")
    monitor.log_prediction(id="req-7f3a", version="v2",
                           features={"age": 41, "city": "Oslo"},
                           prediction="churn", scores={"churn": 0.81, "stay": 0.19})
    ...
    monitor.log_actual(id="req-7f3a", actual="stay")

The calls keep the field names of osprey's prediction API
(``docs/models.md``). They never block on the network and never raise on
bad data or an unreachable osprey: each record is checked and encoded in
the caller (a few microseconds), put in a bounded buffer and sent in
batches by a background thread, with retries and exponential backoff.
What cannot be sent is dropped and counted (:meth:`Monitor.stats`), so a
model server keeps serving while osprey is down. Only the standard
library is used.
"""

import atexit
import gzip as _gzip
import http.client
import json
import logging
import math
import os
import random
import re
import threading
import time
import urllib.parse
import weakref
from collections import deque
from collections.abc import Mapping

__all__ = ["Monitor"]
__version__ = "0.1.0"

_log = logging.getLogger("osprey_client")

# osprey's limits for one request (docs/models.md): 100,000 records and
# 64 MiB. The defaults below stay well inside them.
_MAX_RECORDS_PER_REQUEST = 100_000
_MAX_REQUEST_BYTES = 64 << 20

# Model names osprey accepts: letters, digits, _ - . (not first), at most
# 128 bytes (docs/configuration.md, `models:`).
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

# osprey names the failing record in a 400: "records[3].features.age: ...".
_RECORD_INDEX = re.compile(r"records\[(\d+)\]")

_PREDICTIONS = "predictions"
_ACTUALS = "actuals"
_REFERENCE = "reference"

# How many single records one batch may lose to 400 answers before the
# rest of it is dropped too (each loss costs one more request).
_MAX_REJECTIONS_PER_BATCH = 16

_COUNTER_NAMES = (
    "predictions_queued",
    "actuals_queued",
    "predictions_sent",
    "actuals_sent",
    "reference_records_sent",
    "dropped_buffer_full",
    "dropped_invalid",
    "dropped_closed",
    "dropped_send_failed",
    "rejected",
    "requests",
    "request_failures",
    "retries",
)


class Monitor:
    """Sends one model's predictions, actuals and reference set to osprey.

    ``url`` is osprey's base URL (``http://host:9090``; ``https`` works
    too) and ``model`` the model's name in osprey. Construction raises
    ``ValueError`` for a malformed URL or model name; nothing after it
    raises on bad data or network trouble.

    Keyword settings:

    - ``batch_size`` (1000): records per request at most;
    - ``batch_bytes`` (8 MiB): encoded bytes per request at most;
    - ``flush_interval`` (1.0 s): the longest a record waits in the
      buffer before it is sent;
    - ``max_buffer`` (100,000) and ``max_buffer_bytes`` (64 MiB): the
      buffer's bound; a record that does not fit is dropped and counted
      as ``dropped_buffer_full``;
    - ``timeout`` (5.0 s): one request's connect and read timeout;
    - ``max_retries`` (5), ``backoff`` (0.5 s), ``max_backoff`` (30 s):
      a failed request (no connection, 429, 5xx) is retried after
      ``backoff`` doubled per attempt, capped at ``max_backoff``, with
      ±25% jitter; after ``max_retries`` retries the batch is dropped
      and counted as ``dropped_send_failed``;
    - ``gzip`` (False): compress request bodies;
    - ``headers``: extra request headers (e.g. ``Authorization``);
    - ``ssl_context``: an ``ssl.SSLContext`` for ``https`` (a private CA,
      a client certificate); default: the system's trust store.
    """

    def __init__(
        self,
        url,
        model,
        *,
        batch_size=1000,
        batch_bytes=8 << 20,
        flush_interval=1.0,
        max_buffer=100_000,
        max_buffer_bytes=64 << 20,
        timeout=5.0,
        max_retries=5,
        backoff=0.5,
        max_backoff=30.0,
        gzip=False,
        headers=None,
        ssl_context=None,
    ):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url: expected http(s)://host[:port], got {url!r}")
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise ValueError(
                f"model: letters, digits, '_', '-' and '.' (not first), at most 128 bytes; got {model!r}"
            )
        if not 1 <= batch_size <= _MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"batch_size: 1 to {_MAX_RECORDS_PER_REQUEST}, got {batch_size}")
        if not 1 <= batch_bytes <= _MAX_REQUEST_BYTES // 2:
            raise ValueError(f"batch_bytes: 1 to {_MAX_REQUEST_BYTES // 2}, got {batch_bytes}")
        if flush_interval <= 0 or timeout <= 0 or backoff <= 0 or max_backoff < backoff:
            raise ValueError("flush_interval, timeout and backoff must be positive, max_backoff >= backoff")
        if max_buffer < 1 or max_buffer_bytes < 1 or max_retries < 0:
            raise ValueError("max_buffer and max_buffer_bytes must be positive, max_retries >= 0")
        self.url = url.rstrip("/")
        self.model = model
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._base_path = parsed.path.rstrip("/")
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._max_buffer_bytes = max_buffer_bytes
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._gzip = gzip
        self._headers = dict(headers or {})
        self._ssl_context = ssl_context
        self._init_state()
        _MONITORS.add(self)

    # The calls a model server makes.

    def log_prediction(self, id, version, features, prediction, timestamp=None, scores=None, shap=None):
        """Queues one prediction; ``True`` when it was buffered, ``False``
        when it was dropped (invalid, buffer full or monitor closed).

        ``id`` and ``version``: a string or an integer. ``features``: a
        mapping of names to a number, a string, a bool or ``None``
        (missing; a NaN counts as missing). ``prediction``: a number or a
        string. ``timestamp``: seconds since the epoch (or a
        ``datetime``), default now. ``scores``: class to probability.
        ``shap``: feature to SHAP value. NumPy scalars are accepted.
        """
        try:
            data = _encode_prediction(id, version, features, prediction, timestamp, scores, shap, True)
        except (TypeError, ValueError) as error:
            return self._invalid(error)
        return self._enqueue(_PREDICTIONS, data)

    def log_actual(self, id, actual, timestamp=None):
        """Queues the actual outcome of the prediction ``id``; ``True``
        when buffered. ``actual``: a number or a string."""
        try:
            data = _encode_actual(id, actual, timestamp)
        except (TypeError, ValueError) as error:
            return self._invalid(error)
        return self._enqueue(_ACTUALS, data)

    def log_predictions(self, records):
        """Queues many predictions, each a mapping with the keyword
        arguments of :meth:`log_prediction`; returns how many were
        buffered."""
        n = 0
        for record in records:
            try:
                data = _encode_prediction(
                    _field(record, "id"),
                    _field(record, "version"),
                    _field(record, "features"),
                    _field(record, "prediction"),
                    record.get("timestamp"),
                    record.get("scores"),
                    record.get("shap"),
                    True,
                )
            except (TypeError, ValueError, AttributeError) as error:
                self._invalid(error)
                continue
            n += self._enqueue(_PREDICTIONS, data)
        return n

    def log_actuals(self, records):
        """Queues many actuals, each a mapping with ``id``, ``actual`` and
        optionally ``timestamp``; returns how many were buffered."""
        n = 0
        for record in records:
            try:
                data = _encode_actual(_field(record, "id"), _field(record, "actual"), record.get("timestamp"))
            except (TypeError, ValueError, AttributeError) as error:
                self._invalid(error)
                continue
            n += self._enqueue(_ACTUALS, data)
        return n

    def set_reference(self, records):
        """Replaces the model's reference set (a training-set sample): an
        iterable of mappings with ``features`` and ``prediction``, and
        optionally ``actual``, ``id``, ``version``, ``timestamp``,
        ``scores``, ``shap``. It is sent in one request, in the
        background, and retried like the rest; a later call replaces one
        not yet sent. Returns ``True`` when queued, ``False`` when a
        record is invalid (nothing is queued then; see ``last_error``)."""
        encoded = []
        size = 0
        try:
            for i, record in enumerate(records):
                try:
                    data = _encode_reference(record)
                except (TypeError, ValueError, AttributeError) as error:
                    raise ValueError(f"records[{i}]: {error}") from None
                encoded.append(data)
                size += len(data) + 1
                if len(encoded) > _MAX_RECORDS_PER_REQUEST or size > _MAX_REQUEST_BYTES - 64:
                    raise ValueError(
                        f"a reference is one request: at most {_MAX_RECORDS_PER_REQUEST} records and 64 MiB"
                    )
        except (TypeError, ValueError) as error:
            return self._invalid(error)
        with self._cond:
            if self._closed:
                self._counts["dropped_closed"] += len(encoded)
                return False
            self._reference = encoded
            self._reference_accepted += 1
            self._cond.notify()
        return True

    def flush(self, timeout=30.0):
        """Waits until everything logged before the call has been sent or
        dropped, at most ``timeout`` seconds (``None``: no limit).
        Returns ``True`` when it all was handled in time (whether sent or
        dropped: see :meth:`stats`)."""
        with self._cond:
            target = (
                self._accepted[_PREDICTIONS],
                self._accepted[_ACTUALS],
                self._reference_accepted,
            )
            self._flush_waiters += 1
            self._cond.notify_all()
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                while not self._handled_up_to(target):
                    if not self._thread.is_alive():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining if remaining is not None else 1.0)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout=5.0):
        """Stops taking records, sends what is buffered (at most
        ``timeout`` seconds; retries stop at that deadline and what is
        left is dropped and counted) and ends the background thread.
        Also run at interpreter exit for every open monitor."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._stop_event.set()
        self._thread.join(timeout + 1.0)
        _MONITORS.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # What it did.

    def stats(self):
        """The counters (a new dict): records ``*_queued`` (buffered),
        ``*_sent`` (osprey answered 200), ``dropped_buffer_full``,
        ``dropped_invalid`` (failed the checks here), ``dropped_closed``
        (logged after :meth:`close`), ``dropped_send_failed`` (retries
        exhausted, or left at close), ``rejected`` (osprey answered 400 or
        413 for them); requests made, ``request_failures`` (no answer or
        a non-200) and ``retries``; and ``buffered`` and
        ``buffered_bytes`` now."""
        with self._lock:
            out = dict(self._counts)
            out["buffered"] = self._n
            out["buffered_bytes"] = self._bytes
        return out

    @property
    def last_error(self):
        """The last error seen (a bad record or a failed request), or
        ``None``."""
        return self._last_error

    def metrics_text(self):
        """The counters in Prometheus's text format, for a model server
        to add to its own ``/metrics``."""
        s = self.stats()
        model = self.model.replace("\\", "\\\\").replace('"', '\\"')
        lines = [
            "# HELP osprey_client_records_total Records by what happened to them.",
            "# TYPE osprey_client_records_total counter",
        ]
        for key in _COUNTER_NAMES:
            if key in ("requests", "request_failures", "retries"):
                continue
            lines.append(f'osprey_client_records_total{{model="{model}",outcome="{key}"}} {s[key]}')
        for key, help_text in (
            ("requests", "Requests sent to osprey."),
            ("request_failures", "Requests without a 200 answer."),
            ("retries", "Requests retried after a failure."),
        ):
            lines.append(f"# HELP osprey_client_{key}_total {help_text}")
            lines.append(f"# TYPE osprey_client_{key}_total counter")
            lines.append(f'osprey_client_{key}_total{{model="{model}"}} {s[key]}')
        lines.append("# HELP osprey_client_buffered_records Records waiting to be sent.")
        lines.append("# TYPE osprey_client_buffered_records gauge")
        lines.append(f'osprey_client_buffered_records{{model="{model}"}} {s["buffered"]}')
        return "\n".join(lines) + "\n"

    # The buffer.

    def _init_state(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queues = {_PREDICTIONS: deque(), _ACTUALS: deque()}
        self._n = 0
        self._bytes = 0
        self._accepted = {_PREDICTIONS: 0, _ACTUALS: 0}
        self._done = {_PREDICTIONS: 0, _ACTUALS: 0}
        self._reference = None
        self._reference_accepted = 0
        self._reference_done = 0
        self._flush_waiters = 0
        self._closed = False
        self._stop_deadline = None
        self._stop_event = threading.Event()
        self._counts = dict.fromkeys(_COUNTER_NAMES, 0)
        self._last_error = None
        self._last_warning = 0.0
        self._connection = None
        self._thread = threading.Thread(target=self._run, name=f"osprey-client-{self.model}", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self):
        # A forked worker (gunicorn, multiprocessing) inherits the parent's
        # buffer but not its thread: it starts empty, with a thread of its
        # own, so nothing is sent twice.
        self._init_state()

    def _invalid(self, error):
        with self._lock:
            self._counts["dropped_invalid"] += 1
        self._last_error = f"invalid record: {error}"
        self._warn(self._last_error)
        return False

    def _enqueue(self, kind, data):
        size = len(data)
        with self._lock:
            if self._closed:
                self._counts["dropped_closed"] += 1
                return False
            if self._n >= self._max_buffer or self._bytes + size > self._max_buffer_bytes:
                self._counts["dropped_buffer_full"] += 1
                return False
            self._queues[kind].append(data)
            self._n += 1
            self._bytes += size
            self._accepted[kind] += 1
            self._counts[kind + "_queued"] += 1
            if self._n == self._batch_size:
                self._cond.notify()
        return True

    def _handled_up_to(self, target):
        return (
            self._done[_PREDICTIONS] >= target[0]
            and self._done[_ACTUALS] >= target[1]
            and self._reference_done >= target[2]
        )

    def _take(self, kind):
        """Up to one batch of `kind` from the buffer; the lock is held."""
        queue = self._queues[kind]
        batch = []
        size = 0
        while queue and len(batch) < self._batch_size:
            data = queue[0]
            if batch and size + len(data) + 1 > self._batch_bytes:
                break
            queue.popleft()
            batch.append(data)
            size += len(data) + 1
        self._n -= len(batch)
        self._bytes -= size - len(batch)
        return batch

    # The background thread.

    def _run(self):
        while True:
            with self._cond:
                deadline = time.monotonic() + self._flush_interval
                while not (
                    self._closed
                    or self._flush_waiters
                    or self._n >= self._batch_size
                    or self._reference is not None
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                reference = self._reference
                self._reference = None
                predictions = self._take(_PREDICTIONS)
                actuals = self._take(_ACTUALS)
                closing = self._closed
            if reference is not None:
                sent = self._deliver_safely(_REFERENCE, reference)
                with self._cond:
                    self._counts["reference_records_sent"] += sent
                    self._reference_done += 1
                    self._cond.notify_all()
            for kind, batch in ((_PREDICTIONS, predictions), (_ACTUALS, actuals)):
                if not batch:
                    continue
                sent = self._deliver_safely(kind, batch)
                with self._cond:
                    self._counts[kind + "_sent"] += sent
                    self._done[kind] += len(batch)
                    self._cond.notify_all()
            if closing:
                with self._cond:
                    if self._n == 0 and self._reference is None:
                        break
        if self._connection is not None:
            self._connection.close()

    def _deliver_safely(self, kind, records):
        """`_deliver`, but an unexpected error (a bug here, an odd answer)
        drops the batch and is counted instead of ending the thread."""
        try:
            return self._deliver(kind, records)
        except Exception as error:  # noqa: BLE001 - the thread must live on
            self._count("dropped_send_failed", len(records))
            self._last_error = f"sending {kind}: {type(error).__name__}: {error}"
            self._warn(self._last_error)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return 0

    def _deliver(self, kind, records):
        """Sends `records` (encoded) until osprey takes them or they are
        given up; returns how many osprey took. Splits on 413, drops the
        record a 400 names and sends the rest, retries the rest."""
        path = f"{self._base_path}/api/v1/models/{urllib.parse.quote(self.model, safe='')}/{kind}"
        pending = records
        attempt = 0
        rejections = 0
        while pending:
            body = b'{"records":[' + b",".join(pending) + b"]}"
            status, message = self._post(path, body)
            if status == 200:
                return len(pending)
            self._count("request_failures", 1)
            self._last_error = f"POST {path}: " + (message if status is None else f"{status} {message}")
            if status == 400:
                match = _RECORD_INDEX.search(message)
                index = int(match.group(1)) if match else -1
                rejections += 1
                if 0 <= index < len(pending) and rejections <= _MAX_REJECTIONS_PER_BATCH:
                    self._count("rejected", 1)
                    self._warn(self._last_error)
                    pending = pending[:index] + pending[index + 1 :]
                    continue
                self._count("rejected", len(pending))
                self._warn(self._last_error)
                return 0
            if status == 413:
                if len(pending) > 1 and kind != _REFERENCE:
                    half = len(pending) // 2
                    return self._deliver(kind, pending[:half]) + self._deliver(kind, pending[half:])
                self._count("rejected", len(pending))
                self._warn(self._last_error)
                return 0
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt >= self._max_retries:
                self._count("dropped_send_failed", len(pending))
                self._warn(self._last_error + f"; dropped {len(pending)} records")
                return 0
            attempt += 1
            delay = min(self._max_backoff, self._backoff * (2 ** (attempt - 1)))
            delay *= random.uniform(0.75, 1.25)
            if self._stop_deadline is not None:
                delay = min(delay, self._stop_deadline - time.monotonic())
                if delay <= 0:
                    self._count("dropped_send_failed", len(pending))
                    return 0
            self._count("retries", 1)
            self._stop_event.wait(delay)
        return 0

    def _post(self, path, body):
        """One POST; (status, message) or (None, error) without an answer."""
        headers = {"Content-Type": "application/json", **self._headers}
        if self._gzip:
            body = _gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._count("requests", 1)
        for fresh in (False, True):
            if self._connection is None or fresh:
                if self._connection is not None:
                    self._connection.close()
                timeout = self._timeout
                if self._scheme == "https":
                    self._connection = http.client.HTTPSConnection(
                        self._host, self._port, timeout=timeout, context=self._ssl_context
                    )
                else:
                    self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            try:
                self._connection.request("POST", path, body=body, headers=headers)
                response = self._connection.getresponse()
                text = response.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as error:
                self._connection.close()
                self._connection = None
                # A kept-alive connection the server closed fails once;
                # only a fresh connection's failure counts.
                if fresh or isinstance(error, (ConnectionRefusedError, TimeoutError)):
                    return None, f"{type(error).__name__}: {error}"
                continue
            if response.status == 200:
                return 200, text
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text
            return response.status, str(message)[:1000]
        return None, "no answer"

    def _count(self, name, n):
        with self._lock:
            self._counts[name] += n

    def _warn(self, message):
        # At most one warning a minute: a model server's log is not the
        # place for one line per dropped batch.
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            _log.warning("osprey_client (model %s): %s", self.model, message)


# Encoding, in the caller's thread: the record is checked and turned into
# JSON at once, so later changes to the caller's dicts do not leak in and
# the background thread has almost no Python work to do (it would hold the
# GIL against the model's threads).

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _field(record, name):
    try:
        return record[name]
    except KeyError:
        raise ValueError(f"{name}: missing") from None


def _scalar(value):
    """NumPy scalars and the like to Python's own."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        return item()
    return value


def _key(name, value):
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name}: a string or an integer, got {type(value).__name__}")
    return value


def _number(name, value):
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: not a finite number")
    return value


def _outcome(name, value):
    value = _scalar(value)
    if isinstance(value, str):
        return value
    return _number(name, value)


def _timestamp(value):
    if value is None:
        return time.time()
    stamp = getattr(value, "timestamp", None)
    if callable(stamp):
        value = stamp()
    return _number("timestamp", value)


def _features(features):
    if not isinstance(features, Mapping):
        raise TypeError(f"features: a mapping, got {type(features).__name__}")
    out = {}
    for name, value in features.items():
        if not isinstance(name, str):
            raise TypeError(f"features: the name {name!r} is not a string")
        if value is None or isinstance(value, (str, bool)):
            out[name] = value
            continue
        value = _scalar(value)
        if isinstance(value, (bool, str)):
            out[name] = value
        elif isinstance(value, (int, float)):
            if value != value:
                out[name] = None
            elif math.isinf(value):
                raise ValueError(f"features.{name}: infinite")
            else:
                out[name] = value
        else:
            raise TypeError(f"features.{name}: a number, a string, a bool or None, got {type(value).__name__}")
    return out


def _numbers(name, mapping):
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name}: a mapping, got {type(mapping).__name__}")
    out = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"{name}: the key {key!r} is not a string")
        out[key] = _number(f"{name}.{key}", value)
    return out


def _prediction_record(id, version, features, prediction, timestamp, scores, shap, required):
    record = {}
    if required or id is not None:
        record["id"] = _key("id", id)
    if required or version is not None:
        record["version"] = _key("version", version)
    if required or timestamp is not None:
        record["timestamp"] = _timestamp(timestamp)
    record["features"] = _features(features)
    record["prediction"] = _outcome("prediction", prediction)
    if scores is not None:
        record["scores"] = _numbers("scores", scores)
    if shap is not None:
        record["shap"] = _numbers("shap", shap)
    return record


def _encode_prediction(id, version, features, prediction, timestamp, scores, shap, required):
    record = _prediction_record(id, version, features, prediction, timestamp, scores, shap, required)
    return _ENCODER.encode(record).encode("utf-8")


def _encode_actual(id, actual, timestamp):
    record = {"id": _key("id", id), "actual": _outcome("actual", actual), "timestamp": _timestamp(timestamp)}
    return _ENCODER.encode(record).encode("utf-8")


def _encode_reference(record):
    out = _prediction_record(
        record.get("id"),
        record.get("version"),
        _field(record, "features"),
        _field(record, "prediction"),
        record.get("timestamp"),
        record.get("scores"),
        record.get("shap"),
        False,
    )
    if record.get("actual") is not None:
        out["actual"] = _outcome("actual", record["actual"])
    return _ENCODER.encode(out).encode("utf-8")


# Every open monitor: flushed and closed at interpreter exit, and given a
# fresh buffer and thread in a forked child.
_MONITORS = weakref.WeakSet()


def _close_all():
    for monitor in list(_MONITORS):
        monitor.close(timeout=2.0)


def _after_fork():
    for monitor in list(_MONITORS):
        monitor._after_fork_in_child()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
