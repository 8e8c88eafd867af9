#!/bin/sh
# reliability_service.sh: the service-level checks of issue 9 against the
# real `owlore serve` (tests/reliability/*.py, stories260K on the CPU):
#
#   crash_consistency  50 kill -9 at random moments during uploads, job
#                      updates and checkpoint writes, restart after each
#   disk_full          data directory on a 72 MiB tmpfs (SKIP when it cannot
#                      be mounted: needs root)
#   hostile            slowloris/slow read, 431, 413, JSON depth, path
#                      traversal, CORS, SSRF (in an empty network namespace),
#                      cross-tenant ids
#   sse_soak           300 event-stream clients for 120 s while a job trains
#
# Each check prints PASS/FAIL/SKIP lines and one "FIGURE name: ..." line;
# its log goes to $OUT/<name>.log. Every check appends one row (the format
# of tools/reliability.sh's table) to $SUMMARY (default
# $OUT/service-summary.txt), which is printed at the end; exit status 1
# when any check failed. Environment: OWLORE_BIN (default build/owlore),
# OUT (default /tmp/owlore-reliability), RELIABILITY_SERVICE_ONLY="hostile
# ..." to run a subset; CRASH_ITERATIONS, SSE_CLIENTS and SSE_SECONDS to
# scale the runs (defaults 50, 300, 120: about 6 minutes together).
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/owlore-reliability}
SUMMARY=${SUMMARY:-$OUT/service-summary.txt}
ONLY=${RELIABILITY_SERVICE_ONLY:-crash_consistency disk_full hostile sse_soak}
OWLORE_BIN=${OWLORE_BIN:-build/owlore}
export OWLORE_BIN
mkdir -p "$OUT"
failed=0

# check NAME ARGS...: runs tests/reliability/NAME.py and records its row.
check() {
    name=$1
    shift
    case " $ONLY " in *" $name "*) ;; *) return ;; esac
    start=$(date +%s)
    python3 "tests/reliability/$name.py" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    grep -E '^(PASS|FAIL|SKIP) ' "$OUT/$name.log"
    figure=$(sed -n 's/^FIGURE [a-z_]*: //p' "$OUT/$name.log" | tail -1)
    nfail=$(grep -c '^FAIL ' "$OUT/$name.log")
    if grep -q '^SKIP ' "$OUT/$name.log" && ! grep -q '^PASS ' "$OUT/$name.log"; then
        st=SKIP
        figure=$(sed -n 's/^SKIP [a-z_]*: //p' "$OUT/$name.log" | head -1)
    elif [ "$rc" -eq 0 ] && [ "$nfail" -eq 0 ]; then
        st=PASS
    else
        st=FAIL
        failed=1
        [ -n "$figure" ] || figure="exit status $rc, $nfail failed ($OUT/$name.log)"
    fi
    printf '%-28s %-52s %s\n' "$name (${secs}s)" "$figure" "$st" >> "$SUMMARY"
}

check crash_consistency "${CRASH_ITERATIONS:-50}"
check disk_full
check hostile
check sse_soak "${SSE_CLIENTS:-300}" "${SSE_SECONDS:-120}"

echo
echo "== service reliability summary"
cat "$SUMMARY"
exit "$failed"
