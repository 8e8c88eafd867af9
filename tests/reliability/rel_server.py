"""rel_server.py: the real `owlore serve` as the reliability checks drive it:
started on a data directory the caller owns (so it can be killed with
SIGKILL and started again on the same one), with extra flags and an
optional command prefix (e.g. `unshare -n`), plus a small HTTP client
(http.client, no proxy) for JSON calls and multipart uploads, and the
job body the checks train with (stories260K, LISA, checkpoints).

The binary is $OWLORE_BIN (default build/owlore), the model stories260K
from the shared directory (tests/py/server.py's rules). Each start's
output goes to <data dir>/../serve-<n>.log.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from server import ROOT, STORIES260K, owlore_bin, shared_path  # noqa: E402


class Owlore:
    def __init__(self, data_dir, args=(), env=None):
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env or {}
        self.proc = None
        self.port = None
        self.starts = 0
        self.log_path = None

    def start(self, timeout=60):
        self.starts += 1
        base = os.path.dirname(os.path.abspath(self.data_dir))
        self.log_path = os.path.join(base, f"serve-{self.starts}.log")
        env = dict(os.environ)
        env.update({"OWLORE_CACHE_DIR": os.path.join(base, "cache"),
                    "OMP_NUM_THREADS": "1", "NO_PROXY": "*", "no_proxy": "*"})
        env.update(self.env)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [owlore_bin(), "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir",
             self.data_dir, "--model", shared_path(STORIES260K), "--threads", "4"] + self.args,
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()
        pat = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log_path, "rb") as f:
                m = pat.search(f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("owlore serve exited:\n" + self.tail())
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("owlore serve did not start:\n" + self.tail())

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL, timeout=30):
        """Sends sig and waits for the exit; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc

    def stop(self):
        return self.kill(signal.SIGTERM)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection: (status, headers dict, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def call(self, method, path, obj=None, headers=None, timeout=30):
        """A JSON call: (status, parsed body or None)."""
        h = dict(headers or {})
        body = None
        if obj is not None:
            body = json.dumps(obj).encode()
            h["Content-Type"] = "application/json"
        st, _, data = self.request(method, path, body, h, timeout)
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            return st, None

    def upload(self, name, data, headers=None, timeout=60):
        """POST /v1/files (purpose fine-tune): (status, parsed body or None)."""
        b = uuid.uuid4().hex
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                f"fine-tune\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{name}\"\r\nContent-Type: application/jsonl\r\n\r\n").encode()
        body += data + f"\r\n--{b}--\r\n".encode()
        h = {"Content-Type": f"multipart/form-data; boundary={b}"}
        h.update(headers or {})
        st, _, out = self.request("POST", "/v1/files", body, h, timeout)
        try:
            return st, json.loads(out)
        except ValueError:
            return st, None


def dataset(seed, n=24):
    """A small chat JSONL dataset, different for each seed."""
    names = ["Lily", "Tom", "Sue", "Ben", "Max", "Amy"]
    things = ["ball", "cat", "tree", "boat", "cake", "dog"]
    lines = []
    for i in range(n):
        who, what = names[(i + seed) % 6], things[(i * 5 + seed) % 6]
        lines.append(json.dumps({"messages": [
            {"role": "user", "content": f"Tell me about {who} and the {what} ({seed})."},
            {"role": "assistant", "content": f"Once upon a time, {who} had a {what}."},
        ]}))
    return ("\n".join(lines) + "\n").encode()


def job_body(file_id, steps, save_every, seq=64, batch=1):
    return {"training_file": file_id, "method": {"type": "lisa", "lisa": {"hyperparameters": {
        "sequence_length": seq, "batch_size": batch, "n_epochs": 1000, "max_steps": steps,
        "save_every": save_every, "gamma": 1, "learning_rate": 0.001}}}}


def rss_fds(pid):
    """(resident bytes, open file descriptors) of process pid, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))
