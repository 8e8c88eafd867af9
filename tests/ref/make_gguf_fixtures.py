#!/usr/bin/env python3
"""Generate the GGUF fixtures under tests/model/fixtures/gguf/.

Two tiny random LLaMA models (torch.manual_seed, so the output is the same
every run):

  A  2 layers, dim 32, 2 query heads / 1 KV head of size 32 (head size
     differs from dim / heads, so llama.attention.key_length is used),
     FFN 64, vocab 32, untied head, rope_theta 1000, eps 1e-5
  B  1 layer, dim 32, same heads, FFN 256 (so ffn_down rows hold 256
     weights, one Q6_K super-block), vocab 32, tied embeddings, no
     llama.vocab_size (the vocabulary comes from tokenizer.ggml.tokens), no
     rope.freq_base (default 10000), eps 1e-6

Files written:

  hf/config.json, hf/model.safetensors   model A as Hugging Face saves it
  llama_f32.gguf                         model A, every tensor F32, plus test.*
                                         metadata keys of every value type
  llama_{q8_0,q4_0,q4_1,f16,bf16}.gguf   model A with every matrix in that type
                                         (norms stay F32, as llama.cpp keeps
                                         them); q4_0 uses general.alignment 64
  tied_q6_k.gguf                         model B: ffn_down Q6_K, the other
                                         matrices Q8_0, norms F32
  expected.safetensors
      tokens (1, T) int32
      logits.hf (T, V)               Hugging Face forward of model A
      logits.<file stem> (T, V)      forward of the weights as gguf's
                                     dequantize reads them back from the file
      deq.<file stem>.<tensor> (rows, cols)  gguf.quants.dequantize of that
                                     tensor, in file order (q/k not permuted)

The GGUF files store q/k rows the way llama.cpp's convert_hf_to_gguf.py does
(permuted for adjacent-pair RoPE: q with n_head, k with n_head_kv); the
references un-permute them before running the Hugging Face model. Q4_0, Q4_1,
Q8_0, F16 and BF16 are quantized with the gguf package; it has no Q6_K
quantizer, so quantize_q6_k below builds valid Q6_K blocks itself (a plain
per-16-weight absmax scale, not llama.cpp's search); only dequantization is
under test.

Needs numpy, torch, transformers, safetensors and `pip install gguf`
(0.19.0 used). Run from anywhere:

    python3 tests/ref/make_gguf_fixtures.py
"""

import os
import shutil
import subprocess

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
OUT = os.path.join(ROOT, "model", "fixtures", "gguf")
T = 8

