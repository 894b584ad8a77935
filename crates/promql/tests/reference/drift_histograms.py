"""The reference answers for crates/promql/tests/drift_reference.rs.

Reads a JSON list of histogram pairs on stdin (per-bucket counts over the
same bounds, the last bound +Inf written as null) and prints, per pair,
each drift statistic as scipy and Evidently compute it:

- psi, hellinger: Evidently's own stat tests (`_psi`, `_hellinger_distance`)
  over the observations, each observation labelled with its bucket, so
  Evidently's categorical path sees exactly the bucket shares;
- kl: scipy.stats.entropy(current, reference) over the epsilon-filled
  shares Evidently's get_binned_data produces;
- js: scipy.spatial.distance.jensenshannon(current, reference);
- ks: scipy.stats.ks_2samp over the observations placed at their bucket's
  upper bound (the +Inf bucket's beyond the last finite bound);
- wasserstein: scipy.stats.wasserstein_distance with the shares as weights
  at the finite bounds (the +Inf bucket's share moved to the last finite
  bound, where it crosses no width).
"""

import json
import sys

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from evidently.legacy.calculations.stattests.hellinger_distance import _hellinger_distance
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.utils import get_binned_data
from evidently.legacy.core import ColumnType


def main():
    out = []
    for case in json.load(sys.stdin):
        finite = [b for b in case["bounds"] if b is not None]
        cur = np.array(case["current"], dtype=np.int64)
        ref = np.array(case["reference"], dtype=np.int64)
        labels = np.arange(len(cur))
        cur_obs = pd.Series(np.repeat(labels, cur))
        ref_obs = pd.Series(np.repeat(labels, ref))
        ref_pct, cur_pct = get_binned_data(ref_obs, cur_obs, ColumnType.Categorical, 10)
        p = cur / cur.sum()
        q = ref / ref.sum()
        at = np.array(finite + [finite[-1] + 1.0])
        p_w = np.concatenate([p[:-2], [p[-2] + p[-1]]])
        q_w = np.concatenate([q[:-2], [q[-2] + q[-1]]])
        out.append(
            {
                "psi": float(_psi(ref_obs, cur_obs, ColumnType.Categorical, 0.1)[0]),
                "kl": float(stats.entropy(cur_pct, ref_pct)),
                "js": float(distance.jensenshannon(p, q)),
                "hellinger": float(
                    _hellinger_distance(ref_obs.copy(), cur_obs.copy(), ColumnType.Categorical, 0.1)[0]
                ),
                "ks": float(stats.ks_2samp(np.repeat(at, cur), np.repeat(at, ref)).statistic),
                "wasserstein": float(stats.wasserstein_distance(finite, finite, p_w, q_w)),
            }
        )
    json.dump(out, sys.stdout)


main()
