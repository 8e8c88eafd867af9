#!/bin/sh
# gpu_check.sh: the GPU acceptance check (`make gpu-check`), for a machine
# with an NVIDIA GPU; writes gpu-check.json and prints a table.
#   (a) build/tests/gpu/gpu_parity: every CUDA operation against the CPU
#       backend (fp32: nmse <= 1e-7, per-check tolerances in the program);
#   (b) 20 training steps of a stories260K-shaped and a 135M-shaped model
#       (random weights, fixed seeds) on both backends, losses compared
#       (max relative difference <= 1e-3 per step);
#   (c) a LLaMA-2-7B-shaped model with random weights, 5 steps per method on
#       CUDA: tokens/s and MFU (PaLM formula vs 989 TFLOP/s dense bf16, H100
#       SXM). Each piece has a timeout; the whole stays under 5 minutes.
BUILD=${BUILD:-build}
bin=$BUILD/tests/gpu
out=${GPU_CHECK_OUT:-gpu-check.json}
peak=${GPU_PEAK_FLOPS:-989e12}
status=0
tmp=$(mktemp -d)

echo "== (a) operation parity"
timeout 120 "$bin/gpu_parity" | tee "$tmp/parity.txt"
[ $? -eq 0 ] || status=1

echo "== (b) 20 training steps, cpu vs cuda"
for shape in stories260k 135m; do
    for be in cpu cuda; do
        timeout 120 "$bin/gpu_train" $be $shape owlore 20 2 128 >"$tmp/train-$shape-$be.json" ||
            status=1
    done
done

echo "== (c) 7B-shaped benchmark (cuda)"
for meth in galore lisa owlore_full_rank owlore full; do
    timeout 90 "$bin/gpu_train" cuda 7b $meth 5 1 1024 >"$tmp/bench-$meth.json"
done

python3 - "$tmp" "$out" "$peak" <<'PY' || status=1
import json, sys, glob, os
tmp, out, peak = sys.argv[1], sys.argv[2], float(sys.argv[3])
def load(p):
    try:
        return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception as e:
        return {"failed": "no result (%s)" % e}
res = {"parity": open(os.path.join(tmp, "parity.txt")).read().splitlines(), "train": {}, "bench": {}}
ok = True
print("\n%-12s %-8s %10s  %s" % ("shape", "steps", "max rel", "verdict"))
for shape in ("stories260k", "135m"):
    c, g = load(f"{tmp}/train-{shape}-cpu.json"), load(f"{tmp}/train-{shape}-cuda.json")
    lc, lg = c.get("losses", []), g.get("losses", [])
    rel = max((abs(a - b) / abs(a) for a, b in zip(lc, lg)), default=float("inf"))
    good = len(lc) == len(lg) == 20 and rel <= 1e-3
    ok &= good
    res["train"][shape] = {"cpu": c, "cuda": g, "max_rel_diff": rel, "pass": good}
    print("%-12s %-8d %10.2e  %s" % (shape, len(lg), rel, "PASS" if good else "FAIL"))
print("\n%-12s %12s %8s  %s" % ("method", "tokens/s", "MFU", "note"))
for meth in ("galore", "lisa", "owlore_full_rank", "owlore", "full"):
    b = load(f"{tmp}/bench-{meth}.json")
    tps = b.get("tokens_per_s", 0.0)
    mfu = tps * b.get("flops_per_token", 0.0) / peak
    b["mfu"] = mfu
    res["bench"][meth] = b
    print("%-12s %12.1f %7.2f%%  %s" % (meth, tps, 100 * mfu, b.get("failed") or ""))
json.dump(res, open(out, "w"), indent=2)
print("\nwrote", out)
sys.exit(0 if ok else 1)
PY
rm -rf "$tmp"
[ $status -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $status
