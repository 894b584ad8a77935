#!/usr/bin/env python3
"""Writes the binary seeds: remote write 2.0 requests (remote_write_v2/)
and WAL exemplars record payloads (wal_exemplars/), encoded by hand after
docs/format/wal.md and the remote write 2.0 protobuf schema, so that a
campaign starts past the decoders' first checks.

Usage: python3 fuzz/seeds/make_binary_seeds.py  (from the repository root)
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def uvarint(x):
    out = b""
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def zigzag(n):
    return uvarint(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def key(field, wire):
    return uvarint(field << 3 | wire)


def delimited(field, payload):
    return key(field, 2) + uvarint(len(payload)) + payload


def integer(field, x):
    return key(field, 0) + uvarint(x & 0xFFFFFFFFFFFFFFFF)


def double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def packed(field, xs):
    return delimited(field, b"".join(uvarint(x) for x in xs))


def write(folder, name, data):
    os.makedirs(os.path.join(HERE, folder), exist_ok=True)
    with open(os.path.join(HERE, folder, name), "wb") as f:
        f.write(data)


def remote_write_v2():
    symbols = ["", "__name__", "http_requests_total", "job", "api", "instance", "a:9090",
               "le", "Requests served.", "seconds", "trace_id", "abc123"]

    def request(series):
        return b"".join(delimited(4, s.encode()) for s in symbols) + b"".join(delimited(5, ts) for ts in series)

    def sample(value, t):
        return double(1, value) + integer(2, t)

    plain = packed(1, [1, 2, 3, 4, 5, 6]) + delimited(2, sample(12.5, 1700000000000)) \
        + delimited(2, sample(13.0, 1700000015000))
    metadata = integer(1, 1) + integer(3, 8) + integer(4, 9)  # counter, help and unit refs
    with_metadata = plain + delimited(5, metadata) + integer(6, 1699999990000)
    exemplar = packed(1, [10, 11]) + double(2, 0.25) + integer(3, 1700000000500)
    with_exemplar = plain + delimited(4, exemplar)
    span = integer(1, 0) + integer(2, 2)
    histogram = integer(1, 5) + double(3, 2.5) + integer(4, 1) + double(5, 0.001) + integer(6, 1) \
        + delimited(11, span) + packed(12, [2, 2]) + integer(15, 1700000000000)
    with_histogram = packed(1, [1, 2, 3, 4]) + delimited(3, histogram)
    write("remote_write_v2", "plain", request([plain]))
    write("remote_write_v2", "metadata", request([with_metadata]))
    write("remote_write_v2", "exemplar", request([with_exemplar]))
    write("remote_write_v2", "histogram", request([with_histogram]))
    write("remote_write_v2", "mixed", request([with_metadata, with_exemplar, with_histogram]))


def wal_exemplars():
    def label(name, value):
        return uvarint(len(name)) + name + uvarint(len(value)) + value

    def exemplar(id_delta, t_delta, value, flags, labels):
        return zigzag(id_delta) + zigzag(t_delta) + struct.pack("<d", value) + bytes([flags]) \
            + uvarint(len(labels)) + b"".join(label(n, v) for n, v in labels)

    base = uvarint(42) + zigzag(1700000000000)
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    write("wal_exemplars", "one", base + exemplar(0, 0, 0.25, 1, [(b"trace_id", b"abc123")]))
    write("wal_exemplars", "two", base + exemplar(0, 0, 0.25, 1, [(b"span_id", b"1"), (b"trace_id", b"abc")])
          + exemplar(3, -15000, 1.5, 0, []))
    write("wal_exemplars", "stale", base + exemplar(0, 0, stale, 0, [(b"a", b"b")]))


if __name__ == "__main__":
    remote_write_v2()
    wal_exemplars()
