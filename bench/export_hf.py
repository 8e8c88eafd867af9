#!/usr/bin/env python3
"""Export the default GGUF model as a Hugging Face model directory.

The benchmarks run the same weights in owlore and in PyTorch: the GGUF file
(SmolLM2-135M-Instruct Q4_1 by default) is dequantized to fp32 with the
gguf package and q/k rows are un-permuted to Hugging Face's RoPE layout
(tests/ref/smollm2_reference.py's conversion, reused), then written as
model.safetensors + config.json. No tokenizer is written: owlore is given
the GGUF as --tokenizer, and PyTorch works on token ids.

    python3 bench/export_hf.py [--gguf PATH] [--out DIR]

Prints the output directory; does nothing when it already holds the export
of the same GGUF file (checked by sha256 in owlore_export.json).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import smollm2_reference as ref  # noqa: E402  (field, unpermute, BLOCK)

DEFAULT_GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(ROOT, "build", "bench", "smollm2-135m-hf")


def export(gguf_path, out):
    import gguf
    import torch
    from safetensors.torch import save_file

    sha = hashlib.sha256(open(gguf_path, "rb").read()).hexdigest()
    stamp = os.path.join(out, "owlore_export.json")
    if os.path.exists(stamp) and json.load(open(stamp)).get("sha256") == sha:
        return out
    r = gguf.GGUFReader(gguf_path)
    f = lambda k: ref.field(r, k)  # noqa: E731
    H, KV = f("llama.attention.head_count"), f("llama.attention.head_count_kv")
    sd = {}
    for t in r.tensors:
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        p = t.name.split(".")
        if t.name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = x
        elif t.name == "output_norm.weight":
            sd["model.norm.weight"] = x
        elif p[0] == "blk":
            if p[2] == "attn_q":
                x = ref.unpermute(x, H)
            elif p[2] == "attn_k":
                x = ref.unpermute(x, KV)
            sd[f"model.layers.{p[1]}.{ref.BLOCK[p[2]]}.weight"] = x
        else:
            raise RuntimeError(f"unexpected tensor {t.name}")
    os.makedirs(out, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
              os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": int(f("llama.embedding_length")),
           "intermediate_size": int(f("llama.feed_forward_length")),
           "num_hidden_layers": int(f("llama.block_count")), "num_attention_heads": int(H),
           "num_key_value_heads": int(KV), "head_dim": int(f("llama.rope.dimension_count")),
           "vocab_size": int(f("llama.vocab_size")),
           "max_position_embeddings": int(f("llama.context_length")),
           "rms_norm_eps": float(f("llama.attention.layer_norm_rms_epsilon")),
           "rope_theta": float(f("llama.rope.freq_base")), "tie_word_embeddings": True,
           "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
           "torch_dtype": "float32",
           "bos_token_id": int(f("tokenizer.ggml.bos_token_id")),
           "eos_token_id": int(f("tokenizer.ggml.eos_token_id"))}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    json.dump({"gguf": os.path.basename(gguf_path), "sha256": sha}, open(stamp, "w"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    print(export(a.gguf, a.out))


if __name__ == "__main__":
    main()
