#!/usr/bin/env python3
"""hostile.py: hostile clients against the real `owlore serve`, all inside an
empty network namespace (the script re-runs itself under `unshare -n` with
only loopback up, when root; otherwise the SSRF check is a SKIP line), so
nothing any request provokes can leave the machine.

The server runs with two tenants' API keys (alice, bob). Checked:
  - slowloris and slow read (slowhttptest, 20 s each, 1000 connections
    from 127.0.0.1): /healthz, probed from 127.0.0.2 (another address, so
    the per-IP limit the attack hits does not apply to it) every 0.5 s,
    answers 200 within 2 s throughout;
  - 64 KiB of headers is 431; bodies over a route's cap are 413 (declared
    length: before the body; chunked: after it);
  - JSON bodies nested deeper than 64 levels are 400 on every JSON route
    (64 levels are not refused for depth);
  - path traversal in every path id and in ?file= (.., %2e%2e, %2f, %00,
    overlong UTF-8, 5000 characters) is 400 or 404, and no reply carries a
    canary file placed beside the data directory or the database's bytes;
  - a CORS preflight (OPTIONS from a foreign Origin) is not granted: the
    server answers 405 with Allow (404 for unknown paths) and never sends
    Access-Control-Allow-Origin;
  - SSRF: webhook URLs to loopback, private, link-local, metadata, encoded
    and IPv6-embedded addresses, other schemes and credentials are 400, and
    a listener on loopback sees no connection;
  - bob gets 404 for every alice id on every route (and 400/404 when his job
    names her file), and alice's objects are absent from bob's lists.
Prints PASS/FAIL/SKIP lines and one figure line.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_server import Owlore, dataset, job_body  # noqa: E402
from server import Results, owlore_bin  # noqa: E402

CANARY = b"owlore-canary-5f1c0d9e"


class Count:
    n = 0


def raw(port, data, timeout=10, source="127.0.0.1"):
    """Sends raw bytes; (status, whole reply bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    Count.n += 1
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        st = int(out.split(b" ")[1]) if out.startswith(b"HTTP/") else 0
        return st, out
    finally:
        s.close()


def get(port, path, key, method="GET", extra=""):
    return raw(port, (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                      f"Connection: close\r\n{extra}\r\n").encode())


def post_json(port, path, key, body):
    return raw(port, (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                      "Connection: close\r\n\r\n").encode() + body)


def make_key(data, owner):
    out = subprocess.run([owlore_bin(), "keys", "create", "--data-dir", data, "--owner", owner,
                          "--json"], capture_output=True, text=True, timeout=30, check=True)
    import json
    return json.loads(out.stdout)["key"]


def check_slow(r, srv, port):
    """slowloris and slow read, with /healthz probed from 127.0.0.2."""
    if not shutil.which("slowhttptest"):
        r.fail("hostile: slowhttptest", "not installed (apt-get install slowhttptest)")
        return
    attacks = {
        "slowloris": ["-H", "-c", "1000", "-r", "200", "-i", "5", "-x", "24", "-l", "20",
                      "-u", f"http://127.0.0.1:{port}/healthz"],
        "slow read": ["-X", "-c", "1000", "-r", "200", "-w", "32", "-y", "64", "-n", "2",
                      "-z", "32", "-k", "10", "-l", "20", "-u", f"http://127.0.0.1:{port}/web/new_job.js"],
    }
    for name, args in attacks.items():
        proc = subprocess.Popen(["slowhttptest", "-p", "3"] + args, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        probes, bad = 0, []
        time.sleep(2)
        while proc.poll() is None:
            t0 = time.time()
            try:
                st, _ = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            timeout=2, source="127.0.0.2")
            except OSError as e:
                st = str(e)
            probes += 1
            if st != 200 or time.time() - t0 > 2:
                bad.append(f"{st} after {time.time() - t0:.1f} s")
            time.sleep(0.5)
        out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout.read())
        conns = [" ".join(l.split()) for l in out.splitlines() if "connected:" in l]
        r.check(f"hostile: {name}: /healthz keeps answering", not bad and probes >= 10 and srv.alive(),
                f"{len(bad)} of {probes} probes failed: {bad[:5]}; alive {srv.alive()}",
                f"{probes} probes, slowhttptest at the end: {conns[-1] if conns else '?'}")


