#!/usr/bin/env python3
"""Reference logits of the default model, SmolLM2-135M-Instruct Q4_1 (GGUF).

Reads models/SmolLM2-135M-Instruct.Q4_1.gguf (fetched by `make model`) with
the gguf Python package, dequantizes every tensor (gguf.quants.dequantize),
un-permutes q/k rows from llama.cpp's adjacent-pair RoPE layout back to
Hugging Face's half-split layout (q with 9 heads, k with 3 KV heads), loads
the weights into a transformers LlamaForCausalLM (fp32, eager attention,
rope_theta and eps from the file, tied embeddings) and runs a fixed token
sequence. Writes tests/model/fixtures/smollm2_q41_logits.safetensors:

    tokens (T,) int32, logits (2, V) float32: the next-token logits at the
    last 2 positions; metadata: model file name and its sha256, token ids.

Needs numpy, torch, transformers, safetensors and `pip install gguf`:

    python3 tests/ref/smollm2_reference.py
"""

import hashlib
import json
import os

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "tests", "model", "fixtures", "smollm2_q41_logits.safetensors")
LAST = 2

# "<|im_start|>system\nYou are a helpful AI assistant ...": ChatML-looking ids
# (1 = <|im_start|>, 198 = "\n", 2 = <|im_end|>); any in-range ids would do.
TOKENS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 2, 198, 1, 4093, 198, 19556]

BLOCK = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
         "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def field(r, key):
    return r.fields[key].contents()


def unpermute(w, n_head):
    """llama.cpp adjacent-pair rows -> HF half-split rows (inverse of
    convert_hf_to_gguf.py's permute)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def main():
    sha = hashlib.sha256(open(MODEL, "rb").read()).hexdigest()
    r = gguf.GGUFReader(MODEL)
    assert field(r, "general.architecture") == "llama"
    H = field(r, "llama.attention.head_count")
    KV = field(r, "llama.attention.head_count_kv")
    D = field(r, "llama.embedding_length")
    cfg = LlamaConfig(
        hidden_size=D, intermediate_size=field(r, "llama.feed_forward_length"),
        num_hidden_layers=field(r, "llama.block_count"), num_attention_heads=H,
        num_key_value_heads=KV, head_dim=field(r, "llama.rope.dimension_count"),
        vocab_size=field(r, "llama.vocab_size"),
        max_position_embeddings=field(r, "llama.context_length"),
        rms_norm_eps=float(field(r, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(r, "llama.rope.freq_base")), tie_word_embeddings=True,
        attn_implementation="eager")
    print("config:", {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size",
          "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
          "vocab_size", "rms_norm_eps")}, "rope_theta", float(field(r, "llama.rope.freq_base")))
    types = {}
    sd = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = x
        elif t.name == "output_norm.weight":
            sd["model.norm.weight"] = x
        elif parts[0] == "blk":
            if parts[2] == "attn_q":
                x = unpermute(x, H)
            elif parts[2] == "attn_k":
                x = unpermute(x, KV)
            sd[f"model.layers.{parts[1]}.{BLOCK[parts[2]]}.weight"] = x
        else:
            raise RuntimeError(f"unexpected tensor {t.name}")
    print("tensor types:", types)
    model = LlamaForCausalLM(cfg).float().eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    ids = torch.tensor([TOKENS])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -LAST:].float().contiguous()
    print("argmax at the last positions:", logits.argmax(-1).tolist())
    save_file({"tokens": torch.tensor(TOKENS, dtype=torch.int32), "logits": logits}, OUT,
              metadata={"model": os.path.basename(MODEL), "sha256": sha,
                        "tokens": json.dumps(TOKENS), "positions": f"last {LAST}"})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes), model sha256 {sha}")


if __name__ == "__main__":
    main()
