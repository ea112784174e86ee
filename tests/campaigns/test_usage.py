"""What uses a sequence, segment, template or approval policy: `GET .../usage` and the 409
`in-use` a DELETE answers while anything does (regression: deleting a sequence a campaign used
was a 500; a segment a scheduled campaign used could be deleted, breaking its launch)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import campaigns as campaign_api
from tests.fixtures import factories
from tests.fixtures.approvals import make_policy, stage
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant


async def _in_use(
    client: httpx.AsyncClient, tenant: Tenant, path: str, expected: list[dict[str, Any]]
) -> None:
    """DELETE is 409 `in-use` naming exactly `expected`; `GET .../usage` lists the same."""
    refused = await client.delete(path, headers=tenant.headers)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "https://herald.dev/problems/in-use"
    assert problem["status"] == 409
    users = [{k: user[k] for k in ("kind", "id", "name", "via")} for user in problem["used_by"]]
    assert sorted(users, key=str) == sorted(expected, key=str)
    for user in expected:
        assert user["id"] in problem["detail"]
        assert user["name"] in problem["detail"]
    usage = await client.get(f"{path}/usage", headers=tenant.headers)
    assert usage.status_code == 200, usage.text
    assert usage.json()["in_use"] is True
    assert usage.json()["used_by"] == problem["used_by"]


async def _free(client: httpx.AsyncClient, tenant: Tenant, path: str) -> None:
    usage = await client.get(f"{path}/usage", headers=tenant.headers)
    assert usage.status_code == 200, usage.text
    assert usage.json()["in_use"] is False
    assert usage.json()["used_by"] == []
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{path}/usage", headers=tenant.headers)).status_code == 404


def _campaign(campaign: dict[str, Any], via: str, kind: str = "campaign") -> dict[str, Any]:
    return {"kind": kind, "id": campaign["id"], "name": campaign["name"], "via": via}


async def test_sequence_used_by_any_campaign_is_409_not_500(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    body = await campaign_api.world(client, tenant)
    campaign = await campaign_api.create(client, tenant, body)
    path = f"/v1/sequences/{body['sequence_id']}"
    await _in_use(client, tenant, path, [_campaign(campaign, "sequence_id")])
    # A finished campaign keeps its sequence as the record of what it sent.
    await campaign_api.force_status(session_factory, campaign["id"], "archived")
    await _in_use(client, tenant, path, [_campaign(campaign, "sequence_id")])
    assert (await client.get(f"{path}/usage", headers=other_tenant.headers)).status_code == 404
    assert (await client.delete(path, headers=other_tenant.headers)).status_code == 404

    unused = await campaign_api.sequence(client, tenant)
    await _free(client, tenant, f"/v1/sequences/{unused}")


async def test_segment_used_by_campaigns_triggers_sequences_and_segments(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    body = await campaign_api.world(client, tenant)
    segment = body["include_segments"][0]
    scheduled = await campaign_api.create(client, tenant, body)
    await campaign_api.force_status(session_factory, scheduled["id"], "scheduled")
    triggered = await campaign_api.create(
        client,
        tenant,
        {
            **body,
            "name": "On entry",
            "type": "triggered",
            "include_segments": [],
            "trigger": {"kind": "segment_entry", "segment_id": segment},
        },
    )
    excluding = await campaign_api.create(
        client,
        tenant,
        {**body, "name": "Others", "include_segments": [], "exclude_segments": [segment]},
    )
    template = await factories.email_template(client, tenant, "Hi")
    definition = {
        "steps": [{"key": "hi", "type": "send", "channel": "email", "template_id": template}],
        "settings": {"exit_rules": [{"on": "left_segment", "segment_id": segment}]},
    }
    sequence = await client.post(
        "/v1/sequences", json={"name": "Leavers", "definition": definition}, headers=tenant.headers
    )
    assert sequence.status_code == 201, sequence.text
    parent = await client.post(
        "/v1/segments",
        json={"name": "Parent", "rule": {"segment": {"id": segment}}},
        headers=tenant.headers,
    )
    assert parent.status_code == 201, parent.text
    path = f"/v1/segments/{segment}"
    await _in_use(
        client,
        tenant,
        path,
        [
            _campaign(scheduled, "include_segments"),
            _campaign(triggered, "trigger.segment_id", kind="trigger"),
            _campaign(excluding, "exclude_segments"),
            {
                "kind": "sequence",
                "id": sequence.json()["id"],
                "name": "Leavers",
                "via": "definition",
            },
            {"kind": "segment", "id": parent.json()["id"], "name": "Parent", "via": "rule"},
        ],
    )
    assert (await client.get(f"{path}/usage", headers=other_tenant.headers)).status_code == 404

    # Finished campaigns stop using it; the others must let go first.
    for campaign in (scheduled, triggered, excluding):
        await campaign_api.force_status(session_factory, campaign["id"], "completed")
    for other in (f"/v1/sequences/{sequence.json()['id']}", f"/v1/segments/{parent.json()['id']}"):
        assert (await client.delete(other, headers=tenant.headers)).status_code == 204
    await _free(client, tenant, path)


async def test_template_used_by_draft_or_published_sequences(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    template = await factories.email_template(client, tenant, "Hi")
    steps = [{"key": "hi", "type": "send", "channel": "email", "template_id": template}]
    published = await factories.published_sequence(client, tenant, {"steps": steps})
    draft = await client.post(
        "/v1/sequences",
        json={"name": "Draft", "definition": {"steps": steps}},
        headers=tenant.headers,
    )
    assert draft.status_code == 201, draft.text
    path = f"/v1/templates/{template}"
    await _in_use(
        client,
        tenant,
        path,
        [
            {"kind": "sequence", "id": published, "name": "Seq", "via": "definition"},
            {"kind": "sequence", "id": draft.json()["id"], "name": "Draft", "via": "definition"},
        ],
    )
    assert (await client.get(f"{path}/usage", headers=other_tenant.headers)).status_code == 404
    unused = await factories.email_template(client, tenant, "Unused")
    await _free(client, tenant, f"/v1/templates/{unused}")


async def test_approval_policy_used_by_unfinished_campaigns(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    policy = await make_policy(client, tenant, [stage("Owners", ["owner"], "any")])
    body = await campaign_api.world(client, tenant)
    campaign = await campaign_api.create(
        client, tenant, {**body, "approval_policy_id": policy["id"]}
    )
    path = f"/v1/approval-policies/{policy['id']}"
    await _in_use(client, tenant, path, [_campaign(campaign, "approval_policy_id")])
    assert (await client.get(f"{path}/usage", headers=other_tenant.headers)).status_code == 404
    await campaign_api.force_status(session_factory, campaign["id"], "cancelled")
    await _free(client, tenant, path)