def check_limits(r, port, key):
    st, _ = raw(port, ("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 65536 +
                       "\r\n\r\n").encode())
    r.check("hostile: 64 KiB header is 431", st == 431, f"status {st}")
    big = 65 << 10
    st, _ = raw(port, (f"POST /v1/fine_tuning/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       f"{key}\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n")
                .encode())
    st2, _ = raw(port, (f"POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}"
                        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                 .encode() + b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(3)) +
                 b"0\r\n\r\n")
    r.check("hostile: bodies over the cap are 413", st == 413 and st2 == 413,
            f"declared {st}, chunked {st2}")


def check_depth(r, port, key):
    bad = []
    for path in ("/v1/fine_tuning/jobs", "/v1/webhooks", "/v1/fine_tuning/plan"):
        for depth in (65, 1000, 5000):
            body = b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
            st, out = post_json(port, path, key, body)
            if st != 400 or b"deeper" not in out:
                bad.append(f"{path} depth {depth}: {st}")
        body = b'{"a":' + b"[" * 63 + b"]" * 63 + b"}"
        st, out = post_json(port, path, key, body)
        if b"deeper" in out:
            bad.append(f"{path} depth 64 refused for depth")
    r.check("hostile: JSON nested deeper than 64 is 400", not bad, bad)


def check_traversal(r, port, key, ids):
    evil = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e%2e%2f%2e%2e%2fowlore.db", "..%2fowlore.db",
            "%2f", "%2fetc%2fpasswd", "a%00b", "%c0%ae%c0%ae", "..%5c..%5cowlore.db",
            "....%2f%2f", "a" * 5000, "%252e%252e"]
    templates = [("GET", "/v1/files/{}"), ("DELETE", "/v1/files/{}"), ("GET", "/v1/files/{}/content"),
                 ("GET", "/v1/fine_tuning/jobs/{}"), ("POST", "/v1/fine_tuning/jobs/{}/cancel"),
                 ("POST", "/v1/fine_tuning/jobs/{}/pause"), ("POST", "/v1/fine_tuning/jobs/{}/resume"),
                 ("GET", "/v1/fine_tuning/jobs/{}/events"), ("GET", "/v1/fine_tuning/jobs/{}/checkpoints"),
                 ("GET", "/v1/fine_tuning/jobs/{}/layers"), ("GET", "/v1/webhooks/{}"),
                 ("DELETE", "/v1/webhooks/{}"), ("GET", "/web/{}")]
    paths = [(m, t.format(e)) for m, t in templates for e in evil]
    paths += [("GET", f"/v1/fine_tuning/jobs/{e}/checkpoints/{ids['ckpt']}/content") for e in evil]
    paths += [("GET", f"/v1/fine_tuning/jobs/{ids['job']}/checkpoints/{e}/content") for e in evil]
    paths += [("GET", f"/v1/fine_tuning/jobs/{ids['job']}/checkpoints/{ids['ckpt']}/content?file={e}")
              for e in evil + ["../../owlore.db", "%2e%2e/%2e%2e/owlore.db", "/etc/passwd"]]
    paths += [("GET", "/web/..%2f..%2fREADME.md"), ("GET", "/../../etc/passwd"),
              ("GET", "/v1/files/../../owlore.db"), ("GET", "/web/../server/http.c")]
    bad = []
    for method, path in paths:
        extra = "Content-Length: 0\r\n" if method == "POST" else ""
        st, out = get(port, path, key, method, extra)
        if st not in (400, 404) or CANARY in out or b"SQLite format 3" in out:
            bad.append(f"{method} {path[:80]}: {st}")
    r.check("hostile: path traversal in every id is 400/404, nothing read outside",
            not bad, bad[:10], f"{len(paths)} requests")


def check_cors(r, port, key):
    bad = []
    for path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/webhooks", "/healthz", "/nowhere"):
        st, out = raw(port, (f"OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
                             "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: "
                             "authorization, content-type\r\nConnection: close\r\n\r\n").encode())
        head = out.split(b"\r\n\r\n")[0].lower()
        want = 404 if path == "/nowhere" else 405
        if st != want or b"access-control-allow" in head or (want == 405 and b"\r\nallow:" not in head):
            bad.append(f"OPTIONS {path}: {st}")
    st, out = get(port, "/v1/files", key, extra="Origin: https://evil.example\r\n")
    if b"access-control-allow" in out.split(b"\r\n\r\n")[0].lower():
        bad.append("GET with a foreign Origin got Access-Control-Allow-*")
    r.check("hostile: CORS preflight from a foreign origin is not granted", not bad, bad,
            "405 with Allow, no Access-Control-Allow-Origin")


def check_ssrf(r, srv, key, in_netns):
    if not in_netns:
        print("SKIP hostile: SSRF webhook URLs: no empty network namespace (needs root and "
              "unshare -n)", flush=True)
        return
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    lst.settimeout(0.2)
    lp = lst.getsockname()[1]
    urls = [f"http://127.0.0.1:{lp}/", f"https://127.0.0.1:{lp}/", f"https://localhost:{lp}/",
            f"http://localhost:{srv.port}/healthz", "https://127.1/", "https://0x7f000001/",
            "https://2130706433/", "https://017700000001/", "https://0.0.0.0/", "https://[::1]/",
            "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::127.0.0.1]/",
            "https://[64:ff9b::7f00:1]/", "https://[2002:7f00:1::]/", "https://[fe80::1]/",
            "https://[fc00::1]/", "https://10.0.0.1/", "https://172.16.0.1/", "https://192.168.1.1/",
            "https://100.64.0.1/", "https://169.254.169.254/latest/meta-data/",
            "https://metadata.google.internal/", "https://user:pw@example.com/",
            "file:///etc/passwd", "gopher://127.0.0.1:25/", "ftp://127.0.0.1/", "dict://127.0.0.1/",
            f"http://127.0.0.1:{lp}@example.com/", "https://example.com@127.0.0.1/",
            "https://127.0.0.1%2f@example.com/", "https://224.0.0.1/", "https://255.255.255.255/",
            "https://[::]/", "https://198.18.0.1/", "https:///etc/passwd", "http://[::1]:80/"]
    bad = []
    for u in urls:
        st, w = srv.call("POST", "/v1/webhooks", {"url": u}, {"Authorization": f"Bearer {key}"})
        if st != 400:
            bad.append(f"{u}: {st}")
    time.sleep(1.5)  # a delivery attempt, had one been queued, would come now
    hits = 0
    try:
        while True:
            lst.accept()[0].close()
            hits += 1
    except socket.timeout:
        pass
    lst.close()
    r.check("hostile: SSRF webhook URLs are refused (empty network namespace)",
            not bad and hits == 0, f"{bad[:10]}; loopback listener saw {hits} connections",
            f"{len(urls)} URLs")


