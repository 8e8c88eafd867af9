#!/usr/bin/env python3
"""test_dashboard.py: the browser dashboard (web/, served at /) driven by
Playwright in headless Chromium (Debian's /usr/bin/chromium, or
$OWLORE_CHROMIUM) against the real server training stories260K on the CPU.

Without API keys: drop a JSONL dataset with one bad line and see that line
in the validation report; upload a good one, see the planner's prediction
and the server's refusal of a bad gamma; start an owlore_full_rank job and
watch the loss chart gain points and the layer heatmap fill over SSE;
download a checkpoint and match its sha256 with the API's; pause, resume
and cancel a second job from its page; the jobs list on a laptop and on a phone screen. With
an API key: the sign-in form, the HttpOnly SameSite=Strict session cookie,
403 for a cookie write without X-Owlore-CSRF, a job's live charts over SSE
with the cookie alone, and sign-out. No page may log a console error other
than the network lines of the refusals it provokes on purpose.

Screenshots go to build/screenshots/ (or $OWLORE_SCREENSHOTS). Prints
PASS/FAIL lines; exits non-zero on a failure.
"""

import hashlib
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ROOT, Results, Server, chat_dataset  # noqa: E402

SHOTS = os.environ.get("OWLORE_SCREENSHOTS") or os.path.join(ROOT, "build", "screenshots")
CHROMIUM = os.environ.get("OWLORE_CHROMIUM", "/usr/bin/chromium")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# network lines Chromium logs for refusals the test provokes on purpose
EXPECTED_4XX = ("/v1/fine_tuning/plan", "/v1/dashboard/session", "/v1/fine_tuning/jobs")


