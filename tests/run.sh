#!/bin/sh
# run.sh: runs every test program under the given folder from the repository
# root, prints their PASS/FAIL lines, and ends with "N passed, N failed".
# A program that exits non-zero without printing a FAIL line counts as one
# failed case (a crash is never silent); one that runs past TEST_TIMEOUT
# seconds (default 1200) is stopped and fails.
#
# Then every executable tests/py/test_*.py (Python tools driving the built
# server; tests/py/setup.sh installs what they need), with OWLORE_BIN set to
# the binary beside the given folder (build/owlore for build/tests) unless
# already set.
dir=${1:-build/tests}
passed=0
failed=0
OWLORE_BIN=${OWLORE_BIN:-$(cd "$dir/.." 2>/dev/null && pwd)/owlore}
# OpenMP threads sleep while they wait, as in the owlore binary (which sets
# this for itself, blas_select.c): spinning ones starve the server threads
# of the in-process API tests on a busy machine.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OWLORE_BIN OMP_WAIT_POLICY
for t in $(find "$dir" -type f -perm -u+x -name 'test_*' | sort) \
         $(find tests/py -maxdepth 1 -type f -perm -u+x -name 'test_*.py' 2>/dev/null | sort); do
    echo "== $t"
    out=$(timeout "${TEST_TIMEOUT:-1200}" "$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | grep -c '^PASS ')
    f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $t: exited with status $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