def check_tenants(r, srv, alice, bob, ids):
    A, B = ({"Authorization": f"Bearer {k}"} for k in (alice, bob))
    reqs = [("GET", f"/v1/files/{ids['file']}"), ("GET", f"/v1/files/{ids['file']}/content"),
            ("DELETE", f"/v1/files/{ids['file']}"), ("GET", f"/v1/fine_tuning/jobs/{ids['job']}"),
            ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/cancel"),
            ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/pause"),
            ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/resume"),
            ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/events"),
            ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/events?stream=true"),
            ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/checkpoints"),
            ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/checkpoints/{ids['ckpt']}/content"),
            ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/layers"),
            ("GET", f"/v1/webhooks/{ids['webhook']}"), ("DELETE", f"/v1/webhooks/{ids['webhook']}")]
    bad = []
    for method, path in reqs:
        st, _, _ = srv.request(method, path, b"" if method == "POST" else None, B)
        if st != 404:
            bad.append(f"{method} {path}: {st}")
    st, _ = srv.call("POST", "/v1/fine_tuning/jobs", job_body(ids["file"], 4, 0), B)
    if st not in (400, 404):
        bad.append(f"bob's job on alice's file: {st}")
    for path, key in (("/v1/files", "file"), ("/v1/fine_tuning/jobs", "job"),
                      ("/v1/webhooks", "webhook")):
        st, l = srv.call("GET", path, None, B)
        if st != 200 or any(o["id"] == ids[key] for o in l["data"]):
            bad.append(f"bob's {path} list: {st}")
    st, f = srv.call("GET", f"/v1/files/{ids['file']}", None, A)
    if st != 200:
        bad.append(f"alice lost her file: {st}")
    r.check("hostile: another tenant's ids are 404", not bad, bad, f"{len(reqs) + 4} requests")


def main():
    in_netns = os.environ.get("OWLORE_IN_NETNS") == "1"
    if not in_netns and os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            os.environ["OWLORE_IN_NETNS"] = "1"
            os.execvp("unshare", ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"',
                                  "sh", sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    r = Results()
    tmp = tempfile.mkdtemp(prefix="owlore-hostile-")
    data = os.path.join(tmp, "data")
    with open(os.path.join(tmp, "canary.txt"), "wb") as f:
        f.write(CANARY)
    srv = Owlore(data)
    t0 = time.time()
    try:
        os.makedirs(data)
        alice, bob = make_key(data, "alice"), make_key(data, "bob")
        srv.start()
        A = {"Authorization": f"Bearer {alice}"}
        st, f = srv.upload("a.jsonl", dataset(1), A)
        st, j = srv.call("POST", "/v1/fine_tuning/jobs", job_body(f["id"], 4, 2), A)
        # a public literal (no DNS in the namespace), for an event this run never has
        st, w = srv.call("POST", "/v1/webhooks", {"url": "https://1.1.1.1/hook",
                                                  "events": ["fine_tuning.job.paused"]}, A)
        deadline, ck = time.time() + 60, []
        while not ck and time.time() < deadline:
            st, c = srv.call("GET", f"/v1/fine_tuning/jobs/{j['id']}/checkpoints", None, A)
            ck = c["data"] if st == 200 else []
            time.sleep(0.1)
        ids = {"file": f["id"], "job": j["id"], "webhook": w["id"], "ckpt": ck[0]["id"]}
        check_limits(r, srv.port, alice)
        check_depth(r, srv.port, alice)
        check_traversal(r, srv.port, alice, ids)
        check_cors(r, srv.port, alice)
        check_ssrf(r, srv, alice, in_netns)
        check_tenants(r, srv, alice, bob, ids)
        check_slow(r, srv, srv.port)
        print(f"FIGURE hostile: {Count.n} raw requests, {time.time() - t0:.0f} s"
              f"{'' if in_netns else ' (no network namespace)'}", flush=True)
    except Exception as e:  # noqa: BLE001  (a crash of the harness is a FAIL)
        r.fail("hostile: harness", f"{type(e).__name__}: {e}\n{srv.tail()}")
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    r.exit()


if __name__ == "__main__":
    main()
