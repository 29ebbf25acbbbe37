#!/usr/bin/env bash
# End to end with a real local model: starts (or reuses) the local Qwen server with
# deploy/local-qwen/start.sh, then drives the tiergate binary with the official OpenAI Python
# SDK (test_local_qwen.py), and stops the server again if it started it.
#
# usage: tests/local-qwen/e2e.sh [DIR] [PORT]
#   DIR   the model's install dir (default ~/.cache/tiergate-local-qwen; kept between runs:
#         nothing is downloaded again)
#   PORT  the model's port on 127.0.0.1 (default: a free one)
# env: TIERGATE_BIN (target/debug/tiergate), PYTHON (.venv/bin/python, with tests/sdk/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/tiergate-local-qwen}
PORT=${2:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PYTHON=${PYTHON:-$root/.venv/bin/python}
export TIERGATE_BIN=${TIERGATE_BIN:-$root/target/debug/tiergate}

started=0
if [[ ! -f $DIR/server-$PORT.pid ]]; then started=1; fi
t0=$(date +%s)
deploy/local-qwen/start.sh "$DIR" "$PORT" >/dev/null
t1=$(date +%s)
if [[ $started == 1 ]]; then trap 'deploy/local-qwen/stop.sh "$DIR" "$PORT"' EXIT; fi
echo "[e2e] local Qwen ready on 127.0.0.1:$PORT after $((t1 - t0)) s"

LOCAL_QWEN_URL=http://127.0.0.1:$PORT/v1 "$PYTHON" -m pytest -q -s -p no:cacheprovider tests/local-qwen
