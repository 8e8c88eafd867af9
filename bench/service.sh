#!/bin/sh
# service.sh: benchmarks the real HTTP service end to end on loopback.
#
# Starts `owlore serve` (build/owlore, or $OWLORE_BIN) on a free loopback port
# (--port 0) over a temporary data directory, with stories260K as the default
# model, then measures:
#   upload   a generated chat JSONL dataset (~200 MB, under the server's
#            512 MiB upload cap) POSTed to /v1/files with curl several times:
#            MB/s (10^6 bytes) with SHA-256 hashing, line-by-line validation
#            and the fsync into the blob store, next to `sha256sum` of the
#            same file as a baseline;
#   GET job  the latency of GET /v1/fine_tuning/jobs/{id} of a small finished
#            stories260K job, with wrk (p50, p99, requests/s);
#   memory   the server's peak RSS (VmHWM) after all of that.
# Prints one table and writes it as JSON to $OWLORE_BENCH_DIR/service.json
# (default build/bench). Installs wrk (Debian package) when it is missing.
#
# Knobs: UPLOAD_MB (200), UPLOADS (3), WRK_THREADS (2), WRK_CONNECTIONS (32:
# the server closes more than 32 connections from one address), WRK_SECONDS
# (20), OWLORE_SHARED (../shared, for the model).
set -eu

bin=${OWLORE_BIN:-build/owlore}
model=${OWLORE_SHARED:-../shared}/data/models/stories260K/stories260K.bin
out_dir=${OWLORE_BENCH_DIR:-build/bench}
upload_mb=${UPLOAD_MB:-200}
uploads=${UPLOADS:-3}
wrk_threads=${WRK_THREADS:-2}
wrk_connections=${WRK_CONNECTIONS:-32}
wrk_seconds=${WRK_SECONDS:-20}

if ! dpkg -s wrk >/dev/null 2>&1; then
    echo "installing: wrk"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
[ -x "$bin" ] || { echo "service.sh: no server binary at $bin (run make)" >&2; exit 1; }
[ -f "$model" ] || { echo "service.sh: no model at $model (set OWLORE_SHARED)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/owlore-bench-XXXXXX)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# calc EXPR: evaluates an arithmetic expression with awk, two decimals.
calc() { awk "BEGIN { printf \"%.2f\\n\", $1 }"; }
# json_field KEY: the top-level field KEY of the JSON object on stdin.
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# The dataset: chat conversations of pseudo-random words with JSON escapes
# and multi-byte UTF-8, a few hundred bytes to ~2 KB a line; a pool of lines
# is drawn from until the file reaches the size.
data=$tmp/chat.jsonl
python3 - "$data" "$upload_mb" <<'EOF'
import json, random, sys
path, size = sys.argv[1], int(sys.argv[2]) * 10**6
rng = random.Random(7)
words = ("the a model owl lore layer gradient rank sample token story cat went "
         "home said \"hello\" back\\slash caf\u00e9 na\u00efve \u65e5\u672c \U0001F989 "
         "line\nbreak tab\tstop").split(" ")
def text(lo, hi):
    return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))
pool = [json.dumps({"messages": [{"role": "user", "content": text(5, 60)},
                                 {"role": "assistant", "content": text(20, 250)}]},
                   ensure_ascii=False).encode() + b"\n" for _ in range(4000)]
written = 0
with open(path, "wb") as f:
    while written < size:
        chunk = b"".join(rng.choices(pool, k=1000))
        f.write(chunk)
        written += len(chunk)
EOF
bytes=$(stat -c %s "$data")
head -n 200 "$data" > "$tmp/small.jsonl"

t0=$(now)
sha256sum "$data" >/dev/null
t1=$(now)
sha_mbs=$(calc "$bytes / ($t1 - $t0) / 1e6")

"$bin" serve --host 127.0.0.1 --port 0 --data-dir "$tmp/data" --model "$model" \
    >"$tmp/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|^owlore serve: listening on http://127.0.0.1:\([0-9]*\) .*|\1|p' \
        "$tmp/server.log")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || { echo "service.sh: the server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
url=http://127.0.0.1:$port

