#!/bin/sh
# gpu_check.sh: the GPU acceptance check (`make gpu-check`), for a machine
# with an NVIDIA GPU; writes gpu-check.json and prints a table.
#   (a) build/tests/gpu/gpu_parity: every CUDA operation against the CPU
#       backend (fp32: nmse <= 1e-7, per-check tolerances in the program;
#       the bf16 storage operations bit for bit, also past 2^32 elements),
#       then the product of bf16 weights on bf16 tensor cores
#       (OWLORE_CUDA_MATH=bf16, nmse <= 1e-4);
#   (b) 20 training steps of a stories260K-shaped and a 135M-shaped model
#       (random weights, fixed seeds) on both backends, losses compared
#       (max relative difference <= 1e-3 per step); the 135M shape once more
#       on CUDA with activation checkpointing, which must give the very same
#       losses, and once more on CUDA with bf16 weights (built on the
#       host, stochastic rounding after each update), whose losses must stay
#       within 2e-2 relative of the fp32 CPU ones per step, and the same with
#       bf16 tensor-core products (OWLORE_CUDA_MATH=bf16); `full` on CUDA
#       with its blocks stepped in backward against stored gradients (1e-5);
#       OwLore on CUDA with the blocks' saved activations in bf16
#       (bf16_activations): the first loss that of the fp32 CUDA run bit for
#       bit (the forward pass is unchanged), each within 2e-3 of the CPU's;
#   (c) a LLaMA-2-7B-shaped model with random weights, 4 steps per method on
#       CUDA at micro-batch 1 x 512. First OwLore as the paper runs it:
#       activation checkpointing, bf16 weights (the model built and rounded
#       in host memory, so the GPU never holds the fp32 weights) and bf16
#       tensor-core products (OWLORE_CUDA_MATH=bf16); then that run once
#       more with a wait around every backend operation (GPU_TRAIN_PROFILE=1,
#       tests/gpu/op_profile.h): the share of time per operation and the
#       matrix products' achieved TFLOP/s; then one refresh of a 4096 x 11008
#       rank-128 projector (gpu_refresh): the exact SVD's time, and the
#       randomized range finder's time and share of the exact subspace with
#       0, 1 and 2 power iterations and each solver of its small
#       eigenproblem (OWLORE_CUDA_EIG), with fp32 and with TF32 products
#       (OWLORE_CUDA_MATH=bf16); then its cuBLAS and cuSOLVER calls timed
#       one by one (gpu_refresh_parts), with the small eigenproblem also by
#       Jacobi and on the host, to place it; then the step's products
#       with fp32 operands (weight gradients, GaLore's projections) in
#       fp32, TF32, bf16 with cuBLAS rounding the operands and with our
#       kernel rounding them first, and the attention forward and backward
#       in bf16 mode (gpu_step_parts). Then the other rows, bf16 weights
#       and products unless named fp32 (@B: micro-batch B x 512): `full`
#       with its blocks stepped in backward (update_in_backward, no
#       clipping) with bf16 activations (bf16_activations) @4 with no
#       recomputation and @8 with the lowest 8 blocks recomputed, and
#       checkpointed @8 unclipped and clipped (the norm pass); OwLore with
#       bf16 activations at 1 x 512 and @4, and with only the lowest 8
#       blocks recomputed; OwLore without checkpointing at 1 x 512 and @4
#       and checkpointed @4 (how the step's efficiency grows with its
#       tokens); last every method but `full` (112 GB) in fp32 on TF32
#       products. bf16 runs have 120 s, the others 60 s. Per row: tokens/s; MFU = FLOPs executed
#       (the planner's count) per second over the card's dense bf16 peak
#       (989 TFLOP/s, H100 SXM; GPU_PEAK_FLOPS); peak device memory beside
#       the planner's fp32 prediction; the share of training time spent
#       refreshing GaLore projectors in a long run (a short run refreshes
#       every trained matrix once: refresh time over refresh time +
#       refresh_period x the median step time), steady (gpu_train's warm
#       refresh time) and for the first resample (which also pays for
#       first uses); the profiled run's shares are those of the steps after
#       its first.
#   (d) the product path: `owlore train --backend cpu|cuda` on the real
#       stories260K model and TinyStories text (from OWLORE_SHARED, default
#       ../shared/data; skipped when absent), 40 OwLore steps each with a
#       checkpoint; per-step losses from metrics.jsonl compared (<= 1e-3);
#       once more on cuda with --bf16-weights 1 (<= 2e-2 of the cpu fp32).
#       Each run has its own outlier cache, so each calibrates: the cpu
#       run on the host, the cuda runs on the GPU; the D_l they print must
#       agree to 0.01 points.
#   (e) the service: `owlore serve` with stories260K, an Alpaca file uploaded
#       and an OwLore job created over HTTP; the start-up log must name the
#       GPU, the job must succeed and its events must say it trained on the
#       cuda backend.
# Each piece has a timeout; the whole stays under 5 minutes. With
# GPU_CHECK_RAW=DIR each program's raw output is also copied there as soon as
# it is written, so a run cut short still leaves what it measured, and
# tools/gpu_check_summary.py DIR OUT makes the summary from it afterwards
# (this script runs it on its own work folder at the end).
BUILD=${BUILD:-build}
bin=$BUILD/tests/gpu
out=${GPU_CHECK_OUT:-gpu-check.json}
peak=${GPU_PEAK_FLOPS:-989e12}
status=0
tmp=$(mktemp -d)
raw=${GPU_CHECK_RAW:-}
keep() {
    [ -z "$raw" ] && return 0
    { mkdir -p "$raw" && cp "$tmp"/*.json "$tmp"/*.txt "$tmp"/*.log "$raw"/; } 2>/dev/null
    for d in "$tmp"/cli-*/; do # the product runs' per-step losses
        [ -f "$d/metrics.jsonl" ] || continue
        d=${d%/}
        mkdir -p "$raw/${d##*/}" && cp "$d/metrics.jsonl" "$raw/${d##*/}/"
    done
    return 0
}

echo "== (a) operation parity"
timeout 120 "$bin/gpu_parity" >"$tmp/parity.txt" || status=1
OWLORE_CUDA_MATH=bf16 timeout 60 "$bin/gpu_parity" bf16-products >>"$tmp/parity.txt" || status=1
cat "$tmp/parity.txt"
keep

echo "== (b) 20 training steps, cpu vs cuda"
for shape in stories260k 135m; do
    for be in cpu cuda; do
        timeout 120 "$bin/gpu_train" $be $shape owlore 20 2 128 >"$tmp/train-$shape-$be.json" ||
            status=1
    done
done
timeout 120 "$bin/gpu_train" cuda 135m owlore 20 2 128 1 >"$tmp/train-135m-cuda-ckpt.json" ||
    status=1
timeout 120 "$bin/gpu_train" cuda 135m owlore 20 2 128 0 1 >"$tmp/train-135m-cuda-bf16.json" ||
    status=1
OWLORE_CUDA_MATH=bf16 timeout 120 "$bin/gpu_train" cuda 135m owlore 20 2 128 0 1 \
    >"$tmp/train-135m-cuda-bf16mm.json" || status=1
for inbwd in 0 1; do # full, its blocks stepped in backward (two passes: it clips) or not
    timeout 120 "$bin/gpu_train" cuda 135m full 20 2 128 0 0 $inbwd \
        >"$tmp/train-135m-cuda-full-$inbwd.json" || status=1
done
# the blocks' saved activations kept in bf16: the same first loss, the rest near the cpu's
timeout 120 "$bin/gpu_train" cuda 135m owlore 20 2 128 0 0 0 1 1 \
    >"$tmp/train-135m-cuda-act16.json" || status=1
keep

# one 7B row: RUN is METHOD[+inbwd[+noclip]][+ckpt[K]][+act16][+bf16[+bf16mm]][@B]
# (micro-batch B x 512, default 1; inbwd: update_in_backward, noclip: max_grad_norm 0;
# ckptK: only the lowest K blocks recomputed; act16: bf16_activations)
bench() {
    ckpt=0; case $1 in *+ckpt*) ckpt=1 ;; esac
    case $1 in *+ckpt[0-9]*) ckpt=b$(echo "$1" | sed 's/.*+ckpt\([0-9]*\).*/\1/') ;; esac
    bf16=0 limit=60; case $1 in *+bf16*) bf16=1 limit=120 ;; esac
    math=tf32; case $1 in *+bf16mm*) math=bf16 ;; esac
    batch=1; case $1 in *@*) batch=${1##*@} ;; esac
    inbwd=0; case $1 in *+inbwd*) inbwd=1 ;; esac
    clip=1; case $1 in *+noclip*) clip=0 ;; esac
    act16=0; case $1 in *+act16*) act16=1 ;; esac
    OWLORE_CUDA_MATH=$math timeout $limit "$bin/gpu_train" cuda 7b "${1%%[+@]*}" 4 $batch 512 \
        $ckpt $bf16 $inbwd $clip $act16 >"$tmp/bench-$1.json"
    keep
}

