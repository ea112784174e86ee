"""Consent: transitions, history, provenance validation and the suppression it drives."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.consent.service import is_suppressed
from app.core.clock import clock
from app.core.db import transaction
from tests.contacts.helpers import make_contact, put_consent
from tests.fixtures.tenants import Tenant

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def suppressions(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> list[Any]:
    response = await client.get("/v1/suppressions", params=params, headers=tenant.headers)
    assert response.status_code == 200
    data: list[Any] = response.json()["data"]
    return data


async def test_unknown_until_recorded(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant)
    response = await client.get(f"/v1/contacts/{contact_id}/consent", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["contact_id"] == str(contact_id)
    assert [(c["channel"], c["status"], c["changed_at"]) for c in body["channels"]] == [
        ("email", "unknown", None),
        ("sms", "unknown", None),
    ]
    assert body["recent_history"] == []


async def test_transitions_are_current_and_in_history(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(session_factory, tenant)
    first = await put_consent(
        client, tenant, contact_id, "email", status="subscribed", ip="203.0.113.7"
    )
    assert first.status_code == 200, first.text
    email = first.json()["channels"][0]
    assert email == {
        "channel": "email",
        "status": "subscribed",
        "source": "signup_form",
        "ip": "203.0.113.7",
        "changed_at": "2026-11-22T12:00:00Z",
    }
    clock.advance(timedelta(hours=1))
    await put_consent(
        client,
        tenant,
        contact_id,
        "email",
        status="unsubscribed",
        source="footer_link",
        ip="2001:db8::1",
    )
    clock.advance(timedelta(hours=1))
    third = await put_consent(
        client, tenant, contact_id, "sms", status="subscribed", source="sms_keyword"
    )
    body = third.json()
    assert {c["channel"]: c["status"] for c in body["channels"]} == {
        "email": "unsubscribed",
        "sms": "subscribed",
    }
    assert body["channels"][0]["ip"] == "2001:db8::1"
    assert [(h["channel"], h["status"], h["source"]) for h in body["recent_history"]] == [
        ("sms", "subscribed", "sms_keyword"),
        ("email", "unsubscribed", "footer_link"),
        ("email", "subscribed", "signup_form"),
    ]

    history = await client.get(
        f"/v1/contacts/{contact_id}/consent/history",
        params={"channel": "email", "limit": 1},
        headers=tenant.headers,
    )
    page = history.json()
    assert [h["status"] for h in page["data"]] == ["unsubscribed"]
    rest = await client.get(
        f"/v1/contacts/{contact_id}/consent/history",
        params={"channel": "email", "cursor": page["next_cursor"]},
        headers=tenant.headers,
    )
    assert [h["status"] for h in rest.json()["data"]] == ["subscribed"]
    assert rest.json()["next_cursor"] is None


async def test_backdated_change_goes_to_history_but_not_current(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(session_factory, tenant)
    await put_consent(client, tenant, contact_id, "email", status="subscribed")
    late = await put_consent(
        client,
        tenant,
        contact_id,
        "email",
        status="unsubscribed",
        occurred_at=(T0 - timedelta(days=3)).isoformat(),
    )
    body = late.json()
    assert body["channels"][0]["status"] == "subscribed"
    assert len(body["recent_history"]) == 2
    assert body["recent_history"][0]["changed_at"] == "2026-11-19T12:00:00Z"
    # the stale unsubscribe did not suppress anyone
    assert await suppressions(client, tenant) == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"status": "maybe", "source": "x"}, "/status"),
        ({"status": "subscribed"}, "/source"),
        ({"status": "subscribed", "source": ""}, "/source"),
        ({"status": "subscribed", "source": "x", "ip": "999.1.1.1"}, "/ip"),
        ({"status": "subscribed", "source": "x", "ip": "not-an-ip"}, "/ip"),
        (
            {"status": "subscribed", "source": "x", "occurred_at": "2026-11-22T12:00:00"},
            "/occurred_at",
        ),
        (
            {"status": "subscribed", "source": "x", "occurred_at": "2026-11-22T12:00:01Z"},
            "/occurred_at",
        ),
        ({"status": "subscribed", "source": "x", "extra": 1}, "/extra"),
        ({"status": "subscribed", "source": "nul\x00"}, "/source"),
        ({"status": "subscribed", "source": "x", "ip": "fe80::1%eth0"}, "/ip"),
        (
            {"status": "subscribed", "source": "x", "occurred_at": "0001-01-01T00:00:00+01:00"},
            "/occurred_at",
        ),
    ],
)
async def test_provenance_is_validated(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    pointer: str,
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(session_factory, tenant)
    response = await client.put(
        f"/v1/contacts/{contact_id}/consent/email", json=body, headers=tenant.headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert pointer in [e["pointer"] for e in response.json()["errors"]]
    history = await client.get(f"/v1/contacts/{contact_id}/consent", headers=tenant.headers)
    assert history.json()["recent_history"] == []


async def test_unknown_channel_and_contact(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant)
    bad_channel = await put_consent(client, tenant, contact_id, "pigeon", status="subscribed")
    assert bad_channel.status_code == 422
    assert bad_channel.json()["errors"][0]["location"] == "path"
    missing = await put_consent(client, tenant, uuid.uuid4(), "email", status="subscribed")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_unsubscribe_suppresses_and_explicit_resubscribe_lifts(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(
        session_factory, tenant, email="ana@example.com", phone="+14155550123"
    )
    await put_consent(client, tenant, contact_id, "email", status="unsubscribed", source="footer")
    entries = await suppressions(client, tenant)
    assert [(e["channel"], e["reason"], e["source"]) for e in entries] == [
        ("email", "unsubscribed", "footer")
    ]
    async with transaction(session_factory) as session:
        assert await is_suppressed(session, tenant.workspace_id, "email", " ANA@example.com ")
        assert not await is_suppressed(session, tenant.workspace_id, "sms", "+14155550123")

    # unsubscribing twice keeps one entry
    clock.advance(timedelta(minutes=1))
    await put_consent(client, tenant, contact_id, "email", status="unsubscribed")
    assert len(await suppressions(client, tenant)) == 1

    # sms unsubscribe suppresses the phone number
    await put_consent(client, tenant, contact_id, "sms", status="unsubscribed")
    assert {e["channel"] for e in await suppressions(client, tenant)} == {"email", "sms"}

    # `unknown` lifts nothing; `subscribed` lifts the unsubscribe on that channel only
    clock.advance(timedelta(minutes=1))
    await put_consent(client, tenant, contact_id, "email", status="unknown")
    assert len(await suppressions(client, tenant)) == 2
    await put_consent(
        client, tenant, contact_id, "email", status="subscribed", source="double_opt_in"
    )
    assert [e["channel"] for e in await suppressions(client, tenant)] == ["sms"]


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint", "manual"])
async def test_resubscribe_never_lifts_other_reasons(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    reason: str,
) -> None:
    contact_id = await make_contact(session_factory, tenant, email="bo@example.com")
    created = await client.post(
        "/v1/suppressions",
        json={"channel": "email", "address": "bo@example.com", "reason": reason},
        headers=tenant.headers,
    )
    assert created.status_code == 201
    await put_consent(client, tenant, contact_id, "email", status="unsubscribed")
    await put_consent(client, tenant, contact_id, "email", status="subscribed")
    assert [e["reason"] for e in await suppressions(client, tenant)] == [reason]


async def test_contact_without_address_changes_consent_without_suppression(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant, email=None, external_id="crm-1")
    response = await put_consent(client, tenant, contact_id, "sms", status="unsubscribed")
    assert response.status_code == 200
    assert await suppressions(client, tenant) == []


async def test_read_scope_cannot_change_consent(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    from tests.fixtures.tenants import make_key

    token = await make_key(session_factory, tenant, ["contacts:read"])
    contact_id = await make_contact(session_factory, tenant)
    headers = {"Authorization": f"Bearer {token}"}
    denied = await client.put(
        f"/v1/contacts/{contact_id}/consent/email",
        json={"status": "subscribed", "source": "x"},
        headers=headers,
    )
    assert denied.status_code == 403
    allowed = await client.get(f"/v1/contacts/{contact_id}/consent", headers=headers)
    assert allowed.status_code == 200


async def test_concurrent_changes_keep_full_history_and_latest_wins(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(session_factory, tenant, email="race@example.com")
    changes = [
        {
            "status": "unsubscribed" if n % 2 else "subscribed",
            "source": f"s{n}",
            "occurred_at": (T0 - timedelta(minutes=n)).isoformat(),
        }
        for n in range(10)
    ]
    responses = await asyncio.gather(
        *(put_consent(client, tenant, contact_id, "email", **change) for change in changes)
    )
    assert {response.status_code for response in responses} == {200}
    body = (await client.get(f"/v1/contacts/{contact_id}/consent", headers=tenant.headers)).json()
    # the change that happened last (n=0, subscribed) is current, whatever the arrival order
    assert (body["channels"][0]["status"], body["channels"][0]["source"]) == ("subscribed", "s0")
    history = await client.get(
        f"/v1/contacts/{contact_id}/consent/history", params={"limit": 50}, headers=tenant.headers
    )
    assert sorted(h["source"] for h in history.json()["data"]) == sorted(f"s{n}" for n in range(10))
    # the latest state is subscribed, so no unsubscribe suppression may remain
    assert await suppressions(client, tenant) == []
