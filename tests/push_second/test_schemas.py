"""``ScimClient.schema_attributes``: what an application's ``GET /Schemas`` says its User holds
(used by the full reconcile so that an attribute the application does not keep is never
"repaired" there). The answers are those of real servers, replayed: django-scim2-server's and
scim2-server's ListResponse; a bare JSON array; no /Schemas at all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.config import ScimApp
from syncd.push.scim import USER_SCHEMA, AuthRefused, Options, ScimClient

APP = ScimApp(name="app", base_url="http://127.0.0.1:9/scim/v2", token_file="/dev/null", deactivation_threshold=0,
              token="t", concurrency=1)
FAST = Options(max_attempts=2, backoff_base_s=0.001, backoff_max_s=0.001)


def _client(status: int, body: Any) -> ScimClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/scim/v2/Schemas"
        return httpx.Response(status, json=body)

    return ScimClient(APP, "t", FAST, transport=httpx.MockTransport(handler))


def _schema(urn: str, *names: str) -> dict[str, Any]:
    return {"id": urn, "attributes": [{"name": n, "type": "string"} for n in names]}


def test_a_list_response_names_the_user_attributes() -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 2,
            "Resources": [_schema("urn:ietf:params:scim:schemas:core:2.0:Group", "displayName", "members"),
                          _schema(USER_SCHEMA, "userName", "name", "emails", "active", "externalId")]}
    with _client(200, body) as c:
        assert c.schema_attributes(USER_SCHEMA) == {"username", "name", "emails", "active", "externalid"}


def test_a_bare_array_is_read_too() -> None:
    with _client(200, [_schema(USER_SCHEMA, "userName", "displayName")]) as c:
        assert c.schema_attributes(USER_SCHEMA) == {"username", "displayname"}


@pytest.mark.parametrize(("status", "body"), [
    (404, {"detail": "not found"}), (501, {"detail": "not implemented"}), (200, {"Resources": []}),
    (200, {"Resources": [{"id": USER_SCHEMA}]}), (200, "nonsense"),
])
def test_no_answer_means_unknown(status: int, body: Any) -> None:
    with _client(status, body) as c:
        assert c.schema_attributes(USER_SCHEMA) is None


def test_a_refused_token_still_stops_the_application() -> None:
    with _client(401, {"detail": "no"}) as c, pytest.raises(AuthRefused):
        c.schema_attributes(USER_SCHEMA)
