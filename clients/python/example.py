"""A model server's side of osprey's model-quality API, in a few lines.

    python3 clients/python/example.py http://127.0.0.1:9090

Logs a reference set, 500 predictions of a churn model (two versions)
and the actual outcome of half of them, then prints what was sent.
"""

import random
import sys
import time

from osprey_client import Monitor

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9090"
monitor = Monitor(url, "churn-example")

rng = random.Random(42)


def features():
    return {"age": rng.randint(18, 80), "income": round(rng.uniform(1e4, 1e5), 2), "city": rng.choice(["Oslo", "Bergen"])}


# A training-set sample, once at start: what drift is measured against.
monitor.set_reference([{"features": features(), "prediction": "stay", "actual": "stay"} for _ in range(200)])

for i in range(500):
    churn = rng.random()
    # In a real server this sits beside model.predict(); it returns at once.
    monitor.log_prediction(
        id=f"req-{i}",
        version="v2" if i % 4 == 0 else "v1",
        features=features(),
        prediction="churn" if churn > 0.5 else "stay",
        scores={"churn": churn, "stay": 1 - churn},
    )

# Later, when the outcome is known (hours or days on).
for i in range(0, 500, 2):
    monitor.log_actual(id=f"req-{i}", actual=rng.choice(["churn", "stay"]), timestamp=time.time())

monitor.flush()
print(monitor.stats())
monitor.close()
