#!/usr/bin/env bash
# Stops the local Qwen server that start.sh started from DIR on PORT (by its recorded PID).
# usage: deploy/local-qwen/stop.sh DIR PORT
set -euo pipefail
DIR=${1:?usage: stop.sh DIR PORT}
PORT=${2:?usage: stop.sh DIR PORT}
PIDFILE=$DIR/server-$PORT.pid
[[ -f $PIDFILE ]] || { echo "[local-qwen] no server recorded in $PIDFILE" >&2; exit 0; }
PID=$(cat "$PIDFILE")
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID"
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "[local-qwen] $PID did not stop within 10 s; sending SIGKILL" >&2
    kill -KILL "$PID" 2>/dev/null || true
  fi
fi
rm -f "$PIDFILE"
echo "[local-qwen] stopped $PID" >&2
