#!/usr/bin/env bash
# S1 of the shared harness with processing on vs off, interleaved: each round starts
# `patientpdf serve` (bench/start_patientpdf.sh, as `make run`) with PATIENTPDF_EMBEDDED_WORKER=true,
# runs S1, stops it, then the same with =false.
#   bench/processing_s1.sh [ROUNDS=3] [HARNESS_DIR=/tmp/ppdf-bench/shared] [extra harness options, default --quick]
# PORT (default 8191) is where serve listens.
# Per round: load average before, the harness's S1 line, and CPU seconds per serve process during the
# harness run (which one is the job worker, which ones the API). Output: HARNESS_DIR/results/<ts>-processing-s1/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROUNDS=${1:-3}; HARNESS=${2:-${PATIENTPDF_BENCH_DIR:-/tmp/ppdf-bench/shared}}; shift $(( $# < 2 ? $# : 2 ))
EXTRA=("$@"); [ ${#EXTRA[@]} -gt 0 ] || EXTRA=(--quick)
if [ ! -x "$HARNESS/harness.py" ]; then mkdir -p "$(dirname "$HARNESS")"; cp -r "$ROOT/../shared/bench" "$HARNESS"; fi
[ -x "$HARNESS/.venv/bin/python" ] && [ -n "$(ls "$HARNESS"/data/*100k* 2>/dev/null)" ] || "$HARNESS/setup.sh"
cd "$HARNESS"
OUT="results/$(date +%Y%m%d-%H%M%S)-processing-s1"; mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
trap '"$ROOT/bench/stop_patientpdf.sh" "$HARNESS" >/dev/null 2>&1 || true' EXIT
cpu() {  # "pid cpu_seconds cmdline" for serve's process tree
  python3 - "$1" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK"); kids = {}
for e in os.listdir("/proc"):
    if e.isdigit():
        try: kids.setdefault(int(open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(e))
        except OSError: pass
todo = [int(sys.argv[1])]
while todo:
    p = todo.pop()
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:90]
    except OSError: continue
    print(p, (int(f[11]) + int(f[12])) / tick, cmd); todo += kids.get(p, [])
EOF
}
echo "== patientpdf $(git -C "$ROOT" rev-parse --short HEAD); nproc=$(nproc)"
for r in $(seq "$ROUNDS"); do
  for mode in true false; do
    echo "== round $r embedded_worker=$mode $(date +%T) load=$(cut -d' ' -f1-3 /proc/loadavg)"
    PATIENTPDF_EMBEDDED_WORKER=$mode "$ROOT/bench/start_patientpdf.sh" "$HARNESS" "${PORT:-8191}" >/dev/null
    PID=$(cat run/patientpdf/serve.pid); sync; sleep 2
    cpu "$PID" > "$OUT/cpu-before-r$r-$mode.txt"; T0=$(date +%s.%N)
    ./harness.py --env run/patientpdf.env --scenarios S1 "${EXTRA[@]}" --json "$OUT/r$r-$mode.json" 2>&1 | grep -v '^running' || true
    cpu "$PID" > "$OUT/cpu-after-r$r-$mode.txt"; T1=$(date +%s.%N)
    python3 - "$OUT/cpu-before-r$r-$mode.txt" "$OUT/cpu-after-r$r-$mode.txt" "$T0" "$T1" <<'EOF'
import sys
before = {l.split(" ", 2)[0]: float(l.split(" ", 2)[1]) for l in open(sys.argv[1])}
wall = float(sys.argv[4]) - float(sys.argv[3])
for line in open(sys.argv[2]):
    pid, secs, cmd = line.rstrip("\n").split(" ", 2)
    used = float(secs) - before.get(pid, 0.0)
    print(f"   cpu over the harness run ({wall:.0f} s): pid {pid} {100 * used / wall:5.1f} % of a core  {cmd[:70]}")
EOF
    sqlite3 "file:run/patientpdf/data/patientpdf.db?mode=ro" \
      "SELECT '   jobs after S1: ' || group_concat(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM jobs GROUP BY status)" 2>/dev/null || true
    "$ROOT/bench/stop_patientpdf.sh" "$HARNESS" >/dev/null
    rm -rf run/patientpdf
  done
done
python3 - "$OUT" <<'EOF'
import glob, json, statistics, sys
for mode in ("true", "false"):
    rps, p99 = [], []
    for path in sorted(glob.glob(f"{sys.argv[1]}/r*-{mode}.json")):
        s1 = json.load(open(path))["scenarios"]["S1"]
        rps.append(round(s1["req_s"])); p99.append(round(s1["p99_ms"], 1))
    print(f"embedded_worker={mode}: S1 req/s per round {rps} median {statistics.median(rps) if rps else None}; p99 ms {p99}")
EOF
echo "results in $HARNESS/$OUT"
