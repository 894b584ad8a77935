"""Reference for the pairwise comparison in crates/models/tests/distribution.rs.

stdin: {"proportions": {"xa", "na", "xb", "nb"},
        "squared": {"a": [...], "b": [...]}, "absolute": {"a": [...], "b": [...]}}
stdout: {"accuracy": p of statsmodels' two-proportion z-test (B against A),
         "rmse", "mae": p of scipy's Welch t-test on the errors}
"""
import json
import sys

from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

d = json.load(sys.stdin)
p = d["proportions"]
_, accuracy = proportions_ztest([p["xb"], p["xa"]], [p["nb"], p["na"]])
rmse = stats.ttest_ind(d["squared"]["b"], d["squared"]["a"], equal_var=False).pvalue
mae = stats.ttest_ind(d["absolute"]["b"], d["absolute"]["a"], equal_var=False).pvalue
print(json.dumps({"accuracy": float(accuracy), "rmse": float(rmse), "mae": float(mae)}))
