#!/usr/bin/env python3
"""sse_soak.py: CLIENTS (default 300; argv[1]) concurrent server-sent event
streams of one training job on the real `owlore serve` for DURATION seconds
(default 120; argv[2]); the server runs with --max-per-ip above CLIENTS.

The streams are read by one selector loop (HTTP/1.0 requests, so the body
is the bare event stream). Every tenth client drops its connection once at
a random moment and reconnects with Last-Event-ID, as a browser does. At
the end the job is cancelled, so every stream ends after its terminal
event. The job (batch 4 of 256 tokens) makes a few events a second.
Checked:
  - each client's event ids, across its reconnection, are exactly the job's
    events (the API's list, paged), in order: no gap, no duplicate;
  - every stream is ended by the server (after the terminal event, which
    the list ends with);
  - the server's RSS stays bounded: peak under baseline + 128 MiB, and
    under 32 MiB of growth over the second half of the soak;
  - its open file descriptors return to the baseline (taken with the job
    running, before any client) within 10 s after the clients leave.
Prints PASS/FAIL lines and one figure line.
"""

import os
import random
import re
import selectors
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_server import Owlore, dataset, job_body, rss_fds  # noqa: E402
from server import Results  # noqa: E402

ID = re.compile(rb"^id: (\d+)$", re.M)


class Client:
    def __init__(self, n, reconnect_at):
        self.n = n
        self.ids = []
        self.buf = b""
        self.sock = None
        self.reconnect_at = reconnect_at  # monotonic time, or None
        self.reconnected = False
        self.done = False  # the server ended the stream
        self.head_seen = False

    def connect(self, sel, port, job):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        last = f"Last-Event-ID: {self.ids[-1]}\r\n" if self.ids else ""
        self.sock.sendall(f"GET /v1/fine_tuning/jobs/{job}/events?stream=true HTTP/1.0\r\n"
                          f"Accept: text/event-stream\r\n{last}\r\n".encode())
        self.sock.setblocking(False)
        self.buf, self.head_seen = b"", False
        sel.register(self.sock, selectors.EVENT_READ, self)

    def close(self, sel):
        sel.unregister(self.sock)
        self.sock.close()
        self.sock = None

    def feed(self, data):
        self.buf += data
        if not self.head_seen:
            if b"\r\n\r\n" not in self.buf:
                return
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.head_seen = head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
        while b"\n\n" in self.buf:
            ev, self.buf = self.buf.split(b"\n\n", 1)
            m = ID.search(ev)
            if m:
                self.ids.append(int(m.group(1)))


def job_event_ids(srv, job):
    """The job's event ids, oldest first, from the paged list."""
    ids, after = [], None
    while True:
        q = f"?limit=100{'&after=' + after if after else ''}"
        st, l = srv.call("GET", f"/v1/fine_tuning/jobs/{job}/events{q}")
        ids += [int(e["id"].split("-")[1]) for e in l["data"]]
        if not l.get("has_more") or not l["data"]:
            return sorted(ids)
        after = l["data"][-1]["id"]


def soak(r, srv, n_clients, duration, rng):
    st, f = srv.upload("soak.jsonl", dataset(7, 200))
    st, j = srv.call("POST", "/v1/fine_tuning/jobs", job_body(f["id"], 10 ** 7, 0, 256, 4))
    job = j["id"]
    while srv.call("GET", f"/v1/fine_tuning/jobs/{job}")[1]["status"] != "running":
        time.sleep(0.05)
    time.sleep(1)
    pid = srv.proc.pid
    rss0, fds0 = rss_fds(pid)
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    clients = [Client(i, t0 + rng.uniform(5, duration - 5) if i % 10 == 0 else None)
               for i in range(n_clients)]
    for c in clients:
        c.connect(sel, srv.port, job)
    samples = []  # (seconds, rss)
    next_sample, cancelled = t0, False
    open_streams = n_clients
    while open_streams:
        now = time.monotonic()
        if now >= next_sample:  # also the moment to look for reconnections due
            samples.append((now - t0, rss_fds(pid)[0]))
            next_sample += 0.5
            for c in clients:
                if c.reconnect_at and not c.reconnected and now >= c.reconnect_at and not c.done:
                    c.close(sel)
                    c.reconnected = True
                    c.connect(sel, srv.port, job)
        if not cancelled and now - t0 >= duration:
            srv.call("POST", f"/v1/fine_tuning/jobs/{job}/cancel")
            cancelled = True
        if now - t0 > duration + 60:
            break
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                c.feed(data)
            else:
                c.close(sel)
                c.done = True
                open_streams -= 1
    elapsed = time.monotonic() - t0
    for c in clients:
        if c.sock:
            c.close(sel)
    want = job_event_ids(srv, job)
    bad = [c.n for c in clients if c.ids != want]
    r.check("sse: every client got every event once, in order", not bad,
            f"{len(bad)} clients differ, e.g. client {bad[0] if bad else ''}: "
            f"{len(clients[bad[0]].ids) if bad else 0} ids vs {len(want)}",
            f"{n_clients} clients, {len(want)} events each, "
            f"{sum(1 for c in clients if c.reconnected)} reconnections")
    unended = [c.n for c in clients if not c.done]
    r.check("sse: every stream ended after the terminal event", not unended,
            f"{len(unended)} streams still open {duration + 60:.0f} s in")
    peak = max(s for _, s in samples)
    half = [s for t, s in samples if t >= duration / 2 and t <= duration]
    growth = (half[-1] - half[0]) if len(half) > 1 else 0
    r.check("sse: bounded RSS", peak - rss0 < (128 << 20) and growth < (32 << 20),
            f"baseline {rss0 >> 20} MiB, peak {peak >> 20} MiB, second-half growth "
            f"{growth >> 20} MiB", f"baseline {rss0 >> 20} MiB, peak {peak >> 20} MiB")
    deadline, fds = time.time() + 10, None
    while time.time() < deadline:
        fds = rss_fds(pid)[1]
        if fds <= fds0:
            break
        time.sleep(0.2)
    r.check("sse: file descriptors back to baseline", fds <= fds0,
            f"baseline {fds0}, now {fds}", f"{fds0} -> {fds}")
    return elapsed, len(want)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 120
    r = Results()
    tmp = tempfile.mkdtemp(prefix="owlore-sse-")
    srv = Owlore(os.path.join(tmp, "data"), ["--max-per-ip", str(n + 64)])
    try:
        srv.start()
        elapsed, events = soak(r, srv, n, duration, random.Random(
            int(os.environ.get("OWLORE_SSE_SEED", time.time()))))
        print(f"FIGURE sse_soak: {n} clients for {elapsed:.0f} s, {events} events each, "
              f"{n * events} deliveries", flush=True)
    except Exception as e:  # noqa: BLE001  (a crash of the harness is a FAIL)
        r.fail("sse: harness", f"{type(e).__name__}: {e}\n{srv.tail()}")
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    r.exit()


if __name__ == "__main__":
    main()
