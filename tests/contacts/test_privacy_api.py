"""Privacy requests: export contents, erasure that leaves no PII anywhere, isolation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.consent.addresses import address_hash
from app.contacts.consent.service import is_suppressed, suppressed_addresses
from app.contacts.models import Contact, ContactImport, ContactImportChunk, ContactImportError
from app.contacts.privacy.service import erase_contact
from app.core.clock import clock
from app.core.db import transaction
from app.events.models import Event
from app.segments.models import Segment, SegmentMembership, SegmentMembershipChange
from tests.contacts.helpers import make_contact, put_consent
from tests.fixtures.tenants import Tenant, make_key

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EMAIL = "erin.erased@example.com"
PHONE = "+14155550199"
EXTERNAL_ID = "crm-erin-4242"
IP = "198.51.100.23"
PII = (EMAIL, PHONE, EXTERNAL_ID, IP)


async def seed_person(
    factory: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, tenant: Tenant
) -> tuple[uuid.UUID, uuid.UUID]:
    """A contact with data in every table that can hold something about them."""
    contact_id = await make_contact(
        factory,
        tenant,
        email=EMAIL,
        phone=PHONE,
        external_id=EXTERNAL_ID,
        attributes={"first_name": "Erin", "backup": EMAIL, "plan": "pro"},
        timezone="Europe/Paris",
        locale="fr-FR",
    )
    async with transaction(factory) as session:
        session.add_all(
            [
                Event(
                    workspace_id=tenant.workspace_id,
                    contact_id=contact_id,
                    type="purchase",
                    properties={"revenue": 42.5, "billing_email": EMAIL, "crm": EXTERNAL_ID},
                    revenue=Decimal("42.5"),
                    occurred_at=T0 - timedelta(days=2),
                    received_at=T0 - timedelta(days=2),
                    source="shop",
                    client_event_id=f"order-{EXTERNAL_ID}",
                ),
                Event(
                    workspace_id=tenant.workspace_id,
                    contact_id=contact_id,
                    type="form.submitted",
                    properties={"phone": PHONE},
                    occurred_at=T0 - timedelta(days=1),
                    received_at=T0 - timedelta(days=1),
                ),
            ]
        )
        segment = Segment(
            workspace_id=tenant.workspace_id, name="Pro plan", kind="static", member_count=1
        )
        session.add(segment)
        await session.flush()
        session.add(
            SegmentMembership(
                workspace_id=tenant.workspace_id,
                segment_id=segment.id,
                contact_id=contact_id,
                entered_at=T0 - timedelta(days=1),
            )
        )
        session.add(
            SegmentMembershipChange(
                workspace_id=tenant.workspace_id,
                segment_id=segment.id,
                contact_id=contact_id,
                change="entered",
                occurred_at=T0 - timedelta(days=1),
            )
        )
        run = ContactImport(
            workspace_id=tenant.workspace_id,
            status="completed",
            format="csv",
            size_bytes=10,
            sha256="0" * 64,
        )
        session.add(run)
        await session.flush()
        session.add(
            ContactImportError(
                import_id=run.id, row_number=3, field="email", message=f"{EMAIL.upper()} is taken"
            )
        )
        # the uploaded file, with the address cut by a chunk boundary and in another case
        line = f"email,phone\n{EMAIL.title()},{PHONE}\n".encode()
        session.add_all(
            [
                ContactImportChunk(import_id=run.id, seq=0, data=line[:20]),
                ContactImportChunk(import_id=run.id, seq=1, data=line[20:]),
            ]
        )
        segment_id = segment.id
    ok = await put_consent(client, tenant, contact_id, "email", status="subscribed", ip=IP)
    assert ok.status_code == 200, ok.text
    ok = await put_consent(client, tenant, contact_id, "sms", status="unsubscribed", ip=IP)
    assert ok.status_code == 200, ok.text
    note = await client.post(
        "/v1/suppressions",
        json={"channel": "email", "address": EMAIL, "reason": "complaint", "note": f"{EMAIL} !"},
        headers=tenant.headers,
    )
    assert note.status_code == 201
    # a stored idempotent replay that quotes the address
    check = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [EMAIL]},
        headers={**tenant.headers, "Idempotency-Key": "check-erin"},
    )
    assert check.status_code == 200
    return contact_id, segment_id


async def find_everywhere(session: AsyncSession, needle: str) -> list[str]:
    """Every public column that can hold text (text, varchar, jsonb, arrays, bytea)."""
    columns = (
        await session.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND (data_type IN ('text', 'character varying', "
                "'character', 'jsonb', 'json', 'bytea', 'ARRAY', 'inet'))"
            )
        )
    ).all()
    assert len(columns) > 20  # the catalogue query itself works
    hits: list[str] = []
    for table, column, data_type in columns:
        if data_type == "bytea":
            condition = f"position(convert_to(:needle, 'UTF8') in \"{column}\") > 0"
        else:
            condition = f"lower(\"{column}\"::text) LIKE '%' || lower(:needle) || '%'"
        found = await session.scalar(
            text(f'SELECT count(*) FROM "{table}" WHERE {condition}'),
            {"needle": needle},
        )
        if found:
            hits.append(f"{table}.{column}")
    return hits


async def test_export_has_every_section(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock.freeze(T0)
    contact_id, segment_id = await seed_person(session_factory, client, tenant)
    response = await client.get(f"/v1/contacts/{contact_id}/export", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["format"], body["format_version"]) == ("herald.contact-export", 1)
    assert body["contact_id"] == str(contact_id)
    sections = body["sections"]
    assert set(sections) >= {"contact", "consent", "events", "segments", "suppressions"}
    contact = sections["contact"]
    assert (contact["email"], contact["phone"], contact["external_id"]) == (
        EMAIL,
        PHONE,
        EXTERNAL_ID,
    )
    assert contact["attributes"]["first_name"] == "Erin"
    assert {c["channel"]: c["status"] for c in sections["consent"]["current"]} == {
        "email": "subscribed",
        "sms": "unsubscribed",
    }
    assert [h["ip"] for h in sections["consent"]["history"]] == [IP, IP]
    assert [e["type"] for e in sections["events"]] == ["purchase", "form.submitted"]
    assert sections["events"][0]["properties"]["billing_email"] == EMAIL
    assert Decimal(sections["events"][0]["revenue"]) == Decimal("42.5")
    assert sections["segments"]["memberships"] == [
        {
            "segment_id": str(segment_id),
            "segment_name": "Pro plan",
            "entered_at": "2026-11-21T12:00:00Z",
        }
    ]
    assert [c["change"] for c in sections["segments"]["changes"]] == ["entered"]
    assert sorted((s["channel"], s["reason"]) for s in sections["suppressions"]) == [
        ("email", "complaint"),
        ("sms", "unsubscribed"),
    ]


async def test_erasure_leaves_no_pii_anywhere(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(T0)
    contact_id, segment_id = await seed_person(session_factory, client, tenant)
    bystander = await make_contact(session_factory, tenant, email="bystander@example.com")
    # the same person in another workspace is not touched by this workspace's erasure
    theirs = await make_contact(session_factory, other_tenant, email=EMAIL)
    async with transaction(session_factory) as session:
        assert set(await find_everywhere(session, EMAIL)) >= {
            "contacts.email",
            "contacts.attributes",
            "events.properties",
            "suppressions.note",
            "contact_import_errors.message",
            "idempotency_keys.response_body",
        }
        assert "contact_import_chunks.data" in await find_everywhere(session, PHONE)

    clock.advance(timedelta(minutes=5))
    response = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["already_erased"] is False
    assert body["erased_at"] == "2026-11-22T12:05:00Z"
    assert sorted(s["channel"] for s in body["suppressed"]) == ["email", "sms"]
    assert body["removed"] == {
        "consent_ips_removed": 2,
        "events_scrubbed": 2,
        "segment_memberships_removed": 1,
        "import_errors_scrubbed": 1,
        "stored_responses_forgotten": 1,
        "import_files_forgotten": 1,
        "enrollments_exited": 0,  # sequences: see tests/sequences/engine/test_privacy.py
        "messages_scrubbed": 0,
    }

    async with transaction(session_factory) as session:
        for needle in PII:
            hits = await find_everywhere(session, needle)
            # only the other workspace's own contact remains
            allowed = {"contacts.email"} if needle == EMAIL else set()
            assert set(hits) <= allowed, f"{needle} still in {hits}"
        other = await session.get(Contact, theirs)
        assert other is not None
        assert other.email == EMAIL
        erased = await session.get(Contact, contact_id)
        assert erased is not None
        assert (erased.email, erased.phone, erased.external_id, erased.attributes) == (
            None,
            None,
            None,
            {},
        )
        assert (erased.timezone, erased.locale) == (None, None)
        # revenue and event facts stay for honest totals
        events = (
            (await session.execute(select(Event).where(Event.contact_id == contact_id)))
            .scalars()
            .all()
        )
        assert sorted(e.type for e in events) == ["form.submitted", "purchase"]
        assert sum((e.revenue or Decimal(0)) for e in events) == Decimal("42.5")
        assert all(e.properties == {} for e in events)
        assert (
            await session.scalar(
                select(func.count())
                .select_from(SegmentMembership)
                .where(SegmentMembership.contact_id == contact_id)
            )
            == 0
        )
        changes = (
            (
                await session.execute(
                    select(SegmentMembershipChange.change)
                    .where(SegmentMembershipChange.contact_id == contact_id)
                    .order_by(SegmentMembershipChange.occurred_at)
                )
            )
            .scalars()
            .all()
        )
        assert changes == ["entered", "left"]
        segment = await session.get(Segment, segment_id)
        assert segment is not None
        assert segment.member_count == 0
        bystander_row = await session.get(Contact, bystander)
        assert bystander_row is not None
        assert bystander_row.email == "bystander@example.com"
        assert await is_suppressed(session, tenant.workspace_id, "email", EMAIL)
        assert await is_suppressed(session, tenant.workspace_id, "sms", PHONE)
        assert not await is_suppressed(session, other_tenant.workspace_id, "email", EMAIL)

    entries = (await client.get("/v1/suppressions", headers=tenant.headers)).json()["data"]
    assert sorted((e["channel"], e["reason"], e["note"]) for e in entries) == [
        ("email", "erased", None),
        ("sms", "erased", None),
    ]
    for entry in entries:
        refused = await client.delete(f"/v1/suppressions/{entry['id']}", headers=tenant.headers)
        assert refused.status_code == 409

    # consent can no longer change; the export shows what is left
    frozen = await put_consent(client, tenant, contact_id, "email", status="subscribed")
    assert frozen.status_code == 409
    export = (await client.get(f"/v1/contacts/{contact_id}/export", headers=tenant.headers)).json()
    assert export["sections"]["contact"]["erased_at"] == "2026-11-22T12:05:00Z"
    assert export["sections"]["contact"]["email"] is None
    assert export["sections"]["segments"]["memberships"] == []


async def test_erasure_is_idempotent(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    clock.freeze(T0)
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    first = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    clock.advance(timedelta(days=1))
    second = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert second.status_code == 200
    assert second.json()["already_erased"] is True
    assert second.json()["erased_at"] == first.json()["erased_at"]
    assert second.json()["suppressed"] == []
    entries = (await client.get("/v1/suppressions", headers=tenant.headers)).json()["data"]
    assert len(entries) == 1


async def test_recreated_address_stays_suppressed(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant, email=EMAIL, phone=PHONE)
    await client.post(
        "/v1/suppressions",
        json={"channel": "email", "address": EMAIL, "reason": "hard_bounce"},
        headers=tenant.headers,
    )
    assert (
        await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    ).status_code == 200

    # the same person comes back (import, signup): a brand-new contact row
    created = await client.post(
        "/v1/contacts", json={"email": EMAIL.upper(), "phone": PHONE}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    again = uuid.UUID(created.json()["id"])
    async with transaction(session_factory) as session:
        assert await is_suppressed(session, tenant.workspace_id, "email", EMAIL.upper())
        assert await suppressed_addresses(
            session, tenant.workspace_id, "sms", [PHONE, "+14155550100"]
        ) == {PHONE}
    check = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [EMAIL, "new@example.com"]},
        headers=tenant.headers,
    )
    assert [(r["suppressed"], r["reason"]) for r in check.json()["results"]] == [
        (True, "erased"),
        (False, None),
    ]
    # opting in again cannot lift an erasure suppression
    await put_consent(client, tenant, again, "email", status="subscribed", source="signup")
    async with transaction(session_factory) as session:
        assert await is_suppressed(session, tenant.workspace_id, "email", EMAIL)
    entry = (
        await client.get("/v1/suppressions", params={"channel": "email"}, headers=tenant.headers)
    ).json()["data"][0]
    assert entry["address_hash"] == address_hash("email", EMAIL)
    assert entry["reason"] == "erased"


async def test_erase_needs_admin_scope(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant)
    token = await make_key(session_factory, tenant, ["contacts:write"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        await client.post(f"/v1/contacts/{contact_id}/erase", headers=headers)
    ).status_code == 403
    assert (
        await client.get(f"/v1/contacts/{contact_id}/export", headers=headers)
    ).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/contacts/{id}/export", None),
        ("POST", "/v1/contacts/{id}/erase", None),
        ("GET", "/v1/contacts/{id}/consent", None),
        ("GET", "/v1/contacts/{id}/consent/history", None),
        ("PUT", "/v1/contacts/{id}/consent/email", {"status": "unsubscribed", "source": "x"}),
    ],
)
async def test_other_workspace_contact_is_404(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    victim = await make_contact(session_factory, other_tenant, email="victim@globex.example")
    response = await client.request(
        method, path.format(id=victim), json=body, headers=tenant.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    async with transaction(session_factory) as session:
        row = await session.get(Contact, victim)
        assert row is not None
        assert (row.email, row.erased_at) == ("victim@globex.example", None)
    consent = await client.get(f"/v1/contacts/{victim}/consent", headers=other_tenant.headers)
    assert consent.json()["recent_history"] == []
    assert (await client.get("/v1/suppressions", headers=other_tenant.headers)).json()["data"] == []


async def test_short_external_id_does_not_scrub_unrelated_text(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant, email=None, external_id="42")
    async with transaction(session_factory) as session:
        run = ContactImport(
            workspace_id=tenant.workspace_id,
            status="completed",
            format="csv",
            size_bytes=10,
            sha256="0" * 64,
        )
        session.add(run)
        await session.flush()
        session.add(
            ContactImportError(import_id=run.id, row_number=42, field="phone", message="row 42")
        )
    response = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["suppressed"] == []
    assert response.json()["removed"]["import_errors_scrubbed"] == 0
    async with transaction(session_factory) as session:
        message = await session.scalar(select(ContactImportError.message))
        erased = await session.get(Contact, contact_id)
    assert message == "row 42"
    assert erased is not None
    assert erased.external_id is None


async def test_erasing_again_scrubs_what_arrived_since(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    assert (
        await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    ).status_code == 200
    async with transaction(session_factory) as session:
        session.add(
            Event(
                workspace_id=tenant.workspace_id,
                contact_id=contact_id,
                type="late.event",
                properties={"email": EMAIL},
                occurred_at=T0,
                received_at=T0,
            )
        )
    again = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert again.json()["removed"]["events_scrubbed"] == 1
    async with transaction(session_factory) as session:
        assert await find_everywhere(session, EMAIL) == []


async def test_erasure_and_consent_change_serialise(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Whichever wins the contact lock, no IP or address is left behind."""
    for _ in range(5):
        contact_id = await make_contact(session_factory, tenant, email=EMAIL)
        consent, erase = await asyncio.gather(
            put_consent(client, tenant, contact_id, "email", status="unsubscribed", ip=IP),
            client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers),
        )
        assert erase.status_code == 200
        assert consent.status_code in {200, 409}
        async with transaction(session_factory) as session:
            assert await find_everywhere(session, IP) == []
            assert await find_everywhere(session, EMAIL) == []
            assert await is_suppressed(session, tenant.workspace_id, "email", EMAIL)


