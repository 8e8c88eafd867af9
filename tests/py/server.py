"""server.py: runs the real `owlore serve` for the Python tests.

    with Server() as srv:            # free port, temporary data directory
        requests.get(srv.url + "/healthz")

The binary is $OWLORE_BIN (default build/owlore under the repository root);
the default model is stories260K from the shared directory ($OWLORE_SHARED,
else ../shared beside the repository). The server's output goes to
<data dir>/server.log, shown by tail() when a test fails. Also here: the
small helpers every test uses (PASS/FAIL lines, paths).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_dir():
    d = os.environ.get("OWLORE_SHARED") or os.path.join(ROOT, "..", "shared")
    return os.path.abspath(d)


def shared_path(rel):
    return os.path.join(shared_dir(), rel)


def owlore_bin():
    b = os.environ.get("OWLORE_BIN") or os.path.join(ROOT, "build", "owlore")
    return os.path.abspath(b)


STORIES260K = "data/models/stories260K/stories260K.bin"


class Server:
    """`owlore serve` on 127.0.0.1, a free port and a fresh data directory;
    with api_key=True an API key is created first (self.api_key)."""

    def __init__(self, model=None, env=None, keep=False, api_key=False):
        self.model = model or shared_path(STORIES260K)
        self.want_key = api_key
        self.api_key = None
        self.extra_env = env or {}
        self.keep = keep
        self.proc = None
        self.port = None
        self.dir = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        binary = owlore_bin()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no owlore binary at {binary} (set OWLORE_BIN)")
        self.dir = tempfile.mkdtemp(prefix="owlore-py-")
        env = dict(os.environ)
        env.update({"OWLORE_CACHE_DIR": os.path.join(self.dir, "cache"),
                    "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        env.update(self.extra_env)
        data = os.path.join(self.dir, "data")
        if self.want_key:  # `owlore keys create`: from then on requests need the key
            out = subprocess.run([binary, "keys", "create", "--data-dir", data, "--name", "py"],
                                 capture_output=True, text=True, env=env, timeout=30)
            if out.returncode != 0 or not out.stdout.startswith("sk-"):
                raise RuntimeError(f"owlore keys create: {out.stderr.strip()}")
            self.api_key = out.stdout.strip()
        self.log = open(os.path.join(self.dir, "server.log"), "w+b")
        self.proc = subprocess.Popen(
            [binary, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir",
             data, "--model", self.model, "--threads", "4"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.time() + timeout
        pat = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")
        while time.time() < deadline:
            self.log.flush()
            with open(self.log.name, "rb") as f:
                m = pat.search(f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("owlore serve exited:\n" + self.tail())
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("owlore serve did not start:\n" + self.tail())
        self.wait_healthy(deadline - time.time())
        return self

    def wait_healthy(self, timeout):
        deadline = time.time() + max(timeout, 1)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                with opener.open(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.time() > deadline:
                    raise
            time.sleep(0.05)

    def tail(self, n=40):
        try:
            with open(self.log.name, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL; returns the exit status (None if it was not started)."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
            self.proc = None
            self.log.close()
        if self.dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Results:
    """Counts PASS/FAIL lines (the format tests/run.sh counts)."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)

    def fail(self, name, why):
        self.failed += 1
        why = " ".join(str(why).split())
        print(f"FAIL {name}: {why[:2000]}", flush=True)

    def check(self, name, cond, why, detail=""):
        if cond:
            self.ok(name, detail)
        else:
            self.fail(name, why)
        return cond

    def exit(self):
        sys.exit(1 if self.failed or not self.passed else 0)


def chat_dataset(path, n=24):
    """Writes a small chat-messages JSONL dataset (the format of the C tests)."""
    import json
    names = ["Lily", "Tom", "Sue", "Ben", "Max", "Amy"]
    things = ["ball", "cat", "tree", "boat", "cake", "dog"]
    with open(path, "w") as f:
        for i in range(n):
            who, what = names[i % len(names)], things[(i * 5) % len(things)]
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "You tell short stories."},
                {"role": "user", "content": f"Tell me about {who} and the {what}."},
                {"role": "assistant",
                 "content": f"Once upon a time, {who} had a {what}. {who} was happy."},
            ]}) + "\n")
    return path