MODELS = {
    "A": dict(seed=2024, hf=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                  vocab_size=32, max_position_embeddings=64,
                                  rms_norm_eps=1e-5, rope_theta=1000.0,
                                  tie_word_embeddings=False, bos_token_id=1,
                                  eos_token_id=2)),
    "B": dict(seed=77, hf=dict(hidden_size=32, intermediate_size=256, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                vocab_size=32, max_position_embeddings=64,
                                rms_norm_eps=1e-6, rope_theta=10000.0,
                                tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
}


def build(spec):
    torch.manual_seed(spec["seed"])
    cfg = LlamaConfig(attn_implementation="eager", **spec["hf"])
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
            else:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model


# ---- HF <-> GGUF names and the q/k permutation (convert_hf_to_gguf.py) ----

BLOCK_NAMES = [
    ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"),
]


def gguf_names(cfg):
    """(hf name, gguf name) for every parameter, in llama.cpp's file order."""
    out = [("model.embed_tokens.weight", "token_embd.weight")]
    for l in range(cfg.num_hidden_layers):
        for hf, gg in BLOCK_NAMES:
            out.append((f"model.layers.{l}.{hf}.weight", f"blk.{l}.{gg}.weight"))
    out.append(("model.norm.weight", "output_norm.weight"))
    if not cfg.tie_word_embeddings:
        out.append(("lm_head.weight", "output.weight"))
    return out


def permute(w, n_head):
    """HF half-split rows -> llama.cpp adjacent-pair rows (convert_hf_to_gguf)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w, n_head):
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def heads_for(gname, cfg):
    if ".attn_q." in gname:
        return cfg.num_attention_heads
    if ".attn_k." in gname:
        return cfg.num_key_value_heads
    return 0


# ---- Q6_K ----

def quantize_q6_k(x):
    """(rows, cols) float32, cols % 256 == 0 -> (rows, cols/256*210) uint8 blocks
    in ggml's block_q6_K layout: ql[128] | qh[64] | int8 scales[16] | fp16 d."""
    rows, cols = x.shape
    sub = x.astype(np.float32).reshape(-1, 16, 16)            # (blocks, 16, 16)
    idx = np.abs(sub).argmax(-1)[..., None]
    scale = np.take_along_axis(sub, idx, -1)[..., 0] / -32.0  # (blocks, 16)
    sidx = np.abs(scale).argmax(-1)[..., None]
    d = np.take_along_axis(scale, sidx, -1)[..., 0] / -128.0  # (blocks,)
    with np.errstate(divide="ignore"):
        sc = np.clip(np.round(np.where(d[:, None] == 0, 0, scale / d[:, None])), -128, 127)
    sc = sc.astype(np.int8)
    d16 = d.astype(np.float16)
    eff = d16.astype(np.float32)[:, None] * sc.astype(np.float32)  # (blocks, 16)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(eff[..., None] == 0, 0, np.round(sub / eff[..., None]))
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)  # half, quarter, l
    q1, q2, q3, q4 = q[:, :, 0], q[:, :, 1], q[:, :, 2], q[:, :, 3]     # (blocks, 2, 32)
    ql = np.concatenate([(q1 & 15) | ((q3 & 15) << 4), (q2 & 15) | ((q4 & 15) << 4)], -1)
    qh = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    blocks = np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8),
                             d16.reshape(-1, 1).view(np.uint8)], -1)
    assert blocks.shape[1] == 210
    return blocks.reshape(rows, cols // 256 * 210)


# ---- writing ----

def encode(w, qtype):
    """(raw array, raw_dtype) for GGUFWriter.add_tensor."""
    if qtype == QT.F32:
        return w.astype(np.float32), None
    if qtype == QT.F16:
        return w.astype(np.float16), None
    if qtype == QT.Q6_K:
        return quantize_q6_k(w), QT.Q6_K
    return gguf.quants.quantize(w.astype(np.float32), qtype), qtype


def add_test_metadata(w):
    """One key of every value type (read back by test_gguf.c)."""
    w.add_key_value("test.u8", 200, VT.UINT8)
    w.add_key_value("test.i8", -100, VT.INT8)
    w.add_key_value("test.u16", 60000, VT.UINT16)
    w.add_key_value("test.i16", -30000, VT.INT16)
    w.add_key_value("test.u32", 4000000000, VT.UINT32)
    w.add_key_value("test.i32", -2000000000, VT.INT32)
    w.add_key_value("test.u64", 2**63 + 5, VT.UINT64)
    w.add_key_value("test.i64", -(2**40), VT.INT64)
    w.add_key_value("test.f32", 0.25, VT.FLOAT32)
    w.add_key_value("test.f64", -1.0 / 3.0, VT.FLOAT64)
    w.add_key_value("test.bool", True, VT.BOOL)
    w.add_key_value("test.str", "h\u00e9llo", VT.STRING)
    w.add_key_value("test.arr_u64", [1, 2**40, 3], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("test.arr_bool", [True, False], VT.ARRAY, sub_type=VT.BOOL)
    w.add_key_value("test.arr_f64", [0.5, -2.0], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_key_value("test.nested", [[1, 2], [3], ["x"]], VT.ARRAY)


def write_gguf(path, model, types, alignment=None, test_keys=False):
    """types: callable (gguf name, 2-D?) -> ggml type."""
    cfg = model.config
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_name("owlore test model")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    if not cfg.tie_word_embeddings:  # model B leaves these to the defaults
        w.add_vocab_size(cfg.vocab_size)
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    if test_keys:
        add_test_metadata(w)
    for hf, gname in gguf_names(cfg):
        t = sd[hf]
        h = heads_for(gname, cfg)
        if h:
            t = permute(t, h)
        raw, raw_dtype = encode(t, types(gname, t.ndim == 2))
        w.add_tensor(gname, raw, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_back(path, cfg):
    """HF state dict from the GGUF file as gguf reads and dequantizes it, and
    the raw dequantized tensors by GGUF name."""
    r = gguf.GGUFReader(path)
    raw = {}
    for t in r.tensors:
        raw[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    sd = {}
    for hf, gname in gguf_names(cfg):
        x = raw[gname]
        h = heads_for(gname, cfg)
        sd[hf] = torch.from_numpy(unpermute(x, h) if h else x.copy())
    if cfg.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    return sd, raw


def logits_of(model, sd, tokens):
    m = LlamaForCausalLM(model.config).float().eval()
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        return m(input_ids=tokens).logits[0].float().contiguous()


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    a, b = build(MODELS["A"]), build(MODELS["B"])
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 32, (1, T), generator=g)
    exp = {"tokens": tokens.to(torch.int32).contiguous()}
    with torch.no_grad():
        exp["logits.hf"] = a(input_ids=tokens).logits[0].float().contiguous()

    hf_dir = os.path.join(OUT, "hf")
    a.save_pretrained(hf_dir, safe_serialization=True)
    gen = os.path.join(hf_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    variants = [  # (file stem, model, type of matrices, alignment, deq tensors)
        ("llama_f32", a, QT.F32, None, []),
        ("llama_q8_0", a, QT.Q8_0, None, ["blk.1.attn_k.weight", "output.weight"]),
        ("llama_q4_0", a, QT.Q4_0, 64, ["blk.1.attn_k.weight", "output.weight"]),
        ("llama_q4_1", a, QT.Q4_1, None, ["blk.1.attn_k.weight", "output.weight"]),
        ("llama_f16", a, QT.F16, None, ["blk.1.attn_k.weight", "output.weight"]),
        ("llama_bf16", a, QT.BF16, None, ["blk.1.attn_k.weight", "output.weight"]),
        ("tied_q6_k", b, None, None, ["blk.0.ffn_down.weight", "token_embd.weight"]),
    ]
    for stem, model, qtype, align, deq in variants:
        path = os.path.join(OUT, stem + ".gguf")
        if qtype is None:  # model B: Q6_K where rows allow it, else Q8_0
            def types(name, is2d):
                if not is2d:
                    return QT.F32
                return QT.Q6_K if name.endswith("ffn_down.weight") else QT.Q8_0
        else:
            def types(name, is2d, qtype=qtype):
                return qtype if is2d else QT.F32
        write_gguf(path, model, types, alignment=align, test_keys=(stem == "llama_f32"))
        sd, raw = read_back(path, model.config)
        exp["logits." + stem] = logits_of(model, sd, tokens)
        for name in deq:
            exp[f"deq.{stem}.{name}"] = torch.from_numpy(raw[name]).contiguous()
        err = (exp["logits." + stem] - logits_of(model, {k: v for k, v in
               model.state_dict().items()}, tokens)).abs().max().item()
        print(f"{stem}: {os.path.getsize(path)} bytes, logits vs unquantized max-abs {err:.3g}")
    d = (exp["logits.llama_f32"] - exp["logits.hf"]).abs().max().item()
    assert d < 1e-5, f"F32 GGUF read back differs from the HF model: {d}"
    save_file(exp, os.path.join(OUT, "expected.safetensors"))
    total = int(subprocess.run(["du", "-sb", OUT], capture_output=True,
                               text=True).stdout.split()[0])
    print(f"total {total} bytes in {OUT}")
    assert total < 600_000, "GGUF fixtures exceed 600 KB"


if __name__ == "__main__":
    main()
