#!/usr/bin/env bash
# Soak: 10 minutes at concurrency 64, every other request streamed, 1% of clients hanging up
# early and 1% of local's attempts faulty (500, hang, reset, truncate alike), against the
# release binary with its default policy. Every 10 s: the gateway's RSS, open descriptors and
# established upstream connections. PASS: RSS within 2 MiB after the warm-up, and no error
# beyond the injected ones (streams cut after their first event). The warm-up is five
# minutes: RSS rises until the feedback store holds its bound of 100,000 request ids (about
# 150,000 requests at this load, 35 MiB with its hash map's growth), then stays flat.
#
#   benches/soak.sh                         # extra arguments go to the load bench, e.g.
#   benches/soak.sh --duration 2m --concurrency 16
# A load benchmark: run it alone (flock /work/bench.lock benches/soak.sh on a shared box).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin tiergate
exec cargo bench --quiet --bench load -- soak --bin target/release/tiergate --concurrency 64 \
  --duration 10m --every 10s --warmup 300s --hang-ups 0.01 \
  --fail 0.0025 --hang 0.0025 --reset 0.0025 --truncate 0.0025 "$@"