def call(srv, method, path, body=None, key=None):
    """One API request; (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def upload(srv, path, key=None):
    """POST /v1/files (multipart) of the file at path; the file object."""
    boundary = "owlore-test-boundary"
    with open(path, "rb") as f:
        content = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
            f"fine-tune\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: application/jsonl\r\n\r\n"
            ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(srv.url + "/v1/files", data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with OPENER.open(req, timeout=60) as r:
        return json.loads(r.read())


def job_body(file_id, steps, interval=25, save_every=0):
    hp = {"batch_size": 2, "sequence_length": 64, "max_steps": steps,
          "sampling_interval": interval, "eval_every": 100}
    if save_every:
        hp["save_every"] = save_every
    return {"training_file": file_id,
            "method": {"type": "owlore_full_rank",
                       "owlore_full_rank": {"hyperparameters": hp}}}


def wait_for(pred, timeout, every=0.2):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > deadline:
            return v
        time.sleep(every)


class Console:
    """Collects a page's console errors and uncaught exceptions."""

    def __init__(self, page):
        self.errors = []
        page.on("console", self.on_console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def on_console(self, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if msg.text.startswith("Failed to load resource") and any(p in url for p in EXPECTED_4XX):
            return
        self.errors.append(f"{msg.text} ({url})")


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name + ".png")
    page.screenshot(path=path, full_page=True)
    return path


def drop_file(page, selector, name, text):
    """Drags a file named `name` holding `text` onto the element."""
    page.evaluate("""([sel, name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'application/jsonl'}));
        const z = document.querySelector(sel);
        for (const t of ['dragenter', 'dragover', 'drop'])
            z.dispatchEvent(new DragEvent(t, {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [selector, name, text])


def attr_int(page, selector, attr):
    v = page.get_attribute(selector, attr)
    return int(v) if v not in (None, "") else 0


def no_keys_run(r, browser, tmp):
    with Server() as srv:
        ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        page = ctx.new_page()
        con = Console(page)
        page.goto(srv.url + "/")
        page.wait_for_selector("h1:has-text('Fine-tuning jobs')", timeout=15000)
        r.ok("dashboard served at /", shot(page, "01-jobs-empty"))

        # a dataset with one bad line, dropped on the drop zone
        page.click("nav a[href='#/new']")
        page.wait_for_selector(".dropzone")
        good = json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                        {"role": "assistant", "content": "Hello."}]})
        drop_file(page, ".dropzone", "bad.jsonl", f"{good}\n{{\"messages\": [oops\n{good}\n")
        page.wait_for_selector(".report.bad", timeout=15000)
        rows = page.locator(".report.bad tr.error-row").all_inner_texts()
        r.check("bad line reported", any(t.split("\t")[0].strip() == "2" for t in rows),
                f"error rows: {rows}", rows[0] if rows else "")
        r.check("invalid dataset cannot start", page.is_disabled("button[type=submit]"),
                "the start button is enabled for an invalid file")
        shot(page, "02-new-job-bad-dataset")

        # a good dataset, chosen with the file picker
        data = chat_dataset(os.path.join(tmp, "stories.jsonl"), 48)
        page.set_input_files("#dataset-file", data)
        page.wait_for_selector(".report.ok", timeout=15000)
        page.select_option("#method", "owlore_full_rank")
        for name, v in (("batch_size", "2"), ("sequence_length", "64"), ("max_steps", "1500"),
                        ("sampling_interval", "25"), ("save_every", "500"), ("eval_every", "100")):
            page.fill(f"#hp-{name}", v)
        page.wait_for_selector(".plan [data-peak]", timeout=15000)
        peak = int(page.get_attribute(".plan [data-peak]", "data-peak"))
        r.check("planner preview", peak > 0 and page.locator(".plan").inner_text().count("Estimated time"),
                "no prediction shown", f"peak {peak} bytes")

        # the server's refusal, with the field marked
        page.fill("#hp-gamma", "99")
        page.wait_for_selector(".alert:has-text('larger than')", timeout=15000)
        r.check("refusal shown with the server's message",
                page.get_attribute("#hp-gamma", "aria-invalid") == "true",
                "gamma is not marked invalid", page.inner_text(".alert").strip()[:100])
        shot(page, "03-new-job-refused")
        page.fill("#hp-gamma", "")
        page.wait_for_selector(".alert", state="hidden", timeout=15000)
        shot(page, "04-new-job-plan")

        page.click("button[type=submit]")
        page.wait_for_url("**/#/jobs/ftjob-*", timeout=15000)
        job_id = page.url.rsplit("/", 1)[1]
        r.ok("job started from the form", job_id)

        # live charts and heatmap over SSE
        pts = wait_for(lambda: attr_int(page, "figure:has-text('Loss') svg.chart", "data-points"), 60)
        later = wait_for(lambda: (lambda n: n if n > pts else 0)(
            attr_int(page, "figure:has-text('Loss') svg.chart", "data-points")), 60)
        r.check("loss chart gains points", pts > 0 and later > pts,
                f"points {pts} then {later}", f"{pts} -> {later}")
        filled = wait_for(lambda: attr_int(page, "svg.layers", "data-filled"), 60)
        r.check("heatmap fills", filled > 0, "no heatmap cell filled", f"{filled} cells")
        shot(page, "05-job-running")

        done = wait_for(lambda: call(srv, "GET", f"/v1/fine_tuning/jobs/{job_id}")[1]["status"]
                        in ("succeeded", "failed", "cancelled"), 180, 1)
        status = call(srv, "GET", f"/v1/fine_tuning/jobs/{job_id}")[1]["status"]
        r.check("job succeeded", done and status == "succeeded", f"status {status}")
        page.wait_for_selector(".badge.status-succeeded", timeout=20000)
        page.wait_for_selector("tr[data-checkpoint] a[download]", timeout=20000)
        n_metrics = page.locator("figure:has-text('Learning rate') svg.chart").get_attribute("data-points")
        r.check("every training step charted", int(n_metrics) == 1500,
                f"{n_metrics} learning-rate points for 1500 steps")
        ckpts = call(srv, "GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints?limit=100")[1]["data"]
        last = max(ckpts, key=lambda c: c["step_number"])
        with page.expect_download() as dl:
            page.click(f"tr[data-checkpoint='{last['id']}'] a[download]")
        got = hashlib.sha256(open(dl.value.path(), "rb").read()).hexdigest()
        r.check("checkpoint download matches the API's sha256", got == last["sha256"],
                f"{got} != {last['sha256']}", f"step {last['step_number']}")
        heat = attr_int(page, "svg.layers", "data-periods")
        r.check("heatmap covers every period", heat == 1500 // 25, f"{heat} periods")
        shot(page, "06-job-succeeded")

        # a second job, cancelled from its page
        st, j2 = call(srv, "POST", "/v1/fine_tuning/jobs", job_body(
            call(srv, "GET", f"/v1/fine_tuning/jobs/{job_id}")[1]["training_file"], 200000))
        page.goto(f"{srv.url}/#/jobs/{j2['id']}")
        page.wait_for_selector("button.danger:not([disabled])", timeout=20000)
        wait_for(lambda: attr_int(page, "figure:has-text('Loss') svg.chart", "data-points"), 30)
        page.click("button:has-text('Pause')")
        page.wait_for_selector(".badge.status-paused", timeout=30000)
        paused_at = attr_int(page, "figure:has-text('Loss') svg.chart", "data-points")
        page.click("button:has-text('Resume'):not([disabled])")
        resumed = wait_for(lambda: attr_int(page, "figure:has-text('Loss') svg.chart",
                                            "data-points") > paused_at, 60)
        r.check("pause and resume from the job page", resumed,
                f"no new step after resuming at {paused_at} points")
        page.click("button.danger")
        page.wait_for_selector(".badge.status-cancelled", timeout=30000)
        r.check("second job cancelled", call(srv, "GET", f"/v1/fine_tuning/jobs/{j2['id']}")[1]
                ["status"] == "cancelled", "the API does not say cancelled")
        shot(page, "07-job-cancelled")

        page.goto(srv.url + "/#/jobs")
        page.wait_for_selector(f"tr[data-job='{j2['id']}'] .status-cancelled", timeout=15000)
        page.wait_for_selector(f"tr[data-job='{job_id}'] .status-succeeded", timeout=15000)
        r.ok("jobs list shows both", shot(page, "08-jobs-list"))
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True, device_scale_factor=2)
        pp = phone.new_page()
        pcon = Console(pp)
        pp.goto(srv.url + "/#/jobs")
        pp.wait_for_selector(f"tr[data-job='{job_id}']", timeout=15000)
        over = pp.evaluate("""() => { const c = document.querySelector('.table-card');
            return c.scrollWidth - c.clientWidth; }""")
        r.check("phone jobs list fits", over <= 1, f"the jobs table is {over} px too wide")
        shot(pp, "09-phone-jobs")
        pp.goto(f"{srv.url}/#/jobs/{job_id}")
        pp.wait_for_selector("tr[data-checkpoint]", timeout=15000)
        wide = pp.evaluate("document.documentElement.scrollWidth")
        r.check("phone layout fits", wide <= 390 + 1, f"page is {wide} px wide on a 390 px screen")
        shot(pp, "10-phone-job")
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.textContent.trim() && e.type !== 'hidden').length""")
        r.check("controls are labelled", unlabelled == 0, f"{unlabelled} unlabelled controls")
        errors = con.errors + pcon.errors
        r.check("no console errors (no keys)", not errors, "; ".join(errors[:5]))
        phone.close()
        ctx.close()


def key_run(r, browser, tmp):
    with Server(api_key=True) as srv:
        key = srv.api_key
        ctx = browser.new_context(viewport={"width": 1280, "height": 860})
        page = ctx.new_page()
        con = Console(page)
        page.goto(srv.url + "/")
        page.wait_for_selector("#api-key", timeout=15000)
        shot(page, "11-sign-in")
        page.fill("#api-key", "sk-owl-wrong")
        page.click("button[type=submit]")
        page.wait_for_selector(".login .alert:has-text('Incorrect API key')", timeout=10000)
        page.fill("#api-key", key)
        page.click("button[type=submit]")
        page.wait_for_selector("h1:has-text('Fine-tuning jobs')", timeout=15000)
        cookies = [c for c in ctx.cookies() if c["name"] == "owlore_session"]
        r.check("sign-in sets an HttpOnly SameSite=Strict cookie",
                cookies and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
                and key not in cookies[0]["value"], f"cookies: {ctx.cookies()}")
        no_csrf = page.evaluate("""async () => (await fetch('/v1/fine_tuning/jobs',
            {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'})).status""")
        r.check("cookie write without X-Owlore-CSRF is 403", no_csrf == 403, f"status {no_csrf}")
        st, _ = call(srv, "GET", "/v1/fine_tuning/jobs")
        r.check("the API still needs the key", st == 401, f"status {st} without a key")

        f = upload(srv, chat_dataset(os.path.join(tmp, "keyed.jsonl"), 48), key)
        st, job = call(srv, "POST", "/v1/fine_tuning/jobs", job_body(f["id"], 1500, save_every=500), key)
        page.goto(f"{srv.url}/#/jobs/{job['id']}")
        pts = wait_for(lambda: attr_int(page, "figure:has-text('Loss') svg.chart", "data-points"), 60)
        filled = wait_for(lambda: attr_int(page, "svg.layers", "data-filled"), 60)
        r.check("SSE with the cookie session", pts > 0 and filled > 0,
                f"loss points {pts}, heatmap cells {filled}", f"{pts} points")
        page.wait_for_selector(".badge.status-succeeded", timeout=180000)
        shot(page, "12-keyed-job")
        page.click("button:has-text('Sign out')")
        page.wait_for_selector("#api-key", timeout=10000)
        st = page.evaluate("async () => (await fetch('/v1/fine_tuning/jobs')).status")
        r.check("sign-out ends the session", st == 401, f"status {st} after sign-out")
        r.check("no console errors (API key)", not con.errors, "; ".join(con.errors[:5]))
        ctx.close()


def main():
    r = Results()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        r.fail("playwright", "not installed (tests/py/setup.sh installs it)")
        r.exit()
    if not os.access(CHROMIUM, os.X_OK):
        r.fail("chromium", f"no browser at {CHROMIUM} (apt-get install chromium)")
        r.exit()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        for name, run in (("no keys", no_keys_run), ("API key", key_run)):
            try:
                run(r, browser, tmp)
            except Exception as e:  # a step timed out or the page broke: the rest of this run
                r.fail(f"dashboard ({name})", f"{type(e).__name__}: {e}")
        browser.close()
    r.exit()


if __name__ == "__main__":
    main()
