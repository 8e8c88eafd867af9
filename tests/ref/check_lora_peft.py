#!/usr/bin/env python3
"""Check that a lora checkpoint written by owlore loads in Hugging Face peft.

    python3 tests/ref/check_lora_peft.py BASE_HF_DIR ADAPTER_CKPT MERGED_CKPT

BASE_HF_DIR is the base model as a Hugging Face directory (for the default
model: bench/export_hf.py's output); ADAPTER_CKPT and MERGED_CKPT are the
final checkpoints of two identical `owlore train --method lora` runs, with
--lora-merge 0 (PEFT files) and 1 (merged weights). peft's
PeftModel.from_pretrained puts the adapter on the base; its logits on fixed
token ids must equal those of the merged model loaded by transformers (max
|difference| printed; exit status 1 above 1e-3, or when the adapter does
not move the logits at all).
"""

import sys

import torch
from peft import PeftModel
from transformers import LlamaForCausalLM


def main():
    base_dir, adapter, merged_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (1, 24))
    base = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits
        merged = LlamaForCausalLM.from_pretrained(merged_dir, torch_dtype=torch.float32).eval()
        merged_logits = merged(input_ids=ids).logits
    diff = (peft_logits - merged_logits).abs().max().item()
    moved = (merged_logits - base_logits).abs().max().item()
    print(f"peft(base + owlore adapter) vs owlore merged: max |logit diff| = {diff:.2e} "
          f"(the adapter moves the logits by up to {moved:.2e})")
    return 0 if diff < 1e-3 and moved > 10 * diff else 1


if __name__ == "__main__":
    sys.exit(main())
