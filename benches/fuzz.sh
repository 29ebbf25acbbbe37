#!/usr/bin/env bash
# Fuzzes tiergate's request parsers (OpenAI chat and completions, Anthropic Messages,
# Responses API, with the conversation and classifier behind them), the SSE splitter and the
# three stream translators, each for MINUTES minutes (default 3), with libFuzzer through
# cargo-fuzz. The targets live in benches/fuzz/ (a crate of its own workspace). Seeds come
# from tests/fixtures. A crash stops its target and is left in
# benches/fuzz/artifacts/TARGET/; turn each into a regression test in the main crate.
#
#   benches/fuzz.sh [MINUTES] [TARGET...]   # e.g. benches/fuzz.sh 10 sse stream_responses
#
# Needs cargo-fuzz (cargo install cargo-fuzz, from crates.io) and a C++ compiler. The
# toolchain may be stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags. No
# sanitizer (the crate forbids unsafe code; panics, overflows and hangs are what is
# looked for), debug assertions on. A CPU-bound run: alone on a shared box
# (flock /work/bench.lock benches/fuzz.sh).
set -uo pipefail
cd "$(dirname "$0")/fuzz"
ROOT=$(cd ../.. && pwd)
MINUTES=${1:-3}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(request_openai request_anthropic request_responses sse \
    stream_chat_via_anthropic stream_messages_via_openai stream_responses)
export RUSTC_BOOTSTRAP=1
# CPU-bound for minutes: yield to whatever else runs on the box.
renice -n 10 -p $$ >/dev/null 2>&1 || true
FLAGS=(-s none -a --fuzz-dir .)
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo install cargo-fuzz first" >&2; exit 2; }
cargo fuzz build "${FLAGS[@]}" || exit 2

# Seeds: whole requests for the parsers; for streams two leading bytes (flags, no cuts)
# and a recorded stream of the kind the translator reads.
seed() { # TARGET PREFIX FILE...
    local t=$1 prefix=$2
    shift 2
    mkdir -p "seeds/$t"
    for f in "$@"; do
        [ -f "$f" ] || continue
        { printf "$prefix"; cat "$f"; } >"seeds/$t/$(basename "$f")"
    done
}
F=$ROOT/tests/fixtures
rm -rf seeds
for t in request_openai request_anthropic request_responses; do
    seed "$t" "" "$F"/clients/*.json "$F"/clients/recorded/*.json "$F"/anthropic/*.json \
        "$F"/local-model/*.json "$F"/local-model/*/*.json
done
openai_streams=("$F"/anthropic/chat_stream_tool_calls.sse "$F"/local-model/*/*.sse)
anthropic_streams=("$F"/anthropic/stream_*.sse)
seed sse '\000' "${openai_streams[@]}" "${anthropic_streams[@]}"
seed stream_chat_via_anthropic '\001\000' "${anthropic_streams[@]}"
seed stream_messages_via_openai '\000\000' "${openai_streams[@]}"
seed stream_responses '\000\000' "${openai_streams[@]}"

failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${MINUTES} min"
    if cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time=$((MINUTES * 60)) -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 2>"corpus/$t.log"; then
        grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: " "corpus/$t.log" | tail -3
    else
        failed+=("$t")
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "corpus/$t.log" | head -5
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs in benches/fuzz/artifacts/)"
    exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${MINUTES} min each, no crash"
