#!/usr/bin/env python3
"""One training step, owlore's CPU backend against PyTorch, on the same machine.

For each method, the same model (SmolLM2-135M: the default GGUF exported to
fp32 safetensors by bench/export_hf.py, loaded by both), the same batch
shape (B sequences of T tokens) and the same optimizer settings (AdamW
lr 3e-4, betas 0.9/0.999, eps 1e-6, no weight decay, clipping at 1.0):

  owlore   `owlore train --method M` on TinyStories text, per-step time from
           its metrics.jsonl (forward, backward, clipping, optimizer);
  PyTorch  transformers LlamaForCausalLM (fp32) on token ids of the same
           shape: full = AdamW on everything; lora = peft LoRA r 8, alpha 16,
           dropout 0.05 on the 7 linear layers; galore = galore_torch
           GaLoreAdamW (rank 8, T 200, scale 0.25) on the block linear
           weights; lisa / owlore_full_rank = 2 blocks trainable (+ embedding,
           norm), AdamW; owlore = 5 blocks trainable, GaLoreAdamW rank 128.

Each side runs in its own process with the same thread count (OpenMP /
torch threads); the first --warmup steps of each process are dropped. The
two sides alternate for --rounds rounds (ours, PyTorch, ours, PyTorch, ...)
so that a slow spell of a shared machine falls on both, and the median of
all kept steps of a side is reported. Peak RSS is the whole process's (ru_maxrss via
/usr/bin/time): model, data, optimizer state and the framework itself.

    python3 bench/vs_pytorch.py [--methods full,lora,...] [--batch 2] [--seq 128]
                                [--steps 4] [--warmup 2] [--rounds 2] [--threads 2]

Prints a table and writes docs/data/vs_pytorch.json (bench/report.py turns
it into docs/results.md's table).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_hf  # noqa: E402

TEXT = os.path.join(ROOT, "..", "shared", "data", "datasets", "tinystories",
                    "tinystories_val.txt")
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GAMMA = {"lisa": 2, "owlore_full_rank": 2, "owlore": 5}


def owlore_side(a, method, hf_dir, work):
    """Per-step seconds and peak RSS (bytes) of `owlore train`."""
    out = os.path.join(work, "owlore-" + method)
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB %M", a.owlore, "train", "--model", hf_dir,
           "--tokenizer", a.gguf, "--data", a.text, "--method", method,
           "--batch", str(a.batch), "--seq", str(a.seq), "--steps", str(a.warmup + a.steps),
           "--val-fraction", "0", "--out", out, "--lr", "3e-4", "--eps", "1e-6"]
    if method in GAMMA:
        cmd += ["--calib-samples", "4"]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OWLORE_CACHE_DIR=work)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"owlore train {method} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    rss = int(next(l.split()[1] for l in p.stderr.splitlines() if l.startswith("MAXRSS_KB")))
    steps = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    secs = [a.batch * a.seq / s["tokens_per_s"] for s in steps if s["step"] > a.warmup]
    shutil.rmtree(out, ignore_errors=True)
    return secs, rss * 1024


def torch_worker(a):
    """Runs inside its own process: prints one JSON line with step times."""
    import torch
    from transformers import LlamaForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(a.hf_dir, torch_dtype=torch.float32)
    model.train()
    m = a.method
    adamw = dict(lr=3e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    if m == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                 target_modules=LINEAR, bias="none",
                                                 task_type="CAUSAL_LM"))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], **adamw)
    else:
        layers = model.model.layers
        active = list(range(len(layers)))
        if m in GAMMA:
            g = torch.Generator().manual_seed(0)
            active = sorted(torch.randperm(len(layers), generator=g)[:GAMMA[m]].tolist())
            for i, layer in enumerate(layers):
                layer.requires_grad_(i in active)
        low_rank = [p for i in active for p in layers[i].parameters()
                    if p.ndim == 2] if m in ("galore", "owlore") else []
        ids = {id(p) for p in low_rank}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        if low_rank:
            from galore_torch import GaLoreAdamW
            rank = 8 if m == "galore" else 128
            opt = GaLoreAdamW([{"params": rest},
                               {"params": low_rank, "rank": rank, "update_proj_gap": 200,
                                "scale": 0.25, "proj_type": "std"}], **adamw)
        else:
            opt = torch.optim.AdamW(rest, **adamw)
    vocab = model.config.vocab_size
    trainable = [p for p in model.parameters() if p.requires_grad]
    times = []
    for step in range(a.warmup + a.steps):
        x = torch.randint(0, vocab, (a.batch, a.seq + 1))
        t0 = time.perf_counter()
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"step_s": times[a.warmup:],
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def torch_side(a, method, hf_dir):
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB %M", sys.executable, os.path.abspath(__file__),
           "--torch-worker", "--method", method, "--hf-dir", hf_dir, "--batch", str(a.batch),
           "--seq", str(a.seq), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--threads", str(a.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"PyTorch {method} failed:\n{p.stderr[-3000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    rss = int(next(l.split()[1] for l in p.stderr.splitlines() if l.startswith("MAXRSS_KB")))
    return r["step_s"], rss * 1024


def commit():
    """The checked-out commit of owlore (+ "-dirty" with uncommitted changes)."""
    head = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return head.stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="full,lora,galore,lisa,owlore_full_rank,owlore")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--owlore", default=os.path.join(ROOT, "build", "owlore"))
    ap.add_argument("--gguf", default=export_hf.DEFAULT_GGUF)
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "data", "vs_pytorch.json"))
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--hf-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        return torch_worker(a)

    os.makedirs(a.work, exist_ok=True)
    hf_dir = export_hf.export(a.gguf, os.path.join(a.work, "smollm2-135m-hf"))
    work = tempfile.mkdtemp(dir=a.work, prefix="vs_pytorch-")
    rows = []
    print(f"SmolLM2-135M fp32, batch {a.batch} x {a.seq} tokens, {a.threads} threads, "
          f"median of {a.rounds} x {a.steps} steps, each after {a.warmup} warm-up steps")
    print(f"{'method':18} {'owlore tok/s':>12} {'torch tok/s':>12} {'ratio':>6} "
          f"{'owlore RSS':>11} {'torch RSS':>10}")
    for m in a.methods.split(","):
        ours, theirs, ours_rss, theirs_rss = [], [], 0, 0
        for _ in range(a.rounds):
            secs, rss = owlore_side(a, m, hf_dir, work)
            ours, ours_rss = ours + secs, max(ours_rss, rss)
            secs, rss = torch_side(a, m, hf_dir)
            theirs, theirs_rss = theirs + secs, max(theirs_rss, rss)
        tok = a.batch * a.seq
        row = {"method": m, "owlore_tok_s": tok / statistics.median(ours),
               "torch_tok_s": tok / statistics.median(theirs),
               "owlore_step_s": ours, "torch_step_s": theirs,
               "owlore_peak_rss": ours_rss, "torch_peak_rss": theirs_rss}
        row["ratio"] = row["owlore_tok_s"] / row["torch_tok_s"]
        rows.append(row)
        print(f"{m:18} {row['owlore_tok_s']:12.1f} {row['torch_tok_s']:12.1f} "
              f"{row['ratio']:6.2f} {ours_rss / 2**20:9.0f}MB {theirs_rss / 2**20:8.0f}MB",
              flush=True)
    shutil.rmtree(work, ignore_errors=True)
    import torch
    import transformers
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump({"model": "SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to fp32)",
               "batch": a.batch, "seq": a.seq, "steps": a.steps, "warmup": a.warmup,
               "rounds": a.rounds, "commit": commit(),
               "threads": a.threads, "cpu": platform.processor() or platform.machine(),
               "load_average": os.getloadavg(), "torch": torch.__version__,
               "transformers": transformers.__version__, "rows": rows},
              open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
