"""`POST /v1/inbound/{provider}` authentication: both signature schemes accept every event
type with real signatures; tampered, mis-signed, stale or unsigned posts are 401 problems
that say which check failed (and leak nothing); unknown providers 404; malformed bodies
400 / 422."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import httpx
import pytest

from app.config import Settings
from app.core.clock import clock
from tests.fixtures.factories import Factory
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import Tenant
from tests.inbound.helpers import (
    GENERIC,
    GENERIC_SECRET,
    NOW,
    SCHEMES,
    STANDARD,
    STANDARD_SECRET,
    contact_events,
    encode,
    generic_headers,
    message,
    post,
    post_ok,
    send_email,
    signed,
    standard_headers,
)

pytestmark = pytest.mark.usefixtures("providers")


@pytest.mark.parametrize("provider", SCHEMES)
async def test_every_event_type_is_accepted_with_a_real_signature(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: Factory,
    provider: str,
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    events = [
        {"type": "delivered", "message_id": sent.message_id, "event_id": "e1"},
        {"type": "opened", "message_id": sent.message_id, "event_id": "e2"},
        {"type": "clicked", "message_id": sent.message_id, "url": "https://x.example/a"},
        {"type": "replied", "message_id": sent.message_id, "event_id": "e4"},
        {"type": "bounced", "message_id": sent.message_id, "bounce_type": "soft"},
        {"type": "complained", "message_id": sent.message_id, "event_id": "e6"},
    ]
    for event in events:
        clock.advance(timedelta(minutes=1))
        answer = await post_ok(client, provider, event)
        assert answer["results"] == [{"index": 0, "status": "accepted"}]
        assert answer["accepted"] == 1

    types = sorted(e["type"] for e in await contact_events(client, tenant, sent.contact_id))
    assert types == [
        "email.bounced",
        "email.clicked",
        "email.complained",
        "email.delivered",
        "email.opened",
        "email.replied",
    ]
    row = await message(session_factory, sent.message_id)
    assert row.status == "delivered"  # a soft bounce does not settle the message
    assert row.delivered_at == NOW + timedelta(minutes=1)
    assert row.first_opened_at == NOW + timedelta(minutes=2)
    assert row.first_clicked_at == NOW + timedelta(minutes=3)
    assert row.replied_at == NOW + timedelta(minutes=4)
    assert row.bounced_at is None


async def test_standard_webhooks_rotation_any_signature_may_match(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze(NOW)
    sent = await send_email(client, tenant, settings, session_factory)
    body = encode({"type": "delivered", "message_id": sent.message_id})
    headers = standard_headers(body, webhook_id="msg_rot")
    old = standard_headers(
        body, webhook_id="msg_rot", secret="whsec_" + base64.b64encode(b"x" * 24).decode()
    )
    headers["webhook-signature"] = f"{old['webhook-signature']} {headers['webhook-signature']}"
    response = await client.post(f"/v1/inbound/{STANDARD}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def _body() -> bytes:
    return encode({"type": "delivered", "message_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"})


@pytest.mark.parametrize("provider", SCHEMES)
async def test_tampered_body_is_refused(client: httpx.AsyncClient, provider: str) -> None:
    clock.freeze(NOW)
    body = _body()
    headers = signed(provider, body)
    tampered = body.replace(b"delivered", b"complained")
    response = await client.post(f"/v1/inbound/{provider}", content=tampered, headers=headers)
    problem = assert_problem(response, 401, "unauthorized")
    assert "matches the body" in str(problem["detail"])
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("provider", SCHEMES)
async def test_wrong_secret_is_refused_without_leaking_the_expected_value(
    client: httpx.AsyncClient, provider: str
) -> None:
    clock.freeze(NOW)
    body = _body()
    if provider == STANDARD:
        wrong = "whsec_" + base64.b64encode(b"not-the-secret-at-all-0123").decode()
        headers = signed(provider, body, secret=wrong)
        timestamp = headers["webhook-timestamp"]
        expected = standard_headers(body, webhook_id=headers["webhook-id"])["webhook-signature"]
        expected = expected.removeprefix("v1,")
    else:
        headers = signed(provider, body, secret="wrong")
        timestamp = headers["X-Herald-Timestamp"]
        expected = hmac.new(
            GENERIC_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
    response = await client.post(f"/v1/inbound/{provider}", content=body, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert expected not in response.text
    assert GENERIC_SECRET not in response.text
    assert STANDARD_SECRET not in response.text


@pytest.mark.parametrize("provider", SCHEMES)
@pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(minutes=10)])
async def test_stale_or_future_timestamp_is_refused(
    client: httpx.AsyncClient, provider: str, skew: timedelta
) -> None:
    clock.freeze(NOW)
    body = _body()
    headers = signed(provider, body, at=NOW + skew)  # correctly signed, wrong time
    response = await client.post(f"/v1/inbound/{provider}", content=body, headers=headers)
    problem = assert_problem(response, 401, "unauthorized")
    assert "seconds away from the server's clock" in str(problem["detail"])


async def test_timestamp_tolerance_is_per_provider(client: httpx.AsyncClient) -> None:
    clock.freeze(NOW)
    body = _body()
    # The generic provider allows 120 s, Standard Webhooks the default 300 s.
    late = signed(GENERIC, body, at=NOW - timedelta(seconds=150))
    response = await client.post(f"/v1/inbound/{GENERIC}", content=body, headers=late)
    assert_problem(response, 401, "unauthorized")
    late = signed(STANDARD, body, at=NOW - timedelta(seconds=150))
    response = await client.post(f"/v1/inbound/{STANDARD}", content=body, headers=late)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "unknown_message"


@pytest.mark.parametrize(
    ("provider", "header"),
    [
        (STANDARD, "webhook-id"),
        (STANDARD, "webhook-timestamp"),
        (STANDARD, "webhook-signature"),
        (GENERIC, "X-Herald-Timestamp"),
        (GENERIC, "X-Herald-Signature"),
    ],
)
async def test_missing_header_is_named(
    client: httpx.AsyncClient, provider: str, header: str
) -> None:
    clock.freeze(NOW)
    body = _body()
    headers = signed(provider, body)
    del headers[header]
    response = await client.post(f"/v1/inbound/{provider}", content=body, headers=headers)
    problem = assert_problem(response, 401, "unauthorized")
    assert header.lower() in str(problem["detail"]).lower()


@pytest.mark.parametrize(
    ("provider", "header", "value", "says"),
    [
        (STANDARD, "webhook-timestamp", "yesterday", "not a Unix time"),
        (STANDARD, "webhook-timestamp", "1" * 40, "not a Unix time"),
        (STANDARD, "webhook-signature", "v2,abc", "no `v1,` signature"),
        (STANDARD, "webhook-signature", "v1,\u00e9\u00e9", "matches the body"),
        (STANDARD, "webhook-id", "x" * 300, "too long"),
        (GENERIC, "X-Herald-Signature", "md5=abc", "no `sha256=` signature"),
        (GENERIC, "X-Herald-Timestamp", "-5", "not a Unix time"),
    ],
)
async def test_malformed_headers_are_401(
    client: httpx.AsyncClient, provider: str, header: str, value: str, says: str
) -> None:
    clock.freeze(NOW)
    body = _body()
    headers = signed(provider, body)
    headers[header] = value
    response = await client.post(
        f"/v1/inbound/{provider}",
        content=body,
        headers={k.encode(): v.encode() for k, v in headers.items()},
    )
    problem = assert_problem(response, 401, "unauthorized")
    assert says in str(problem["detail"])


async def test_uppercase_hex_signature_is_accepted(client: httpx.AsyncClient) -> None:
    clock.freeze(NOW)
    body = _body()
    headers = generic_headers(body)
    headers["X-Herald-Signature"] = (
        headers["X-Herald-Signature"].upper().replace("SHA256", "sha256")
    )
    response = await client.post(f"/v1/inbound/{GENERIC}", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def test_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    clock.freeze(NOW)
    body = _body()
    # Correctly signed for a configured provider, posted to a name that is not configured.
    response = await client.post("/v1/inbound/nobody", content=body, headers=signed(GENERIC, body))
    assert_problem(response, 404, "not-found")
    response = await client.post(
        "/v1/inbound/bad%20name", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation-error")


async def test_no_provider_configured_is_404(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(settings.inbound, "providers", {})
    body = _body()
    response = await client.post(
        f"/v1/inbound/{GENERIC}", content=body, headers=signed(GENERIC, body)
    )
    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize("provider", SCHEMES)
@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[1, 2]", 422),
        (b'"delivered"', 422),
        (b'{"events": []}', 422),
        (b'{"events": {"type": "delivered"}}', 422),
        (b'{"events": [], "extra": 1}', 422),
    ],
)
async def test_malformed_body_is_a_problem_after_the_signature(
    client: httpx.AsyncClient, provider: str, body: bytes, status: int
) -> None:
    clock.freeze(NOW)
    response = await client.post(
        f"/v1/inbound/{provider}", content=body, headers=signed_bytes(provider, body)
    )
    assert_problem(response, status, "bad-request" if status == 400 else "validation-error")
    # The same body unsigned is a 401: nothing is parsed before the signature is checked.
    unsigned = await client.post(
        f"/v1/inbound/{provider}", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(unsigned, 401, "unauthorized")


def signed_bytes(provider: str, body: bytes) -> dict[str, str]:
    if provider == GENERIC:
        return {"Content-Type": "application/json", **generic_headers(body)}
    # The reference signer takes text; sign the raw bytes the way it would.
    headers = standard_headers(b"", webhook_id="msg_raw")
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signed_part = f"msg_raw.{headers['webhook-timestamp']}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed_part, hashlib.sha256).digest()).decode()
    return {**headers, "webhook-signature": f"v1,{digest}", "Content-Type": "application/json"}


async def test_too_many_events_is_422(client: httpx.AsyncClient) -> None:
    clock.freeze(NOW)
    item = {"type": "delivered", "message_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b70"}
    response = await post(client, GENERIC, {"events": [item] * 1001})
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["pointer"] == "/events"  # type: ignore[index]
