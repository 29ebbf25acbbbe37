#!/usr/bin/env bash
# `tiergate probe` against the real local Qwen: every task of the suite with a small
# max_tokens (so it stays inside CI's time; answers are cut, and the checks say so), as JSON
# Lines, then checked: one line per task, each in the contract's format, none an error.
#
# usage: tests/local-qwen/probe.sh PORT [MAX_TOKENS]   env: TIERGATE_BIN, LOCAL_QWEN_MODEL
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${1:?usage: probe.sh PORT [MAX_TOKENS]}
MAX_TOKENS=${2:-48}
BIN=${TIERGATE_BIN:-target/debug/tiergate}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/policy.yaml" <<YAML
upstreams:
  - name: local
    kind: openai
    base_url: http://127.0.0.1:$PORT/v1
    key_required: false
    model: ${LOCAL_QWEN_MODEL:-qwen2.5-coder-0.5b}
    repair: true
    timeouts: { connect: 2s, first_byte: 120s, total: 300s }
tiers:
  - name: primitive
    upstreams: [local]
  - name: architecture
    upstreams: [local]
YAML
"$BIN" probe --policy "$dir/policy.yaml" --json --max-tokens "$MAX_TOKENS" > "$dir/lines.jsonl"
python3 - "$dir/lines.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
keys = {"upstream", "task", "pass", "score", "latency_s", "output_tokens", "cost_usd", "checks"}
assert len(lines) >= 12, f"{len(lines)} lines"
for l in lines:
    assert keys <= set(l), l
    assert "error" not in l, l
    assert l["upstream"] == "local" and 0 <= l["score"] <= 1 and l["output_tokens"] > 0, l
    assert set(l["checks"].values()) <= {"pass", "fail", "skip"}, l
    print(f'[probe] {l["task"]:20} pass={str(l["pass"]).lower():5} score={l["score"]:.2f} '
          f'{l["latency_s"]:6.1f}s {l["output_tokens"]:4} tokens  {l["checks"]}')
print(f"[probe] {len(lines)} tasks, {sum(l['pass'] for l in lines)} passed")
PY
