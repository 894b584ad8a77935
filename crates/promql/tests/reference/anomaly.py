"""The reference answers for crates/promql/tests/anomaly_reference.rs.

Reads on stdin a JSON object: `series` (a list of sample lists, each
sample `[t_ms, value]`, sorted by time), `steps` (evaluation times in ms)
and `queries` (each `{"kind": "trailing"|"seasonal", "range_ms",
"width_ms", "periods_ms", "k"}`), and prints, per query, per series, per
step, the values docs/anomaly.md defines, or null where there is no
output: `{"score": x, "band": [lower, center, upper]}`.

The windows and slots are selected here in plain Python, straight from
the definitions; the statistics are numpy's `median` and scipy's
`median_abs_deviation(scale="normal")`.
"""

import json
import math
import sys

import numpy as np
from scipy.stats import median_abs_deviation

MIN_BASELINE = 3


def baseline(samples, t, q):
    window = [(ts, v) for ts, v in samples if t - q["range_ms"] < ts <= t]
    if not window:
        return None, None
    t_x, x = window[-1]
    if q["kind"] == "trailing":
        return x, [v for _, v in window[:-1]]
    half = q["width_ms"] / 2.0
    chosen = []
    for ts, v in window:
        hit = False
        for p in q["periods_ms"]:
            k = 1
            while t_x - k * p + half >= window[0][0]:
                if abs(ts - (t_x - k * p)) <= half:
                    hit = True
                    break
                k += 1
            if hit:
                break
        if hit:
            chosen.append(v)
    return x, chosen


def main():
    data = json.load(sys.stdin)
    out = []
    for q in data["queries"]:
        per_query = []
        for samples in data["series"]:
            per_series = []
            for t in data["steps"]:
                x, b = baseline(samples, t, q)
                if b is None or len(b) < MIN_BASELINE:
                    per_series.append(None)
                    continue
                b = np.array(b, dtype=np.float64)
                center = float(np.median(b))
                scale = float(median_abs_deviation(b, scale="normal"))
                if scale == 0.0:
                    score = 0.0 if x == center else math.copysign(math.inf, x - center)
                else:
                    score = (x - center) / scale
                half = q["k"] * scale
                per_series.append({"score": score, "band": [center - half, center, center + half]})
            per_query.append(per_series)
        out.append(per_query)
    # Infinity is not JSON: written as the strings "inf" and "-inf".
    sys.stdout.write(json.dumps(out).replace("-Infinity", '"-inf"').replace("Infinity", '"inf"'))


main()
