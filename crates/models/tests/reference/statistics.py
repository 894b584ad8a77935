"""Reference answers for crates/models/tests/reference.rs.

Reads a JSON object of generated cases on stdin and prints, per case, what
scipy, scikit-learn, statsmodels and Evidently compute for it. Each block
names the reference function; docs/drift.md says which osprey figure it
checks.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics
from statsmodels.stats.proportion import proportions_ztest

from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.kl_div import _kl_div  # noqa: F401 (direction differs, see kl below)
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.registry import _get_default_stattest
from evidently.legacy.calculations.stattests.utils import get_binned_data
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
from evidently.legacy.core import ColumnType

warnings.simplefilter("ignore")

NAMES = {"ks": "ks_pvalue", "wasserstein": "wasserstein", "chisquare": "chi2_pvalue", "z": "z_pvalue", "jensenshannon": "js"}


def numeric(case):
    ref = pd.Series(case["reference"], dtype=float)
    cur = pd.Series(case["current"], dtype=float)
    cuts = np.unique(np.quantile(ref.to_numpy(), np.arange(1, 10) / 10))
    ref_bins = pd.Series(np.searchsorted(cuts, ref.to_numpy(), side="right"))
    cur_bins = pd.Series(np.searchsorted(cuts, cur.to_numpy(), side="right"))
    ref_pct, cur_pct = get_binned_data(ref_bins, cur_bins, ColumnType.Categorical, 10)
    ks = stats.ks_2samp(cur.to_numpy(), ref.to_numpy())
    return {
        "cuts": cuts.tolist(),
        "psi": float(_psi(ref_bins, cur_bins, ColumnType.Categorical, 0.1)[0]),
        "kl": float(stats.entropy(cur_pct, ref_pct)),
        "js": float(_jensenshannon(ref_bins, cur_bins, ColumnType.Categorical, 0.1)[0]),
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein": float(_wasserstein_distance_norm(ref, cur, ColumnType.Numerical, 0.1)[0]),
        "wasserstein_raw": float(stats.wasserstein_distance(cur.to_numpy(), ref.to_numpy())),
        "default": NAMES[_get_default_stattest(ref, cur, ColumnType.Numerical).name],
    }


def categorical(case):
    ref = pd.Series(case["reference"], dtype=object)
    cur = pd.Series(case["current"], dtype=object)
    out = {
        "psi": float(_psi(ref, cur, ColumnType.Categorical, 0.1)[0]),
        "js": float(_jensenshannon(ref, cur, ColumnType.Categorical, 0.1)[0]),
        "chi2_pvalue": float(_chi_stat_test(ref, cur, ColumnType.Categorical, 0.05)[0]),
        "default": NAMES[_get_default_stattest(ref, cur, ColumnType.Categorical).name],
    }
    if len(set(ref) | set(cur)) == 2:
        out["z_pvalue"] = float(_z_stat_test(ref, cur, ColumnType.Categorical, 0.05)[0])
    return out


def classification(case):
    y, p = case["actual"], case["predicted"]
    out = {
        "accuracy": metrics.accuracy_score(y, p),
        "precision": metrics.precision_score(y, p, average="macro", zero_division=0),
        "recall": metrics.recall_score(y, p, average="macro", zero_division=0),
        "f1": metrics.f1_score(y, p, average="macro", zero_division=0),
    }
    classes = case["classes"]
    scores = np.array(case["scores"])
    if len(classes) == 2:
        out["roc_auc"] = metrics.roc_auc_score([classes.index(a) for a in y], scores[:, 1])
    else:
        out["roc_auc"] = metrics.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=classes)
    return {k: float(v) for k, v in out.items()}


def regression(case):
    y, p = np.array(case["actual"]), np.array(case["predicted"])
    return {
        "rmse": float(metrics.root_mean_squared_error(y, p)),
        "mae": float(metrics.mean_absolute_error(y, p)),
        "mape": float(metrics.mean_absolute_percentage_error(y, p)),
    }


def welch(case):
    return {"pvalue": float(stats.ttest_ind(case["a"], case["b"], equal_var=False).pvalue)}


def proportions(case):
    z, p = proportions_ztest([case["x1"], case["x2"]], [case["n1"], case["n2"]])
    return {"z": float(z), "pvalue": float(p)}


def sketch(case):
    a, b = np.array(case["a"]), np.array(case["b"])
    return {"ks": float(stats.ks_2samp(a, b).statistic), "wasserstein": float(stats.wasserstein_distance(a, b))}


def ks_asymptotic(case):
    # ks_2samp's two-sided p-value past its exact limit, as its 'asymp'
    # branch computes it from the statistic and the two sizes.
    m, n = sorted([float(case["n1"]), float(case["n2"])], reverse=True)
    en = m * n / (m + n)
    return {"pvalue": float(np.clip(stats.kstwo.sf(case["d"], np.round(en)), 0, 1))}


def main():
    cases = json.load(sys.stdin)
    kinds = {
        "numeric": numeric,
        "categorical": categorical,
        "classification": classification,
        "regression": regression,
        "welch": welch,
        "proportions": proportions,
        "sketch": sketch,
        "ks_asymptotic": ks_asymptotic,
    }
    out = {kind: [kinds[kind](c) for c in cases.get(kind, [])] for kind in kinds}
    json.dump(out, sys.stdout)


main()