async def wait_until_blocked(
    factory: async_sessionmaker[AsyncSession], holder: int, request: asyncio.Task[Any]
) -> None:
    """Until some backend waits on a lock held by backend `holder` (or `request` ended)."""
    async with factory() as watcher:
        for _ in range(10_000):
            blocked = await watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE CAST(:pid AS int) = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": holder},
            )
            if blocked.scalar_one() or request.done():
                return


async def test_event_racing_an_erasure_is_rejected_not_stored(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """An event for a contact whose erasure is in progress waits for it, then is rejected.
    It used to wait only at the events' foreign key check and land after the erasure
    committed, with the PII in its properties."""
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    body = {"contact_id": str(contact_id), "type": "note", "properties": {"said": EMAIL}}
    async with transaction(session_factory) as session:
        await erase_contact(session, tenant.workspace_id, contact_id)
        eraser = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        ingest = asyncio.create_task(client.post("/v1/events", json=body, headers=tenant.headers))
        await wait_until_blocked(session_factory, eraser, ingest)
    response = await ingest
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["code"] == "contact_erased"
    async with transaction(session_factory) as session:
        assert await find_everywhere(session, EMAIL) == []


async def test_patch_racing_an_erasure_is_404_not_written_back(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A PATCH read the contact unlocked, waited on the erasure's row lock, then wrote its
    fields (an email, attributes) back onto the erased contact."""
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    body = {"email": EMAIL, "attributes": {"said": EMAIL}}
    async with transaction(session_factory) as session:
        await erase_contact(session, tenant.workspace_id, contact_id)
        eraser = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        patch = asyncio.create_task(
            client.patch(f"/v1/contacts/{contact_id}", json=body, headers=tenant.headers)
        )
        await wait_until_blocked(session_factory, eraser, patch)
    response = await patch
    assert response.status_code == 404, response.text
    async with transaction(session_factory) as session:
        assert await find_everywhere(session, EMAIL) == []


async def test_deleting_a_suppression_an_erasure_is_taking_over_is_409(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """DELETE read the entry unlocked (`manual`), waited on the erasure turning it into
    `erased`, then deleted it: the erased person's address became reachable again."""
    created = await client.post(
        "/v1/suppressions", json={"channel": "email", "address": EMAIL}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    async with transaction(session_factory) as session:
        await erase_contact(session, tenant.workspace_id, contact_id)
        eraser = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        delete = asyncio.create_task(
            client.delete(f"/v1/suppressions/{created.json()['id']}", headers=tenant.headers)
        )
        await wait_until_blocked(session_factory, eraser, delete)
    response = await delete
    assert response.status_code == 409, response.text
    async with transaction(session_factory) as session:
        assert await is_suppressed(session, tenant.workspace_id, "email", EMAIL)


async def test_stored_replay_quoting_the_address_in_another_case_is_forgotten(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """`/v1/suppressions/check` echoes addresses as sent; the replay search was
    case-sensitive, so `ERIN.Erased@...` survived the erasure of `erin.erased@...`."""
    contact_id = await make_contact(session_factory, tenant, email=EMAIL)
    check = await client.post(
        "/v1/suppressions/check",
        json={"channel": "email", "addresses": [EMAIL.upper()]},
        headers={**tenant.headers, "Idempotency-Key": "check-upper"},
    )
    assert check.status_code == 200, check.text
    erase = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
    assert erase.status_code == 200, erase.text
    assert erase.json()["removed"]["stored_responses_forgotten"] == 1
    async with transaction(session_factory) as session:
        assert await find_everywhere(session, EMAIL) == []
