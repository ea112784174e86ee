"""Emissions of contacts and segments (issue 6 items 2-3): `contact.unsubscribed`,
`contact.suppressed` (every insert into the list), `contact.erased`, and `segment.entered` /
`segment.left` from the membership journal, set-wise."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.config import Settings
from app.core.clock import clock
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.emissions import count, events, of_type, subscribe
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

PRO = {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}


async def pro_segment(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """A dynamic segment of the contacts on plan `pro`; its id."""
    created = await client.post(
        "/v1/segments",
        json={"name": "Pro", "kind": "dynamic", "rule": PRO},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    segment_id: str = created.json()["id"]
    return segment_id


async def test_unsubscribe_suppresses_once(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await subscribe(session_factory, tenant, ["contact.*"])
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    url = f"/v1/contacts/{contact_id}/consent/email"
    for source in ("preference_center", "support"):  # the second changes nothing
        body = {"status": "unsubscribed", "source": source}
        assert (await client.put(url, json=body, headers=tenant.headers)).status_code == 200
    body = {"status": "subscribed", "source": "form"}
    assert (await client.put(url, json=body, headers=tenant.headers)).status_code == 200

    found = await events(session_factory, tenant)
    assert found == [
        (
            "contact.unsubscribed",
            {"contact_id": contact_id, "channel": "email", "source": "preference_center"},
        ),
        (
            "contact.suppressed",
            {"contact_id": contact_id, "channel": "email", "reason": "unsubscribed"},
        ),
    ]


async def test_manual_suppressions_name_the_contact_holding_the_address(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await subscribe(session_factory, tenant, ["contact.suppressed"])
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    for address in ("  ANA@acme.example", "nobody@acme.example", "ana@acme.example"):
        response = await client.post(
            "/v1/suppressions",
            json={"channel": "email", "address": address, "reason": "manual"},
            headers=tenant.headers,
        )
        assert response.status_code in (200, 201), response.text

    found = of_type(await events(session_factory, tenant), "contact.suppressed")
    assert found == [  # the repeat of an existing entry is not a new suppression
        {"contact_id": contact_id, "channel": "email", "reason": "manual"},
        {"contact_id": None, "channel": "email", "reason": "manual"},
    ]


async def test_erasure_emits_erased_suppressed_and_segment_left(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    contact_id = await factories.contact(
        client, tenant, email="ana@acme.example", phone="+4915112345678"
    )
    segment = await factories.static_segment(client, tenant, [contact_id])
    await subscribe(session_factory, tenant, ["contact.*", "segment.*"])
    for _ in range(2):  # erasing again re-runs the scrubs, emits nothing new
        erased = await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)
        assert erased.status_code == 200, erased.text

    found = await events(session_factory, tenant)
    assert sorted(found, key=lambda item: (item[0], str(item[1]))) == [
        ("contact.erased", {"contact_id": contact_id}),
        ("contact.suppressed", {"contact_id": contact_id, "channel": "email", "reason": "erased"}),
        ("contact.suppressed", {"contact_id": contact_id, "channel": "sms", "reason": "erased"}),
        ("segment.left", {"segment_id": segment, "contact_id": contact_id}),
    ]


async def test_hard_delete_ends_memberships_with_counts_and_segment_left(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    """Deleting a contact is not a silent cascade: every segment it was in counts one member
    less at once, `segment.left` goes out (static and dynamic segments alike), and the
    segments' change journals keep its history."""
    gone = await factories.contact(
        client, tenant, email="gone@acme.example", attributes={"plan": "pro"}
    )
    kept = await factories.contact(
        client, tenant, email="kept@acme.example", attributes={"plan": "pro"}
    )
    static = await factories.static_segment(client, tenant, [gone, kept])
    dynamic = await pro_segment(client, tenant)
    await harness.run_jobs(settings)
    await subscribe(session_factory, tenant, ["segment.*"])

    deleted = await client.delete(f"/v1/contacts/{gone}", headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text

    for segment in (static, dynamic):
        shown = await client.get(f"/v1/segments/{segment}", headers=tenant.headers)
        assert shown.json()["member_count"] == 1, segment
        listed = await client.get(f"/v1/segments/{segment}/members", headers=tenant.headers)
        assert [m["contact_id"] for m in listed.json()["data"]] == [kept]
    left = of_type(await events(session_factory, tenant), "segment.left")
    assert sorted(left, key=lambda d: d["segment_id"]) == sorted(
        [{"segment_id": s, "contact_id": gone} for s in (static, dynamic)],
        key=lambda d: d["segment_id"],
    )
    for segment in (static, dynamic):  # the journal outlives the contact
        history = await client.get(
            f"/v1/segments/{segment}/changes",
            params={"contact_id": gone},
            headers=tenant.headers,
        )
        assert history.status_code == 200, history.text
        assert [c["change"] for c in history.json()["data"]] == ["left", "entered"], segment


async def test_dynamic_segments_emit_entered_and_left_set_wise(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    clock.freeze()
    await subscribe(session_factory, tenant, ["segment.entered", "segment.left"])
    segment = await pro_segment(client, tenant)
    pro = [
        await factories.contact(
            client, tenant, email=f"p{i}@acme.example", attributes={"plan": "pro"}
        )
        for i in range(3)
    ]
    await factories.contact(client, tenant, email="free@acme.example", attributes={"plan": "free"})
    await harness.run_jobs(settings)
    clock.advance(timedelta(seconds=1))
    changed = await client.patch(
        f"/v1/contacts/{pro[0]}", json={"attributes": {"plan": "free"}}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    await harness.run_jobs(settings)

    found = await events(session_factory, tenant)
    entered = of_type(found, "segment.entered")
    assert sorted(d["contact_id"] for d in entered) == sorted(pro)
    assert {d["segment_id"] for d in entered} == {segment}
    assert of_type(found, "segment.left") == [{"segment_id": segment, "contact_id": pro[0]}]


async def test_contact_changes_without_endpoints_store_nothing(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, session_factory: Factory
) -> None:
    await subscribe(session_factory, tenant, ["campaign.*"], enabled=True)
    await subscribe(session_factory, tenant, ["*"], enabled=False)
    await client.post(
        "/v1/segments",
        json={"name": "Pro", "kind": "dynamic", "rule": PRO},
        headers=tenant.headers,
    )
    contact_id = await factories.contact(
        client, tenant, email="ana@acme.example", attributes={"plan": "pro"}
    )
    await harness.run_jobs(settings)
    body = {"status": "unsubscribed", "source": "form"}
    await client.put(f"/v1/contacts/{contact_id}/consent/email", json=body, headers=tenant.headers)
    await client.post(f"/v1/contacts/{contact_id}/erase", headers=tenant.headers)

    assert await count(session_factory) == 0


async def test_static_members_added_and_removed_by_api_are_emitted(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await subscribe(session_factory, tenant, ["segment.*"])
    contact_id = await factories.contact(client, tenant, email="ana@acme.example")
    segment_id = await factories.static_segment(client, tenant, [contact_id])
    clock.advance(timedelta(seconds=1))
    removed = await client.post(
        f"/v1/segments/{segment_id}/members/remove",
        json={"contact_ids": [contact_id]},
        headers=tenant.headers,
    )
    assert removed.status_code == 200, removed.text
    member = {"segment_id": segment_id, "contact_id": contact_id}
    assert await events(session_factory, tenant) == [
        ("segment.entered", member),
        ("segment.left", member),
    ]
