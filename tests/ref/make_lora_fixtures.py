#!/usr/bin/env python3
"""Generate the PEFT LoRA fixture under tests/model/fixtures/lora_peft/.

Takes the tiny random model tests/model/fixtures/gqa_untied (made by
make_llama_fixtures.py; GQA 4q/2kv heads, untied head), wraps it with
peft LoraConfig(r=4, lora_alpha=8, the 7 linear layers, no dropout), sets
every lora_A and lora_B to seeded random values (B is zero at init, which
would test nothing) and writes

  tests/model/fixtures/lora_peft/adapter_model.safetensors  (save_pretrained)
  tests/model/fixtures/lora_peft/adapter_config.json
  tests/model/fixtures/lora_peft/expected.safetensors  input_ids (B, T) int32
      and logits (B, T, V) of the adapted model, float32

tests/model/test_lora.c merges the adapter into the base with
lora_ckpt_merge and compares its logits. The outputs are committed (CI has
no torch); this script regenerates them.

    python3 tests/ref/make_lora_fixtures.py
"""

import json
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
BASE = os.path.join(ROOT, "model", "fixtures", "gqa_untied")
OUT = os.path.join(ROOT, "model", "fixtures", "lora_peft")
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    torch.manual_seed(1234)
    base = LlamaForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32,
                                            attn_implementation="eager").eval()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=LINEAR, bias="none",
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.1)
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    os.remove(os.path.join(OUT, "README.md"))  # peft's model card
    cfg_path = os.path.join(OUT, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    cfg["base_model_name_or_path"] = "tests/model/fixtures/gqa_untied"
    json.dump(cfg, open(cfg_path, "w"), indent=2, sort_keys=True)
    V = base.config.vocab_size
    input_ids = torch.randint(0, V, (2, 12), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits.float().contiguous()
    save_file({"input_ids": input_ids.to(torch.int32).contiguous(), "logits": logits},
              os.path.join(OUT, "expected.safetensors"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
