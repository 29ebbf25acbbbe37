#!/usr/bin/env bash
# The fault mix of issue 18: 400 primitive requests (half streamed) at concurrency 32 against
# the release binary with its default policy, the local upstream failing 20% of attempts with
# HTTP 500, hanging 5%, resetting 5% and truncating 5%, a healthy OpenAI-shaped fallback, a 30 s
# client timeout. Reports the requests answered within 30 s and the success rate of the
# rescuable ones (all but streams cut after their first event); PASS needs every request
# answered, none malformed and >= 99.5% of the rescuable ones answered well.
#
#   benches/faults.sh                       # extra arguments go to the load bench, e.g.
#   benches/faults.sh --requests 2000 --hang 0.10 --policy my.yaml
# A load benchmark: run it alone (flock /work/bench.lock benches/faults.sh on a shared box).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin tiergate
exec cargo bench --quiet --bench load -- faults --bin target/release/tiergate "$@"
