"""The web UI in a real browser: Debian's Chromium driven by Playwright for Python,
against a running hookd (tests/ui/run.sh starts it). Scenarios:

  1. sign in with a `hookd ui-link` link (and the link works only once);
  2. create an application and an endpoint (the receiver below) in the forms;
  3. send a message, watch its attempt appear without a reload, resend it;
  4. a source's live inspector: a request signed by Stripe's own library arrives while
     the page is open and appears without a reload; an unsigned one appears rejected;
  5. a request's "copy as curl" command, run by a shell, sends the same bytes again;
     replay to a destination;
  6. the consumer portal from the official svix SDK's app_portal_access: that
     application only, never the operator pages; a read-only link shows no edit
     buttons and its posts are refused; logout and expire-all end sessions;
  7. the data API's screens: a document, a leaderboard's top, modes, an API key made
     in the UI (shown once, working, then revoked and refused);
  8. flows: a run's steps, and running it again;
  9. CSRF on every form, sign-out, and signing in with a pasted API token;
  and throughout: XSS payloads (in a name, a description, a payload, a received
  header and body, a document, and a javascript: endpoint URL) render as text and
  run nothing; every page carries a Content-Security-Policy without inline script.

Screenshots of each scenario are written to $UI_SCREENSHOTS (printed at the end).
"""

import base64
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import stripe
from playwright.sync_api import expect, sync_playwright
from svix.api import ApplicationIn, EventTypeIn, Svix, SvixOptions
from svix.models import AppPortalAccessIn, ApplicationTokenExpireIn

URL = os.environ["HOOKD_URL"]
TOKEN = os.environ["HOOKD_TOKEN"]
HOOKD = os.environ["UI_HOOKD_BIN"]
ORG = os.environ.get("UI_ORG", "ui")
SHOTS = os.environ.get("UI_SCREENSHOTS", "/tmp/hookd-ui-screens")
CHROMIUM = os.environ.get("UI_CHROMIUM", "/usr/bin/chromium")
XSS = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'
os.makedirs(SHOTS, exist_ok=True)
shots = []

svix = Svix(TOKEN, SvixOptions(server_url=URL))


def shot(page, name):
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    shots.append(path)


# ---------------------------------------------------------------------------------
# A receiver on loopback that answers 200 and remembers what it got.

received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
RECEIVER = f"http://127.0.0.1:{receiver.server_address[1]}"


