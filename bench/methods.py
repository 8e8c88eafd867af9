#!/usr/bin/env python3
"""The paper's method comparison at small scale, on a real task.

Fine-tunes the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) on ARC-Easy
(../shared/data/datasets/commonsense/ARC-Easy, LLM-Adapters format) with each
of the six methods (full, lora, lisa, galore, owlore_full_rank, owlore) and
each seed, under the same token budget (the same steps x batch x sequence
windows, the same data order per seed, the same learning rate and schedule;
every other setting is the method's default from engine/recipe.c), then
scores every checkpoint with `owlore eval` on the first --n-test records of
the ARC-Easy test split: held-out loss on the answer tokens and
multiple-choice accuracy (the summed log-likelihood of each option). The
base model is scored the same way. Per run it also records the training
loss of every step, the median tokens/s and the peak RSS of the training
process (/usr/bin/time).

    python3 bench/methods.py [--seeds 1,2] [--steps 10] [--batch 4] [--seq 256]
                             [--lr 5e-4] [--n-train 400] [--n-test 60]
                             [--backend cpu|cuda|auto]

The defaults fit a 2-core CPU machine; on a GPU machine the same script runs
the training on the CUDA backend with --backend cuda and larger budgets
(--steps, --batch, --n-train, --n-test).

Writes docs/data/methods.json; bench/report.py turns it into tables and
plots in docs/. lora runs keep the adapter alone (PEFT files) and are
evaluated as base model + --adapter; the other methods' checkpoints hold the
whole model. Checkpoints are deleted once scored.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "datasets", "commonsense", "ARC-Easy")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
METHODS = ["full", "lora", "lisa", "galore", "owlore_full_rank", "owlore"]


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


def evaluate(a, model, test, adapter=None):
    cmd = [a.owlore, "eval", "--model", model, "--tokenizer", a.gguf, "--data", test,
           "--json"]
    if adapter:
        cmd += ["--adapter", adapter]
    t0 = time.time()
    r = json.loads(run(cmd, env=a.env).stdout.strip().splitlines()[-1])
    r["seconds"] = time.time() - t0
    return r


def train(a, method, seed, train_file, out):
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB %M", a.owlore, "train", "--model", a.gguf,
           "--data", train_file, "--method", method, "--steps", str(a.steps),
           "--batch", str(a.batch), "--seq", str(a.seq), "--lr", str(a.lr),
           "--seed", str(seed), "--val-fraction", "0", "--out", out, "--backend", a.backend]
    if method in ("lisa", "owlore_full_rank", "owlore"):
        cmd += ["--calib-samples", str(a.calib)]
    t0 = time.time()
    p = run(cmd, env=a.env)
    wall = time.time() - t0
    rss = int(next(l.split()[1] for l in p.stderr.splitlines() if l.startswith("MAXRSS_KB")))
    steps = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    steps = [s for s in steps if s["step"] > 0]
    return {"loss": [s["loss"] for s in steps],
            "tokens_per_s": statistics.median(s["tokens_per_s"] for s in steps),
            "peak_rss": rss * 1024, "wall_s": wall,
            "blocks": sorted({b for s in steps for b in s["sampled_blocks"]})}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--calib", type=int, default=16, help="outlier calibration windows")
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=60)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--backend", default="cpu", help="training backend: cpu, cuda or auto")
    ap.add_argument("--owlore", default=os.path.join(ROOT, "build", "owlore"))
    ap.add_argument("--gguf", default=GGUF)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench", "methods"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "data", "methods.json"))
    a = ap.parse_args()
    a.env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OWLORE_CACHE_DIR=a.work)
    os.makedirs(a.work, exist_ok=True)
    train_file = os.path.join(a.work, "arc_easy_train.json")
    test_file = os.path.join(a.work, "arc_easy_test.json")
    json.dump(json.load(open(os.path.join(DATA, "train.json")))[:a.n_train], open(train_file, "w"))
    json.dump(json.load(open(os.path.join(DATA, "test.json")))[:a.n_test], open(test_file, "w"))

    t_start = time.time()
    result = {"model": os.path.basename(a.gguf), "task": "ARC-Easy",
              "n_train_records": a.n_train, "n_test_records": a.n_test, "steps": a.steps,
              "batch": a.batch, "seq": a.seq, "tokens_per_run": a.steps * a.batch * a.seq,
              "lr": a.lr, "threads": a.threads, "backend": a.backend,
              "seeds": [int(s) for s in a.seeds.split(",")],
              "base": evaluate(a, a.gguf, test_file), "runs": []}
    print(f"base model: loss {result['base']['loss']:.4f}, accuracy "
          f"{result['base']['multiple_choice']['accuracy']:.3f}", flush=True)
    for seed in result["seeds"]:
        for m in a.methods.split(","):
            out = os.path.join(a.work, f"{m}-seed{seed}")
            r = train(a, m, seed, train_file, out)
            ckpt = os.path.join(out, f"checkpoint-{a.steps}")
            r["eval"] = (evaluate(a, a.gguf, test_file, adapter=ckpt) if m == "lora"
                         else evaluate(a, ckpt, test_file))
            r.update(method=m, seed=seed)
            result["runs"].append(r)
            shutil.rmtree(out, ignore_errors=True)
            print(f"seed {seed} {m:17} final train loss {r['loss'][-1]:.4f}  held-out loss "
                  f"{r['eval']['loss']:.4f}  accuracy {r['eval']['multiple_choice']['accuracy']:.3f}"
                  f"  {r['tokens_per_s']:.0f} tok/s  peak RSS {r['peak_rss'] / 2**20:.0f} MB",
                  flush=True)
            result["wall_s"] = time.time() - t_start
            os.makedirs(os.path.dirname(a.out), exist_ok=True)
            json.dump(result, open(a.out, "w"), indent=1)
    print(f"wrote {a.out} ({result['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
