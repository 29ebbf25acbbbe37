#!/usr/bin/env bash
# End-to-end tests of real coding agents through tiergate.
#
#   tests/clients/run.sh [CLIENT...]          one test per client (default: all of ALL)
#   tests/clients/run.sh --record [CLIENT...] record each client's first requests (T1, T2)
#                                             straight to the mock, text-only answers
#
# Each test runs in a loopback-only network namespace and its own PID namespace (the script
# re-executes itself under `unshare -n -p`): the scripted mock upstream (mock.py), the tiergate
# binary and the agent run there with a scratch HOME and project. Nothing outlives the run:
# after each test every other process of the namespace is ended (agents leave daemons: cline's
# hub daemon), the kernel ends the rest with the namespace, and the outer script then checks
# (tests/leftovers.py) that no process of the run is left. The mock plays one tool call (write a file with given
# content, using that agent's write tool) and then a final text. Pass: the agent exits 0
# within $CLIENT_TIMEOUT seconds, the file holds that content, and tiergate's /metrics shows
# the requests on the tier and upstream the policy gives (primitive -> the `local` mock).
#
# Needs: npm ci and a venv with requirements.txt in tests/clients (see README), the tiergate
# binary ($TIERGATE_BIN, default target/debug/tiergate), python3, unshare, ip.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${TIERGATE_BIN:-$ROOT/target/debug/tiergate}"
CLIENT_TIMEOUT="${CLIENT_TIMEOUT:-120}"
# `NAME@frontier`: the same agent with the header `x-tiergate-tier: architecture`, so its
# requests take the Anthropic route (passthrough for claude-code, chained for codex).
# `codex@keys`: the gateway with a keys file and codex with a virtual key from `tiergate keys
# new`; then the same agent with a wrong key must get a 401 and reach no upstream.
ALL=(codex claude-code opencode cline continue aider codex@frontier claude-code@frontier codex@keys)

if [ -z "${TIERGATE_IN_NETNS:-}" ]; then
    export TIERGATE_IN_NETNS=1
    # Every process of this run inherits the token: how leftovers.py finds them.
    export TIERGATE_TEST_RUN="${TIERGATE_TEST_RUN:-clients-$$-$RANDOM$RANDOM}"
    ns=(-n -p -f --mount-proc)
    [ "$(id -u)" = 0 ] || ns+=(-r)
    unshare "${ns[@]}" -- bash "$0" "$@"
    rc=$?
    if ! left=$(python3 "$ROOT/tests/leftovers.py" --kill); then
        echo "FAILED: processes of the run outlived it (now ended):"
        echo "$left"
        rc=1
    fi
    exit $rc
fi
# As PID 1 of the namespace, the script ignores signals it does not handle.
trap 'exit 130' INT TERM
ip link set lo up

