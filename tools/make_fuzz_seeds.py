#!/usr/bin/env python3
"""make_fuzz_seeds.py: writes the seed corpora of the libFuzzer harnesses
into fuzz/corpus/<name>/ (run from the repository root; the output is
committed): a few lines of the shared datasets and the unit-test fixtures
for the validator, request bodies like the API tests send, multipart
bodies, Range headers, SSE events, paths and model names, webhook URLs, a
tiny safetensors file and a tiny GGUF file (with tokenizer metadata) built
here, and a tiny tokenizer.json plus the GPT-2 fixture.
"""
import json
import os
import shutil
import struct
import sys

ROOT = "fuzz/corpus"
SHARED = os.environ.get("OWLORE_SHARED", "../shared/data")


def put(name, i, data):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def head_lines(path, n):
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


def validate():
    srcs = [head_lines(os.path.join(SHARED, p), 3) for p in
            ("datasets/gsm8k/test.jsonl", "datasets/c4_demo/c4_demo.jsonl")]
    with open(os.path.join(SHARED, "datasets/alpaca/alpaca_tiny.json"), "rb") as f:
        srcs.append(f.read(1500).rsplit(b"}", 1)[0] + b"}]")
    fx = "tests/unit/fixtures/datasets"
    for name in ("valid_messages.jsonl", "valid_prompt_completion.jsonl", "valid_weights.jsonl",
                 "crlf.jsonl", "bom.jsonl", "invalid_utf8.jsonl", "array_tricky.json",
                 "unrecognized_role.jsonl"):
        with open(os.path.join(fx, name), "rb") as f:
            srcs.append(f.read())
    # option byte, split byte, file
    for i, s in enumerate(srcs):
        put("validate", i, bytes([(i * 37) & 0xff, (i * 11 + 1) & 0xff]) + s[:4000])


def api_json():
    bodies = [
        (0, {"training_file": "file-FUZZ", "model": "stories260K.bin", "suffix": "x",
             "seed": 3, "metadata": {"k": "v"},
             "method": {"type": "lisa", "lisa": {"hyperparameters": {
                 "sequence_length": 64, "batch_size": 2, "gamma": 2, "max_steps": 1}}}}),
        (0, {"training_file": "file-FUZZ", "validation_file": "file-FUZZ",
             "method": {"type": "owlore", "owlore": {"hyperparameters": {
                 "rank": 4, "update_proj_gap": 10, "learning_rate": 1e-4, "n_epochs": "auto"}}}}),
        (1, {"training_file": "file-FUZZ", "method": {"type": "galore", "galore": {
            "hyperparameters": {"rank": 8, "galore_scale": 0.25, "batch_size": 4}}}}),
        (1, {"training_file": "file-FUZZ"}),
        (2, {"url": "https://example.com/hook", "events": ["fine_tuning.job.succeeded"]}),
        (2, {"url": "http://127.0.0.1:9/x", "events": ["fine_tuning.job.failed",
                                                       "fine_tuning.job.cancelled"]}),
        (2, {"url": "http://169.254.169.254/latest/meta-data/"}),
        (3, {}),
    ]
    for i, (ep, b) in enumerate(bodies):
        put("api_json", i, bytes([ep]) + json.dumps(b).encode())
        if ep == 0 or ep == 1:
            put("job_recipe", i, json.dumps(b))
    put("job_recipe", 20, '{"method": {"type": "full", "full": {"hyperparameters": '
        '{"max_steps": 5, "eval_every": 1, "save_every": 2, "tau": 3.5}}}}')


def multipart():
    part = ('--owlore-b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            '--owlore-b\r\nContent-Disposition: form-data; name="file"; filename="d.jsonl"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n'
            '{"prompt": "a", "completion": "b"}\n{"text": "once upon a time"}\n\r\n--owlore-b--\r\n')
    put("multipart", 0, "multipart/form-data; boundary=owlore-b\n" + part)
    put("multipart", 1, 'multipart/form-data; boundary="q q"\n' + part.replace("--owlore-b", "--q q"))
    put("multipart", 2, "multipart/form-data; boundary=owlore-b\n" + part.replace(
        'name="purpose"', 'name="file"; filename="../../x"'))
    put("multipart", 3, "multipart/form-data; boundary=owlore-b\n--owlore-b\r\nContent-Disposition: "
        'form-data; name="purpose"\r\n\r\n' + "p" * 80 + "\r\n--owlore-b--\r\n")
    put("multipart", 4, "text/plain\nhello")


def range_():
    for i, (size, h) in enumerate([(100, "bytes=0-9"), (100, "bytes=-5"), (100, "bytes=90-"),
                                   (0, "bytes=0-0"), (100, "bytes=5-1"), (100, "bytes=0-1,3-4"),
                                   (1 << 39, "bytes=18446744073709551615-")]):
        put("range", i, struct.pack("<Q", size) + h.encode())


def sse():
    evs = [(1, "info", "Job created.", "fine_tuning.job.created", ""),
           (7, "info", "Step 1/10: training loss=2.31", "metrics",
            '{"step": 1, "train_loss": 2.31}'),
           (9, "error", "bad \"quote\"\nnewline", "fine_tuning.job.failed", "[1, null]")]
    blob = b""
    for i, e in enumerate(evs):
        one = struct.pack("<q", e[0]) + b"\0".join(x.encode() for x in e[1:]) + b"\0"
        put("sse", i, one)
        blob += one
    put("sse", 3, blob)


