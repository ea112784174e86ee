"""Segments API: CRUD with ETags, preview, count, static members, references."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import clock
from app.core.state import AppState
from app.segments.models import SegmentMembershipChange
from tests.fixtures.rows import contact_row, event_row, insert_rows
from tests.fixtures.tenants import Tenant, make_key

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRO = {"attribute": {"field": "attributes.plan", "op": "eq", "value": "pro"}}


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/segments", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def seed_plans(
    factory: async_sessionmaker[AsyncSession], tenant: Tenant
) -> dict[str, uuid.UUID]:
    rows = [
        contact_row(tenant.workspace_id, email="ana@acme.example", external_id="u-1",
                    attributes={"plan": "pro"}),
        contact_row(tenant.workspace_id, email="bo@acme.example", external_id="u-2",
                    attributes={"plan": "pro"}),
        contact_row(tenant.workspace_id, email="cy@acme.example", external_id="u-3",
                    attributes={"plan": "free"}),
    ]  # fmt: skip
    await insert_rows(factory, contacts=rows)
    return {row["external_id"]: row["id"] for row in rows}


async def test_create_get_list_and_etag(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/segments",
        json={"name": "Pro", "description": "Paying", "rule": PRO},
        headers=tenant.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "dynamic"
    assert body["version"] == 1
    assert body["rule"] == PRO
    assert response.headers["etag"] == body["etag"] == f'"{body["id"]}.1"'
    assert response.headers["location"] == f"/v1/segments/{body['id']}"

    got = await client.get(f"/v1/segments/{body['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.headers["etag"] == body["etag"]

    static = await create(client, tenant, name="VIPs", kind="static")
    listed = (await client.get("/v1/segments", headers=tenant.headers)).json()
    assert [s["id"] for s in listed["data"]] == [static["id"], body["id"]]
    only_static = (
        await client.get("/v1/segments", params={"kind": "static"}, headers=tenant.headers)
    ).json()
    assert [s["id"] for s in only_static["data"]] == [static["id"]]


async def test_kind_and_rule_must_agree(client: httpx.AsyncClient, tenant: Tenant) -> None:
    missing = await client.post("/v1/segments", json={"name": "X"}, headers=tenant.headers)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["pointer"] == "/rule"
    extra = await client.post(
        "/v1/segments", json={"name": "X", "kind": "static", "rule": PRO}, headers=tenant.headers
    )
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["code"] == "extra_forbidden"


async def test_bad_rule_points_into_rule(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/segments",
        json={"name": "Bad", "rule": {"all": [PRO, {"attribute": {"field": "nope", "op": "eq"}}]}},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    pointers = [error["pointer"] for error in response.json()["errors"]]
    assert pointers == ["/rule/all/1/attribute/field"]


async def test_patch_with_if_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    segment = await create(client, tenant, name="Pro", rule=PRO)
    url = f"/v1/segments/{segment['id']}"

    renamed = await client.patch(
        url, json={"name": "Pro plan"}, headers={**tenant.headers, "If-Match": segment["etag"]}
    )
    assert renamed.status_code == 200
    assert renamed.json()["version"] == 2
    assert renamed.headers["etag"] == f'"{segment["id"]}.2"'

    stale = await client.patch(
        url, json={"name": "Lost"}, headers={**tenant.headers, "If-Match": segment["etag"]}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_etag"] == renamed.headers["etag"]

    several = await client.patch(
        url,
        json={"description": "d"},
        headers={**tenant.headers, "If-Match": f'"nope", W/{renamed.headers["etag"]}'},
    )
    assert several.status_code == 200
    star = await client.patch(
        url, json={"description": None}, headers={**tenant.headers, "If-Match": "*"}
    )
    assert star.status_code == 200
    assert star.json()["description"] is None
    without = await client.patch(url, json={"name": "Last"}, headers=tenant.headers)
    assert without.status_code == 200
    assert without.json()["version"] == 5

    malformed = await client.patch(
        url, json={"name": "x"}, headers={**tenant.headers, "If-Match": "no-quotes"}
    )
    assert malformed.status_code == 400


async def test_patch_without_change_keeps_version(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    segment = await create(client, tenant, name="Pro", rule=PRO)
    same = await client.patch(
        f"/v1/segments/{segment['id']}", json={"name": "Pro", "rule": PRO}, headers=tenant.headers
    )
    assert same.json()["version"] == 1


async def test_patch_rule_rules(client: httpx.AsyncClient, tenant: Tenant) -> None:
    static = await create(client, tenant, name="VIPs", kind="static")
    refused = await client.patch(
        f"/v1/segments/{static['id']}", json={"rule": PRO}, headers=tenant.headers
    )
    assert refused.status_code == 422
    dynamic = await create(client, tenant, name="Pro", rule=PRO)
    cleared = await client.patch(
        f"/v1/segments/{dynamic['id']}", json={"rule": None}, headers=tenant.headers
    )
    assert cleared.status_code == 422
    null_name = await client.patch(
        f"/v1/segments/{dynamic['id']}", json={"name": None}, headers=tenant.headers
    )
    assert null_name.status_code == 422


async def test_rule_change_enqueues_refresh(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState
) -> None:
    segment = await create(client, tenant, name="Pro", rule=PRO)
    await client.patch(
        f"/v1/segments/{segment['id']}",
        json={"rule": {"not": PRO}},
        headers=tenant.headers,
    )
    queued = {
        str(job.job_id) for job in await state.redis.queued_jobs(queue_name=state.queue.queue_name)
    }
    assert f"segments_refresh_segment:{segment['id']}" in queued


async def test_references_cycles_and_delete_refusal(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    base = await create(client, tenant, name="Base", rule=PRO)
    middle = await create(
        client, tenant, name="Middle", rule={"all": [{"segment": {"id": base["id"]}}, PRO]}
    )
    top = await create(client, tenant, name="Top", rule={"segment": {"id": middle["id"]}})

    cycle = await client.patch(
        f"/v1/segments/{base['id']}",
        json={"rule": {"any": [PRO, {"segment": {"id": top["id"]}}]}},
        headers=tenant.headers,
    )
    assert cycle.status_code == 422
    detail = cycle.json()["detail"]
    assert f"{base['id']} -> {top['id']} -> {middle['id']} -> {base['id']}" in detail
    assert cycle.json()["errors"][0]["code"] == "cycle"

    itself = await client.patch(
        f"/v1/segments/{base['id']}",
        json={"rule": {"segment": {"id": base["id"]}}},
        headers=tenant.headers,
    )
    assert itself.status_code == 422

    unknown = await client.post(
        "/v1/segments",
        json={"name": "Ghost", "rule": {"segment": {"id": str(uuid.uuid4())}}},
        headers=tenant.headers,
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/rule/segment/id"

    refused = await client.delete(f"/v1/segments/{middle['id']}", headers=tenant.headers)
    assert refused.status_code == 409
    assert [user["id"] for user in refused.json()["used_by"]] == [top["id"]]

    assert (
        await client.delete(f"/v1/segments/{top['id']}", headers=tenant.headers)
    ).status_code == 204
    assert (
        await client.delete(f"/v1/segments/{middle['id']}", headers=tenant.headers)
    ).status_code == 204
    gone = await client.get(f"/v1/segments/{middle['id']}", headers=tenant.headers)
    assert gone.status_code == 404


async def test_delete_honours_if_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    segment = await create(client, tenant, name="Pro", rule=PRO)
    stale = await client.delete(
        f"/v1/segments/{segment['id']}",
        headers={**tenant.headers, "If-Match": f'"{segment["id"]}.7"'},
    )
    assert stale.status_code == 412
    ok = await client.delete(
        f"/v1/segments/{segment['id']}", headers={**tenant.headers, "If-Match": segment["etag"]}
    )
    assert ok.status_code == 204


async def test_preview_counts_and_samples_without_saving(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(NOW)
    ids = await seed_plans(session_factory, tenant)
    await insert_rows(
        session_factory,
        events=[
            event_row(tenant.workspace_id, ids["u-3"], "email.clicked", NOW - timedelta(days=2))
        ],
    )
    rule = {"any": [PRO, {"event": {"type": "email.clicked", "within": "P7D"}}]}
    response = await client.post(
        "/v1/segments/preview", json={"rule": rule, "sample_size": 2}, headers=tenant.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert len(body["sample"]) == 2
    assert {s["id"] for s in body["sample"]} <= {str(i) for i in ids.values()}
    assert (await client.get("/v1/segments", headers=tenant.headers)).json()["data"] == []

    bad = await client.post(
        "/v1/segments/preview", json={"rule": {"all": []}}, headers=tenant.headers
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/rule/all"


async def test_count_live_and_static(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seed_plans(session_factory, tenant)
    dynamic = await create(client, tenant, name="Pro", rule=PRO)
    live = (await client.get(f"/v1/segments/{dynamic['id']}/count", headers=tenant.headers)).json()
    assert live["count"] == 2
    assert live["source"] == "live"
    static = await create(client, tenant, name="VIPs", kind="static")
    await client.post(
        f"/v1/segments/{static['id']}/members",
        json={"external_ids": ["u-3"]},
        headers=tenant.headers,
    )
    counted = (
        await client.get(f"/v1/segments/{static['id']}/count", headers=tenant.headers)
    ).json()
    assert counted == {**counted, "count": 1, "source": "membership"}


async def test_static_members_by_each_reference_kind(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    ids = await seed_plans(session_factory, tenant)
    static = await create(client, tenant, name="VIPs", kind="static")
    url = f"/v1/segments/{static['id']}/members"
    ghost = str(uuid.uuid4())

    added = await client.post(
        url,
        json={
            "contact_ids": [str(ids["u-1"]), ghost],
            "external_ids": ["u-2", "u-404"],
            "emails": ["  CY@acme.example", "ana@acme.example", "nobody@acme.example"],
        },
        headers=tenant.headers,
    )
    assert added.status_code == 200, added.text
    assert added.json() == {
        "matched": 3,
        "changed": 3,
        "unchanged": 0,
        "not_found": {
            "contact_ids": [ghost],
            "external_ids": ["u-404"],
            "emails": ["nobody@acme.example"],
        },
        "member_count": 3,
    }
    again = (await client.post(url, json={"external_ids": ["u-1"]}, headers=tenant.headers)).json()
    assert again["changed"] == 0
    assert again["unchanged"] == 1

    members = (await client.get(url, params={"limit": 2}, headers=tenant.headers)).json()
    assert len(members["data"]) == 2
    rest = (
        await client.get(url, params={"cursor": members["next_cursor"]}, headers=tenant.headers)
    ).json()
    emails = {m["email"] for m in members["data"] + rest["data"]}
    assert emails == {"ana@acme.example", "bo@acme.example", "cy@acme.example"}
    assert rest["next_cursor"] is None

    removed = await client.post(
        f"{url}/remove",
        json={
            "emails": ["bo@acme.example"],
            "contact_ids": [str(ids["u-3"])],
            "external_ids": ["u-404"],
        },
        headers=tenant.headers,
    )
    assert removed.json()["changed"] == 2
    assert removed.json()["member_count"] == 1
    assert removed.json()["not_found"]["external_ids"] == ["u-404"]
    not_member = (
        await client.post(f"{url}/remove", json={"external_ids": ["u-2"]}, headers=tenant.headers)
    ).json()
    assert (not_member["changed"], not_member["unchanged"]) == (0, 1)

    async with session_factory() as session:
        changes = (
            await session.execute(
                select(SegmentMembershipChange.change, func.count()).group_by(
                    SegmentMembershipChange.change
                )
            )
        ).all()
    assert dict(changes) == {"entered": 3, "left": 2}
    journal = (
        await client.get(f"/v1/segments/{static['id']}/changes", headers=tenant.headers)
    ).json()
    assert [c["change"] for c in journal["data"]][:2] == ["left", "left"]
    entered = (
        await client.get(
            f"/v1/segments/{static['id']}/changes",
            params={"change": "entered", "contact_id": str(ids["u-1"])},
            headers=tenant.headers,
        )
    ).json()
    assert len(entered["data"]) == 1


async def test_member_references_are_bounded(client: httpx.AsyncClient, tenant: Tenant) -> None:
    static = await create(client, tenant, name="VIPs", kind="static")
    url = f"/v1/segments/{static['id']}/members"
    empty = await client.post(url, json={}, headers=tenant.headers)
    assert empty.status_code == 422
    too_many = await client.post(
        url,
        json={
            "external_ids": [f"u-{i}" for i in range(600)],
            "emails": [f"{i}@x.example" for i in range(401)],
        },
        headers=tenant.headers,
    )
    assert too_many.status_code == 422


async def test_static_only_operations_refuse_dynamic(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    dynamic = await create(client, tenant, name="Pro", rule=PRO)
    for path in ("members", "members/remove"):
        response = await client.post(
            f"/v1/segments/{dynamic['id']}/{path}",
            json={"external_ids": ["u-1"]},
            headers=tenant.headers,
        )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"


async def test_scopes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    reader = await make_key(session_factory, tenant, ["segments:read"])
    headers = {"Authorization": f"Bearer {reader}"}
    assert (await client.get("/v1/segments", headers=headers)).status_code == 200
    denied = await client.post(
        "/v1/segments", json={"name": "X", "kind": "static"}, headers=headers
    )
    assert denied.status_code == 403


async def test_unstorable_input_is_422_not_500(client: httpx.AsyncClient, tenant: Tenant) -> None:
    nul_rule = {"attribute": {"field": "email", "op": "eq", "value": "a\x00b"}}
    for body in (
        {"name": "a\x00b", "kind": "static"},
        {"name": "ok", "rule": nul_rule},
    ):
        response = await client.post("/v1/segments", json=body, headers=tenant.headers)
        assert response.status_code == 422, response.text
    surrogate = await client.post(
        "/v1/segments/preview",
        content=b'{"rule": {"attribute": {"field": "email", "op": "eq", "value": "\\ud800"}}}',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert surrogate.status_code == 422
    static = await create(client, tenant, name="VIPs", kind="static")
    refs = await client.post(
        f"/v1/segments/{static['id']}/members",
        json={"external_ids": ["x\x00"]},
        headers=tenant.headers,
    )
    assert refs.status_code == 422
    far = await client.get(
        f"/v1/segments/{static['id']}/changes",
        params={"occurred_after": "0001-01-01T00:00:00+23:59"},
        headers=tenant.headers,
    )
    assert far.status_code == 422
    forged = await client.get(
        f"/v1/segments/{static['id']}/history",
        params={"cursor": "_____________________w"},
        headers=tenant.headers,
    )
    assert forged.status_code == 400


async def test_rule_change_refreshes_dependents(
    client: httpx.AsyncClient, tenant: Tenant, state: AppState
) -> None:
    base = await create(client, tenant, name="Base", rule=PRO)
    middle = await create(client, tenant, name="Middle", rule={"segment": {"id": base["id"]}})
    top = await create(client, tenant, name="Top", rule={"not": {"segment": {"id": middle["id"]}}})
    unrelated = await create(client, tenant, name="Other", rule=PRO)
    await state.redis.flushdb()
    await client.patch(
        f"/v1/segments/{base['id']}", json={"rule": {"not": PRO}}, headers=tenant.headers
    )
    queued = {
        str(job.job_id) for job in await state.redis.queued_jobs(queue_name=state.queue.queue_name)
    }
    assert queued == {
        f"segments_refresh_segment:{segment['id']}" for segment in (base, middle, top)
    }
    assert f"segments_refresh_segment:{unrelated['id']}" not in queued
