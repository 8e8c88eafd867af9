#!/usr/bin/env python3
"""test_schemathesis.py: property-based API testing of the live server
against api/openapi.yaml with schemathesis.

The real server is started (stories260K as the default model, an API key
configured); a dataset is uploaded and a small job trained to succeeded, so
real file, job and checkpoint ids exist. schemathesis then runs every phase
(examples, coverage, fuzzing, stateful) over every operation the server
serves, with the checks not_a_server_error, status_code_conformance,
content_type_conformance, response_schema_conformance and
response_headers_conformance. Path ids and `after` cursors come from a
dictionary of the real ids half of the time, so successful replies get
their schemas checked too. Every request sent is recorded (HAR) and
counted; at least MIN_REQUESTS must go out and no check may fail.

Operations in the spec that the server does not route yet (a 404 "Invalid
URL" to a probe) are skipped with a NOTE line, not failed. Job creations the
fuzzer gets accepted are cancelled at the end; the server must still be up.
Prints PASS/FAIL lines; exits non-zero on a failure.

Environment: OWLORE_BIN (the binary), ST_MAX_EXAMPLES (default 60 per
operation), ST_MAX_TIME (seconds, default 90: fuzzing repeats until it is
spent), ST_WORKERS (default 1: with 2, schemathesis's generator trips a
thread-safety bug of CPython 3.11's ast module), ST_SEED (a fixed seed;
random otherwise), ST_CHECKS (comma-separated checks instead of the default
list, for exploring: e.g. negative_data_rejection).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, Results, Server, chat_dataset  # noqa: E402

SPEC = os.path.join(ROOT, "api", "openapi.yaml")
MIN_REQUESTS = 2000
CHECKS = os.environ.get("ST_CHECKS") or ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")
TERMINAL = ("succeeded", "failed", "cancelled")


def http(srv, method, path, key, **kw):
    import requests
    headers = kw.pop("headers", {})
    headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, srv.url + path, headers=headers, timeout=30,
                            proxies={"http": None, "https": None}, **kw)


def setup_data(srv, tmp):
    """A processed file and a succeeded job with checkpoints; their ids."""
    key = srv.api_key
    data = chat_dataset(os.path.join(tmp, "train.jsonl"))
    files = []
    for _ in range(3):  # DELETE /v1/files/{id} may take some of them
        with open(data, "rb") as f:
            r = http(srv, "POST", "/v1/files", key, files={"file": f},
                     data={"purpose": "fine-tune"})
        r.raise_for_status()
        files.append(r.json()["id"])
    body = {"training_file": files[0], "suffix": "st", "metadata": {"k": "v"},
            "method": {"type": "lisa", "lisa": {"hyperparameters": {
                "max_steps": 2, "sequence_length": 32, "batch_size": 2, "gamma": 1,
                "save_every": 1}}}}
    r = http(srv, "POST", "/v1/fine_tuning/jobs", key, json=body)
    r.raise_for_status()
    job = r.json()["id"]
    deadline = time.time() + 60
    while True:
        st = http(srv, "GET", f"/v1/fine_tuning/jobs/{job}", key).json()["status"]
        if st in TERMINAL or time.time() > deadline:
            break
        time.sleep(0.1)
    if st != "succeeded":
        raise RuntimeError(f"the setup job ended {st}")
    ckpts = [c["id"] for c in
             http(srv, "GET", f"/v1/fine_tuning/jobs/{job}/checkpoints", key).json()["data"]]
    events = [e["id"] for e in
              http(srv, "GET", f"/v1/fine_tuning/jobs/{job}/events", key).json()["data"]]
    return files, job, ckpts, events


def unserved_paths(srv, spec):
    """Paths of the spec the server has no route for (404 "Invalid URL")."""
    out = []
    for path, item in spec["paths"].items():
        method = next(m for m in ("get", "post", "delete") if m in item)
        concrete = re.sub(r"\{[^}]+\}", "probe", path)
        r = http(srv, method.upper(), concrete, srv.api_key,
                 **({"json": {}} if method == "post" else {}))
        msg = ""
        try:
            msg = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        if r.status_code == 404 and msg.startswith("Invalid URL"):
            out.append(path)
    return out


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def write_config(path, ids, ckpts, afters):
    with open(path, "w") as f:
        f.write(f"""# written by tests/py/test_schemathesis.py
[dictionaries.ids]
values = {toml_list(ids)}

[dictionaries.ckpts]
values = {toml_list(ckpts)}

[dictionaries.afters]
values = {toml_list(afters)}

