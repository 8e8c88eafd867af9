#!/usr/bin/env python3
"""test_openai_sdk.py: the official `openai` Python SDK drives the whole
fine-tuning flow against the real server, unchanged: upload a chat dataset,
create an owlore job (the method given as a plain dict, as the SDK passes it
through), poll until it succeeds, list its events and checkpoints (the SDK's
cursor pagination follows `after`), download the final checkpoint
(model.safetensors and config.json) and load it with Hugging Face
transformers. Its logits for a fixed token-id prompt must match our engine's
(`owlore logits`) on the same checkpoint within 1e-4 relative (max abs diff /
max abs value, every position).

Needs the built binary ($OWLORE_BIN, default build/owlore) and the shared
stories260K model. Prints PASS/FAIL lines; exits non-zero on a failure.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Results, Server, chat_dataset, owlore_bin  # noqa: E402

PROMPT = [1, 403, 407, 261, 378, 433, 267, 275, 45, 280, 301, 395, 268, 354, 260, 29]
TOL = 1e-4


def main():
    try:  # openai 3.x is built on httpx2, earlier versions on httpx
        import httpx2 as httpx
    except ImportError:
        import httpx
    import openai
    from openai import OpenAI

    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ[k] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    res = Results()
    t0 = time.time()
    with Server(api_key=True) as srv, tempfile.TemporaryDirectory(prefix="owlore-sdk-") as tmp:
        client = OpenAI(base_url=f"{srv.url}/v1", api_key=srv.api_key, max_retries=0,
                        timeout=60)
        try:
            run(client, srv, tmp, res, openai, httpx)
        except Exception as e:  # a crash in the flow is one failure, with the server's log
            res.fail("sdk_flow", f"{type(e).__name__}: {e} | server log: {srv.tail(10)}")
        if not srv.alive():
            res.fail("sdk_server_alive", "the server died:\n" + srv.tail())
    print(f"test_openai_sdk: {time.time() - t0:.1f} s", flush=True)
    res.exit()


def run(client, srv, tmp, res, openai, httpx):
    data = chat_dataset(os.path.join(tmp, "train.jsonl"))
    raw = open(data, "rb").read()

    # the start-up log names the device jobs train on (no GPU here)
    res.check("serve_names_training_device",
              "jobs train on the cpu backend (CPU, " in srv.tail(), srv.tail(5))

    # a wrong key is refused with the SDK's AuthenticationError
    from openai import OpenAI
    try:
        OpenAI(base_url=f"{srv.url}/v1", api_key="sk-owl-wrong", max_retries=0).files.list()
        res.fail("sdk_auth", "a wrong API key was accepted")
    except openai.AuthenticationError:
        res.ok("sdk_auth")

    # files
    f = client.files.create(file=open(data, "rb"), purpose="fine-tune")
    res.check("sdk_files_create", f.id.startswith("file-") and f.status == "processed"
              and f.bytes == len(raw) and f.purpose == "fine-tune", f"file {f}")
    got = client.files.retrieve(f.id)
    res.check("sdk_files_retrieve", got.id == f.id and got.filename == "train.jsonl", str(got))
    ids = [x.id for x in client.files.list()]
    res.check("sdk_files_list", f.id in ids, f"{f.id} not in {ids}")
    content = client.files.content(f.id).read()
    res.check("sdk_files_content", content == raw, f"{len(content)} bytes back of {len(raw)}")

    # an error comes back as the SDK's typed exception
    try:
        client.fine_tuning.jobs.create(model=srv.model, training_file="file-nosuchfile")
        res.fail("sdk_error_shape", "a job with an unknown file was accepted")
    except openai.BadRequestError as e:
        body = e.body if isinstance(e.body, dict) else {}
        res.check("sdk_error_shape", body.get("param") == "training_file"
                  and body.get("code") == "invalid_file", f"error body {e.body}")

    # job: owlore through the method dict, with a seed and metadata
    hp = {"max_steps": 6, "sequence_length": 64, "batch_size": 2, "rank": 4, "gamma": 2,
          "save_every": 3, "learning_rate": 0.003, "n_epochs": 1}
    job = client.fine_tuning.jobs.create(
        model=srv.model, training_file=f.id, suffix="sdk", seed=7,
        metadata={"suite": "py"},
        method={"type": "owlore", "owlore": {"hyperparameters": hp}})
    ok = (job.id.startswith("ftjob-") and job.status in ("queued", "running")
          and job.seed == 7 and job.metadata == {"suite": "py"})
    res.check("sdk_jobs_create", ok, f"job {job}")
    method = job.method.to_dict() if job.method is not None else {}
    resolved = method.get("owlore", {}).get("hyperparameters", {})
    res.check("sdk_jobs_method_resolved", method.get("type") == "owlore"
              and all(resolved.get(k) == v for k, v in hp.items() if k != "learning_rate")
              and abs(resolved.get("learning_rate", 0) - 0.003) < 1e-6,
              f"method {method}")

    deadline = time.time() + 120
    while True:
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled") or time.time() > deadline:
            break
        time.sleep(0.2)
    if not res.check("sdk_jobs_succeeded", job.status == "succeeded",
                     f"status {job.status}, error {job.error}"):
        return
    res.check("sdk_jobs_fine_tuned_model",
              job.fine_tuned_model == f"ft:{os.path.basename(srv.model)}:sdk:{job.id}"
              and job.trained_tokens and job.finished_at, f"job {job}")
    listed = [j.id for j in client.fine_tuning.jobs.list(limit=5)]
    res.check("sdk_jobs_list", job.id in listed, f"{job.id} not in {listed}")

    # events: the SDK pages through them with `after` (limit 3: several pages)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))
    nums = [int(e.id.split("-")[1]) for e in events]
    metrics = [e for e in events if e.type == "metrics"]
    res.check("sdk_jobs_events", len(events) >= 6 and nums == sorted(nums, reverse=True)
              and len(set(nums)) == len(nums) and len(metrics) == 6
              and events[0].message == "The job has successfully completed",
              f"{len(events)} events {nums}, {len(metrics)} metrics")

    # checkpoints (limit 1: the SDK follows `after` through all of them)
    ckpts = list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=1))
    steps = [c.step_number for c in ckpts]
    res.check("sdk_jobs_checkpoints", steps == [6, 3] and all(
        c.fine_tuning_job_id == job.id for c in ckpts), f"steps {steps}")
    if not ckpts:
        return
    final = ckpts[0]

    # download the final checkpoint through the SDK's raw client
    path = f"/fine_tuning/jobs/{job.id}/checkpoints/{final.id}/content"
    d = os.path.join(tmp, "ckpt")
    os.makedirs(d)
    st = client.get(path, cast_to=httpx.Response)
    weights = st.content
    sha = hashlib.sha256(weights).hexdigest()
    final_sha = final.to_dict().get("sha256")
    res.check("sdk_checkpoint_download", st.status_code == 200 and sha == final_sha
              and st.headers.get("etag") == f'"{sha}"',
              f"status {st.status_code}, sha {sha} vs {final_sha}")
    cfg = client.get(path, cast_to=httpx.Response, options={"params": {"file": "config.json"}})
    res.check("sdk_checkpoint_config", cfg.status_code == 200
              and "vocab_size" in cfg.json(), f"config {cfg.status_code} {cfg.text[:200]}")
    with open(os.path.join(d, "model.safetensors"), "wb") as out:
        out.write(weights)
    with open(os.path.join(d, "config.json"), "wb") as out:
        out.write(cfg.content)
    compare_logits(d, res)

    models = [m.id for m in client.models.list()]
    res.check("sdk_models_list", job.fine_tuned_model in models, f"models {models}")


def compare_logits(d, res):
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM

    try:
        model = LlamaForCausalLM.from_pretrained(d, dtype=torch.float32)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        hf = model(torch.tensor([PROMPT])).logits[0].double().numpy()
    out = subprocess.run([owlore_bin(), "logits", "--model", d, "--tokens",
                          ",".join(map(str, PROMPT)), "--positions", "all"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        res.fail("sdk_checkpoint_logits", f"owlore logits: {out.stderr.strip()}")
        return
    ours = np.array(json.loads(out.stdout)["logits"], dtype=np.float64)
    if ours.shape != hf.shape:
        res.fail("sdk_checkpoint_logits", f"shapes {ours.shape} vs {hf.shape}")
        return
    rel = float(np.abs(ours - hf).max() / np.abs(hf).max())
    res.check("sdk_checkpoint_logits", rel <= TOL, f"max relative diff {rel:.3g} > {TOL}",
              f"transformers vs owlore: max relative diff {rel:.3g} over "
              f"{ours.shape[0]}x{ours.shape[1]} logits")


if __name__ == "__main__":
    main()
