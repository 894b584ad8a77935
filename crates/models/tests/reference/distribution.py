"""Reference for crates/models/tests/distribution.rs: the shares the
distribution endpoint reports, computed with numpy.

stdin: {"reference": [numbers], "current": [numbers],
        "ref_categories": [strings], "cur_categories": [strings]}
stdout: {"edges", "reference", "current" (numpy.histogram, 20 bins over
the range of both), "cuts" (numpy.quantile at 0.1..0.9, duplicates
removed), "psi_reference", "psi_current" (shares of the open bins, a
value equal to a cut counted in the bin above), "categories": {value:
[reference share, current share]}}
"""
import json
import sys

import numpy as np

data = json.load(sys.stdin)
ref = np.array(data["reference"], dtype=float)
cur = np.array(data["current"], dtype=float)
lo = min(ref.min(), cur.min())
hi = max(ref.max(), cur.max())
r_counts, edges = np.histogram(ref, bins=20, range=(lo, hi))
c_counts, _ = np.histogram(cur, bins=20, range=(lo, hi))
cuts = np.unique(np.quantile(ref, [i / 10 for i in range(1, 10)]))


def open_bins(x):
    idx = np.searchsorted(cuts, x, side="right")
    return (np.bincount(idx, minlength=len(cuts) + 1) / len(x)).tolist()


cats = {}
rc, cc = data["ref_categories"], data["cur_categories"]
for v in set(rc) | set(cc):
    cats[v] = [rc.count(v) / len(rc), cc.count(v) / len(cc)]
print(json.dumps({
    "edges": edges.tolist(),
    "reference": (r_counts / len(ref)).tolist(),
    "current": (c_counts / len(cur)).tolist(),
    "cuts": cuts.tolist(),
    "psi_reference": open_bins(ref),
    "psi_current": open_bins(cur),
    "categories": cats,
}))
