"""Approval policy CRUD: validation pointers, one default per workspace, audit."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from app.audit.models import AuditEvent
from tests.fixtures.approvals import make_policy, reviewer, stage
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant


def _pointers(response: httpx.Response) -> list[str]:
    return [error["pointer"] for error in response.json()["errors"]]


async def test_crud_and_audit(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await reviewer(session_factory, tenant, "Bea", ["brand"])
    policy = await make_policy(client, tenant, [stage("Brand", ["brand"], "any")])
    assert policy["stages"][0]["rule"] == "any"
    assert policy["gates"] == []
    path = f"/v1/approval-policies/{policy['id']}"
    assert (await client.get(path, headers=tenant.headers)).json() == policy
    listed = (await client.get("/v1/approval-policies", headers=tenant.headers)).json()
    assert [p["id"] for p in listed["data"]] == [policy["id"]]

    gate = {"when": {"budget_gt": "10.50"}, "stage": stage("Exec", ["owner"])}
    patched = await client.patch(
        path, json={"name": "Renamed", "gates": [gate]}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert patched.json()["gates"][0]["stage"]["reviewers"] == {"roles": ["owner"], "members": []}
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert (await client.get(path, headers=tenant.headers)).status_code == 404

    async with session_factory() as session:
        actions = (
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.startswith("approval_policy."))
                .order_by(AuditEvent.occurred_at, AuditEvent.id)
            )
        ).all()
    assert actions == [
        "approval_policy.created",
        "approval_policy.updated",
        "approval_policy.deleted",
    ]


async def test_one_default_per_workspace(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    first = await make_policy(client, tenant, [stage("A", ["owner"])])
    second = await make_policy(client, tenant, [stage("B", ["owner"])])

    async def get(policy: dict[str, Any]) -> httpx.Response:
        return await client.get(f"/v1/approval-policies/{policy['id']}", headers=tenant.headers)

    assert (await get(first)).json()["is_default"] is False
    assert (await get(second)).json()["is_default"] is True
    await client.patch(
        f"/v1/approval-policies/{first['id']}", json={"is_default": True}, headers=tenant.headers
    )
    assert (await get(first)).json()["is_default"] is True
    assert (await get(second)).json()["is_default"] is False


async def test_validation_points_at_the_problem(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await reviewer(session_factory, tenant, "Cy", ["legal"])
    missing = "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b10"
    body: dict[str, Any] = {
        "name": "Bad",
        "stages": [
            stage("Legal", ["legal"], {"n_of_m": 2}),
            stage("Named", [], members=[missing]),
            stage("Nobody", ["ghost_role"]),
        ],
    }
    response = await client.post("/v1/approval-policies", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert _pointers(response) == [
        "/stages/1/reviewers/members/0",
        "/stages/0/rule/n_of_m",
        "/stages/1/reviewers",
        "/stages/2/reviewers",
    ]


async def test_shape_errors(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for bad in (
        {"name": "x", "stages": [{"name": "s", "reviewers": {}}]},
        {"name": "x", "stages": [stage("s", ["owner"], {"n_of_m": 0})]},
        {"name": "x", "stages": [stage("s", ["owner"], "most")]},
        {
            "name": "x",
            "stages": [stage("t", ["owner"])],
            "gates": [{"when": {}, "stage": stage("s", ["owner"])}],
        },
        {
            "name": "x",
            "stages": [stage("t", ["owner"])],
            "gates": [
                {
                    "when": {"budget_gt": "1", "audience_count_gt": 1},
                    "stage": stage("s", ["owner"]),
                }
            ],
        },
        {
            "name": "x",
            "stages": [stage("t", ["owner"])],
            "gates": [{"when": {"budget_gt": "1e3"}, "stage": {}}],
        },
    ):
        response = await client.post("/v1/approval-policies", json=bad, headers=tenant.headers)
        assert response.status_code == 422, bad


async def test_a_policy_needs_a_stage_and_every_stage_needs_reviewers(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Regression (issue 16): `"stages": []` was accepted, a policy nobody reviews."""
    created = await client.post(
        "/v1/approval-policies",
        json={"name": "ok", "stages": [stage("s", ["owner"])]},
        headers=tenant.headers,
    )
    assert created.status_code == 201
    for bad, pointer in (
        ({"name": "x", "stages": []}, "/stages"),
        ({"name": "x", "stages": [{"name": "s", "reviewers": {"roles": []}}]}, "/stages/0"),
        ({"name": "x", "stages": [{"name": "s", "reviewers": {"members": []}}]}, "/stages/0"),
    ):
        response = await client.post("/v1/approval-policies", json=bad, headers=tenant.headers)
        assert response.status_code == 422, bad
        assert pointer in _pointers(response), response.json()
    patched = await client.patch(
        f"/v1/approval-policies/{created.json()['id']}", json={"stages": []}, headers=tenant.headers
    )
    assert patched.status_code == 422
    assert _pointers(patched) == ["/stages"]


async def test_a_member_reviews_in_one_stage_per_round(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    """One decision per reviewer per round: a member listed in two stages counts in the
    first, so a later stage left with nobody is refused up front."""
    await reviewer(session_factory, tenant, "Di", ["brand", "legal"])
    body = {"name": "Overlap", "stages": [stage("Brand", ["brand"]), stage("Legal", ["legal"])]}
    response = await client.post("/v1/approval-policies", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert _pointers(response) == ["/stages/1/reviewers"]
