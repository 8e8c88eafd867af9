#!/usr/bin/env python3
"""make_chat_fixtures.py: expected ids and loss masks of chat templates, from
transformers' apply_chat_template, for tests/unit/test_chat.c.

Run from the repository root after make_tokenizer_fixtures.py (needs
`pip install transformers tokenizers gguf jinja2`; the SmolLM2 case needs the
default model from `make model`):

    python3 tests/ref/make_chat_fixtures.py

The Jinja templates are the models' own (SmolLM2-135M-Instruct's ChatML,
Llama-2-chat's, Meta-Llama-3-Instruct's), embedded in make_tokenizer_fixtures.py
(which also writes them into the fixture tokenizers' tokenizer_config.json). Each case renders a
conversation with apply_chat_template(tokenize=True) using a tokenizer from
tests/unit/fixtures/tokenizers (or the real SmolLM2 tokenizer from the GGUF)
and records the ids. The expected mask marks the tokens whose character span
(offsets from `tokenizers`, without a post-processor, so nothing is trimmed)
overlaps an assistant turn's trained text, found by rendering prefixes of
the conversation:
  chatml  the content and <|im_end|> (after "<|im_start|>assistant\\n")
  llama2  everything after "[/INST]" up to and including </s>
  llama3  the trimmed content and <|eot_id|>
An assistant message with weight 0 is never trained; with train_on_inputs
every other token is. The first token is never a target (mask 0).
Written: tests/unit/fixtures/chat/cases.json.
"""
import json
import os
import sys

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(__file__))
from make_tokenizer_fixtures import (LLAMA2, LLAMA3, MISTRAL, MODEL, QWEN, SMOLLM2,  # noqa: E402
                                     smollm2_from_gguf)

TOK = "tests/unit/fixtures/tokenizers"
OUT = "tests/unit/fixtures/chat"

CONVERSATION = [
    {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?\nAnswer briefly."},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And 12 × 3 = ? Show your work: don't skip steps!"},
    {"role": "assistant", "content": "12 × 3 = 36, because 12 + 12 + 12 = 36.\nDone."},
]
WHITESPACE = [
    {"role": "user", "content": "  spaced question?  \n"},
    {"role": "assistant", "content": "\n  Indented answer:\n    - one\n    - two  "},
    {"role": "user", "content": "<not a token> & plain text\twith a tab"},
]


def render_prefix(tok, tmpl, msgs, gen):
    if not msgs:
        return ""
    return tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False,
                                   add_generation_prompt=gen)


def regions(tok, tmpl, style, msgs):
    """[start, end) character ranges of each assistant turn's trained text."""
    out = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        if style == "llama2":
            start = len(render_prefix(tok, tmpl, msgs[:k], False))
            end = len(render_prefix(tok, tmpl, msgs[:k + 1], False))
        else:
            start = len(render_prefix(tok, tmpl, msgs[:k], True))
            content = m["content"] if style == "chatml" else m["content"].strip()
            eot = "<|im_end|>" if style == "chatml" else "<|eot_id|>"
            end = start + len(content) + len(eot)
            full = render_prefix(tok, tmpl, msgs[:k + 1], False)
            assert full[start:end] == content + eot, (full[start:end], content + eot)
        out.append((start, end, m.get("weight", 1)))
    return out


def case(name, backend, tok, tmpl, style, template_name, tok_path, msgs, gen=False):
    text = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=False,
                                   add_generation_prompt=gen)
    ids = tok.apply_chat_template(msgs, chat_template=tmpl, tokenize=True,
                                  add_generation_prompt=gen, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    backend.post_processor = None
    enc = backend.encode(text, add_special_tokens=False)
    assert enc.ids == list(ids), f"{name}: offsets encoding differs from apply_chat_template"
    regs = regions(tok, tmpl, style, msgs)
    mask, mask_all = [], []
    for i, (a, b) in enumerate(enc.offsets):
        hit = [w for (s, e, w) in regs if a < e and s < b]
        mask.append(int(any(w == 1 for w in hit)))
        mask_all.append(int(not any(w == 0 for w in hit)))
    mask[0] = mask_all[0] = 0
    print(f"{name}: {len(ids)} ids, {sum(mask)} trained ({sum(mask_all)} with train_on_inputs)")
    return {"name": name, "tokenizer": tok_path, "template": template_name, "jinja": tmpl,
            "messages": msgs, "add_generation_prompt": gen, "text": text, "ids": list(ids),
            "mask": mask, "mask_train_on_inputs": mask_all}


def fixture_tokenizer(family, **special):
    backend = Tokenizer.from_file(f"{TOK}/{family}/tokenizer.json")
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(
        f"{TOK}/{family}/tokenizer.json"), **special)
    return backend, tok


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    weighted = [dict(m) for m in CONVERSATION]
    weighted[2]["weight"] = 0
    specs = [
        ("chatml_smollm", "smollm", SMOLLM2, "chatml",
         {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}),
        ("chatml_qwen2", "qwen2", QWEN, "chatml", {"eos_token": "<|im_end|>"}),
        ("llama2_llama2", "llama2", LLAMA2, "llama2", {"bos_token": "<s>", "eos_token": "</s>"}),
        ("llama2_mistral", "mistral", LLAMA2, "llama2", {"bos_token": "<s>", "eos_token": "</s>"}),
        ("llama3_llama3", "llama3", LLAMA3, "llama3",
         {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    ]
    for name, family, tmpl, style, special in specs:
        backend, tok = fixture_tokenizer(family, **special)
        path = f"{TOK}/{family}"
        cases.append(case(name, backend, tok, tmpl, style, style, path, CONVERSATION))
        cases.append(case(name + "_weight0", backend, tok, tmpl, style, style, path, weighted))
        cases.append(case(name + "_whitespace", backend, tok, tmpl, style, style, path,
                          WHITESPACE[:2] if style == "llama2" else WHITESPACE))
        if style != "llama2":
            cases.append(case(name + "_generation_prompt", backend, tok, tmpl, style, style, path,
                              CONVERSATION[:4], gen=True))
    if os.path.exists(MODEL):
        backend = smollm2_from_gguf(MODEL)
        tok = PreTrainedTokenizerFast(tokenizer_object=smollm2_from_gguf(MODEL),
                                      bos_token="<|im_start|>", eos_token="<|im_end|>")
        cases.append(case("chatml_smollm2_gguf", backend, tok, SMOLLM2, "chatml", "chatml", MODEL,
                          CONVERSATION))
        cases.append(case("chatml_smollm2_gguf_generation_prompt", backend, tok, SMOLLM2, "chatml",
                          "chatml", MODEL, CONVERSATION[:4], gen=True))
    else:
        print(f"{MODEL} is missing (make model): no SmolLM2 case", file=sys.stderr)
    detect = [{"jinja": SMOLLM2, "template": "chatml"}, {"jinja": LLAMA2, "template": "llama2"},
              {"jinja": LLAMA3, "template": "llama3"}, {"jinja": MISTRAL, "template": None}]
    with open(f"{OUT}/cases.json", "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "detect": detect}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
