#!/usr/bin/env python3
"""docs/results.md and its plots, from the benchmarks' JSON files.

Reads what bench/methods.py, bench/vs_pytorch.py (every vs_pytorch*.json:
one table per run, then the ratios over runs) and bench/outliers.py wrote
under docs/data/ (any of them may be missing: its section says so) and
writes docs/results.md with the tables, and, with matplotlib,
docs/loss_curves.png (training loss per step, per method, mean over seeds),
docs/accuracy.png (ARC-Easy accuracy per method, mean and each seed) and
docs/outliers.png (D_l per block at each tau). Every number and every
comparison sentence in the page is computed here from those files.

    python3 bench/report.py [--docs DIR] [--data DIR]
"""

import argparse
import json
import math
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
ORDER = ["full", "lora", "lisa", "galore", "owlore_full_rank", "owlore"]


def load(data, name):
    p = os.path.join(data, name)
    return json.load(open(p)) if os.path.exists(p) else None


def chance_level(n):
    """Expected accuracy of guessing on the first n ARC-Easy test records:
    the mean of 1 / (options of each record)."""
    path = os.path.join(ROOT, "..", "shared", "data", "datasets", "commonsense", "ARC-Easy",
                        "test.json")
    if not os.path.exists(path):
        return None
    recs = json.load(open(path))[:n]
    opts = [len(r["instruction"].split("Answer format:")[1].strip().split("/")) for r in recs]
    return statistics.mean(1 / k for k in opts)


