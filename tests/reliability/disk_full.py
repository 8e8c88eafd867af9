#!/usr/bin/env python3
"""disk_full.py: the real `owlore serve` with its data directory on a small
tmpfs (72 MiB, mounted here; needs root, else one SKIP line and exit 0).

Checked:
  - an upload whose declared Content-Length does not fit is answered 507
    from its headers alone (no body byte sent);
  - a job that checkpoints every 2 steps (~1.7 MiB each) fills the disk
    until a checkpoint write hits ENOSPC: the job ends failed with
    error.code "disk_full", every checkpoint the API lists is whole on disk
    and downloads with its sha256, and no partial checkpoint directory is
    left;
  - with the rest of the disk filled,
    a chunked upload (no declared length) that runs out of room is 507 and
    leaves no temporary file in blobs/, and an upload with a declared
    length is 507;
  - the server keeps serving throughout (/healthz, reads), and once the
    filler is removed a (chunked: the checkpoints leave less than the 64 MiB
    reserve for declared lengths) upload succeeds without a restart.
Prints PASS/FAIL (or SKIP) lines and one figure line.
"""

import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_server import Owlore, dataset, job_body  # noqa: E402
from server import Results  # noqa: E402

SIZE_MB = 72


def raw_exchange(port, head, body=b"", timeout=10):
    """Sends head (+ body) on a fresh socket; the status of the reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: the reply may still be there
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else 0
    finally:
        s.close()


def chunked(content, purpose=False):
    """A multipart body holding content as its file part (and purpose
    fine-tune when asked), in chunked transfer coding."""
    part = (b"--owlore-bound\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
            b"fine-tune\r\n" if purpose else b"")
    part += (b"--owlore-bound\r\nContent-Disposition: form-data; name=\"file\"; "
             b"filename=\"x.jsonl\"\r\n\r\n" + content + b"\r\n--owlore-bound--\r\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(part[i:i + 65536]), part[i:i + 65536])
                    for i in range(0, len(part), 65536)) + b"0\r\n\r\n"


def fill(path, leave):
    """Writes path until only `leave` bytes are free on its file system
    (or the disk is full); returns the bytes written."""
    v = os.statvfs(os.path.dirname(path))
    want = max(0, v.f_bavail * v.f_frsize - leave)
    written = 0
    block = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        try:
            while written < want:
                n = min(len(block), want - written)
                f.write(block[:n])
                written += n
            f.flush()
        except OSError:
            pass
    return written


def wait_job(srv, job, pred, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, j = srv.call("GET", f"/v1/fine_tuning/jobs/{job}")
        if st == 200 and pred(j):
            return j
        time.sleep(0.05)
    return j


def checkpoints_whole(srv, data, job):
    """Problems with the job's listed checkpoints (empty when all are whole)."""
    bad = []
    st, c = srv.call("GET", f"/v1/fine_tuning/jobs/{job}/checkpoints?limit=100")
    for ck in c["data"]:
        d = os.path.join(data, "jobs", job, f"checkpoint-{ck['step_number']}")
        try:
            with open(os.path.join(d, "owlore.json")) as f:
                files = json.load(f)["files"]
        except (OSError, ValueError, KeyError) as e:
            bad.append(f"{d}: {e}")
            continue
        for name, meta in files.items():
            with open(os.path.join(d, name), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != meta["sha256"]:
                    bad.append(f"{d}/{name}: sha256 differs")
        st, _, body = srv.request(
            "GET", f"/v1/fine_tuning/jobs/{job}/checkpoints/{ck['id']}/content")
        if st != 200 or hashlib.sha256(body).hexdigest() != ck["sha256"]:
            bad.append(f"{ck['id']}: download {st}, sha256 differs")
    return bad, len(c["data"])


def run(r, mnt):
    data = os.path.join(mnt, "data")
    srv = Owlore(data, env={"OWLORE_CACHE_DIR": os.path.join(os.path.dirname(mnt), "cache")})
    filler = os.path.join(mnt, "filler")
    requests = 0
    try:
        srv.start()
        st, f = srv.upload("train.jsonl", dataset(1))
        requests += 1
        if not r.check("disk_full: upload that fits", st == 200, f"{st} {f}"):
            return requests
        big = 100 << 20
        t0 = time.time()
        st = raw_exchange(srv.port, (
            "POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            f"boundary=owlore-bound\r\nContent-Length: {big}\r\n\r\n").encode())
        requests += 1
        r.check("disk_full: declared length that does not fit is 507 before the body",
                st == 507, f"status {st}", f"{time.time() - t0:.3f} s, no body sent")

        st, job = srv.call("POST", "/v1/fine_tuning/jobs", job_body(f["id"], 100000, 2))
        requests += 1
        job = job["id"]
        wait_job(srv, job, lambda j: j["status"] == "running")
        j = wait_job(srv, job, lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
        err = j.get("error") or {}
        r.check("disk_full: ENOSPC in a checkpoint write fails the job with disk_full",
                j["status"] == "failed" and err.get("code") == "disk_full",
                f"status {j['status']}, error {err}", err.get("message", ""))
        bad, n = checkpoints_whole(srv, data, job)
        partial = glob.glob(os.path.join(data, "jobs", job, "checkpoint-*.tmp"))
        r.check("disk_full: earlier checkpoints intact, no partial one left",
                n > 0 and not bad and not partial, f"{n} listed; {bad[:5]}; left {partial}",
                f"{n} checkpoints verified")

        fill(filler, 0)
        head = ("POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                "boundary=owlore-bound\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        st = raw_exchange(srv.port, head, chunked(b"x" * (4 << 20)), timeout=30)
        requests += 1
        temps = glob.glob(os.path.join(data, "blobs", "tmp-*"))
        r.check("disk_full: chunked upload out of room is 507, no temporary left",
                st == 507 and not temps, f"status {st}, left {temps}")
        st, f2 = srv.upload("small.jsonl", dataset(2))
        requests += 1
        health = [srv.request("GET", "/healthz")[0],
                  srv.call("GET", f"/v1/fine_tuning/jobs/{job}")[0],
                  srv.call("GET", "/v1/files")[0]]
        requests += 3
        os.unlink(filler)
        r.check("disk_full: upload with a declared length while the disk is full is 507",
                st == 507, f"{st} {f2}")
        st = raw_exchange(srv.port, head, chunked(dataset(3), purpose=True))
        requests += 1
        r.check("disk_full: the server keeps serving and recovers when room is freed",
                health == [200, 200, 200] and st == 200 and srv.alive(),
                f"reads {health}, chunked upload after freeing {st}, alive {srv.alive()}")
    finally:
        srv.stop()
    return requests


def main():
    r = Results()
    tmp = tempfile.mkdtemp(prefix="owlore-diskfull-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", mnt],
                           capture_output=True, text=True) if os.geteuid() == 0 else None
    if mount is None or mount.returncode != 0:
        why = "not root" if mount is None else mount.stderr.strip()
        print(f"SKIP disk_full: cannot mount a tmpfs ({why})", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    t0 = time.time()
    try:
        n = run(r, mnt)
        print(f"FIGURE disk_full: {SIZE_MB} MiB tmpfs, {n} requests, "
              f"{time.time() - t0:.0f} s", flush=True)
    except Exception as e:  # noqa: BLE001  (a crash of the harness is a FAIL)
        r.fail("disk_full: harness", f"{type(e).__name__}: {e}")
    finally:
        subprocess.run(["umount", mnt])
        shutil.rmtree(tmp, ignore_errors=True)
    r.exit()


if __name__ == "__main__":
    main()
