"""Ingest from outside, run against a live hookd by .ci/run (tests/sdk/run.sh).

Requests are signed by the providers' own libraries (stripe, slack_sdk, twilio,
standardwebhooks, svix) at the current time and posted to source URLs made through
the API; each must be accepted and forwarded byte for byte to a local receiver, where
the forwarded request verifies with `standardwebhooks` under the destination's
secret; a tampered copy of each must be refused with 401 and never forwarded.

Usage: HOOKD_URL=... HOOKD_TOKEN=... python3 ingest.py (hookd must be allowed to
deliver to 127.0.0.0/8).
"""

import datetime
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import slack_sdk.signature
import standardwebhooks
import stripe
import svix
from svix.api.ingest_source import IngestSourceListOptions
import svix.webhooks
import twilio.request_validator

URL = os.environ["HOOKD_URL"]
TOKEN = os.environ["HOOKD_TOKEN"]
received = {}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.setdefault(self.path, []).append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
receiver_url = f"http://127.0.0.1:{receiver.server_port}"


def api(method, path, body=None):
    req = urllib.request.Request(URL + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as res:
        text = res.read()
        return json.loads(text) if text else None


def post(url, body: bytes, headers):
    req = urllib.request.Request(url, method="POST", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code


def source(name, type_, config):
    src = api("POST", "/ingest/api/v1/source", {"name": name, "type": type_, "config": config})
    ep = api("POST", f"/ingest/api/v1/source/{src['id']}/endpoint", {"url": f"{receiver_url}/{name}"})
    secret = api("GET", f"/ingest/api/v1/source/{src['id']}/endpoint/{ep['id']}/secret")["key"]
    return src["ingestUrl"], secret


now = int(time.time())
body = json.dumps({"id": "evt_live", "type": "demo", "amount": 4200, "note": "caf\u00e9"}).encode()
cases = []  # (name, url, body, headers)

# Stripe
secret = "whsec_live_stripe_secret"
url, _ = source("stripe", "stripe", {"secret": secret})
sig = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=now)
cases.append(("stripe", url, body, {"Stripe-Signature": sig, "Content-Type": "application/json"}))

# Slack
secret = "8f742231b10e8888abcd99yyyzzz85a5"
url, _ = source("slack", "slack", {"secret": secret})
form = b"token=x&team_id=T1&command=%2Fweather&text=94070"
sig = slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=str(now), body=form)
cases.append(("slack", url, form, {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sig,
                                   "Content-Type": "application/x-www-form-urlencoded"}))

# Twilio, form body and JSON body
token = "12345abcdef67890fedcba0987654321"
validator = twilio.request_validator.RequestValidator(token)
url, _ = source("twilio", "twilio", {"authToken": token})
params = {"CallSid": "CA1234567890ABCDE", "From": "+12349013030", "To": "+18005551212"}
form = urllib.parse.urlencode(params).encode()
cases.append(("twilio", url, form, {"X-Twilio-Signature": validator.compute_signature(url, params),
                                    "Content-Type": "application/x-www-form-urlencoded"}))
json_url = url + "?bodySHA256=" + validator.compute_hash(body.decode())
cases.append(("twilio", json_url, body, {"X-Twilio-Signature": validator.compute_signature(json_url, {}),
                                         "Content-Type": "application/json"}))

# Standard Webhooks and Svix
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ts = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)
url, _ = source("standard", "standard-webhooks", {"secret": secret})
sig = standardwebhooks.Webhook(secret).sign("msg_live_1", ts, body.decode())
cases.append(("standard", url, body, {"webhook-id": "msg_live_1", "webhook-timestamp": str(now),
                                      "webhook-signature": sig, "Content-Type": "application/json"}))
url, _ = source("svix", "svix", {"secret": secret})
sig = svix.webhooks.Webhook(secret).sign("msg_live_2", ts, body.decode())
cases.append(("svix", url, body, {"svix-id": "msg_live_2", "svix-timestamp": str(now),
                                  "svix-signature": sig, "Content-Type": "application/json"}))

for name, url, data, headers in cases:
    status = post(url, data, headers)
    assert status == 200, f"{name}: a request signed by the official library got {status}"
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    status = post(url, tampered, headers)
    assert status == 401, f"{name}: a tampered request got {status}"

expected = {}
for name, _, data, _ in cases:
    expected.setdefault(f"/{name}", []).append(data)
deadline = time.time() + 20
while time.time() < deadline and any(len(received.get(p, [])) < len(v) for p, v in expected.items()):
    time.sleep(0.1)
for path, bodies in expected.items():
    got = received.get(path, [])
    assert sorted(b for _, b in got) == sorted(bodies), f"{path}: forwarded {len(got)} of {len(bodies)}, or altered"
time.sleep(0.5)
assert all(len(received[p]) == len(v) for p, v in expected.items()), "a tampered request was forwarded"

# The forwarded copies verify under each destination's secret.
for name in ["stripe", "standard"]:
    src = [s for s in api("GET", "/ingest/api/v1/source")["data"] if s["name"] == name][0]
    ep = api("GET", f"/ingest/api/v1/source/{src['id']}/endpoint")["data"][0]
    key = api("GET", f"/ingest/api/v1/source/{src['id']}/endpoint/{ep['id']}/secret")["key"]
    headers, data = received[f"/{name}"][0]
    lower = {k.lower(): v for k, v in headers.items()}
    standardwebhooks.Webhook(key).verify(data, lower)
print(f"ingest: {len(cases)} provider-signed requests accepted and forwarded, tampered copies refused")

# Sources of hookd-only types (twilio, standard-webhooks above; paddle, linear, square
# here) answer as generic-webhook with the preset under options.verify, so the
# official SDK lists and gets every source without error.
for type_, config in [("paddle", {"secret": "p"}), ("linear", {"secret": "l"}),
                      ("square", {"signatureKey": "k"})]:
    api("POST", "/ingest/api/v1/source", {"name": f"sdk-{type_}", "type": type_, "config": config})
client = svix.Svix(TOKEN, svix.SvixOptions(server_url=URL))
sources, iterator = [], None
while True:
    page = client.ingest.source.list(IngestSourceListOptions(limit=3, iterator=iterator))
    sources.extend(page.data)
    if page.done:
        break
    iterator = page.iterator
raw = api("GET", "/ingest/api/v1/source?limit=250")["data"]
assert len(sources) == len(raw), f"the SDK listed {len(sources)} of {len(raw)} sources"
for s in sources:
    assert client.ingest.source.get(s.id).id == s.id
verified = {s["options"]["verify"]["type"] for s in raw if "verify" in s.get("options", {})}
assert {"twilio", "standard-webhooks", "paddle", "linear", "square"} <= verified, verified
print(f"ingest: the python SDK lists and gets all {len(sources)} sources")
