#!/usr/bin/env bash
# Start patientpdf as `make run` does (patientpdf serve, production settings, 2 workers) with a
# fresh data dir, and write the shared harness's env file.  Usage: start_patientpdf.sh HARNESS_DIR [PORT] [NAME]
# NAME patientpdf-uvicorn or patientpdf-granian serves under that server (PATIENTPDF_SERVER), for an A/B.
set -euo pipefail
HARNESS=$1; PORT=${2:-8090}; NAME=${3:-patientpdf}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$HARNESS/run/$NAME"
"$(dirname "$0")/stop_patientpdf.sh" "$HARNESS" "$NAME" >/dev/null 2>&1 || true
case $NAME in *-granian) export PATIENTPDF_SERVER=granian ;; *-uvicorn) export PATIENTPDF_SERVER=uvicorn ;; esac
rm -rf "$RUN"; mkdir -p "$RUN"
export PATIENTPDF_DATA_DIR="$RUN/data"
export PATIENTPDF_MAX_UPLOAD_BYTES=600000000   # the harness sends a 500 MB PDF (S3); the default is 100 MiB
export PATIENTPDF_LOG_LEVEL=WARNING
# The peers only take uploads. Every upload of the harness's PDF (an image-covered page) is an
# OCR job, so with the embedded worker on, S1 would measure OCR beside the intake and S4 the
# OCR child: off unless the caller asks (bench/processing_s1.sh measures on against off).
export PATIENTPDF_EMBEDDED_WORKER=${PATIENTPDF_EMBEDDED_WORKER:-false}
DEMO=$("$ROOT/.venv/bin/patientpdf" demo --json --base-url "http://127.0.0.1:$PORT")
KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api_key"])' "$DEMO")
PATIENT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["patient_id"])' "$DEMO")
nohup "$ROOT/.venv/bin/patientpdf" serve --host 127.0.0.1 --port "$PORT" --workers "${WORKERS:-2}" \
  > "$RUN/serve.log" 2>&1 < /dev/null &
echo $! > "$RUN/serve.pid"
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
cat > "$HARNESS/run/$NAME.env" <<EOT
NAME=$NAME
BASE=http://127.0.0.1:$PORT
KEY=$KEY
PATIENT=$PATIENT
PIDFILE=$RUN/serve.pid
EOT
echo "patientpdf on http://127.0.0.1:$PORT (pid $(cat "$RUN/serve.pid"))"
