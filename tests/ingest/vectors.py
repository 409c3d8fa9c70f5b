"""Signed test requests for hookd's ingest presets, made with the providers' own
official libraries where one can sign (PyPI: stripe, slack_sdk, twilio,
standardwebhooks, svix), and by each provider's documented algorithm where the
provider publishes no signing library (Shopify, Zoom, Paddle, Linear, Square).

Writes crates/hookd-core/tests/data/ingest_vectors_pypi.json, which the Rust test
crates/hookd-core/tests/ingest_vectors.rs checks: each vector must be accepted, and
its tampered-body / wrong-secret / stale-timestamp / missing-header variants refused.

    pip install stripe slack_sdk twilio standardwebhooks svix
    python3 tests/ingest/vectors.py
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sys

import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
import twilio.request_validator

NOW = 1_763_900_000  # fixed, so the file is reproducible; the Rust test checks "as of" it
URL = "https://hooks.example.com/in/tok_vectors"
JSON_BODY = '{"id": "evt_1", "type": "demo.event", "data": {"amount": 4200, "note": "caf\u00e9 \u2615"}}'
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "hookd-core", "tests", "data",
                   "ingest_vectors_pypi.json")

vectors = []


def add(name, library, type_, config, headers, body, url=URL, content_type="application/json",
        timestamped=True):
    vectors.append({
        "name": name,
        "library": library,
        "type": type_,
        "config": config,
        "url": url,
        "headers": [["content-type", content_type]] + [[k.lower(), v] for k, v in headers.items()],
        "body": body,
        "now": NOW,
        "timestamped": timestamped,
    })


# Stripe: the official library's own test-header generator.
secret = "whsec_stripe_test_7f3a9c0e1b2d4f6a"
add("stripe", "stripe " + stripe.VERSION, "stripe", {"secret": secret},
    {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(JSON_BODY, secret, timestamp=NOW)},
    JSON_BODY)

# Slack: slack_sdk's SignatureVerifier signs a slash-command form body.
secret = "8f742231b10e8888abcd99yyyzzz85a5"
form = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fweather&text=94070"
sig = slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=str(NOW), body=form)
add("slack", "slack_sdk " + slack_sdk.version.__version__, "slack", {"secret": secret},
    {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": sig}, form,
    content_type="application/x-www-form-urlencoded")

# Twilio: RequestValidator.compute_signature over URL + sorted form parameters ...
token = "12345abcdef67890fedcba0987654321"
validator = twilio.request_validator.RequestValidator(token)
params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
          "From": "+12349013030", "To": "+18005551212"}
import urllib.parse  # noqa: E402

form = urllib.parse.urlencode(params)
url = URL + "?foo=1&bar=2"
add("twilio-form", "twilio " + twilio.__version__, "twilio", {"authToken": token},
    {"X-Twilio-Signature": validator.compute_signature(url, params)}, form, url=url,
    content_type="application/x-www-form-urlencoded", timestamped=False)
# ... and over the URL alone, which carries bodySHA256, for a JSON body.
url = URL + "?bodySHA256=" + validator.compute_hash(JSON_BODY)
add("twilio-json", "twilio " + twilio.__version__, "twilio", {"authToken": token},
    {"X-Twilio-Signature": validator.compute_signature(url, {})}, JSON_BODY, url=url, timestamped=False)

# Standard Webhooks and Svix: their official libraries sign.
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ts = datetime.datetime.fromtimestamp(NOW, tz=datetime.timezone.utc)
sig = standardwebhooks.Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, JSON_BODY)
add("standard-webhooks", "standardwebhooks", "standard-webhooks", {"secret": secret},
    {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": str(NOW), "webhook-signature": sig},
    JSON_BODY)
sig = svix.webhooks.Webhook(secret).sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, JSON_BODY)
add("svix", "svix " + svix.__version__ if hasattr(svix, "__version__") else "svix", "svix", {"secret": secret},
    {"svix-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "svix-timestamp": str(NOW), "svix-signature": sig},
    JSON_BODY)
add("clerk (svix)", "svix", "clerk", {"secret": secret},
    {"svix-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "svix-timestamp": str(NOW), "svix-signature": sig},
    JSON_BODY)


def hm(key, data, algo=hashlib.sha256):
    return hmac.new(key.encode(), data.encode(), algo)


# The rest by the algorithm each provider documents.
secret = "shpss_3f1c0a9e8d7b6a5f4e3d2c1b"
add("shopify", "documented algorithm", "shopify", {"secret": secret},
    {"X-Shopify-Hmac-Sha256": base64.b64encode(hm(secret, JSON_BODY).digest()).decode(),
     "X-Shopify-Topic": "orders/create"}, JSON_BODY, timestamped=False)

secret = "zoom_secret_token_5d8f2a"
add("zoom", "documented algorithm", "zoom", {"secret": secret},
    {"x-zm-request-timestamp": str(NOW),
     "x-zm-signature": "v0=" + hm(secret, f"v0:{NOW}:{JSON_BODY}").hexdigest()}, JSON_BODY)

secret = "pdl_ntfset_01h8x_secret"
add("paddle", "documented algorithm", "paddle", {"secret": secret},
    {"Paddle-Signature": f"ts={NOW};h1=" + hm(secret, f"{NOW}:{JSON_BODY}").hexdigest()}, JSON_BODY)

secret = "lin_wh_5e2c7d"
body = json.dumps({"action": "create", "type": "Issue", "webhookTimestamp": NOW * 1000})
add("linear", "documented algorithm", "linear", {"secret": secret},
    {"Linear-Signature": hm(secret, body).hexdigest()}, body)

key = "sq0wss-signature-key-1"
add("square", "documented algorithm", "square", {"signatureKey": key},
    {"x-square-hmacsha256-signature": base64.b64encode(hm(key, URL + JSON_BODY).digest()).decode()},
    JSON_BODY, timestamped=False)

with open(OUT, "w", encoding="utf-8") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"wrote {len(vectors)} vectors to {os.path.normpath(OUT)}", file=sys.stderr)
