"""`hookd listen` checked with the providers' own libraries: a request signed by the
`stripe` library reaches a local receiver through the real CLI and verifies there with
`stripe.Webhook.construct_event`, byte for byte; an application session's delivery
verifies with the `standardwebhooks` library and the secret the CLI printed.

Run by tests/sdk/run.sh (HOOKD_URL, HOOKD_TOKEN and SDK_HOOKD_BIN set)."""

import http.server
import json
import os
import subprocess
import threading
import time
import urllib.request

import standardwebhooks
import stripe

base = os.environ["HOOKD_URL"]
token = os.environ["HOOKD_TOKEN"]
hookd = os.environ["SDK_HOOKD_BIN"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(202)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


local = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=local.serve_forever, daemon=True).start()
local_url = f"http://127.0.0.1:{local.server_address[1]}"


def listen(*args):
    env = dict(os.environ, HOOKD_SERVER=base)
    p = subprocess.Popen(
        [hookd, "listen", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    said = []
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stderr.readline()
        said.append(line)
        if "connected" in line:
            return p, "".join(said)
    p.kill()
    raise SystemExit(f"hookd listen did not connect: {''.join(said)}")


def wait_for(n):
    deadline = time.time() + 20
    while len(received) < n:
        if time.time() > deadline:
            raise SystemExit(f"{len(received)} of {n} requests reached the local receiver")
        time.sleep(0.05)


# A Stripe source, followed from "a laptop".
secret = "whsec_cli_listen_stripe"
source = call("POST", "/ingest/api/v1/source",
              {"name": "Stripe", "uid": "stripe-cli", "type": "stripe", "config": {"secret": secret}})
p, _ = listen("--source", "stripe-cli", "--forward-to", f"{local_url}/stripe", "--session", "py-stripe")
payload = '{"id": "evt_cli",  "object": "event", "type": "charge.succeeded", "data": {"object": {"amount": 1250}}}'
sig = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=int(time.time()))
req = urllib.request.Request(source["ingestUrl"] + "/events", data=payload.encode(), method="POST")
req.add_header("Stripe-Signature", sig)
req.add_header("Content-Type", "application/json")
with urllib.request.urlopen(req) as r:
    assert r.status == 200, r.status
wait_for(1)
path, headers, body = received[0]
assert path == "/stripe/events", path
assert body == payload.encode(), "byte for byte"
event = stripe.Webhook.construct_event(body, headers["stripe-signature"], secret)
assert event["id"] == "evt_cli"
p.terminate()
assert p.wait(20) == 0
print("hookd listen --source: a stripe-signed request verified with stripe.Webhook at the local receiver")

# An application's messages, signed for the session's temporary endpoint.
call("POST", "/api/v1/app", {"name": "CLI", "uid": "cli-app"})
call("POST", "/api/v1/event-type", {"name": "cli.tested", "description": "cli"})
p, said = listen("--app", "cli-app", "--event-types", "cli.tested",
                 "--forward-to", f"{local_url}/app", "--session", "py-app")
app_secret = next(w for w in said.split() if w.startswith("whsec_"))
msg = call("POST", "/api/v1/app/cli-app/msg", {"eventType": "cli.tested", "payload": {"ok": True}})
wait_for(2)
path, headers, body = received[1]
assert path == "/app", path
verified = standardwebhooks.Webhook(app_secret).verify(body, headers)
assert verified == {"ok": True}, verified
assert headers["webhook-id"] == msg["id"]
p.terminate()
assert p.wait(20) == 0
print("hookd listen --app: the message verified with standardwebhooks and the session's secret")
