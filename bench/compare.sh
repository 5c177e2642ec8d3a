#!/usr/bin/env bash
# patientpdf beside the shared peers, in one interleaved run of the shared harness.
#   bench/compare.sh [ROUNDS=3] [--quick] [--targets "nginx django-sync fastapi-naive patientpdf"]
#   (targets patientpdf-uvicorn, patientpdf-granian: the same build under that server, for an A/B of the servers)
# The peers stay outside the project: ../shared/bench is copied to a scratch folder
# (PATIENTPDF_BENCH_DIR, default /tmp/ppdf-bench/shared), set up there once, and driven from here.
# Output: <scratch>/results/<timestamp>/ with one JSON per round and target, and summary.md;
# with every target, the bar table goes into bench/README.md (bench/report.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="$ROOT/../shared/bench"
HARNESS="${PATIENTPDF_BENCH_DIR:-/tmp/ppdf-bench/shared}"
ROUNDS=3; QUICK=(); TARGETS="nginx django-sync fastapi-naive patientpdf"
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=(--quick) ;;
    --targets) TARGETS=$2; shift ;;
    [0-9]*) ROUNDS=$1 ;;
    *) echo "unknown arg $1" >&2; exit 2 ;;
  esac; shift
done
if [ ! -x "$HARNESS/harness.py" ]; then
  mkdir -p "$(dirname "$HARNESS")"; cp -r "$SHARED" "$HARNESS"
fi
[ -x "$HARNESS/.venv/bin/python" ] && [ -f "$HARNESS/data/pdf_500m.pdf" ] || "$HARNESS/setup.sh"
[ -x "$ROOT/.venv/bin/patientpdf" ] || make -C "$ROOT" install
cd "$HARNESS"
OUT="results/$(date +%Y%m%d-%H%M%S)${QUICK:+-quick}"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
start() {
  case $1 in
    nginx|nginx-discard) baselines/nginx/start.sh ;;
    django-sync) baselines/django_ref/start.sh sync ;;
    django-gthread) baselines/django_ref/start.sh gthread ;;
    fastapi-naive) baselines/fastapi_naive/start.sh ;;
    patientpdf) "$ROOT/bench/start_patientpdf.sh" "$HARNESS" ;;
    patientpdf-granian|patientpdf-uvicorn) "$ROOT/bench/start_patientpdf.sh" "$HARNESS" 8091 "$1" ;;
  esac
}
stop() {
  case $1 in
    nginx|nginx-discard) baselines/nginx/stop.sh ;;
    django-sync) baselines/django_ref/stop.sh sync ;;
    django-gthread) baselines/django_ref/stop.sh gthread ;;
    fastapi-naive) baselines/fastapi_naive/stop.sh ;;
    patientpdf*) "$ROOT/bench/stop_patientpdf.sh" "$HARNESS" "$1" ;;
  esac
}
trap 'for t in $TARGETS; do stop $t >/dev/null 2>&1 || true; done' EXIT
echo "== patientpdf $(git -C "$ROOT" rev-parse --short HEAD); machine: nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    echo "== round $r target $t $(date +%T)"
    start "$t" >/dev/null
    sync; sleep 2
    ./harness.py --env "run/$t.env" "${QUICK[@]}" --json "$OUT/r$r-$t.json" 2>&1 | grep -v '^running' || true
    stop "$t" >/dev/null
    case $t in django-*|fastapi-*) rm -rf "run/$t/media" "run/$t/tmp" ;; patientpdf*) rm -rf "run/$t" ;; esac
  done
done
python3 aggregate.py "$OUT"/r*-*.json | tee "$OUT/summary.md"
# The issue's table with patientpdf's column and the ratios; into bench/README.md only when
# every peer ran beside patientpdf (a partial run would leave holes in it).
EVERY_PEER=yes; for t in nginx django-sync fastapi-naive patientpdf; do [[ " $TARGETS " == *" $t "* ]] || EVERY_PEER=no; done
if [ $EVERY_PEER = yes ]; then python3 "$ROOT/bench/report.py" "$OUT" --readme "$ROOT/bench/README.md"
else python3 "$ROOT/bench/report.py" "$OUT"; fi
echo "results in $HARNESS/$OUT"