# the most telling measurements first, so a run cut short still has them
echo "== (c) 7B-shaped benchmark (cuda): OwLore as the paper runs it"
bench owlore+ckpt+bf16+bf16mm

echo "== (c) where the time goes: that row again, each operation timed"
GPU_TRAIN_PROFILE=1 OWLORE_CUDA_MATH=bf16 timeout 120 "$bin/gpu_train" cuda 7b owlore 4 1 512 1 1 \
    >"$tmp/profile.json"

echo "== (c) what a projector refresh costs (4096 x 11008, rank 128)"
timeout 90 "$bin/gpu_refresh" cuda >"$tmp/refresh.json" || status=1
OWLORE_CUDA_MATH=bf16 timeout 90 "$bin/gpu_refresh" cuda >"$tmp/refresh-bf16.json" || status=1
timeout 60 "$bin/gpu_refresh_parts" >"$tmp/refresh-parts.json" || status=1
keep

echo "== (c) the products with fp32 operands, each way cuBLAS runs them; attention"
OWLORE_CUDA_MATH=bf16 timeout 60 "$bin/gpu_step_parts" >"$tmp/step-parts.json" || status=1
keep

echo "== (c) 7B-shaped benchmark (cuda): full stepped in backward; bf16 activations; partial"
echo "   checkpointing"
for run in full+inbwd+noclip+act16+bf16+bf16mm@4 owlore+act16+bf16+bf16mm \
    full+inbwd+noclip+ckpt8+act16+bf16+bf16mm@8 owlore+act16+bf16+bf16mm@4 \
    full+inbwd+noclip+ckpt+bf16+bf16mm@8 full+inbwd+ckpt+bf16+bf16mm@8 \
    owlore+ckpt8+bf16+bf16mm; do
    bench $run