def mean_sd(xs):
    m = statistics.mean(xs)
    return m, (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def methods_section(d, out):
    if not d:
        return ["## Methods on ARC-Easy", "", "Not run yet (`python3 bench/methods.py`).", ""]
    by = {}
    for r in d["runs"]:
        by.setdefault(r["method"], []).append(r)
    methods = [m for m in ORDER if m in by]
    n = d["n_test_records"]
    base = d["base"]
    lines = ["## Methods on ARC-Easy", "",
             f"SmolLM2-135M-Instruct (`{d['model']}`) fine-tuned on the first "
             f"{d['n_train_records']} ARC-Easy training records (chat template, loss on the "
             f"answer), {d['steps']} steps x batch {d['batch']} x {d['seq']} tokens = "
             f"{d['tokens_per_run']:,} tokens per run, learning rate {d['lr']:g} with linear "
             f"decay, every other setting the method's default, seeds "
             f"{', '.join(map(str, d['seeds']))}, {d['threads']} threads, training on the "
             f"{d.get('backend', 'cpu')} backend. Scored by "
             f"`owlore eval` on the first {n} ARC-Easy test records: held-out loss on the "
             f"answer tokens and multiple-choice accuracy (summed log-likelihood of each "
             f"option). Total wall time {d.get('wall_s', 0) / 60:.1f} min.", "",
             "| method | runs | held-out loss | accuracy | tokens/s (train) | peak RSS (train) |",
             "| --- | --- | --- | --- | --- | --- |",
             f"| base model (no training) | | {base['loss']:.4f} | "
             f"{base['multiple_choice']['accuracy']:.3f} | | |"]
    summary = {}
    for m in methods:
        rs = by[m]
        loss = mean_sd([r["eval"]["loss"] for r in rs])
        acc = mean_sd([r["eval"]["multiple_choice"]["accuracy"] for r in rs])
        tok = statistics.mean(r["tokens_per_s"] for r in rs)
        rss = max(r["peak_rss"] for r in rs)
        summary[m] = (loss, acc, tok, rss)
        lines.append(f"| {m} | {len(rs)} | {loss[0]:.4f} ± {loss[1]:.4f} | "
                     f"{acc[0]:.3f} ± {acc[1]:.3f} | {tok:.0f} | {rss / 2**20:.0f} MB |")
    chance = chance_level(n)
    lines += ["", "(mean ± standard deviation over seeds; tokens/s is the median step's, "
              "peak RSS the training process's, model loading included"
              + (f"; guessing would score {chance:.3f})" if chance else ")"), ""]
    if methods:
        best_acc = max(methods, key=lambda m: summary[m][1][0])
        best_loss = min(methods, key=lambda m: summary[m][0][0])
        p = summary[best_acc][1][0]
        se = math.sqrt(max(p * (1 - p), 1e-9) / n)  # the seeds share the questions
        lines.append(f"Best accuracy: {best_acc} ({summary[best_acc][1][0]:.3f}); lowest "
                     f"held-out loss: {best_loss} ({summary[best_loss][0][0]:.4f}).")
        if "owlore" in summary:
            o_acc, o_loss = summary["owlore"][1][0], summary["owlore"][0][0]
            acc_rank = 1 + sum(summary[m][1][0] > o_acc for m in methods)
            loss_rank = 1 + sum(summary[m][0][0] < o_loss for m in methods)
            lines.append(f"OwLore ranks {acc_rank} of {len(methods)} by accuracy and "
                         f"{loss_rank} of {len(methods)} by held-out loss at this scale (rank "
                         f"1 = best, ties share a rank)" +
                         (": it does not win here." if acc_rank > 1 or loss_rank > 1 else "."))
        spread = max(summary[m][1][0] for m in methods) - min(summary[m][1][0] for m in methods)
        lines.append(f"The accuracy spread between methods is {spread:.3f}; the binomial "
                     f"standard error of one accuracy over the {n} test questions is about "
                     f"{se:.3f}, so "
                     + ("the accuracy differences are within noise." if spread < 2 * se else
                        "the largest accuracy difference exceeds two standard errors."))
        lines += ["", "![training loss per method](loss_curves.png)", "",
                  "![accuracy per method](accuracy.png)", ""]
        plot_methods(d, by, methods, out)
    return lines


def plot_methods(d, by, methods, out):
    fig, ax = plt.subplots(figsize=(7, 4))
    for m in methods:
        curves = [r["loss"] for r in by[m]]
        k = min(len(c) for c in curves)
        ax.plot(range(1, k + 1), [statistics.mean(c[i] for c in curves) for i in range(k)],
                label=m, marker="o", ms=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title(f"ARC-Easy, SmolLM2-135M, batch {d['batch']} x {d['seq']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss_curves.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    accs = [[r["eval"]["multiple_choice"]["accuracy"] for r in by[m]] for m in methods]
    ax.bar(range(len(methods)), [statistics.mean(a) for a in accs], color="#7aa6c2")
    for i, a in enumerate(accs):
        ax.scatter([i] * len(a), a, color="k", s=12, zorder=3)
    ax.axhline(d["base"]["multiple_choice"]["accuracy"], color="r", ls="--",
               label="base model")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=20)
    ax.set_ylabel(f"accuracy on {d['n_test_records']} ARC-Easy test questions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy.png"), dpi=110)
    plt.close(fig)


def speed_table(name, d):
    """The table of one vs_pytorch.py run and its verdict lines."""
    lines = [f"### {name}", "",
             f"Batch {d['batch']} x {d['seq']} tokens, {d['threads']} threads on both sides, "
             f"median of {d['rounds']} x {d['steps']} steps (the two sides alternating), "
             f"each after {d['warmup']} warm-up step(s); owlore at commit {d['commit']}; "
             f"load average at the end: {', '.join(f'{x:.1f}' for x in d['load_average'])}.",
             "",
             "| method | owlore tokens/s | PyTorch tokens/s | ratio | owlore peak RSS | "
             "PyTorch peak RSS |", "| --- | --- | --- | --- | --- | --- |"]
    faster = lighter = 0
    for r in d["rows"]:
        faster += r["ratio"] >= 1.0
        lighter += r["owlore_peak_rss"] < r["torch_peak_rss"]
        lines.append(f"| {r['method']} | {r['owlore_tok_s']:.1f} | {r['torch_tok_s']:.1f} | "
                     f"{r['ratio']:.2f} | {r['owlore_peak_rss'] / 2**20:.0f} MB | "
                     f"{r['torch_peak_rss'] / 2**20:.0f} MB |")
    n = len(d["rows"])
    lines += ["", f"Ratio >= 1.0 (owlore at least as fast): {faster} of {n} methods. Lower "
              f"peak memory than PyTorch: {lighter} of {n} methods.", ""]
    return lines, faster, lighter, n


def speed_section(runs):
    if not runs:
        return ["## Speed against PyTorch", "", "Not run yet (`python3 bench/vs_pytorch.py`).",
                ""]
    d0 = runs[0][1]
    lines = ["## Speed against PyTorch", "",
             f"One training step (forward, backward, clipping, optimizer) of {d0['model']}: "
             f"owlore's CPU backend against PyTorch {d0['torch']} with transformers "
             f"{d0['transformers']} (+ peft for lora, galore-torch for galore/owlore), each "
             f"in its own process, same weights, batch shape and optimizer settings. Peak RSS "
             f"is each whole process's. The machine is shared with other work, so step "
             f"times move between runs; every run found in docs/data/ is listed.", ""]
    totals = [0, 0, 0]
    ratios = {}
    for name, d in runs:
        t, faster, lighter, n = speed_table(name, d)
        lines += t
        totals = [totals[0] + faster, totals[1] + lighter, totals[2] + n]
        for r in d["rows"]:
            ratios.setdefault(r["method"], []).append(r["ratio"])
    lines += ["### Over all runs", "",
              "| method | ratio per run | median ratio |", "| --- | --- | --- |"]
    for m, rs in ratios.items():
        lines.append(f"| {m} | {', '.join(f'{x:.2f}' for x in rs)} | "
                     f"{statistics.median(rs):.2f} |")
    met = [m for m, rs in ratios.items() if statistics.median(rs) >= 1.0]
    lines += ["", f"The target (ratio >= 1.0) holds in {totals[0]} of {totals[2]} "
              f"method-runs; by median ratio for {len(met)} of {len(ratios)} methods"
              + (f" ({', '.join(met)})" if met else "") + ". Lower peak memory than PyTorch "
              f"in {totals[1]} of {totals[2]} method-runs.", ""]
    return lines


def outliers_section(d, out):
    if not d:
        return ["## Outlier distribution", "", "Not run yet (`python3 bench/outliers.py`).", ""]
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in d["rows"]:
        ax.plot(range(len(r["outlier_ratio"])), r["outlier_ratio"], marker="o", ms=3,
                label=f"tau = {r['tau']:g}")
    ax.set_xlabel("block")
    ax.set_ylabel("outlier ratio D_l (%)")
    ax.set_yscale("log")
    ax.set_title(f"{d['model']}: layerwise outlier ratio (calibration: {d['calibration']}, "
                 f"{d['samples']} x {d['seq']} tokens)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "outliers.png"), dpi=110)
    plt.close(fig)
    lines = ["## Outlier distribution", "",
             f"D_l per block (OWL's ratio: share of weights whose score exceeds tau x the "
             f"block mean, in %), calibrated on {d['samples']} windows of {d['seq']} tokens of "
             f"{d['calibration']}.", "", "![outlier ratio per block](outliers.png)", "",
             "| tau | min D_l | max D_l | top 5 blocks (sampling probability at this tau) |",
             "| --- | --- | --- | --- |"]
    for r in d["rows"]:
        D, p = r["outlier_ratio"], r["probability"] or [0] * len(r["outlier_ratio"])
        top = sorted(range(len(D)), key=lambda i: -D[i])[:5]
        lines.append(f"| {r['tau']:g} | {min(D):.4f} | {max(D):.4f} | " +
                     ", ".join(f"{i} ({p[i]:.3f})" for i in top) + " |")
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default=DOCS, help="where results.md and the PNGs go")
    ap.add_argument("--data", default=os.path.join(DOCS, "data"), help="the JSON files")
    a = ap.parse_args()
    os.makedirs(a.docs, exist_ok=True)
    lines = ["# Results", "",
             "Generated by `bench/report.py` from `docs/data/*.json`, which "
             "`bench/methods.py`, `bench/vs_pytorch.py` and `bench/outliers.py` write; "
             f"do not edit by hand. Machine: {cpu_name()}, {os.cpu_count()} logical CPUs.", ""]
    runs = [(f[:-5], load(a.data, f)) for f in sorted(os.listdir(a.data))
            if f.startswith("vs_pytorch") and f.endswith(".json")] if os.path.isdir(a.data) else []
    lines += speed_section(runs)
    lines += methods_section(load(a.data, "methods.json"), a.docs)
    lines += outliers_section(load(a.data, "outliers.json"), a.docs)
    open(os.path.join(a.docs, "results.md"), "w").write("\n".join(lines).rstrip() + "\n")
    print("wrote", os.path.join(a.docs, "results.md"))


if __name__ == "__main__":
    main()