RECORD=0
if [ "${1:-}" = "--record" ]; then RECORD=1; shift; fi
CLIENTS=("$@")
[ ${#CLIENTS[@]} -eq 0 ] && CLIENTS=("${ALL[@]}")

export PATH="$HERE/node_modules/.bin:$HERE/.venv/bin:$PATH"
WORK="$(mktemp -d /tmp/tiergate-clients.XXXXXX)"
PIDS=()
# Ends the processes of the test: those it started, then any other of the namespace (the
# ones they left, in their own session or not), and says which were left.
end_test() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    PIDS=()
    local left
    if ! left=$(python3 "$HERE/../leftovers.py" --kill); then
        echo "  ended what the test left running: $(echo "$left" | cut -c1-120 | tr '\n' ';')"
    fi
    wait 2>/dev/null
}
cleanup() {
    end_test >/dev/null
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

CONTENT="tiergate says hello"
# A primitive task by the default classifier (checked: its decision is asserted below).
TASK="Write hello.txt with the text: $CONTENT"
T1="Write a single self-contained HTML file with a canvas animation of a ball bouncing under gravity."
T2="Split the billing module of this service into its own microservice with an event bus, and plan the database migration."

wait_port_file() {
    for _ in $(seq 1 100); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

start_mock() { # DIR SCRIPT_OR_EMPTY -> sets MOCK_PORT
    local dir=$1 script=$2 args=()
    [ -n "$script" ] && args=(--script "$script")
    python3 "$HERE/mock.py" --log "$dir/requests.jsonl" --port-file "$dir/mock.port" "${args[@]}" \
        2>"$dir/mock.log" &
    PIDS+=($!)
    wait_port_file "$dir/mock.port" || { echo "mock did not start"; return 1; }
    MOCK_PORT=$(cat "$dir/mock.port")
}

start_gateway() { # DIR -> sets GW_PORT
    local dir=$1
    GW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$dir/policy.yaml" <<EOF
server:
  listen: 127.0.0.1:$GW_PORT
upstreams:
  - name: local
    kind: openai
    base_url: http://127.0.0.1:$MOCK_PORT/v1
    model: qwen-mock
    key_required: false
  - name: frontier
    kind: anthropic
    base_url: http://127.0.0.1:$MOCK_PORT
    model: claude-mock
    key_required: false
tiers:
  - name: primitive
    upstreams: [local]
  - name: architecture
    upstreams: [frontier]
EOF
    if [ -n "${KEYS_FILE:-}" ]; then
        printf 'auth:\n  keys_file: %s\n  access: { metrics: open, health: open, live: open }\n' \
            "$KEYS_FILE" >>"$dir/policy.yaml"
    fi
    RUST_LOG=info "$BIN" serve --policy "$dir/policy.yaml" >"$dir/gateway.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "tiergate did not start:"; cat "$dir/gateway.log"; return 1
}

# ---- per client: configuration (in $HOME / the project) and command ----
# BASE is the gateway's (or, when recording, the mock's) root URL.

setup_codex() {
    local headers=""
    [ -n "${TIER_HEADER:-}" ] && headers="http_headers = { \"x-tiergate-tier\" = \"$TIER_HEADER\" }"
    mkdir -p "$HOME/.codex"
    cat >"$HOME/.codex/config.toml" <<EOF
model = "auto"
model_provider = "tiergate"

[model_providers.tiergate]
name = "tiergate"
base_url = "$BASE/v1"
env_key = "TIERGATE_API_KEY"
wire_api = "responses"
$headers
EOF
    export TIERGATE_API_KEY="${CLIENT_KEY:-unused}"
}
run_codex() { codex exec --skip-git-repo-check --sandbox workspace-write "$1"; }

setup_claude-code() {
    export ANTHROPIC_BASE_URL="$BASE" ANTHROPIC_API_KEY=unused ANTHROPIC_MODEL=auto \
        ANTHROPIC_SMALL_FAST_MODEL=auto DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
    [ -n "${TIER_HEADER:-}" ] && export ANTHROPIC_CUSTOM_HEADERS="x-tiergate-tier: $TIER_HEADER"
}
run_claude-code() { claude -p --permission-mode acceptEdits "$1"; }

setup_opencode() {
    mkdir -p "$HOME/.config/opencode"
    cat >"$HOME/.config/opencode/opencode.json" <<EOF
{
  "\$schema": "https://opencode.ai/config.json",
  "provider": {
    "tiergate": {
      "npm": "@ai-sdk/openai-compatible",
      "name": "tiergate",
      "options": { "baseURL": "$BASE/v1", "apiKey": "unused" },
      "models": { "auto": { "name": "auto" } }
    }
  },
  "model": "tiergate/auto",
  "autoupdate": false,
  "share": "disabled"
}
EOF
}
run_opencode() { opencode run "$1"; }

setup_cline() {
    cline auth -p openai -k unused -m auto -b "$BASE/v1" >/dev/null 2>&1
}
run_cline() { cline "$1"; }

setup_continue() {
    mkdir -p "$HOME/.continue"
    cat >"$HOME/.continue/config.yaml" <<EOF
name: tiergate
version: 1.0.0
schema: v1
models:
  - name: tiergate
    provider: openai
    model: auto
    apiBase: $BASE/v1
    apiKey: unused
    roles: [chat, edit, apply]
EOF
}
run_continue() { cn -p --auto --config "$HOME/.continue/config.yaml" "$1"; }

setup_aider() { :; }
run_aider() {
    aider --model openai/auto --openai-api-base "$BASE/v1" --openai-api-key unused \
        --no-git --yes-always --no-check-update --no-show-model-warnings --no-analytics \
        --no-pretty --message "$1"
}

# The scripted exchange: each agent's own write tool, with the arguments it expects.
script_for() { # CLIENT PROJECT -> JSON
    python3 - "$1" "$2/hello.txt" "$CONTENT" <<'PY'
import json, sys
client, path, content = sys.argv[1:4]
body = content + "\n"
tool = {
    "codex": ("exec_command", {"cmd": f"printf '%s\\n' '{content}' > hello.txt"}),
    "claude-code": ("Write", {"file_path": path, "content": body}),
    "opencode": ("write", {"filePath": path, "content": body}),
    "cline": ("editor", {"path": path, "new_text": body}),
    "continue": ("Write", {"filepath": path, "content": body}),
}.get(client)
script = {"final": "Done: hello.txt is written.",
          # aider offers no tools: its edit format "whole" is a file listing in the reply.
          "text": f"hello.txt\n```\n{content}\n```\n" if client == "aider" else "OK."}
if tool:
    script.update(tool=tool[0], arguments=tool[1])
print(json.dumps(script))
PY
}

scratch() { # DIR -> a fresh HOME and project with the recorded sample files
    rm -rf "$1/home" "$1/project"
    mkdir -p "$1/home" "$1/project"
    cp "$HERE/project/"* "$1/project/"
}

run_client() { # CLIENT DIR TASK -> exit code
    local c=$1 dir=$2 task=$3
    (
        export HOME="$dir/home" XDG_CONFIG_HOME="$dir/home/.config" XDG_DATA_HOME="$dir/home/.local/share" \
            XDG_CACHE_HOME="$dir/home/.cache" XDG_STATE_HOME="$dir/home/.local/state" NO_COLOR=1 CI=1
        unset OPENAI_API_KEY OPENAI_BASE_URL ANTHROPIC_AUTH_TOKEN
        cd "$dir/project" || exit 1
        "setup_$c"
        export -f "run_$c"
        export BASE
        # `timeout` runs programs, not functions: the function goes in through the environment.
        timeout -k 5 "$CLIENT_TIMEOUT" bash -c '"run_$0" "$1"' "$c" "$task" </dev/null
    ) >"$dir/client.out" 2>&1
}

metric() { # NAME-AND-LABEL-FILTER... -> sum
    curl -s "http://127.0.0.1:$GW_PORT/metrics" | python3 -c '
import sys
want = sys.argv[1:]
total = 0.0
for line in sys.stdin:
    if line.startswith("#"):
        continue
    name, _, value = line.rstrip().rpartition(" ")
    if all(w in name for w in want):
        total += float(value)
print(int(total))' "$@"
}

record() {
    local c=$1 out="$ROOT/tests/fixtures/clients/recorded"
    mkdir -p "$out"
    for t in T1 T2; do
        local dir="$WORK/$c-$t"
        mkdir -p "$dir"
        scratch "$dir"
        start_mock "$dir" "" || return 1
        BASE="http://127.0.0.1:$MOCK_PORT"
        local task=$T1
        [ $t = T2 ] && task=$T2
        CLIENT_TIMEOUT=60 run_client "$c" "$dir" "$task"
        echo "$c $t: exit $? ($(wc -l <"$dir/requests.jsonl") requests)"
        python3 "$HERE/extract_fixture.py" "$dir/requests.jsonl" "$out" "$c-$t"
        end_test
    done
}

test_client() {
    local name=$1 c=${1%@*} dir="$WORK/$1" t0=$SECONDS
    local tier=primitive upstream=local path=/v1/chat/completions
    TIER_HEADER="" KEYS_FILE="" CLIENT_KEY=""
    mkdir -p "$dir"
    case "$name" in
    *@frontier) TIER_HEADER=architecture tier=architecture upstream=frontier path=/v1/messages ;;
    *@keys)
        "$BIN" keys new --name "$c" --team agents --rpm 600 >"$dir/new-key" || return 1
        CLIENT_KEY=$(head -n 1 "$dir/new-key")
        KEYS_FILE="$dir/keys.yaml"
        tail -n +2 "$dir/new-key" >"$KEYS_FILE"
        ;;
    esac
    export TIER_HEADER KEYS_FILE CLIENT_KEY
    scratch "$dir"
    script_for "$c" "$dir/project" >"$dir/script.json"
    start_mock "$dir" "$dir/script.json" || return 1
    start_gateway "$dir" || return 1
    BASE="http://127.0.0.1:$GW_PORT"
    run_client "$c" "$dir" "$TASK"
    local rc=$? why=""
    local got
    got="$(cat "$dir/project/hello.txt" 2>/dev/null)"
    # Every request of this client: on the tier the policy gives (primitive by the
    # classifier, or the header's), at that tier's upstream, answered 2xx, and seen there by
    # the mock on that upstream's path.
    local via_local total chat_seen min=2
    [ "$c" = aider ] && min=1 # aider's whole-file edit needs no tool round trip
    via_local=$(metric tiergate_requests_total "tier=\"$tier\"" "upstream=\"$upstream\"" "client=\"$c\"" 'status_class="2xx"')
    total=$(metric tiergate_requests_total)
    chat_seen=$(grep -c "\"path\": \"$path" "$dir/requests.jsonl")
    if [ $rc -ne 0 ]; then why="exit code $rc"
    elif [ "$got" != "$CONTENT" ]; then why="hello.txt holds '${got}'"
    elif [ "$via_local" -lt $min ] || [ "$via_local" != "$total" ]; then
        why="$via_local of $total requests reached $tier/$upstream as client $c"
    elif [ "$chat_seen" != "$total" ]; then why="the local mock saw $chat_seen of $total requests"
    elif [ -n "$CLIENT_KEY" ]; then why=$(wrong_key "$c" "$dir")
    fi
    if [ -z "$why" ]; then
        echo "ok: $name ($((SECONDS - t0)) s, $via_local requests via $tier/$upstream)"
        return 0
    fi
    echo "FAILED: $name: $why ($((SECONDS - t0)) s)"
    echo "--- agent output (last 30 lines)"; tail -30 "$dir/client.out"
    echo "--- gateway log (last 10 lines)"; tail -10 "$dir/gateway.log"
    echo "--- requests the mock saw"; python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l); print(r["method"], r["path"], r["user_agent"])' "$dir/requests.jsonl" 2>/dev/null | tail -10
    return 1
}

