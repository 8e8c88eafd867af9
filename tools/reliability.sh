#!/bin/sh
# reliability.sh: the sanitizer, valgrind and fuzzing checks of issue 9,
# run by `make reliability` (and CI after `make test`), ending with one
# summary table: each check, its figure, PASS or FAIL; exit status 1 when
# any check failed.
#
#   asan      tests/unit + tests/ops built with gcc ASan+UBSan: every case
#             passes and no sanitizer report appears
#   tsan      the API suites (tests/unit/test_*_api, test_jobs_stream,
#             test_sse_clients, test_serve, test_webhooks, test_stress_mixed)
#             under TSan: no data race or other report
#   valgrind  memcheck on `owlore validate` and a 3-step `owlore train` of
#             stories260K: no error, nothing definitely or indirectly lost
#   fuzz      every fuzz/fuzz_*.c built with clang libFuzzer+ASan+UBSan:
#             the committed corpus and fuzz/regressions replayed, then
#             FUZZ_SECONDS (default 60) of fuzzing each: no crash, leak or
#             timeout (a crasher is left in $OUT/fuzz/<name>/)
#   service   tools/reliability_service.sh against build/owlore: kill -9
#             crash consistency, disk full, hostile clients, SSE soak
#
# The sanitizer, valgrind and fuzz builds are CPU-only (NVCC= : no CUDA
# runtime under the sanitizers).
# Builds go to $OUT (default /tmp/owlore-reliability). Environment:
# FUZZ_SECONDS, RELIABILITY_ONLY="asan fuzz ..." to run a subset.
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/owlore-reliability}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
ONLY=${RELIABILITY_ONLY:-asan tsan valgrind fuzz service}
JOBS=${JOBS:-2}
OWLORE_SHARED=${OWLORE_SHARED:-$(cd ../shared 2>/dev/null && pwd)}
export OWLORE_SHARED OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # as tests/run.sh
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
FAILURES="$OUT/failures.txt" # the FAIL lines of the suites, shown after the table
: > "$SUMMARY"
: > "$FAILURES"
failed=0

# record CHECK FIGURE OK(0/1)
record() {
    st=PASS
    [ "$3" -eq 1 ] || { st=FAIL; failed=1; }
    printf '%-28s %-52s %s\n' "$1" "$2" "$st" >> "$SUMMARY"
}

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# Sanitizer reports in a log: ASan, LSan, UBSan, TSan.
REPORT_RE='ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:'
reports() { grep -cE "$REPORT_RE" "$1"; }

# run_suite NAME BUILD LOG TESTS...: each test from the repository root.
run_suite() {
    name=$1 build=$2 log=$3
    shift 3
    : > "$log"
    for t in "$@"; do
        echo "== $t" >> "$log"
        timeout "${TEST_TIMEOUT:-1200}" "$build/tests/$t" >> "$log" 2>&1
        rc=$?
        [ "$rc" -eq 0 ] || { echo "FAIL $t: exited with status $rc" >> "$log"; }
    done
    pass=$(grep -c '^PASS ' "$log")
    fail=$(grep -c '^FAIL ' "$log")
    n=$(reports "$log")
    grep -E "^FAIL |^ {5}.*\([^ ]+:[0-9]+\)\$|$REPORT_RE" "$log" | sed "s|^|$name: |" | head -40 >> "$FAILURES"
    echo "$name: $pass passed, $fail failed, $n sanitizer reports ($log)"
    record "$name" "$pass passed, $fail failed, $n reports" \
        "$([ "$fail" -eq 0 ] && [ "$pass" -gt 0 ] && [ "$n" -eq 0 ] && echo 1 || echo 0)"
}

tests_of() { # the test programs (unit/x, ops/y) of the given source globs
    for f in "$@"; do [ -f "$f" ] && echo "$f"; done | sed 's|^tests/||; s|\.c$||'
}

if want asan; then
    B=$OUT/asan
    T=$(tests_of tests/unit/test_*.c tests/ops/test_*.c)
    if CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
       LDFLAGS="-fsanitize=address,undefined" \
       make -s -j"$JOBS" NVCC= BUILD="$B" "$B/owlore" $(for t in $T; do echo "$B/tests/$t"; done) \
           > "$OUT/asan-build.log" 2>&1; then
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            OWLORE_BIN=$B/owlore run_suite "asan+ubsan unit+ops" "$B" "$OUT/asan.log" $T
    else
        record "asan+ubsan unit+ops" "build failed ($OUT/asan-build.log)" 0
    fi
fi

if want tsan; then
    B=$OUT/tsan
    T=$(tests_of tests/unit/test_*_api.c tests/unit/test_jobs_stream.c \
        tests/unit/test_sse_clients.c tests/unit/test_serve.c tests/unit/test_webhooks.c \
        tests/unit/test_stress_mixed.c)
    # OpenMP is off: libgomp is not TSan-instrumented and its barriers read
    # as races; OpenBLAS's own threads are kept to one for the same reason.
    if CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" LDFLAGS="-fsanitize=thread" \
       make -s -j"$JOBS" NVCC= BUILD="$B" "$B/owlore" $(for t in $T; do echo "$B/tests/$t"; done) \
           > "$OUT/tsan-build.log" 2>&1; then
        OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1 \
            OWLORE_BIN=$B/owlore run_suite "tsan api+stress" "$B" "$OUT/tsan.log" $T
    else
        record "tsan api+stress" "build failed ($OUT/tsan-build.log)" 0
    fi
