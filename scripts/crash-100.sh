#!/usr/bin/env bash
# 100 SIGKILLs of `osprey server` under mixed load (remote write, scrapes,
# rule evaluation, silence creation), then a check that every acknowledged
# sample and silence is there: crates/osprey/tests/crash_mixed.rs with more
# kills, on a release build. docs/durability.md says what it checks.
#
# Usage: scripts/crash-100.sh [KILLS]   (default 100; `cargo test` runs 5)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-100}"
OSPREY_CRASH_KILLS="$kills" cargo test --release -j "${JOBS:-2}" -p osprey \
    --test crash_mixed -- --nocapture
