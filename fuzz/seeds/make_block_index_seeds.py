#!/usr/bin/env python3
"""Writes the block_index seeds: the index files of four small blocks
(1, 3, 10 and 40 series of a gauge beside a few counters), each written by
`osprey import` from an OpenMetrics text, so that a campaign starts past
the index's checksums (from random bytes it stayed at coverage 99).

Usage: python3 fuzz/seeds/make_block_index_seeds.py [OSPREY_BINARY]
       (from the repository root; default target/release/osprey)
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def openmetrics(n):
    lines = ["# TYPE seed_metric gauge"]
    for i in range(n):
        for t in range(3):
            lines.append(f'seed_metric{{instance="h{i}",job="j{i % 3}",le="{i * 0.5}"}} {i + t} {1700000000 + t * 15}')
    lines.append("# TYPE other_total counter")
    for i in range(max(1, n // 3)):
        lines.append(f'other_total{{path="/a/{i}"}} {i} 1700000000')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/osprey"
    out = os.path.join(HERE, "block_index")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for n in (1, 3, 10, 40):
            text = os.path.join(work, f"om{n}.txt")
            with open(text, "w") as f:
                f.write(openmetrics(n))
            data = os.path.join(work, f"data{n}")
            subprocess.run([binary, "import", "--data-dir", data, text], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            (index,) = glob.glob(os.path.join(data, "*", "index"))
            shutil.copyfile(index, os.path.join(out, f"series{n}"))


if __name__ == "__main__":
    main()