[parameters]
"path.id" = {{ dictionary = "ids", probability = 0.5 }}
"path.ckpt_id" = {{ dictionary = "ckpts", probability = 0.6 }}
"query.after" = {{ dictionary = "afters", probability = 0.3 }}
""")


def cleanup_jobs(srv, setup_job):
    """Cancels every unfinished job; returns (jobs created by the run, cancelled)."""
    created = cancelled = 0
    after = None
    while True:
        q = "?limit=100" + (f"&after={after}" if after else "")
        page = http(srv, "GET", "/v1/fine_tuning/jobs" + q, srv.api_key).json()
        for j in page["data"]:
            if j["id"] == setup_job:
                continue
            created += 1
            if j["status"] not in TERMINAL:
                r = http(srv, "POST", f"/v1/fine_tuning/jobs/{j['id']}/cancel", srv.api_key)
                cancelled += r.status_code == 200
        if not page["has_more"] or not page["data"]:
            return created, cancelled
        after = page["data"][-1]["id"]


def count_har(path):
    with open(path) as f:
        entries = json.load(f)["log"]["entries"]
    by_status = {}
    for e in entries:
        s = e["response"]["status"]
        by_status[s] = by_status.get(s, 0) + 1
    return len(entries), by_status


def main():
    import yaml

    res = Results()
    t0 = time.time()
    st_bin = shutil.which("schemathesis") or shutil.which("st")
    if not st_bin:
        res.fail("schemathesis_installed", "no schemathesis CLI on PATH (run tests/py/setup.sh)")
        res.exit()
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    with Server(api_key=True) as srv, tempfile.TemporaryDirectory(prefix="owlore-st-") as tmp:
        try:
            files, job, ckpts, events = setup_data(srv, tmp)
        except Exception as e:
            res.fail("schemathesis_setup", f"{e}: {srv.tail(10)}")
            res.exit()
        skipped = unserved_paths(srv, spec)
        for p in skipped:
            print(f"NOTE schemathesis: {p} is in the spec but not served yet; skipped")
        cfg = os.path.join(tmp, "schemathesis.toml")
        write_config(cfg, files + [job], ckpts, files + [job] + ckpts + events[:2])
        har = os.path.join(tmp, "requests.har")
        cmd = [st_bin, "--config-file", cfg, "run", SPEC, "--url", srv.url,
               "-H", f"Authorization: Bearer {srv.api_key}",
               "--checks", CHECKS,
               "--phases", "examples,coverage,fuzzing,stateful",
               "--max-examples", os.environ.get("ST_MAX_EXAMPLES", "60"),
               "--max-time", os.environ.get("ST_MAX_TIME", "90"),
               "--workers", os.environ.get("ST_WORKERS", "1"),
               "--request-timeout", "20",
               "--generation-database", "none",
               "--suppress-health-check", "all",
               "--no-color", "--output-truncate", "true",
               "--report", "har", "--report-har-path", har]
        if os.environ.get("ST_SEED"):
            cmd += ["--seed", os.environ["ST_SEED"]]
        if skipped:
            cmd += ["--exclude-path-regex",
                    "^(" + "|".join(re.escape(p) for p in skipped) + ")$"]
        env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        t1 = time.time()
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        st_time = time.time() - t1
        out = run.stdout + run.stderr
        summary = re.search(r"Test cases:\s*\n\s*(.*)", out)
        summary = summary.group(1).strip() if summary else "no summary"
        n, by_status = count_har(har) if os.path.exists(har) else (0, {})
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
        if run.returncode == 0:
            res.ok("schemathesis_conformance",
                   f"{n} requests in {st_time:.0f} s, {summary}; status codes {codes}")
        else:
            i = out.find("=== FAILURES ===")
            j = out.find("=== ERRORS ===")
            k = min(x for x in (i, j, len(out)) if x >= 0)
            sys.stdout.write(out[k:k + 12000] + "\n")
            res.fail("schemathesis_conformance",
                     f"schemathesis exited {run.returncode} after {n} requests: {summary}")
        res.check("schemathesis_request_count", n >= MIN_REQUESTS,
                  f"only {n} requests were sent (want {MIN_REQUESTS})", f"{n} requests")
        five = sum(v for k, v in by_status.items() if k >= 500)
        res.check("schemathesis_no_5xx", five == 0 and n > 0,
                  f"{five} replies were 5xx; the server's log ends:\n" + srv.tail(30))
        try:
            created, cancelled = cleanup_jobs(srv, job)
            print(f"schemathesis: {created} jobs created by the run, {cancelled} cancelled")
        except Exception as e:
            res.fail("schemathesis_cleanup", str(e))
        res.check("schemathesis_server_alive", srv.alive(),
                  "the server died during the run:\n" + srv.tail())
    print(f"test_schemathesis: {time.time() - t0:.1f} s", flush=True)
    res.exit()


if __name__ == "__main__":
    main()
