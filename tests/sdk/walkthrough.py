"""The README's Python walkthrough, run against a live hookd by .ci/run.

Usage: HOOKD_URL=http://127.0.0.1:8071 HOOKD_TOKEN=hk_... python3 walkthrough.py
Exits non-zero on the first thing that does not behave as the README says.
"""

import json
import os
import urllib.request
import uuid
import warnings

from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointSecretRotateIn,
    EndpointTransformationIn,
    EndpointTransformationPatch,
    EndpointUpsertIn,
    EventTypeIn,
    RecoverIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

svix = Svix(os.environ["HOOKD_TOKEN"], SvixOptions(server_url=os.environ["HOOKD_URL"]))
suffix = uuid.uuid4().hex[:8]

app = svix.application.create(ApplicationIn(name="My shop", uid=f"shop-{suffix}"))
assert app.id.startswith("app_"), app
assert svix.application.get(f"shop-{suffix}").id == app.id

event_type = svix.event_type.create(
    EventTypeIn(name=f"invoice.paid.{suffix}", description="An invoice was paid")
)
assert event_type.name == f"invoice.paid.{suffix}"

endpoint = svix.endpoint.create(
    app.id,
    EndpointIn(
        url="https://example.com/webhooks",
        event_types=[event_type.name],
        uid=f"main-{suffix}",
    ),
)
assert endpoint.id.startswith("ep_"), endpoint
assert list(endpoint.event_types) == [event_type.name], endpoint
secret = svix.endpoint.get_secret(app.id, endpoint.id).key
assert secret.startswith("whsec_"), secret

svix.endpoint.rotate_secret(app.id, endpoint.id, EndpointSecretRotateIn())
assert svix.endpoint.get_secret(app.id, endpoint.id).key != secret

listed = svix.application.list()
assert any(a.id == app.id for a in listed.data), listed

try:
    svix.application.create(ApplicationIn(name="again", uid=f"shop-{suffix}"))
    raise SystemExit("a duplicate uid was accepted")
except HttpError as e:
    assert e.status_code == 409, e


# docs/filters.md: a payload filter through the SDK's model, with extra fields allowed.
class EndpointInWithFilter(EndpointIn):
    model_config = {**EndpointIn.model_config, "extra": "allow"}


big = {"body": {"amount": {"$gte": 10000}}}
filtered = svix.endpoint.create(
    app.id, EndpointInWithFilter(url="https://example.com/big", filter=big)
)


def raw_endpoint(ep_id):
    req = urllib.request.Request(
        f"{os.environ['HOOKD_URL']}/api/v1/app/{app.id}/endpoint/{ep_id}",
        headers={"Authorization": f"Bearer {os.environ['HOOKD_TOKEN']}"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


assert raw_endpoint(filtered.id)["filter"] == big, raw_endpoint(filtered.id)
# The SDK's upsert cannot send it, and keeps it.
svix.endpoint.upsert(
    app.id, filtered.id, EndpointUpsertIn(url="https://example.com/big", description="big")
)
assert raw_endpoint(filtered.id)["filter"] == big, raw_endpoint(filtered.id)

# docs/transformations.md: set, read back and switch off a transformation.
code = "function handler(webhook) { webhook.payload.via = webhook.variables.via; return webhook }"
svix.endpoint.transformation.patch(
    app.id,
    endpoint.id,
    EndpointTransformationPatch(code=code, enabled=True, variables={"via": "python"}),
)
got = svix.endpoint.transformation.get(app.id, endpoint.id)
assert got.code == code and got.enabled and got.variables == {"via": "python"}, got
assert got.updated_at is not None, got
# The SDK's older (deprecated) call works too.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    svix.endpoint.transformation_partial_update(
        app.id, endpoint.id, EndpointTransformationIn(enabled=False)
    )
got = svix.endpoint.transformation.get(app.id, endpoint.id)
assert got.code == code and not got.enabled, got
try:
    svix.endpoint.transformation.patch(
        app.id, endpoint.id, EndpointTransformationPatch(code="function handler( {")
    )
    raise SystemExit("code that does not parse was saved")
except HTTPValidationError as e:
    assert e.status_code == 422, e
    assert e.detail[0].loc == ["body", "code"], e

# Long operations answer a background task the SDK polls and lists.
import datetime
import time

from svix.api import AppUsageStatsIn, ReplayIn

since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
tasks = [
    svix.endpoint.replay_missing(app.id, endpoint.id, ReplayIn(since=since)),
    svix.endpoint.recover(app.id, endpoint.id, RecoverIn(since=since)),
    svix.statistics.aggregate_app_stats(AppUsageStatsIn(since=since, until=since + datetime.timedelta(hours=2))),
    svix.statistics.aggregate_event_types(),
    svix.message.expunge_all_contents(app.id),
]
for task in tasks:
    for _ in range(100):
        got = svix.background_task.get(task.id)
        if got.status != "running":
            break
        time.sleep(0.1)
    assert got.status == "finished" and got.task == task.task, got
listed = {t.id for t in svix.background_task.list().data}
assert {t.id for t in tasks} <= listed, listed

svix.endpoint.delete(app.id, endpoint.id)
svix.application.delete(app.id)
print("python svix walkthrough: ok")
