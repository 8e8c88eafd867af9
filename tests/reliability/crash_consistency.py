#!/usr/bin/env python3
"""crash_consistency.py: kill -9 of the real `owlore serve` at a random moment
while uploads, job updates and checkpoint writes run, restarted on the same
data directory after each kill, ITERATIONS times (default 50; argv[1]).

A webhook receiver in this process (loopback, the server runs with
--webhook-allow-loopback) answers 200 and records every delivery by its
webhook-id. During each run one thread uploads small datasets and one
creates jobs (stories260K, LISA, a checkpoint every 3 steps) and pauses,
resumes and cancels them; after a random 0.2-2 s the server gets SIGKILL.
Checked after each kill, on the files the crash left:
  - PRAGMA integrity_check of owlore.db is "ok";
  - no torn or partial file is visible: every blob the database names hashes
    to its sha256, and every checkpoint-N directory (not the .tmp being
    written) holds exactly the files its owlore.json lists, with their
    sha256;
and after each restart:
  - every upload the server acknowledged (200) is listed with its sha256
    and downloads with it;
  - every job the server acknowledged is listed, and every checkpoint the
    API lists is on disk with the API's sha256;
  - at most one job is running (the worker's), so none is left stuck.
At the end the server runs once more until every job is finished (paused
ones resumed) and the outbox is empty; then every job is terminal, and
every committed webhook event was delivered: each outbox row seen after a
kill, each checkpoint the API lists (checkpoint.created) and each job's
final status, by webhook-id (the outbox guarantees at least once).
Prints PASS/FAIL lines and one figure line; exit 1 on any failure.
"""

import glob
import hashlib
import http.server
import json
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_server import Owlore, dataset, job_body  # noqa: E402
from server import Results  # noqa: E402  (tests/py, put on the path by rel_server)

TERMINAL = ("succeeded", "failed", "cancelled")