fi

if want valgrind; then
    B=$OUT/plain
    VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
    if CFLAGS=-O1 make -s -j"$JOBS" NVCC= BUILD="$B" "$B/owlore" > "$OUT/valgrind-build.log" 2>&1; then
        M=$OWLORE_SHARED/data/models/stories260K/stories260K.bin
        D=tests/unit/fixtures/datasets/valid_messages.jsonl
        ok=1 errs=0
        : > "$OUT/valgrind.log"
        OMP_NUM_THREADS=1 $VG "$B/owlore" validate --data "$D" >> "$OUT/valgrind.log" 2>&1 || ok=0
        OMP_NUM_THREADS=1 $VG "$B/owlore" train --model "$M" \
            --data "$OWLORE_SHARED/data/datasets/alpaca/alpaca_tiny.json" --steps 3 --seq 32 \
            --batch 1 --method lisa --gamma 1 --out "$OUT/valgrind-run" >> "$OUT/valgrind.log" 2>&1 || ok=0
        errs=$(grep -h 'ERROR SUMMARY' "$OUT/valgrind.log" | awk '{s += $4} END {print s + 0}')
        lost=$(grep -hE '(definitely|indirectly) lost:' "$OUT/valgrind.log" |
               awk '{gsub(",", "", $4); s += $4} END {print s + 0}')
        [ "$errs" -eq 0 ] && [ "$lost" -eq 0 ] || ok=0
        record "valgrind validate+train" "$errs errors, $lost bytes lost" "$ok"
    else
        record "valgrind validate+train" "build failed ($OUT/valgrind-build.log)" 0
    fi
fi

if want fuzz; then
    B=$OUT/fuzz
    FZ="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer"
    mkdir -p "$B/bin"
    # clang 14 does not vectorise the kernels' `omp simd` loops under the
    # sanitizers and reports each as a warning (an error under -Werror);
    # vectorisation is speed, not correctness, so that warning is off here.
    if CC=clang CFLAGS="$FZ -fsanitize=fuzzer-no-link -Wno-pass-failed" make -s -j"$JOBS" NVCC= BUILD="$B" \
           "$B/libowlore.a" "$B/libowlore-cli.a" > "$OUT/fuzz-build.log" 2>&1; then
        for src in fuzz/fuzz_*.c; do
            name=$(basename "$src" .c | sed 's/^fuzz_//')
            bin=$B/bin/fuzz_$name
            work=$B/$name
            rm -rf "$work" && mkdir -p "$work/corpus"
            if ! clang $FZ -fsanitize=fuzzer -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
                   -fopenmp -Iengine -Iserver -Ifuzz \
                   -I/usr/include/x86_64-linux-gnu/openblas-openmp -o "$bin" "$src" \
                   "$B/libowlore-cli.a" "$B/libowlore.a" \
                   -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
                   -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -llapacke \
                   -ljansson -lcrypto -lmicrohttpd -lcurl -lsqlite3 -lm -ldl \
                   > "$work/build.log" 2>&1; then
                record "fuzz $name" "build failed ($work/build.log)" 0
                continue
            fi
            seeds=fuzz/corpus/$name
            regs=fuzz/regressions/$name
            [ -d "$regs" ] || regs=
            # replay: every committed input once
            "$bin" -runs=0 -timeout=25 -rss_limit_mb=4096 $seeds $regs \
                > "$work/replay.log" 2>&1
            rrc=$?
            "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=4096 \
                -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" $seeds \
                > "$work/fuzz.log" 2>&1
            frc=$?
            execs=$(grep 'stat::number_of_executed_units' "$work/fuzz.log" | awk '{print $2}')
            crashes=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-')
            record "fuzz $name" "replay rc $rrc, ${execs:-0} execs in ${FUZZ_SECONDS}s, $crashes crashers" \
                "$([ "$rrc" -eq 0 ] && [ "$frc" -eq 0 ] && [ "$crashes" -eq 0 ] && echo 1 || echo 0)"
        done
    else
        record "fuzz" "library build failed ($OUT/fuzz-build.log)" 0
    fi
fi

if want service; then
    OUT=$OUT SUMMARY=$SUMMARY OWLORE_BIN=${OWLORE_BIN:-build/owlore} \
        sh tools/reliability_service.sh || failed=1
fi

echo
echo "== reliability summary"
cat "$SUMMARY"
if [ -s "$FAILURES" ]; then
    echo
    echo "== failed checks (the logs are in $OUT)"
    cat "$FAILURES"
fi
[ "$failed" -eq 0 ] && echo "reliability: all checks passed" || echo "reliability: FAILED"
exit "$failed"
