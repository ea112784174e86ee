"""A winner declared with `apply_to_remaining` routes every contact not yet sent the step to
the winner (real launch, engine scan and arq worker; the clock is moved, never waited for);
without `apply_to_remaining` the weighted assignment goes on."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.channels.models import Message
from app.config import Settings
from app.core.clock import clock
from app.core.state import AppState
from app.sequences.definition import Variant
from app.sequences.engine.variants import pick_variant
from tests.experiments import support as xs
from tests.fixtures import factories
from tests.fixtures import launch as ls
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

CONTACTS = 16


async def offer_variants(factory: Factory, campaign_id: uuid.UUID) -> dict[uuid.UUID, str | None]:
    async with factory() as session:
        rows = await session.execute(
            select(Message.contact_id, Message.variant).where(
                Message.campaign_id == campaign_id, Message.step_key == "offer"
            )
        )
        return {row.contact_id: row.variant for row in rows}


@pytest.mark.parametrize("apply_to_remaining", [True, False])
async def test_declared_winner_routes_the_remaining_contacts(
    client: httpx.AsyncClient,
    session_factory: Factory,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    apply_to_remaining: bool,
) -> None:
    clock.freeze(xs.NOW)
    contacts = [
        await factories.contact(client, tenant, email=f"r{i}-{uuid.uuid4().hex[:6]}@example.com")
        for i in range(CONTACTS)
    ]
    segment = await factories.static_segment(client, tenant, contacts)
    world = await xs.world(
        client, session_factory, tenant, include=[segment], wait="PT1H", status="approved"
    )
    await ls.call(session_factory, world.campaign_id, "schedule")
    assert await ls.call(session_factory, world.campaign_id, "launch") == CONTACTS
    await harness.scan(state, settings)  # everyone enters the wait
    assert await offer_variants(session_factory, world.campaign_id) == {}
    # the weighted hash alone would send some contacts `a`
    options = [
        Variant(key="a", template_id=uuid.uuid4()),
        Variant(key="b", template_id=uuid.uuid4()),
    ]
    hashed = {uuid.UUID(c): pick_variant(options, uuid.UUID(c), "offer").key for c in contacts}
    assert set(hashed.values()) == {"a", "b"}

    response = await client.post(
        f"/v1/campaigns/{world.campaign_id}/experiments/offer/winner",
        json={"variant": "b", "metric": "click", "apply_to_remaining": apply_to_remaining},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    clock.advance(timedelta(hours=1, seconds=1))
    await harness.scan(state, settings)
    sent = await offer_variants(session_factory, world.campaign_id)
    assert len(sent) == CONTACTS
    if apply_to_remaining:
        assert set(sent.values()) == {"b"}
    else:
        assert sent == hashed
