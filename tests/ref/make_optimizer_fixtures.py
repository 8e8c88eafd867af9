#!/usr/bin/env python3
"""Generate the GaLore-AdamW reference fixtures under tests/unit/fixtures/optim/.

Runs galore-torch 1.0 (`galore_torch.GaLoreAdamW`, i.e. galore_torch/adamw.py
with galore_projector.py, proj_type "std") on three parameters with fixed,
stored per-step gradients:

  w_right (24, 16)  GaLore group: right projection, P (4, 16)
  w_left  (12, 20)  GaLore group: left projection,  P (12, 4)
  w_bias  (16,)     plain group: Hugging Face AdamW

GaLore group: rank 4, update_proj_gap 3 (refreshes at the tensor's own steps
0 and 3, so one refresh happens with moments already accumulated), scale
0.25. Common: lr 1e-2, betas (0.9, 0.999), eps 1e-6, correct_bias True, 6
steps. One file per weight decay:

  tests/unit/fixtures/optim/galore_wd0.01.safetensors
  tests/unit/fixtures/optim/galore_wd0.safetensors

each holding, for every parameter <p>: "<p>.init", "<p>.grad.<k>" and
"<p>.after.<k>" (weights after step k, k = 0..5), all float32, plus the
hyperparameters as __metadata__ strings (lr, beta1, beta2, eps,
weight_decay, rank, update_proj_gap, scale, steps).

Sign convention: singular vectors are defined up to sign, and GaLore keeps
its moments in the old basis across a refresh, so the sign of each basis
vector changes the result after the refresh. The engine (kernels/cpu/
linalg.c) normalises every basis vector (a row of P for the right
projection, a column for the left) so that its entry of largest magnitude is
positive; this script wraps galore-torch's GaLoreProjector.
get_orthogonal_matrix to apply the same rule to torch.linalg.svd's output.
It also checks that the rule is well conditioned on this data (the two
largest magnitudes of each basis vector, and singular values r and r+1, are
clearly apart), so fp32 SVDs from different LAPACKs pick the same signs.

The outputs are committed (CI has no torch); this script regenerates them:

    pip install galore-torch==1.0
    python3 tests/ref/make_optimizer_fixtures.py
"""

import os
import warnings

import torch
from safetensors.torch import save_file

warnings.filterwarnings("ignore")
from galore_torch import GaLoreAdamW  # noqa: E402
from galore_torch.galore_projector import GaLoreProjector  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
OUT = os.path.join(ROOT, "unit", "fixtures", "optim")

LR, BETAS, EPS = 1e-2, (0.9, 0.999), 1e-6
RANK, GAP, SCALE, STEPS = 4, 3, 0.25, 6
SHAPES = {"w_right": (24, 16), "w_left": (12, 20), "w_bias": (16,)}

_orig_get_orthogonal_matrix = GaLoreProjector.get_orthogonal_matrix


def _check_conditioning(matrix, rank):
    s = torch.linalg.svdvals(matrix.double())
    gaps = (s[:rank] - s[1 : rank + 1]) / s[0]
    assert gaps.min() > 1e-2, f"singular values too close: {s.tolist()}"


def _fix_signs(vectors):
    """Rows of vectors (k, d): flip each so its largest-|.| entry is positive."""
    mags = vectors.abs()
    top2 = mags.topk(2, dim=1).values
    assert ((top2[:, 0] - top2[:, 1]) > 1e-3 * top2[:, 0]).all(), "sign rule ill-conditioned"
    idx = mags.argmax(dim=1)
    signs = torch.sign(vectors.gather(1, idx[:, None]))
    return vectors * signs


def get_orthogonal_matrix_fixed_signs(self, weights, rank, type):
    _check_conditioning(weights, rank)
    out = _orig_get_orthogonal_matrix(self, weights, rank, type)
    if type == "right":  # P (r, n): basis vectors are rows
        return _fix_signs(out)
    if type == "left":  # P (m, r): basis vectors are columns
        return _fix_signs(out.t()).t().contiguous()
    raise ValueError(type)


GaLoreProjector.get_orthogonal_matrix = get_orthogonal_matrix_fixed_signs


def run(weight_decay, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {k: torch.nn.Parameter(torch.randn(s, generator=gen)) for k, s in SHAPES.items()}
    grads = [
        {k: torch.randn(s, generator=gen) * (0.5 + i * 0.25) for k, s in SHAPES.items()}
        for i in range(STEPS)
    ]
    tensors = {f"{k}.init": p.detach().clone() for k, p in params.items()}
    groups = [
        {"params": [params["w_right"], params["w_left"]], "rank": RANK,
         "update_proj_gap": GAP, "scale": SCALE, "proj_type": "std"},
        {"params": [params["w_bias"]]},
    ]
    opt = GaLoreAdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=weight_decay)
    for i in range(STEPS):
        for k, p in params.items():
            p.grad = grads[i][k].clone()
            tensors[f"{k}.grad.{i}"] = grads[i][k]
        opt.step()
        for k, p in params.items():
            tensors[f"{k}.after.{i}"] = p.detach().clone()
    meta = {"lr": repr(LR), "beta1": repr(BETAS[0]), "beta2": repr(BETAS[1]),
            "eps": repr(EPS), "weight_decay": repr(weight_decay), "rank": str(RANK),
            "update_proj_gap": str(GAP), "scale": repr(SCALE), "steps": str(STEPS)}
    return tensors, meta


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    for wd, seed in ((0.01, 1234), (0.0, 5678)):
        tensors, meta = run(wd, seed)
        path = os.path.join(OUT, f"galore_wd{wd:g}.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
