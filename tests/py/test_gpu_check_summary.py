#!/usr/bin/env python3
"""test_gpu_check_summary.py: tools/gpu_check_summary.py, the part of
`make gpu-check` that turns its programs' raw outputs into verdicts, the
7B table and gpu-check.json, checked on the CPU machine with raw outputs
written here in the programs' formats (gpu_train, gpu_refresh and the
product runs' metrics.jsonl), so that a GPU run never loses its summary to
a mistake in it, and the folder GPU_CHECK_RAW keeps gives the same summary
afterwards.

  - a complete folder: every verdict PASS, exit 0; the 7B row's MFU is
    tokens/s x FLOPs per token / peak and its refresh share is refresh time
    over refresh time + refresh period x step time, exactly, with the warm
    refresh time (refresh_warm_s) for the steady share and the measured one
    for the first resample's, or the measured one for both in a row from
    before gpu_train wrote warm times;
  - one cuda loss 2e-3 relative off the cpu one (tolerance 1e-3): FAIL,
    exit 1; the bf16-activations run's first loss 1e-6 off the fp32 cuda
    run's (the forward pass must be unchanged): FAIL, exit 1;
  - the product runs' outlier ratios, computed on the cpu and on cuda:
    compared; one D_l 0.02 points off (tolerance 0.01): FAIL, exit 1;
  - the issue's targets from the rows that ran: the checkpointed OwLore
    row's peak, the planner's worst error, the best OwLore and full MFU
    and their rows;
  - a run cut short (the 135M cuda result and the product runs missing):
    exit 1, those pieces marked failed, the rest still summarised.
Prints PASS/FAIL lines; exits non-zero on a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUMMARY = os.path.join(ROOT, "tools", "gpu_check_summary.py")
PEAK = 989e12


def losses(n, base=2.0):
    return [round(base - 0.01 * i, 6) for i in range(n)]


def train_run(backend, shape, loss_list, **extra):
    run = {"backend": backend, "shape": shape, "method": "owlore", "steps": len(loss_list),
           "losses": loss_list, "tokens_per_s": 1000.0, "failed": None}
    run.update(extra)
    return run


def write(folder, name, obj):
    with open(os.path.join(folder, name), "w") as f:  # a program's last line is its result
        f.write("log line\n" + json.dumps(obj) + "\n")


def calibration_log(folder, run, where, d):
    """the outlier-ratio lines `owlore train` prints"""
    with open(os.path.join(folder, run + ".log"), "w") as f:
        f.write("outlier ratios (tau 13, 128 calibration windows, computed on %s):\n" % where)
        for l, x in enumerate(d):
            f.write("  block %2d  D %.4f%%  p %.4f\n" % (l, x, x / sum(d)))
        f.write("step 1/40 | loss 1.8000\n")


def complete_folder(folder):
    with open(os.path.join(folder, "parity.txt"), "w") as f:
        f.write("PASS matmul ta=0 tb=0             nmse 2.9e-14 tol 1e-07\n")
    for shape in ("stories260k", "135m"):
        write(folder, f"train-{shape}-cpu.json", train_run("cpu", shape, losses(20)))
        write(folder, f"train-{shape}-cuda.json", train_run("cuda", shape, losses(20)))
    write(folder, "train-135m-cuda-ckpt.json", train_run("cuda", "135m", losses(20)))
    near = [x * (1 + 1e-3) for x in losses(20)]
    for tag in ("bf16", "bf16mm"):
        write(folder, f"train-135m-cuda-{tag}.json",
              train_run("cuda", "135m", near, bf16_weights=1))
    write(folder, "train-135m-cuda-full-0.json", train_run("cuda", "135m", losses(20)))
    write(folder, "train-135m-cuda-full-1.json",
          train_run("cuda", "135m", losses(20), update_in_backward=1))
    act16 = losses(20)[:1] + [x * (1 + 1e-4) for x in losses(20)[1:]]
    write(folder, "train-135m-cuda-act16.json",
          train_run("cuda", "135m", act16, bf16_activations=1))
    write(folder, "bench-owlore+ckpt+bf16+bf16mm.json",
          {"backend": "cuda", "shape": "7b", "method": "owlore", "tokens_per_s": 4000.0,
           "flops_per_token": 3.031e10, "peak_bytes": 17.5e9, "plan_peak_bytes": 17.8e9,
           "refresh_s": 0.2, "refresh_warm_s": 0.1, "refresh_period": 50, "batch_tokens": 512,
           "failed": None})
    write(folder, "bench-owlore+bf16+bf16mm.json",  # from before refresh_warm_s existed
          {"backend": "cuda", "shape": "7b", "method": "owlore", "tokens_per_s": 5000.0,
           "flops_per_token": 3.031e10, "peak_bytes": 21.5e9, "plan_peak_bytes": 21.7e9,
           "refresh_s": 0.2, "refresh_period": 50, "batch_tokens": 512, "failed": None})
    write(folder, "bench-full+inbwd+noclip+ckpt+bf16+bf16mm@8.json",
          {"backend": "cuda", "shape": "7b", "method": "full", "tokens_per_s": 9000.0,
           "flops_per_token": 4.04e10, "peak_bytes": 73.5e9, "plan_peak_bytes": 73.0e9,
           "refresh_s": 0, "refresh_period": 200, "batch_tokens": 4096, "failed": None})
    write(folder, "refresh.json",
          {"backend": "cuda", "math": "fp32", "exact_s": 1.5,
           "runs": [{"eig": "syevd", "power_iters": 2, "seconds": 0.004, "captured": 0.998}],
           "failed": None})
    for run, where in (("cli-cpu", "cpu"), ("cli-cuda", "cuda")):
        calibration_log(folder, run, where, [0.4105, 0.3663, 0.2030])
    for run in ("cli-cpu", "cli-cuda", "cli-cuda-bf16"):
        os.makedirs(os.path.join(folder, run))
        with open(os.path.join(folder, run, "metrics.jsonl"), "w") as f:
            for i, x in enumerate(losses(40, 1.8)):
                f.write(json.dumps({"step": i + 1, "loss": x}) + "\n")


def summarise(folder):
    out = os.path.join(folder, "gpu-check.json")
    p = subprocess.run([sys.executable, SUMMARY, folder, out, str(PEAK)],
                       capture_output=True, text=True, timeout=60)
    res = json.load(open(out)) if os.path.exists(out) else None
    return p.returncode, p.stdout + p.stderr, res


def main():
    t = Results()
    work = tempfile.mkdtemp(prefix="owlore-gpu-summary-")
    try:
        full = os.path.join(work, "complete")
        os.makedirs(full)
        complete_folder(full)
        rc, text, res = summarise(full)
        if not t.check("summary_of_a_complete_folder", rc == 0 and res is not None
                       and "FAIL" not in text, f"exit {rc}: {text[-1500:]}"):
            return t.exit()
        row = res["bench"]["owlore+ckpt+bf16+bf16mm"]
        mfu = 4000.0 * 3.031e10 / PEAK
        share = 0.1 / (0.1 + 50 * 512 / 4000.0)
        first = 0.2 / (0.2 + 50 * 512 / 4000.0)
        t.check("mfu_and_refresh_share_formulas",
                abs(row["mfu"] - mfu) < 1e-12 and abs(row["refresh_share"] - share) < 1e-12
                and abs(row["refresh_share_first"] - first) < 1e-12,
                f"mfu {row['mfu']} for {mfu}, share {row['refresh_share']} for {share}, "
                f"first {row.get('refresh_share_first')} for {first}",
                f"MFU {100 * mfu:.2f}%, refresh {100 * share:.2f}% (first {100 * first:.2f}%)")
        old = res["bench"]["owlore+bf16+bf16mm"]
        share = 0.2 / (0.2 + 50 * 512 / 5000.0)
        t.check("refresh_share_without_warm_times",
                abs(old["refresh_share"] - share) < 1e-12
                and abs(old["refresh_share_first"] - share) < 1e-12,
                f"share {old['refresh_share']}, first {old.get('refresh_share_first')} for {share}")
        tg = res.get("targets", {})
        full_mfu = 9000.0 * 4.04e10 / PEAK
        t.check("targets_from_the_rows_that_ran",
                tg.get("owlore_1x512_checkpointed_peak_gb") == [17.5, True, True]
                and abs(tg["planner_worst_relative_error"][0] - 0.3 / 17.5) < 1e-12
                and tg["owlore_best_mfu"][1:] == [False, "owlore+bf16+bf16mm"]
                and abs(tg["full_best_mfu"][0] - full_mfu) < 1e-12
                and tg["full_best_mfu"][1:] == [True, "full+inbwd+noclip+ckpt+bf16+bf16mm@8"]
                and "targets: OwLore 1 x 512 checkpointed peak 17.50 GB" in text,
                json.dumps(tg), f"full {100 * full_mfu:.1f}% MFU met")
        t.check("product_runs_compared", res.get("cli", {}).get("pass") is True
                and res["cli"].get("bf16_pass") is True, json.dumps(res.get("cli"))[:500])
        t.check("calibrations_compared", res.get("calibration", {}).get("pass") is True
                and res["calibration"]["computed_on"] == ["cpu", "cuda"],
                json.dumps(res.get("calibration")))

        moved = os.path.join(work, "moved")
        shutil.copytree(full, moved)
        calibration_log(moved, "cli-cuda", "cuda", [0.4105, 0.3863, 0.2030])
        rc, text, res = summarise(moved)
        t.check("ratio_off_by_0.02_points_fails", rc == 1 and res is not None
                and res["calibration"]["pass"] is False and res["cli"]["pass"] is True,
                f"exit {rc}: {text[-800:]}")

        off = os.path.join(work, "off")
        shutil.copytree(full, off)
        bad = losses(20)
        bad[7] *= 1 + 2e-3
        write(off, "train-135m-cuda.json", train_run("cuda", "135m", bad))
        rc, text, res = summarise(off)
        t.check("loss_off_by_2e-3_fails", rc == 1 and res is not None
                and res["train"]["135m"]["pass"] is False
                and res["train"]["stories260k"]["pass"] is True, f"exit {rc}: {text[-800:]}")

        shifted = os.path.join(work, "shifted")
        shutil.copytree(full, shifted)
        first_off = [x * (1 + 1e-6) for x in losses(20)]
        write(shifted, "train-135m-cuda-act16.json",
              train_run("cuda", "135m", first_off, bf16_activations=1))
        rc, text, res = summarise(shifted)
        t.check("bf16_activations_first_loss_off_fails", rc == 1 and res is not None
                and res["train"]["135m_cuda_bf16_activations"]["pass"] is False
                and res["train"]["135m_cuda_bf16_activations"]["max_rel_diff"] < 2e-3,
                f"exit {rc}: {text[-800:]}")

        short = os.path.join(work, "short")
        shutil.copytree(full, short)
        os.remove(os.path.join(short, "train-135m-cuda.json"))
        for run in ("cli-cpu", "cli-cuda", "cli-cuda-bf16"):
            shutil.rmtree(os.path.join(short, run))
        rc, text, res = summarise(short)
        t.check("run_cut_short_fails_and_keeps_the_rest", rc == 1 and res is not None
                and res["train"]["135m"]["pass"] is False
                and "no result" in res["train"]["135m"]["cuda"].get("failed", "")
                and res["bench"]["owlore+ckpt+bf16+bf16mm"]["mfu"] > 0,
                f"exit {rc}: {text[-800:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.exit()


if __name__ == "__main__":
    main()
