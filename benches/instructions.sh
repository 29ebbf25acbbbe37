#!/usr/bin/env bash
# Instructions per request, per stage: runs each gateway binary under callgrind against the
# bench mock upstream (../shared/bench/mock), sends a fixed number of requests (non-streamed,
# then streamed; keep-alive, CONC connections) and divides callgrind's counts by them.
# Instruction counts do not depend on how busy the machine is, unlike req/s or CPU time.
#
#   benches/instructions.sh                        # target/release/tiergate
#   benches/instructions.sh before=/x/tiergate after=target/release/tiergate
#   N=2000 CONC=8 MODEL=local benches/instructions.sh
#   SERVE_ARGS="--policy off.yaml" benches/instructions.sh   # more `serve` arguments
#   TIERGATE_KEYS_FILE=keys.yaml KEY=tg-... benches/instructions.sh   # with a client key
#   CHECKS_PER_SECOND=0 benches/instructions.sh    # the default policy, answer checks off
#
# The answer checks take a budget per second of wall-clock time, and callgrind runs the
# gateway some 50x slower: under it a far larger share of answers is checked than at full
# speed (at 10k req/s the default 50 a second is 0.5%). CHECKS_PER_SECOND=0 measures the
# request path alone, which is what a loaded gateway spends per request.
#
# Counting starts after a warm-up (connections open, pools and metric series made) and is
# dumped once per mode, so start-up and shutdown are not counted. Stages are the inclusive
# cost of the call edges that enter a stage's functions from outside it (see STAGES in
# instructions.py); what no stage claims is `server` (hyper's server side, tokio, the
# response write). Per-stage figures need symbols: the release profile keeps line tables.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-../shared/bench}
BENCH_CACHE=${BENCH_CACHE:-${HOME:-/root}/.cache/tiergate-bench}
N=${N:-2000}
CONC=${CONC:-8}
MODEL=${MODEL:-local}
OUT=${OUT:-$(mktemp -d /tmp/tiergate-instructions.XXXXXX)}
mkdir -p "$OUT"
MOCK_PORT=${MOCK_PORT:-18190}
PORT=${PORT:-14190}
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
MOCK="$BENCH_CACHE/mock-target/release/mock"
[ -x "$MOCK" ] || "$BENCH_DIR/setup.sh" mock

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("tiergate=target/release/tiergate")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

MOCK_ADDR=127.0.0.1:$MOCK_PORT MOCK_THREADS=1 "$MOCK" >"$OUT/mock.log" 2>&1 &
pids+=($!)

KEY=${KEY:-sk-bench-1234}
read -r -a serve_args <<<"${SERVE_ARGS:-}"
if [ -n "${CHECKS_PER_SECOND:-}" ]; then
  sed "s/^    upstreams: \(.*\)$/    upstreams: \1\n    checks_per_second: $CHECKS_PER_SECOND/" \
    policies/default.yaml > "$OUT/policy.yaml"
  grep -q "checks_per_second" "$OUT/policy.yaml" || { echo "instructions.sh: no tiers in the default policy" >&2; exit 2; }
  serve_args+=(--policy "$OUT/policy.yaml")
fi
drive() { python3 benches/instructions.py drive --url "http://127.0.0.1:$PORT/v1/chat/completions" \
  --body "$BENCH_DIR/$1" --model "$MODEL" -n "$2" -c "$CONC" --key "$KEY" "${@:3}"; }

for t in "${targets[@]}"; do
  name=${t%%=*}
  bin=${t#*=}
  [ "$name" != "$t" ] || name=$(basename "$bin")
  TIERGATE_LOCAL_BASE_URL=http://127.0.0.1:$MOCK_PORT/v1 valgrind --tool=callgrind \
    --callgrind-out-file="$OUT/$name.out" "$bin" serve --listen "127.0.0.1:$PORT" "${serve_args[@]}" \
    >"$OUT/$name.log" 2>&1 &
  vg=$!
  pids+=("$vg")
  python3 benches/instructions.py wait --url "http://127.0.0.1:$PORT/healthz" --seconds 120
  drive body.json 200 >/dev/null
  drive body_stream.json 200 --stream >/dev/null
  callgrind_control -z "$vg" >/dev/null
  drive body.json "$N"
  callgrind_control -d nonstream "$vg" >/dev/null
  drive body_stream.json "$N" --stream
  callgrind_control -d stream "$vg" >/dev/null
  kill -INT "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  for mode in nonstream stream; do
    f=$(grep -l "^desc: Trigger: dump $mode\$" "$OUT/$name.out".* | head -n 1)
    python3 benches/instructions.py report --file "$f" -n "$N" --name "$name" --mode "$mode"
  done
done
echo "callgrind files in $OUT (callgrind_annotate --inclusive=yes FILE)"