done

echo "== (c) 7B-shaped benchmark (cuda): the other rows, and each method in fp32"
for run in owlore+bf16+bf16mm owlore+ckpt+bf16+bf16mm@4 owlore+bf16+bf16mm@4 owlore \
    owlore_full_rank lisa galore; do
    bench $run
done

echo "== (d) owlore train on the real stories260K, cpu vs cuda"
data=${OWLORE_SHARED:-../shared/data}
owlore=${OWLORE_BIN:-$BUILD/owlore}
if [ -f "$data/models/stories260K/stories260K.bin" ] && [ -x "$owlore" ]; then
    for run in cpu cuda cuda-bf16; do
        bf16=0; case $run in *-bf16) bf16=1 ;; esac
        OWLORE_CACHE_DIR="$tmp/cache-$run" timeout 120 "$owlore" train --backend ${run%-bf16} \
            --model "$data/models/stories260K/stories260K.bin" \
            --data "$data/datasets/tinystories/tinystories_val.txt" --method owlore --gamma 2 \
            --rank 16 --steps 40 --batch 8 --seq 128 --lr 5e-4 --bf16-weights $bf16 \
            --out "$tmp/cli-$run" >"$tmp/cli-$run.log" 2>&1 ||
            { status=1; tail -5 "$tmp/cli-$run.log"; }
    done
    keep
else
    echo "skipped: no $data/models/stories260K or no $owlore"
fi

echo "== (e) owlore serve: a job over HTTP on the GPU"
if [ -f "$data/models/stories260K/stories260K.bin" ] && [ -x "$owlore" ]; then
    timeout 120 python3 - "$owlore" "$data" "$tmp" >"$tmp/serve.txt" 2>&1 <<'PY' || status=1
import json, re, subprocess, sys, threading, time, urllib.request
owlore, data, tmp = sys.argv[1:4]
srv = subprocess.Popen([owlore, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir",
                        tmp + "/serve", "--model", data + "/models/stories260K/stories260K.bin"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    port, device = None, ""
    while port is None:
        line = srv.stdout.readline()
        if not line:
            sys.exit("the server ended: " + str(srv.wait()))
        device = line.strip() if "jobs train on" in line else device
        m = re.search(r"listening on http://127.0.0.1:(\d+)", line)
        port = m and m.group(1)
    threading.Thread(target=srv.stdout.read, daemon=True).start()  # the log, drained
    url = "http://127.0.0.1:" + port
    def call(method, path, body=None, ctype="application/json"):
        req = urllib.request.Request(url + path, body, {"Content-Type": ctype} if body else {},
                                     method=method)
        return json.loads(urllib.request.urlopen(req, timeout=30).read())
    raw = open(data + "/datasets/alpaca/alpaca_tiny.json", "rb").read()
    b = b"owlorecheckboundary"
    body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            + b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="a.json"'
            + b"\r\nContent-Type: application/json\r\n\r\n" + raw + b"\r\n--" + b + b"--\r\n")
    f = call("POST", "/v1/files", body, "multipart/form-data; boundary=" + b.decode())
    hp = {"sequence_length": 128, "batch_size": 4, "max_steps": 20, "gamma": 2, "rank": 16}
    job = call("POST", "/v1/fine_tuning/jobs", json.dumps({"training_file": f["id"],
               "method": {"type": "owlore", "owlore": {"hyperparameters": hp}}}).encode())
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        job = call("GET", "/v1/fine_tuning/jobs/" + job["id"])
    events = call("GET", "/v1/fine_tuning/jobs/%s/events?limit=100" % job["id"])["data"]
    on_gpu = any(e["message"] == "Training on the cuda backend" for e in events)
    print(json.dumps({"status": job["status"], "error": job.get("error"), "on_cuda": on_gpu,
                      "trained_tokens": job.get("trained_tokens"), "device_line": device}))
    sys.exit(0 if job["status"] == "succeeded" and on_gpu and "cuda backend" in device else 1)
finally:
    srv.terminate()
    srv.wait()
PY
    cat "$tmp/serve.txt"
    keep
else
    echo "skipped: no $data/models/stories260K or no $owlore"
fi

python3 "$(dirname "$0")/gpu_check_summary.py" "$tmp" "$out" "$peak" || status=1
rm -rf "$tmp"
[ $status -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $status
