#!/usr/bin/env bash
# Stop the patientpdf started by start_patientpdf.sh.  Usage: stop_patientpdf.sh HARNESS_DIR [NAME]
set -euo pipefail
PIDFILE="$1/run/${2:-patientpdf}/serve.pid"
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$PID" 2>/dev/null || true
rm -f "$PIDFILE"