def route():
    paths = ["/v1/fine_tuning/jobs/ftjob-abc123/events", "/v1/files/file-1/content",
             "/web/app.js", "/v1/fine_tuning/jobs/x/checkpoints/ckpt-1/content",
             "/v1/files/..%2F..%2Fetc", "/v1/webhooks/wh_1", "//v1//files"]
    for i, p in enumerate(paths):
        put("route", i, bytes([i % 4]) + p.encode())
    for i, m in enumerate(["tiny.bin", "../../etc/passwd", "escape", "default.bin",
                           "/etc/passwd", "models/../default.bin"]):
        put("route", 10 + i, b"\x80" + m.encode())


def webhook_url():
    urls = ["https://example.com/hook", "http://127.0.0.1:8080/x", "https://[::ffff:10.0.0.1]/",
            "https://user:pw@example.com/", "https://10.0.0.1/", "https://[fe80::1%25eth0]/",
            "ftp://example.com/", "https://0x7f.1/", "https://example.com:99999/"]
    for i, u in enumerate(urls):
        put("webhook_url", i, bytes([(i % 2) * 2]) + u.encode())
    for i, a in enumerate([(8, 8, 8, 8), (10, 0, 0, 1), (100, 64, 0, 1), (192, 0, 2, 1)]):
        put("webhook_url", 20 + i, bytes([1, *a]))


def safetensors():
    def st(tensors, meta=None):
        hdr, blob = {}, b""
        for name, dtype, shape, data in tensors:
            hdr[name] = {"dtype": dtype, "shape": shape,
                         "data_offsets": [len(blob), len(blob) + len(data)]}
            blob += data
        if meta:
            hdr["__metadata__"] = meta
        h = json.dumps(hdr).encode()
        h += b" " * (-len(h) % 8)
        return struct.pack("<Q", len(h)) + h + blob
    put("safetensors", 0, st([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                              ("b", "BF16", [2], b"\x80\x3f\x00\x40")], {"format": "pt"}))
    put("safetensors", 1, st([("e", "F16", [3], b"\x00\x3c\x00\xc0\x00\x7c"),
                              ("i", "I64", [1], struct.pack("<q", 7)),
                              ("s", "I32", [], struct.pack("<i", -1))]))
    put("safetensors", 2, st([("u", "U8", [4], b"abcd")]))


def gguf():
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    def kv_str(k, v):
        return s(k) + struct.pack("<I", 8) + s(v)
    def kv_u32(k, v):
        return s(k) + struct.pack("<II", 4, v)
    def kv_arr_str(k, vs):
        return s(k) + struct.pack("<IIQ", 9, 8, len(vs)) + b"".join(s(v) for v in vs)
    def kv_arr(k, t, fmt, vs):
        return s(k) + struct.pack("<IIQ", 9, t, len(vs)) + b"".join(struct.pack(fmt, v) for v in vs)
    vocab = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + ["\u2581a", "ab"]
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", 32),
           kv_str("tokenizer.ggml.model", "llama"), kv_arr_str("tokenizer.ggml.tokens", vocab),
           kv_arr("tokenizer.ggml.scores", 6, "<f", [0.0] * len(vocab)),
           kv_arr("tokenizer.ggml.token_type", 5, "<i", [2, 3, 3] + [6] * 256 + [1, 1]),
           kv_u32("tokenizer.ggml.bos_token_id", 1), kv_u32("tokenizer.ggml.eos_token_id", 2)]
    tensors = [("t.f32", 0, [4, 2], struct.pack("<8f", *range(8))),
               ("t.q8", 8, [32], struct.pack("<e", 0.5) + bytes(range(32)))]
    info, data = b"", b""
    for name, typ, dims, raw in tensors:
        data += b"\0" * (-len(data) % 32)
        info += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        info += struct.pack("<IQ", typ, len(data))
        data += raw
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + info
    head += b"\0" * (-len(head) % 32)
    put("gguf", 0, head + data)
    put("gguf", 1, b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv_str("general.name", "x"))
    fx = "tests/unit/fixtures/tokenizers/bad"
    for i, n in enumerate(sorted(x for x in os.listdir(fx) if x.endswith(".gguf"))):
        shutil.copy(os.path.join(fx, n), os.path.join(ROOT, "gguf", "seed-%02d" % (10 + i)))


def tokenizer_json():
    vocab = {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120a": 4, "<|im_start|>": 5}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": 5, "content": "<|im_start|>", "single_word": False,
                             "lstrip": False, "rstrip": False, "normalized": False,
                             "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                             "trim_offsets": True, "use_regex": True},
           "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": False, "byte_fallback": False,
                     "vocab": vocab, "merges": ["a b", "\u0120 a"]}}
    put("tokenizer_json", 0, json.dumps(tok))
    shutil.copy("tests/unit/fixtures/tokenizers/gpt2/tokenizer.json",
                os.path.join(ROOT, "tokenizer_json", "seed-01"))
    fx = "tests/unit/fixtures/tokenizers/bad"
    for i, n in enumerate(sorted(x for x in os.listdir(fx) if x.endswith(".json"))):
        shutil.copy(os.path.join(fx, n), os.path.join(ROOT, "tokenizer_json", "seed-%02d" % (10 + i)))


def main():
    if not os.path.isdir("fuzz"):
        sys.exit("run from the repository root")
    shutil.rmtree(ROOT, ignore_errors=True)
    for f in (validate, api_json, multipart, range_, sse, route, webhook_url, safetensors, gguf,
              tokenizer_json):
        f()


if __name__ == "__main__":
    main()