class Receiver(http.server.ThreadingHTTPServer):
    """Records deliveries: webhook-id -> (type, data)."""
    daemon_threads = True

    def __init__(self):
        self.seen = {}
        self.count = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Hook)


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            p = json.loads(body)
            with self.server.lock:
                self.server.count += 1
                self.server.seen[self.headers["webhook-id"]] = (p.get("type"), p.get("data"))
        except (ValueError, AttributeError):
            pass
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Harness:
    def __init__(self, iterations):
        self.iterations = iterations
        self.tmp = tempfile.mkdtemp(prefix="owlore-crash-")
        self.data = os.path.join(self.tmp, "data")
        self.srv = Owlore(self.data, ["--webhook-allow-loopback"])
        self.r = Results()
        self.acked = {}          # file id -> sha256 of the bytes sent
        self.downloaded = set()  # acknowledged uploads already downloaded whole
        self.jobs = set()        # acknowledged job ids
        self.verified = {}       # path -> (inode, mtime_ns) already hashed whole
        self.pending = set()     # outbox ids seen in the database after a kill
        self.seed = 0
        self.errors = []
        self.lock = threading.Lock()

    def fail(self, what):
        self.errors.append(what)

    # ---- the workload --------------------------------------------------------------

    def uploader(self, stop):
        while not stop.is_set():
            with self.lock:
                self.seed += 1
                seed = self.seed
            data = dataset(seed)
            try:
                st, f = self.srv.upload(f"d{seed}.jsonl", data, timeout=10)
            except OSError:
                continue
            if st == 200:
                with self.lock:
                    self.acked[f["id"]] = hashlib.sha256(data).hexdigest()
            time.sleep(0.05)

    def job_updater(self, stop, rng):
        while not stop.is_set():
            try:
                st, l = self.srv.call("GET", "/v1/fine_tuning/jobs?limit=100", timeout=10)
                jobs = l["data"] if st == 200 else []
                active = [j for j in jobs if j["status"] in ("queued", "running")]
                if len(active) < 2 and self.acked:
                    fid = rng.choice(sorted(self.acked))
                    st, j = self.srv.call("POST", "/v1/fine_tuning/jobs",
                                          job_body(fid, 24, 3), timeout=10)
                    if st == 200:
                        self.jobs.add(j["id"])
                for j in jobs:
                    x = rng.random()
                    path = f"/v1/fine_tuning/jobs/{j['id']}"
                    if j["status"] == "running" and x < 0.05:
                        self.srv.call("POST", path + "/pause", timeout=10)
                    elif j["status"] == "running" and x < 0.07:
                        self.srv.call("POST", path + "/cancel", timeout=10)
                    elif j["status"] == "paused" and x < 0.3:
                        self.srv.call("POST", path + "/resume", timeout=10)
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(0.05)

    # ---- checks on the files a crash left ------------------------------------------

    def unchanged(self, path):
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self.verified.get(path) == key:
            return True
        self.verified[path] = key
        return False

    def check_db(self, it):
        db = sqlite3.connect(os.path.join(self.data, "owlore.db"))
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                self.fail(f"iteration {it}: integrity_check: {ok}")
            self.pending.update(r[0] for r in db.execute("SELECT id FROM webhook_outbox"))
            blobs = db.execute("SELECT sha256, path FROM blobs").fetchall()
        finally:
            db.close()
        for sha, path in blobs:
            if not os.path.exists(path):
                self.fail(f"iteration {it}: blob {path} is missing")
            elif not self.unchanged(path) and sha256_file(path) != sha:
                self.fail(f"iteration {it}: blob {path} does not hash to {sha}")

    def check_checkpoint_dirs(self, it):
        for d in glob.glob(os.path.join(self.data, "jobs", "*", "checkpoint-*")):
            if not re.fullmatch(r"checkpoint-\d+", os.path.basename(d)):
                continue  # <dir>.tmp / .old: being written, never listed
            info = os.path.join(d, "owlore.json")
            if os.path.exists(info) and self.unchanged(info):
                continue
            try:
                with open(info) as f:
                    files = json.load(f)["files"]
            except (OSError, ValueError, KeyError) as e:
                self.fail(f"iteration {it}: {d}: torn checkpoint ({e})")
                continue
            for name, meta in files.items():
                p = os.path.join(d, name)
                if not os.path.exists(p) or sha256_file(p) != meta["sha256"]:
                    self.fail(f"iteration {it}: {p}: torn (sha256 differs from owlore.json)")

    # ---- checks through the API after a restart ------------------------------------

    def check_api(self, it, rng):
        """Every acknowledged upload is listed with its sha256; the ones new
        since the last check (and 20 others) download with it."""
        st, l = self.srv.call("GET", "/v1/files?limit=10000")
        listed = {f["id"]: f["sha256"] for f in l["data"]} if st == 200 else {}
        fresh = [f for f in self.acked if f not in self.downloaded]
        sample = rng.sample(sorted(self.downloaded), min(20, len(self.downloaded)))
        for fid in fresh + sample:
            sha = self.acked[fid]
            if listed.get(fid) != sha:
                self.fail(f"iteration {it}: acknowledged upload {fid} missing or changed")
                continue
            st, _, body = self.srv.request("GET", f"/v1/files/{fid}/content")
            if st != 200 or hashlib.sha256(body).hexdigest() != sha:
                self.fail(f"iteration {it}: content of {fid}: {st}, sha256 differs")
            self.downloaded.add(fid)
        for fid in set(self.acked) - set(listed):
            self.fail(f"iteration {it}: acknowledged upload {fid} is not listed")
        st, l = self.srv.call("GET", "/v1/fine_tuning/jobs?limit=1000")
        for job in self.jobs - {j["id"] for j in l["data"]}:
            self.fail(f"iteration {it}: acknowledged job {job} is not listed")
        running = [j["id"] for j in l["data"] if j["status"] in ("running", "pausing")]
        if len(running) > 1:
            self.fail(f"iteration {it}: {len(running)} jobs running at once: {running}")
        for j in l["data"]:
            self.check_job_checkpoints(it, j["id"])

    def check_job_checkpoints(self, it, job):
        st, c = self.srv.call("GET", f"/v1/fine_tuning/jobs/{job}/checkpoints?limit=100")
        for ck in c["data"] if st == 200 else []:
            p = os.path.join(self.data, "jobs", job, f"checkpoint-{ck['step_number']}",
                             "model.safetensors")
            if not os.path.exists(p):
                self.fail(f"iteration {it}: listed checkpoint {ck['id']} has no {p}")
            elif not self.unchanged(p) and sha256_file(p) != ck["sha256"]:
                self.fail(f"iteration {it}: checkpoint {ck['id']}: sha256 differs from the API")

    # ---- the run -------------------------------------------------------------------

    def iteration(self, it, rng):
        self.srv.start()
        if it > 0:
            self.check_api(it, rng)
        stop = threading.Event()
        threads = [threading.Thread(target=self.uploader, args=(stop,)),
                   threading.Thread(target=self.job_updater,
                                    args=(stop, random.Random(rng.random())))]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 2.0))
        self.srv.kill()
        stop.set()
        for t in threads:
            t.join()
        self.check_db(it)
        self.check_checkpoint_dirs(it)

    def settle(self, rng, timeout=180):
        """Runs the server until every job is finished and the outbox is empty;
        (jobs by id, outbox rows left)."""
        self.srv.start()
        self.check_api("final", rng)
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, l = self.srv.call("GET", "/v1/fine_tuning/jobs?limit=1000")
            jobs = {j["id"]: j for j in l["data"]}
            for j in jobs.values():
                if j["status"] == "paused":
                    self.srv.call("POST", f"/v1/fine_tuning/jobs/{j['id']}/resume")
            db = sqlite3.connect(os.path.join(self.data, "owlore.db"))
            left = db.execute("SELECT count(*) FROM webhook_outbox").fetchone()[0]
            db.close()
            if left == 0 and all(j["status"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(0.5)
        for j in jobs:
            self.check_job_checkpoints("final", j)
        return jobs, left

    def run(self):
        rng = random.Random(int(os.environ.get("OWLORE_CRASH_SEED", time.time())))
        rx = Receiver()
        threading.Thread(target=rx.serve_forever, daemon=True).start()
        hook = f"http://127.0.0.1:{rx.server_address[1]}/hook"
        t0 = time.time()
        try:
            self.srv.start()
            st, w = self.srv.call("POST", "/v1/webhooks", {"url": hook})
            self.srv.kill()
            if not self.r.check("crash: webhook registered", st == 200, f"{st} {w}"):
                return self.r
            for it in range(self.iterations):
                self.iteration(it, rng)
            jobs, left = self.settle(rng)
            self.report(rx, jobs, left, time.time() - t0)
            self.srv.stop()
        except Exception as e:  # noqa: BLE001  (a crash of the harness is a FAIL)
            self.r.fail("crash: harness", f"{type(e).__name__}: {e}\n{self.srv.tail()}")
        finally:
            self.srv.kill()
            rx.shutdown()
            if not self.r.failed:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                print(f"crash: kept {self.tmp}", flush=True)
        return self.r

    def report(self, rx, jobs, left, elapsed):
        r = self.r
        r.check("crash: integrity, no torn files, acknowledged uploads, listed checkpoints",
                not self.errors, "; ".join(self.errors[:10]),
                f"{self.iterations} kills, {len(self.acked)} uploads, {len(jobs)} jobs")
        stuck = [j for j in jobs.values() if j["status"] not in TERMINAL]
        r.check("crash: no job stuck", not stuck, [(j["id"], j["status"]) for j in stuck])
        got = set(rx.seen)
        lost = sorted(self.pending - got)
        typed = {(t, d.get("checkpoint_id") or d.get("id")) for t, d in rx.seen.values() if d}
        ckpts = 0
        for job, j in jobs.items():
            st, c = self.srv.call("GET", f"/v1/fine_tuning/jobs/{job}/checkpoints?limit=100")
            for ck in c["data"]:
                ckpts += 1
                if ("fine_tuning.job.checkpoint.created", ck["id"]) not in typed:
                    lost.append(f"checkpoint.created {ck['id']}")
            if ("fine_tuning.job." + j["status"], job) not in typed:
                lost.append(f"{j['status']} {job}")
        r.check("crash: every committed webhook event delivered", not lost and left == 0,
                f"{left} outbox rows left; not delivered: {lost[:10]}",
                f"{len(got)} webhook ids, {rx.count} deliveries, {ckpts} checkpoints")
        print(f"FIGURE crash_consistency: {self.iterations} iterations, {len(self.acked)} "
              f"acknowledged uploads, {len(jobs)} jobs, {ckpts} checkpoints, {len(got)} "
              f"webhook events ({rx.count} deliveries), {elapsed:.0f} s", flush=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    Harness(n).run().exit()


if __name__ == "__main__":
    main()
