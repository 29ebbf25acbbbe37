#!/usr/bin/env bash
# The gateway benchmark of the README's Speed table: direct to a Rust mock upstream, LiteLLM's
# proxy, nginx as a plain reverse proxy and tiergate, back to back in one run, at concurrency
# 1, 16 and 64, streaming and not. It drives the workplace harness (`compare.sh`, beside the
# project checkout in ../shared/bench, or BENCH_DIR), which runs everything in a loopback-only
# network namespace. Extra arguments go to compare.sh (e.g. `--budget 240`, `-d 5`).
#
#   benches/gateway.sh                # builds the release binary first
#   benches/gateway.sh --governance   # tiergate three ways in one run: governance off (no
#                                     # keys, secret scan off), on (a client key with rpm and
#                                     # tpm limits, secret scan on, state in memory) and on
#                                     # with the state in a redis-server of its own
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
if [ ! -x "$BENCH_DIR/compare.sh" ]; then
  echo "benches/gateway.sh: no $BENCH_DIR/compare.sh (set BENCH_DIR to the harness)" >&2
  exit 2
fi
governance=0
if [ "${1:-}" = "--governance" ]; then
  governance=1
  shift
fi
"$BENCH_DIR/setup.sh"
cargo build --release --quiet
bin=$PWD/target/release/tiergate
if [ "$governance" = 0 ]; then
  exec "$BENCH_DIR/compare.sh" --nginx --candidate tiergate \
    "TIERGATE_LOCAL_BASE_URL=\$UPSTREAM_BASE exec $bin serve --listen \$GATEWAY_HOST:\$GATEWAY_PORT" \
    -m local --litellm-workers 1 --budget 420 "$@"
fi

# Governance off / on / on+redis: the default policy, with `secrets: action: off` and no keys
# file for "off". Every candidate gets the same bearer key; "off" ignores it.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tiergate-govbench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
chmod 755 "$scratch"
sed 's/^  action: local$/  action: off/' policies/default.yaml > "$scratch/off.yaml"
grep -q '^  action: off$' "$scratch/off.yaml" || { echo "gateway.sh: no secrets action in the default policy" >&2; exit 2; }
"$bin" keys new --name bench --team bench --rpm 100000000 --tpm 1000000000 > "$scratch/new"
key=$(head -n 1 "$scratch/new")
tail -n +2 "$scratch/new" > "$scratch/keys.yaml"
serve="TIERGATE_LOCAL_BASE_URL=\$UPSTREAM_BASE exec $bin serve --listen \$GATEWAY_HOST:\$GATEWAY_PORT"
# redis-server runs in the candidate's process group (and namespace): killed with it, and its
# CPU and memory counted with the gateway's.
redis="redis-server --bind 127.0.0.1 --port 16379 --save '' --appendonly no --daemonize no --loglevel warning & \
for i in \$(seq 50); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done; \
TIERGATE_REDIS_URL=redis://127.0.0.1:16379/0"
"$BENCH_DIR/compare.sh" \
  --candidate governance-off "TIERGATE_KEYS_FILE= $serve --policy $scratch/off.yaml" \
  --candidate governance-on "TIERGATE_KEYS_FILE=$scratch/keys.yaml $serve" \
  --candidate governance-redis "$redis TIERGATE_KEYS_FILE=$scratch/keys.yaml $serve" \
  -k "$key" -m local --litellm-workers none --budget 420 "$@"
