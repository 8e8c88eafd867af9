#!/usr/bin/env python3
"""Generate the LLaMA reference fixtures under tests/model/fixtures/.

Produces, for two tiny random-initialised Hugging Face LlamaForCausalLM models
(`gqa_untied`: GQA 4q/2kv heads, untied lm_head; `tied`: MHA, tied embeddings):

  tests/model/fixtures/<name>/config.json            (from save_pretrained)
  tests/model/fixtures/<name>/model.safetensors      (float32 weights)
  tests/model/fixtures/<name>/model_bf16.safetensors (same tensor names, BF16)
  tests/model/fixtures/<name>/model_f16.safetensors  (same tensor names, F16)
  tests/model/fixtures/<name>/expected.safetensors   input_ids, targets (shifted,
      -1 = ignored), logits, loss, grad.<hf param name> for every parameter,
      logits_bf16_weights, logits_f16_weights
  tests/model/fixtures/gqa_untied_sharded/           sharded copy of gqa_untied
      (config.json, model.safetensors.index.json, model-0000k-of-0000n.safetensors)

Everything is float32 on CPU with attn_implementation="eager", seeded with
torch.manual_seed, so the output is deterministic. No downloads are needed.
The outputs are committed (CI has no torch); this script is kept to regenerate
them:

    python3 tests/ref/make_llama_fixtures.py
"""

import copy
import json
import os
import shutil
import subprocess

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
FIXTURES = os.path.join(ROOT, "model", "fixtures")

B, T = 2, 16

MODELS = {
    "gqa_untied": dict(
        seed=1234,
        config=dict(
            hidden_size=48,
            intermediate_size=112,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=96,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
        ),
        sharded=True,
    ),
    "tied": dict(
        seed=4321,
        config=dict(
            hidden_size=32,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=80,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_theta=500.0,
            tie_word_embeddings=True,
        ),
        sharded=False,
    ),
}


def build_model(cfg_kwargs):
    config = LlamaConfig(attn_implementation="eager", **cfg_kwargs)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    model = model.float().to("cpu")
    model.eval()  # no dropout (attention_dropout is 0 anyway)

    # Non-trivial weights: every 2-D weight ~ N(0, 0.15), RMSNorm weights
    # 1 + 0.1*N(0,1) so their gradients matter. named_parameters dedups the
    # tied embedding/lm_head, so it is initialised once.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")

    if config.tie_word_embeddings:
        model.tie_weights()
        assert model.lm_head.weight is model.model.embed_tokens.weight, "not tied"
        assert (
            model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        )
    else:
        assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert model.config._attn_implementation == "eager"
    return model


def make_batch(vocab):
    input_ids = torch.randint(0, vocab, (B, T), dtype=torch.long)
    labels = input_ids.clone()
    labels[0, :5] = -100
    labels[1, [3, 4, 10]] = -100
    targets = torch.full((B, T), -1, dtype=torch.long)
    shifted = labels[:, 1:]
    targets[:, : T - 1] = torch.where(shifted == -100, torch.full_like(shifted, -1), shifted)
    return input_ids, labels, targets


def clean_dir(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def drop_generation_config(d):
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)


def rounded_logits(model, input_ids, dtype):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():  # tied param is visited once
            p.copy_(p.to(dtype).to(torch.float32))
        return m(input_ids=input_ids).logits.detach().float().contiguous()


def generate(name, spec):
    torch.manual_seed(spec["seed"])
    model = build_model(spec["config"])
    cfg = model.config
    V = cfg.vocab_size

    out_dir = os.path.join(FIXTURES, name)
    clean_dir(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    drop_generation_config(out_dir)

    if spec["sharded"]:
        sh_dir = os.path.join(FIXTURES, name + "_sharded")
        clean_dir(sh_dir)
        model.save_pretrained(sh_dir, safe_serialization=True, max_shard_size="60KB")
        drop_generation_config(sh_dir)
        shards = sorted(f for f in os.listdir(sh_dir) if f.endswith(".safetensors"))
        assert len(shards) >= 3, f"only {len(shards)} shards"
        assert os.path.exists(os.path.join(sh_dir, "model.safetensors.index.json"))
        # sharded copy must hold exactly the same tensors
        merged = {}
        for s in shards:
            merged.update(load_file(os.path.join(sh_dir, s)))
        single = load_file(os.path.join(out_dir, "model.safetensors"))
        assert merged.keys() == single.keys()
        for k in single:
            assert torch.equal(merged[k], single[k]), k
        print(f"[{name}_sharded] {len(shards)} shards: {shards}")

    # batch (drawn after weights, from the same seeded stream)
    input_ids, labels, targets = make_batch(V)

    model.zero_grad(set_to_none=True)
    out = model(input_ids=input_ids, labels=labels)
    logits = out.logits.detach().float().contiguous()
    assert logits.shape == (B, T, V)
    out.loss.backward()
    loss = out.loss.detach().float().reshape(1)

    # verify loss from logits + shifted targets (double precision reference)
    valid = targets != -1
    manual = F.cross_entropy(
        logits.double().reshape(-1, V)[valid.reshape(-1)],
        targets.reshape(-1)[valid.reshape(-1)],
        reduction="mean",
    )
    diff = abs(manual.item() - loss.item())
    assert diff <= 1e-6, f"manual loss {manual.item()} vs HF {loss.item()} diff {diff}"
    assert int(valid.sum()) == B * (T - 1) - (5 - 1) - 3, int(valid.sum())

    tensors = {
        "input_ids": input_ids.to(torch.int32).contiguous(),
        "targets": targets.to(torch.int32).contiguous(),
        "logits": logits,
        "loss": loss.contiguous(),
    }
    n_grads = 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        tensors["grad." + pname] = p.grad.detach().float().contiguous().clone()
        n_grads += 1
    tensors["logits_bf16_weights"] = rounded_logits(model, input_ids, torch.bfloat16)
    tensors["logits_f16_weights"] = rounded_logits(model, input_ids, torch.float16)
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"))

    # reduced-precision weight files with exactly the keys save_pretrained wrote
    with safe_open(os.path.join(out_dir, "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    sd = model.state_dict()
    for dtype, fname in ((torch.bfloat16, "model_bf16.safetensors"),
                         (torch.float16, "model_f16.safetensors")):
        conv = {k: sd[k].detach().to(dtype).contiguous().clone() for k in keys}
        save_file(conv, os.path.join(out_dir, fname), metadata={"format": "pt"})

    # summary
    print(f"[{name}] loss = {loss.item():.9f} (manual {manual.item():.9f}, diff {diff:.2e}), "
          f"valid targets = {int(valid.sum())}")
    print(f"[{name}] model.safetensors keys ({len(keys)}): {keys}")
    if cfg.tie_word_embeddings:
        assert "lm_head.weight" not in tensors and "grad.lm_head.weight" not in tensors
    for k, v in tensors.items():
        print(f"  {k:55s} {str(v.dtype):15s} {tuple(v.shape)}")
    print(f"[{name}] {n_grads} parameter grads")
    print(f"[{name}] config.json: {json.load(open(os.path.join(out_dir, 'config.json')))}")
    return loss.item()


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(FIXTURES, exist_ok=True)
    losses = {}
    for name, spec in MODELS.items():
        losses[name] = generate(name, spec)
    print("losses:", losses)
    du = subprocess.run(["du", "-sb", FIXTURES], capture_output=True, text=True).stdout.split()[0]
    total = int(du)
    print(f"total fixture size: {total} bytes")
    assert total < 1_500_000, "fixtures exceed 1.5 MB"


if __name__ == "__main__":
    main()
