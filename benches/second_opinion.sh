#!/usr/bin/env bash
# What classifier.second_opinion gains and costs against the real local Qwen2.5-Coder-0.5B
# (llama.cpp's server, deploy/local-qwen/start.sh, as .ci/run starts it): the policy is the
# default one with its commented second_opinion line switched on (upstream local, band
# [0.25, 0.6], deadline 400ms, max_tokens 4). Two runs of `tiergate eval --second-opinion`:
#   1. dev + dev2, first opinion from the leave-one-source-out fold models (no row is scored
#      by a model that saw its source);
#   2. blind2, first opinion from the shipped model (it never saw these rows).
# Each in-band row is sent to the model one at a time, with the gateway's own prompt, and
# waited for to the end: the report gives accuracy with the deadline and without it, and the
# latency the call adds. The model runs on one CPU thread: run it alone on a shared box,
#   flock /work/bench.lock benches/second_opinion.sh
# env: TIERGATE_BIN (default target/debug/tiergate, built here), QWEN_DIR (the model's
# install dir, default ~/.cache/tiergate-local-qwen; nothing downloaded again once there),
# EVAL_ARGS (more arguments for both runs, e.g. --errors to list every in-band row).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${TIERGATE_BIN:-} ]]; then
  cargo build --quiet --bin tiergate
  TIERGATE_BIN=target/debug/tiergate
fi
DIR=${QWEN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tiergate-local-qwen}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
deploy/local-qwen/start.sh "$DIR" "$PORT" >/dev/null
policy=$(mktemp --suffix .yaml)
trap 'deploy/local-qwen/stop.sh "$DIR" "$PORT" >/dev/null || true; rm -f "$policy"' EXIT

sed 's/^  # second_opinion: /  second_opinion: /' policies/default.yaml > "$policy"
grep -q '^  second_opinion: ' "$policy" || { echo "no second_opinion line in policies/default.yaml" >&2; exit 2; }
export TIERGATE_LOCAL_BASE_URL=http://127.0.0.1:$PORT/v1 TIERGATE_LOCAL_MODEL=qwen2.5-coder-0.5b
echo "== $(date -u +%FT%TZ), $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)"
fx=tests/fixtures/routing
# shellcheck disable=SC2086
"$TIERGATE_BIN" eval --second-opinion --policy "$policy" --data $fx/dev.jsonl --data $fx/dev2.jsonl ${EVAL_ARGS:-}
echo "== blind2, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$TIERGATE_BIN" eval --second-opinion --shipped --policy "$policy" --data $fx/blind2.jsonl ${EVAL_ARGS:-}
echo "== done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
