#!/usr/bin/env python3
"""The outlier distribution of the default model at several thresholds.

Runs `owlore outliers --json` on SmolLM2-135M-Instruct (Q4_1 GGUF) with
calibration on the first --samples windows of --seq tokens of TinyStories
text (as `owlore train` calibrates), once per tau, and writes the per-block
outlier ratios D_l and sampling probabilities to docs/data/outliers.json
(bench/report.py plots them). tau = 13 is the paper's default.

    python3 bench/outliers.py [--taus 5,7,9,13,20] [--samples 16] [--seq 256]
"""

import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "..", "shared", "data", "datasets", "tinystories",
                    "tinystories_val.txt")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taus", default="5,7,9,13,20")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--owlore", default=os.path.join(ROOT, "build", "owlore"))
    ap.add_argument("--gguf", default=GGUF)
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "data", "outliers.json"))
    a = ap.parse_args()
    rows = []
    for tau in a.taus.split(","):
        p = subprocess.run([a.owlore, "outliers", "--model", a.gguf, "--data", a.text,
                            "--samples", str(a.samples), "--seq", str(a.seq), "--tau", tau,
                            "--json"], capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        rows.append({"tau": r["tau"], "outlier_ratio": r["outlier_ratio"],
                     "probability": r["probability"]})
        print(f"tau {r['tau']:5.1f}: D_l " +
              " ".join(f"{d:.3f}" for d in r["outlier_ratio"]), flush=True)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    json.dump({"model": os.path.basename(a.gguf), "calibration": "TinyStories",
               "samples": a.samples, "seq": a.seq, "rows": rows}, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