# After a run with a good key: the same agent with a wrong one gets a 401, writes nothing and
# reaches no upstream; neither key is in the gateway's log. Prints why not, or nothing.
wrong_key() { # CLIENT DIR
    local c=$1 dir=$2 seen before good=$CLIENT_KEY
    before=$(wc -l <"$dir/requests.jsonl")
    cp "$dir/client.out" "$dir/client-good-key.out"
    scratch "$dir"
    CLIENT_KEY="tg-wrong-key-$RANDOM$RANDOM" CLIENT_TIMEOUT=60 run_client "$c" "$dir" "$TASK"
    local rc=$?
    seen=$(wc -l <"$dir/requests.jsonl")
    if [ $rc -eq 0 ]; then echo "with a wrong key the agent exited 0"
    elif [ -e "$dir/project/hello.txt" ]; then echo "with a wrong key the agent wrote hello.txt"
    elif [ "$seen" != "$before" ]; then echo "with a wrong key $((seen - before)) requests reached the mock"
    elif ! grep -q 'status=401 error="invalid_api_key"' "$dir/gateway.log"; then echo "no 401 in the gateway's log"
    elif ! grep -q "401" "$dir/client.out"; then echo "the agent did not report the 401"
    elif grep -q -e "$good" -e "tg-wrong-key" "$dir/gateway.log"; then echo "a key reached the gateway's log"
    fi
}

passed=0
failed=0
for c in "${CLIENTS[@]}"; do
    if [ $RECORD = 1 ]; then
        record "$c"
        continue
    fi
    if test_client "$c"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    end_test
done
[ $RECORD = 1 ] && exit 0
echo "clients: $passed passed, $failed failed"
[ $failed -eq 0 ]
