"""Drives a live hookd with a client generated from its own OpenAPI document
(openapi-python-client), run by tests/openapi/check.sh.

Usage: python3 client_call.py GENERATED_DIR (with HOOKD_URL and HOOKD_TOKEN set).
"""

import os
import sys
import uuid

sys.path.insert(0, sys.argv[1])

from hookd_client import AuthenticatedClient, Client  # noqa: E402
from hookd_client.api.application import v1_application_create, v1_application_get  # noqa: E402
from hookd_client.api.event_type import v1_event_type_create, v1_event_type_list  # noqa: E402
from hookd_client.api.health import v1_health_get  # noqa: E402
from hookd_client.models import ApplicationIn, ApplicationOut, EventTypeIn, HttpErrorOut  # noqa: E402

url, token = os.environ["HOOKD_URL"], os.environ["HOOKD_TOKEN"]
client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)

assert v1_health_get.sync_detailed(client=Client(base_url=url)).status_code == 204
uid = f"gen-{uuid.uuid4().hex[:8]}"
app = v1_application_create.sync(client=client, body=ApplicationIn(name="generated client", uid=uid))
assert isinstance(app, ApplicationOut) and app.id.startswith("app_"), app
got = v1_application_get.sync(client=client, app_id=uid)
assert isinstance(got, ApplicationOut) and got.id == app.id, got
missing = v1_application_get.sync(client=client, app_id="app_doesnotexist")
assert isinstance(missing, HttpErrorOut) and missing.code == "not_found", missing
v1_event_type_create.sync(client=client, body=EventTypeIn(name=f"{uid}.made", description="made"))
names = [e.name for e in v1_event_type_list.sync(client=client).data]
assert f"{uid}.made" in names, names
print("generated client: create, get, 404 and list answered as documented")