def wait_for(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ui_link():
    out = subprocess.run(
        [HOOKD, "ui-link", "--org", ORG], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def api(method, path, body=None, token=TOKEN):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def no_dialogs(page):
    """Fails the test if any script ever opens a dialog (an XSS payload ran)."""

    def on_dialog(dialog):
        dialog.dismiss()
        raise AssertionError(f"a dialog opened: {dialog.message!r}")

    page.on("dialog", on_dialog)


def check_headers(response):
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert response.headers.get("cache-control") == "no-store"


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    driver_dir = os.path.join(os.path.dirname(__import__("playwright").__file__), "driver", "package")
    with open(os.path.join(driver_dir, "browsers.json")) as f:
        wanted = next(b["browserVersion"] for b in json.load(f)["browsers"] if b["name"] == "chromium")
    if browser.version.split(".")[0] != wanted.split(".")[0]:
        sys.exit(
            f"Playwright expects Chromium {wanted} but {CHROMIUM} is {browser.version}: "
            "pin the playwright version whose browsers.json names this Chromium major (see .ci/run)"
        )
    print(f"Chromium {browser.version} (Playwright expects {wanted})")

    # 1. Sign in with a one-time link.
    operator = browser.new_context(viewport={"width": 1200, "height": 900})
    page = operator.new_page()
    no_dialogs(page)
    link = ui_link()
    page.goto(link)
    page.wait_for_url(f"{URL}/ui")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert "token=" not in page.url
    shot(page, "1-overview")
    other = browser.new_context()
    reused = other.new_page().goto(link)
    assert reused.status == 401, f"a used sign-in link must not sign in again ({reused.status})"
    other.close()
    cookies = {c["name"]: c for c in operator.cookies()}
    assert cookies["hookd_ui"]["httpOnly"] and cookies["hookd_ui"]["sameSite"] == "Strict"

    # 2. An application and an endpoint, through the forms (names carry XSS payloads).
    check_headers(page.goto(f"{URL}/ui/apps"))
    page.fill("#name", f"Shop {XSS}")
    page.click("text=Create application")
    page.wait_for_url(re.compile(r".*/ui/apps/app_[^/]+$"))
    app_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1")).to_have_text(f"Shop {XSS}")
    page.fill("#ep-url", "javascript:alert(1)")
    page.fill("#ep-description", XSS)
    page.click("text=Add endpoint")
    assert "422" in page.title() or page.locator(".error").count() == 1, page.content()
    assert page.locator('a[href^="javascript:alert"]').count() == 0
    page.goto(f"{URL}/ui/apps/{app_id}")
    if not page.is_visible("#ep-url"):
        page.click("text=Add an endpoint")
    page.fill("#ep-url", f"{RECEIVER}/hook")
    page.fill("#ep-description", XSS)
    page.click("button:text('Add endpoint')")
    page.wait_for_url(re.compile(r".*/endpoints/ep_[^/]+$"))
    ep_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_text(XSS, exact=False).first).to_be_attached()
    page.click("text=Reveal secret")
    assert page.input_value("#secret").startswith("whsec_")
    assert "whsec_" not in page.url
    # Custom headers, a transformation tried with Simulate, then saved and enabled.
    page.fill("#ep-headers", "X-Team: blue\nAuthorization: Bearer s3cret-value")
    page.click("text=Save headers")
    expect(page.locator("#ep-headers")).to_have_value("X-Team: blue")
    page.fill("#ep-code", "function handler(webhook) { webhook.payload.seen = true; return webhook }")
    page.click("button:text('Simulate')")
    expect(page.locator("#simulated")).to_contain_text('"seen": true')
    page.check("input[name=enabled]")
    page.click("text=Save transformation")
    expect(page.locator("input[name=enabled]")).to_be_checked()
    shot(page, "2-endpoint")

    # 3. Send a message; the attempt appears without a reload; resend it.
    page.goto(f"{URL}/ui/apps/{app_id}")
    page.fill("#msg-type", "invoice.paid")
    page.fill("#msg-payload", json.dumps({"note": XSS}))
    page.click("button:text('Send')")
    page.wait_for_url(re.compile(r".*/msg/msg_[^/]+$"))
    msg_url = page.url
    expect(page.locator("tr.attempt[data-status='success']")).to_have_count(1, timeout=20_000)
    expect(page.locator("#payload")).to_contain_text(json.dumps(XSS)[1:-1])
    # The attempt's request headers as sent (the credential hidden) and the answer's.
    page.locator("details.attempt-detail summary").first.click()
    detail = page.locator("details.attempt-detail").first
    expect(detail).to_contain_text("webhook-signature")
    expect(detail).to_contain_text("[hidden]")
    expect(detail).to_contain_text("x-team")
    expect(detail).to_contain_text("server")
    assert "s3cret-value" not in page.content(), "a credential header's value is never shown"
    shot(page, "3-message")
    page.click("button:text('Resend')")
    page.wait_for_url(msg_url)
    expect(page.locator("tr.attempt[data-status='success']")).to_have_count(2, timeout=20_000)
    hooks = wait_for("two deliveries", lambda: [r for r in received if r[0] == "/hook"][1:] and [r for r in received if r[0] == "/hook"])
    sent = {k.lower(): v for k, v in hooks[0][1].items()}
    assert sent.get("x-team") == "blue" and sent.get("authorization") == "Bearer s3cret-value", sent
    assert json.loads(hooks[0][2])["seen"] is True, "the saved transformation runs"
    # The message list's filters: by attempt status, by event type, by time.
    page.goto(f"{URL}/ui/apps/{app_id}")
    page.select_option("#f-status", "success")
    page.click("#message-filter button")
    expect(page.locator("table.attempts tr.attempt")).to_have_count(2)
    page.goto(f"{URL}/ui/apps/{app_id}?event_type=other.type")
    expect(page.locator("text=No messages match.")).to_be_visible()
    page.goto(f"{URL}/ui/apps/{app_id}?event_type=invoice.paid&after=2000-01-01T00:00")
    expect(page.locator("table.messages tbody tr")).to_have_count(1)
    page.goto(f"{URL}/ui/apps/{app_id}?before=2000-01-01T00:00")
    expect(page.locator("text=No messages match.")).to_be_visible()

    # 4. A source's live inspector.
    page.goto(f"{URL}/ui/sources")
    page.fill("#src-name", "stripe payments")
    page.select_option("#src-kind", "stripe")
    secret = "whsec_ui_test_secret"
    page.fill("#src-secret", secret)
    page.click("text=Create source")
    page.wait_for_url(re.compile(r".*/ui/sources/src_[^/]+$"))
    src_id = page.url.rsplit("/", 1)[1]
    ingest_url = page.input_value("#ingest-url")
    page.wait_for_timeout(500)  # the event stream connects
    body = json.dumps({"id": "evt_ui_1", "type": "charge.succeeded", "note": XSS}).encode()
    sig = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=int(time.time()))
    req = urllib.request.Request(
        ingest_url + "?from=stripe",
        data=body,
        method="POST",
        headers={"Stripe-Signature": sig, "Content-Type": "application/json", "X-Note": XSS},
    )
    urllib.request.urlopen(req).read()
    expect(page.locator("tr.request[data-status='accepted']")).to_have_count(1, timeout=10_000)
    unsigned = urllib.request.Request(ingest_url, data=b"{}", method="POST")
    try:
        urllib.request.urlopen(unsigned)
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    expect(page.locator("tr.request[data-status='rejected']")).to_have_count(1, timeout=10_000)
    assert page.locator("tr.request").first.get_attribute("data-status") == "rejected"
    shot(page, "4-inspector")

    # 5. The request in full; copy as curl reproduces it; replay it to a destination.
    if not page.is_visible("#dest-url"):
        page.click("text=Add a destination")
    page.fill("#dest-url", f"{RECEIVER}/forwarded")
    page.click("button:text('Add destination')")
    page.locator("tr.request[data-status='accepted'] a").click()
    page.wait_for_url(re.compile(r".*/log/log[^/]+$"))
    expect(page.locator("#verdict")).to_have_text("accepted")
    expect(page.locator("#body-pretty")).to_contain_text("charge.succeeded")
    expect(page.locator("table.headers")).to_contain_text(XSS)
    shot(page, "5-request")
    curl = page.input_value("#curl")
    subprocess.run(["bash", "-c", curl], check=True, capture_output=True)
    log = api("GET", f"/ingest/api/v1/source/{src_id}/log")["data"]
    assert len(log) == 3, log
    assert log[0]["payloadBase64"] if "payloadBase64" in log[0] else log[0]["payload_base64"]
    newest = log[0].get("payload_base64") or log[0].get("payloadBase64")
    assert base64.b64decode(newest) == body, "copy as curl must send the same bytes"
    assert log[0]["query"] == "from=stripe"
    page.click("button:text('Replay')")
    expect(page.locator(".notice")).to_contain_text("Replayed as message")
    wait_for("the replay at the destination", lambda: [r for r in received if r[0] == "/forwarded" and r[2] == body])

    # 6. The consumer portal, from the official SDK.
    svix.event_type.create(EventTypeIn(name="invoice.paid", description="An invoice was paid."))
    other_app = svix.application.create(ApplicationIn(name="Another customer"))
    other_ep = api("POST", f"/api/v1/app/{other_app.id}/endpoint", {"url": f"{RECEIVER}/other"})
    access = svix.authentication.app_portal_access(app_id, AppPortalAccessIn())
    assert access.url.startswith(f"{URL}/portal/sign-in?token=") and access.token.startswith("hks_")
    portal = browser.new_context(viewport={"width": 390, "height": 844})
    pp = portal.new_page()
    no_dialogs(pp)
    pp.goto(access.url + "&primaryColor=b4236b&darkMode=true")
    pp.wait_for_url(f"{URL}/portal")
    assert "token=" not in pp.url
    expect(pp.locator("table.endpoints")).to_contain_text(f"{RECEIVER}/hook")
    expect(pp.locator("body")).to_have_class(re.compile("dark"))
    late = browser.new_context()
    assert late.new_page().goto(access.url).status == 401, "a portal link signs in once"
    late.close()
    shot(pp, "6-portal-endpoints")
    # Only this application: another's endpoint is not found, the operator UI is closed.
    assert pp.goto(f"{URL}/portal/endpoints/{other_ep['id']}").status == 404
    pp.goto(f"{URL}/ui/apps")
    assert "/ui/sign-in" in pp.url, "a portal session must not open the operator pages"
    # Add an endpoint, send a test event to it.
    pp.goto(f"{URL}/portal")
    if not pp.is_visible("#ep-url"):
        pp.click("text=Add endpoint")
    pp.fill("#ep-url", f"{RECEIVER}/portal")
    pp.fill("#ep-types", "invoice.paid")
    pp.click("button:text('Create')")
    pp.wait_for_url(re.compile(r".*/portal/endpoints/ep_[^/]+$"))
    pp.goto(f"{URL}/portal/event-types")
    expect(pp.locator("#type-invoice\\.paid")).to_contain_text("An invoice was paid.")
    pp.goto(f"{URL}/portal/testing")
    pp.select_option("#ex-endpoint", label=f"{RECEIVER}/portal")
    pp.click("button:text('Send example')")
    pp.wait_for_url(re.compile(r".*/portal/messages/msg_[^/]+$"))
    expect(pp.locator("tr.attempt[data-status='success']")).to_have_count(1, timeout=20_000)
    shot(pp, "6-portal-message")
    # Logout with the portal token as the SDK's bearer token ends the session.
    Svix(access.token, SvixOptions(server_url=URL)).authentication.logout()
    pp.goto(f"{URL}/portal")
    assert "/portal/signed-out" in pp.url
    portal.close()

    # A read-only link: nothing to edit, and its posts are refused.
    ro = svix.authentication.app_portal_access(app_id, AppPortalAccessIn(capabilities=["ViewBase"]))
    rc = browser.new_context()
    rp = rc.new_page()
    no_dialogs(rp)
    rp.goto(ro.url)
    rp.wait_for_url(f"{URL}/portal")
    assert rp.locator("form#add-endpoint").count() == 0
    rp.locator("table.endpoints a").first.click()
    assert rp.locator("form#edit-endpoint").count() == 0
    assert rp.locator("text=Reveal secret").count() == 0
    assert rp.locator("button:text('Delete')").count() == 0
    csrf = json.loads(rp.get_attribute("body", "hx-headers"))["X-CSRF-Token"]
    refused = rp.request.post(
        f"{URL}/portal", form={"_csrf": csrf, "url": f"{RECEIVER}/ro", "description": "", "event_types": ""}
    )
    assert refused.status == 403, refused.status
    forged = rp.request.post(f"{URL}/portal", form={"url": f"{RECEIVER}/ro"})
    assert forged.status == 403, forged.status
    shot(rp, "6-portal-read-only")
    # expire-all ends it.
    svix.authentication.expire_all(app_id, ApplicationTokenExpireIn())
    rp.goto(f"{URL}/portal")
    assert "/portal/signed-out" in rp.url
    rc.close()

    # 7. The data API's screens: a collection and its document, a leaderboard's top,
    # modes, an API key made in the UI (shown once) and revoked.
    api("POST", f"/api/v1/app/{app_id}/collection", {"name": "players"})
    req = urllib.request.Request(
        f"{URL}/api/v1/app/{app_id}/collection/players/document/ada",
        method="PUT",
        data=json.dumps({"ship": "falcon", "note": XSS}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(req).read()
    api("POST", f"/api/v1/app/{app_id}/leaderboard", {"name": "weekly", "policy": "best", "order": "desc", "reset": "weekly"})
    for player, score in [("ada", 4200), ("bob", 3100)]:
        api("POST", f"/api/v1/app/{app_id}/leaderboard/weekly/score/{player}", {"score": score})
    api("POST", f"/api/v1/app/{app_id}/mode", {"name": "top", "method": "GET", "operation": "leaderboard.top", "target": "weekly"})
    page.goto(f"{URL}/ui/apps/{app_id}")
    page.click("text=Data API")
    page.wait_for_url(f"{URL}/ui/apps/{app_id}/data")
    expect(page.locator("body")).to_contain_text("leaderboard.top")
    page.fill("#key-name", "game client")
    page.click("button:text('Create key')")
    key = page.input_value("#new-key")
    assert key.startswith("hkd_"), key
    top = urllib.request.urlopen(
        urllib.request.Request(f"{URL}/h/{ORG}/{app_id}/top", headers={"Authorization": f"Bearer {key}"})
    )
    assert top.status == 200, top.status
    page.goto(f"{URL}/ui/apps/{app_id}/data")
    assert page.locator("#new-key").count() == 0, "a key is shown once"
    shot(page, "7-data")
    page.click("button:text('Revoke')")
    expect(page.locator("table.keys")).to_contain_text("revoked")
    try:
        urllib.request.urlopen(
            urllib.request.Request(f"{URL}/h/{ORG}/{app_id}/top", headers={"Authorization": f"Bearer {key}"})
        )
        raise AssertionError("a revoked key still works")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    page.click("text=players")
    page.click("text=ada")
    expect(page.locator("#document")).to_contain_text("falcon")
    page.goto(f"{URL}/ui/apps/{app_id}/data/leaderboards/weekly")
    expect(page.locator("table.scores tbody tr").first).to_contain_text("4200")

    # 8. Flows: a manual flow run through the API, its steps in the UI, run again.
    flow = api("POST", "/api/v1/flow", {
        "name": "greet",
        "trigger": {"type": "manual"},
        "steps": [{"name": "announce", "type": "message.publish", "app": app_id,
                   "eventType": "invoice.paid", "payload": {"who": "{{ trigger.who }}"}}],
    })
    run = api("POST", f"/api/v1/flow/{flow['id']}/run", {"input": {"who": "ada"}})
    wait_for("the run to end", lambda: api("GET", f"/api/v1/flow-run/{run['id']}")["status"] == "succeeded")
    page.goto(f"{URL}/ui/flows")
    page.click("text=greet")
    page.locator("table.runs a").first.click()
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("section.step")).to_contain_text("announce")
    shot(page, "8-flow-run")
    page.click("button:text('Run again')")
    wait_for("the re-run to end", lambda: api("GET", f"/api/v1/flow-run/{run['id']}")["status"] == "succeeded")

    # 9. CSRF on the operator side too, and sign-out.
    assert page.request.post(f"{URL}/ui/apps", form={"name": "forged"}).status == 403
    assert page.request.post(f"{URL}/ui/apps", form={"name": "x", "_csrf": "0" * 64}).status == 403
    page.goto(f"{URL}/ui")
    page.click("text=Sign out")
    page.wait_for_url(f"{URL}/ui/sign-in")
    page.goto(f"{URL}/ui/apps")
    assert "/ui/sign-in" in page.url
    # An API token pasted on the sign-in page signs in too.
    page.fill("#token", TOKEN)
    page.click("button:text('Sign in')")
    page.wait_for_url(f"{URL}/ui")
    page.goto(f"{URL}/ui")
    shot(page, "9-overview")
    # A narrow screen still reads.
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(msg_url)
    shot(page, "9-message-375px")
    operator.close()
    browser.close()

print("web UI checks passed; screenshots:")
for s in shots:
    print("  " + s)
