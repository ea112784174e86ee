"""The approval matrix: stage rules, sequencing, gates, outcomes, rounds, and who may
decide. Campaigns are draft rows moved through `open_request` like the campaigns domain
does; the outcome reaches the campaign through `transitions.approval_finished`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import httpx

from app.core.clock import clock
from tests.fixtures.approvals import (
    campaign,
    campaign_status,
    decide,
    edit,
    make_policy,
    request_row,
    reviewer,
    segment_of,
    stage,
    submit,
)
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_key


async def test_sequential_two_stages(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    clock.freeze()
    brand = await reviewer(session_factory, tenant, "Bea", ["brand"])
    legal = await reviewer(session_factory, tenant, "Lou", ["legal"])
    await make_policy(client, tenant, [stage("Brand", ["brand"]), stage("Legal", ["legal"])])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)

    # Legal cannot decide before Brand has finished.
    assert (await decide(client, legal, request_id)).status_code == 403
    clock.advance(timedelta(hours=2))
    response = await decide(client, brand, request_id, comment="On brand")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["current_stage"] == 1
    assert body["stages"][0]["completed_at"] is not None
    assert body["stages"][1]["started_at"] == body["stage_started_at"]
    assert await campaign_status(session_factory, camp) == "in_review"

    clock.advance(timedelta(hours=3))
    body = (await decide(client, legal, request_id)).json()
    assert body["status"] == "approved"
    assert [d["stage"] for d in body["decisions"]] == [0, 1]
    assert await campaign_status(session_factory, camp) == "approved"


async def test_parallel_any(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    first = await reviewer(session_factory, tenant, "Ann", ["brand"])
    second = await reviewer(session_factory, tenant, "Ben", ["brand"])
    await make_policy(client, tenant, [stage("Brand", ["brand"], "any")])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)

    assert (await decide(client, second, request_id)).json()["status"] == "approved"
    # The request is over: the other reviewer's late decision is a conflict.
    assert (await decide(client, first, request_id)).status_code == 409
    assert await campaign_status(session_factory, camp) == "approved"


async def test_parallel_all(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    people = [await reviewer(session_factory, tenant, n, ["legal"]) for n in ("Al", "Bo", "Cy")]
    await make_policy(client, tenant, [stage("Legal", ["legal"], "all")])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)

    assert (await decide(client, people[0], request_id)).json()["status"] == "pending"
    assert (await decide(client, people[1], request_id)).json()["status"] == "pending"
    assert (await decide(client, people[2], request_id)).json()["status"] == "approved"


async def test_n_of_m(client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory) -> None:
    people = [await reviewer(session_factory, tenant, n, ["finance"]) for n in ("Di", "Ed", "Fay")]
    await make_policy(client, tenant, [stage("Finance", ["finance"], {"n_of_m": 2})])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)

    body = (await decide(client, people[2], request_id)).json()
    assert body["status"] == "pending"
    assert body["stages"][0]["required"] == 2
    assert (await decide(client, people[0], request_id)).json()["status"] == "approved"


async def test_hybrid_any_then_all_with_named_member(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    brand = [await reviewer(session_factory, tenant, n, ["brand"]) for n in ("Gia", "Hal")]
    legal = await reviewer(session_factory, tenant, "Ivy", ["legal"])
    named = await reviewer(session_factory, tenant, "Jo", [])
    await make_policy(
        client,
        tenant,
        [
            stage("Brand", ["brand"], "any"),
            stage("Legal", ["legal"], "all", members=[str(named.id)]),
        ],
    )
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)

    assert (await decide(client, brand[1], request_id)).json()["current_stage"] == 1
    assert (await decide(client, legal, request_id)).json()["status"] == "pending"
    assert (await decide(client, named, request_id)).json()["status"] == "approved"
    # Brand's second reviewer never needed to act; the stage is past.
    assert (await decide(client, brand[0], request_id)).status_code == 409


async def test_audience_gate_adds_a_stage_above_its_threshold(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await reviewer(session_factory, tenant, "Kim", ["brand"])
    compliance = await reviewer(session_factory, tenant, "Lee", ["compliance"])
    gate = {"when": {"audience_count_gt": 3}, "stage": stage("Compliance", ["compliance"])}
    await make_policy(client, tenant, [stage("Brand", ["brand"])], gates=[gate])
    small = await campaign(
        session_factory,
        tenant,
        include_segments=[str(await segment_of(session_factory, tenant, 3))],
    )
    large = await campaign(
        session_factory,
        tenant,
        include_segments=[str(await segment_of(session_factory, tenant, 4))],
    )

    small_request = await request_row(session_factory, await submit(session_factory, tenant, small))
    large_request = await request_row(session_factory, await submit(session_factory, tenant, large))
    assert [s["name"] for s in small_request.stages] == ["Brand"]
    assert [s["name"] for s in large_request.stages] == ["Brand", "Compliance"]
    assert large_request.stages[1]["source"] == "gate"
    assert large_request.stages[1]["eligible"] == [str(compliance.id)]


async def test_budget_gate_adds_a_stage_above_its_threshold(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    brand = await reviewer(session_factory, tenant, "Mo", ["brand"])
    finance = await reviewer(session_factory, tenant, "Ned", ["finance"])
    gate = {"when": {"budget_gt": "5000.00"}, "stage": stage("Finance", ["finance"])}
    await make_policy(client, tenant, [stage("Brand", ["brand"])], gates=[gate])
    at_threshold = await campaign(session_factory, tenant, budget_amount=Decimal("5000.00"))
    above = await campaign(session_factory, tenant, budget_amount=Decimal("5000.01"))
    no_budget = await campaign(session_factory, tenant)

    for camp, names in ((at_threshold, ["Brand"]), (no_budget, ["Brand"])):
        row = await request_row(session_factory, await submit(session_factory, tenant, camp))
        assert [s["name"] for s in row.stages] == names
    request_id = await submit(session_factory, tenant, above)
    assert (await decide(client, brand, request_id)).json()["status"] == "pending"
    assert (await decide(client, finance, request_id)).json()["status"] == "approved"


async def test_rejection_returns_to_draft_and_resubmission_is_a_new_round(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    first = await reviewer(session_factory, tenant, "Oz", ["legal"])
    second = await reviewer(session_factory, tenant, "Pat", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"], "all")])
    camp = await campaign(session_factory, tenant)
    round_one = await submit(session_factory, tenant, camp)

    assert (await decide(client, first, round_one)).status_code == 201
    response = await decide(client, second, round_one, "reject", "Claims need a source")
    assert response.json()["status"] == "rejected"
    assert await campaign_status(session_factory, camp) == "draft"

    round_two = await submit(session_factory, tenant, camp)
    body = (await client.get(f"/v1/approvals/{round_two}", headers=tenant.headers)).json()
    assert body["round"] == 2
    assert body["decisions"] == []
    # The first reviewer's round-one approval does not count: both must approve again.
    assert (await decide(client, first, round_two)).json()["status"] == "pending"
    assert (await decide(client, second, round_two)).json()["status"] == "approved"


async def test_request_changes_returns_to_draft(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    legal = await reviewer(session_factory, tenant, "Quin", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)
    response = await decide(client, legal, request_id, "request_changes", "Fix the footer")
    assert response.json()["status"] == "changes_requested"
    assert await campaign_status(session_factory, camp) == "draft"


async def test_edit_after_approval_voids_it_and_needs_reapproval(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    legal = await reviewer(session_factory, tenant, "Ray", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    camp = await campaign(session_factory, tenant)
    round_one = await submit(session_factory, tenant, camp)
    await decide(client, legal, round_one)
    assert await campaign_status(session_factory, camp) == "approved"

    await edit(session_factory, tenant, camp)
    assert (await request_row(session_factory, round_one)).status == "voided"
    round_two = await submit(session_factory, tenant, camp)
    assert await campaign_status(session_factory, camp) == "in_review"
    assert (await decide(client, legal, round_two)).json()["status"] == "approved"


async def test_edit_in_review_voids_the_pending_request(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    legal = await reviewer(session_factory, tenant, "Sam", ["legal"])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)
    await edit(session_factory, tenant, camp)
    assert (await decide(client, legal, request_id)).status_code == 409


async def test_no_policy_approves_at_once(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    camp = await campaign(session_factory, tenant)
    row = await request_row(session_factory, await submit(session_factory, tenant, camp))
    assert row.status == "approved"
    assert row.stages == []
    assert await campaign_status(session_factory, camp) == "approved"


async def test_campaign_policy_overrides_the_default(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    await reviewer(session_factory, tenant, "Tia", ["brand"])
    await reviewer(session_factory, tenant, "Uma", ["legal"])
    await make_policy(client, tenant, [stage("Brand", ["brand"])])
    own = await make_policy(client, tenant, [stage("Legal", ["legal"])], is_default=False)
    camp = await campaign(session_factory, tenant, approval_policy_id=own["id"])
    row = await request_row(session_factory, await submit(session_factory, tenant, camp))
    assert [s["name"] for s in row.stages] == ["Legal"]


async def test_who_may_decide(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    legal = await reviewer(session_factory, tenant, "Vic", ["legal"])
    outsider = await reviewer(session_factory, tenant, "Wes", ["brand"])
    await make_policy(client, tenant, [stage("Legal", ["legal", "brand"], {"n_of_m": 2})])
    await make_policy(client, tenant, [stage("Legal", ["legal"])])  # the new default
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)
    unbound = await make_key(session_factory, tenant, ["approvals:write"])

    ineligible = await decide(client, outsider, request_id)
    assert ineligible.status_code == 403
    assert ineligible.headers["content-type"].startswith("application/problem+json")
    response = await client.post(
        f"/v1/approvals/{request_id}/decisions",
        json={"decision": "approve"},
        headers={"Authorization": f"Bearer {unbound}"},
    )
    assert response.status_code == 403
    assert (await decide(client, legal, request_id, "approve")).status_code == 201


async def test_duplicate_decision_is_409(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    people = [await reviewer(session_factory, tenant, n, ["legal"]) for n in ("Xan", "Yul")]
    await make_policy(client, tenant, [stage("Legal", ["legal"])])
    request_id = await submit(session_factory, tenant, await campaign(session_factory, tenant))
    assert (await decide(client, people[0], request_id)).status_code == 201
    assert (await decide(client, people[0], request_id, "reject")).status_code == 409
    body = (await client.get(f"/v1/approvals/{request_id}", headers=tenant.headers)).json()
    assert [d["decision"] for d in body["decisions"]] == ["approve"]
    assert body["status"] == "pending"


async def test_concurrent_decisions_complete_the_stage_once(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    people = [await reviewer(session_factory, tenant, n, ["legal"]) for n in ("Zed", "Amy")]
    await make_policy(client, tenant, [stage("Legal", ["legal"], "all")])
    camp = await campaign(session_factory, tenant)
    request_id = await submit(session_factory, tenant, camp)
    responses = await asyncio.gather(*(decide(client, p, request_id) for p in people))
    assert sorted(r.status_code for r in responses) == [201, 201]
    assert sorted(r.json()["status"] for r in responses) == ["approved", "pending"]
    assert await campaign_status(session_factory, camp) == "approved"