# upload FILE: POSTs FILE to /v1/files, setting upload_seconds and upload_id;
# exits unless the file was stored and validated.
upload() {
    upload_seconds=$(curl -sS --noproxy '*' -o "$tmp/reply.json" -w '%{time_total}' \
        -F purpose=fine-tune -F "file=@$1" "$url/v1/files")
    status=$(json_field status < "$tmp/reply.json")
    if [ "$status" != processed ]; then
        echo "service.sh: upload of $1 ended '$status':" >&2; cat "$tmp/reply.json" >&2; exit 1
    fi
    upload_id=$(json_field id < "$tmp/reply.json")
}

for _ in $(seq "$uploads"); do
    upload "$data"
    calc "$bytes / $upload_seconds / 1e6" >> "$tmp/upload_mbs"
done
sort -g -o "$tmp/upload_mbs" "$tmp/upload_mbs"
upload_best=$(tail -n 1 "$tmp/upload_mbs")
upload_median=$(awk '{ v[NR] = $1 }
    END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' "$tmp/upload_mbs")

# A small LISA job on stories260K (as tests/unit/test_jobs_api.c), waited for
# so the GETs read a finished job and no training shares the CPU with wrk.
upload "$tmp/small.jsonl"
curl -sS --noproxy '*' -o "$tmp/job.json" "$url/v1/fine_tuning/jobs" \
    -H 'Content-Type: application/json' -d '{"training_file": "'"$upload_id"'",
    "method": {"type": "lisa", "lisa": {"hyperparameters": {"sequence_length": 128,
    "batch_size": 4, "max_steps": 6, "gamma": 1, "learning_rate": 0.001}}}}'
job_id=$(json_field id < "$tmp/job.json" 2>/dev/null) ||
    { echo "service.sh: job not created:" >&2; cat "$tmp/job.json" >&2; exit 1; }
job_status=""
for _ in $(seq 600); do
    job_status=$(curl -sS --noproxy '*' "$url/v1/fine_tuning/jobs/$job_id" | json_field status)
    case $job_status in succeeded|failed|cancelled) break ;; esac
    sleep 0.1
done

wrk -t"$wrk_threads" -c"$wrk_connections" -d"${wrk_seconds}s" --latency \
    "$url/v1/fine_tuning/jobs/$job_id" > "$tmp/wrk.txt"
p50=$(awk '$1 == "50%" { print $2 }' "$tmp/wrk.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$tmp/wrk.txt")
rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$tmp/wrk.txt")
non2xx=$(awk '/Non-2xx/ { print $NF }' "$tmp/wrk.txt")
sock_errors=$(sed -n 's/^ *Socket errors: //p' "$tmp/wrk.txt")

hwm_kb=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$server_pid/status")
hwm_mib=$(calc "$hwm_kb / 1024")

printf '\nowlore service benchmark (loopback, %s, server %s)\n' "$(nproc) cores" "$bin"
printf '| measure | value |\n| --- | --- |\n'
printf '| upload %s MB x %s (hash + validate + fsync), median / best | %s / %s MB/s |\n' \
    "$(calc "$bytes / 1e6")" "$uploads" "$upload_median" "$upload_best"
printf '| sha256sum of the same file | %s MB/s |\n' "$sha_mbs"
printf '| upload / sha256sum | %s |\n' "$(calc "$upload_median / $sha_mbs")"
printf '| GET /v1/fine_tuning/jobs/{id} (job %s), wrk -t%s -c%s %ss | p50 %s, p99 %s |\n' \
    "$job_status" "$wrk_threads" "$wrk_connections" "$wrk_seconds" "$p50" "$p99"
printf '| GET requests/s | %s |\n' "$rps"
[ -z "$non2xx$sock_errors" ] || printf '| wrk problems | non-2xx %s; socket errors %s |\n' \
    "${non2xx:-0}" "${sock_errors:-none}"
printf '| server peak RSS (VmHWM) | %s MiB |\n' "$hwm_mib"

mkdir -p "$out_dir"
cat > "$out_dir/service.json" <<EOF
{"upload_bytes": $bytes, "uploads": $uploads, "upload_mb_s_median": $upload_median,
 "upload_mb_s_best": $upload_best, "sha256sum_mb_s": $sha_mbs,
 "get_job_p50": "$p50", "get_job_p99": "$p99", "get_job_requests_s": $rps,
 "wrk_threads": $wrk_threads, "wrk_connections": $wrk_connections,
 "wrk_seconds": $wrk_seconds, "peak_rss_mib": $hwm_mib}
EOF
