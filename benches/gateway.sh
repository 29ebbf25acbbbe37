#!/usr/bin/env bash
# The gateway benchmark of the README's Speed table: direct to a Rust mock upstream, LiteLLM's
# proxy, nginx as a plain reverse proxy and tiergate, back to back in one run, at concurrency
# 1, 16 and 64, streaming and not. It drives the workplace harness (`compare.sh`, beside the
# project checkout in ../shared/bench, or BENCH_DIR), which runs everything in a loopback-only
# network namespace. Extra arguments go to compare.sh (e.g. `--budget 240`, `-d 5`).
#
#   benches/gateway.sh            # builds the release binary first
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
if [ ! -x "$BENCH_DIR/compare.sh" ]; then
  echo "benches/gateway.sh: no $BENCH_DIR/compare.sh (set BENCH_DIR to the harness)" >&2
  exit 2
fi
"$BENCH_DIR/setup.sh"
cargo build --release --quiet
exec "$BENCH_DIR/compare.sh" --nginx --candidate tiergate \
  'TIERGATE_LOCAL_BASE_URL=$UPSTREAM_BASE exec $PWD/target/release/tiergate serve --listen $GATEWAY_HOST:$GATEWAY_PORT' \
  -m local --litellm-workers 1 --budget 420 "$@"
