"""The metrics scenario several metrics tests share: one campaign's sends, opens, clicks and
conversions at known minutes, and the totals they must add up to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.metrics import World

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


async def build_scenario(world: World) -> dict[str, Any]:
    """Four contacts, one step with variants A/B, opens repeated, conversions in and out of
    the goal window, a late event, an unsubscribe and a completion."""
    c1, c2, c3, c4 = [await world.contact(segment=0 if i < 2 else 1) for i in range(4)]
    e1, e2, e3, e4 = [await world.enroll(c, T0) for c in (c1, c2, c3, c4)]
    m1 = await world.message(e1, c1, T0, variant="A")
    m2 = await world.message(e2, c2, T0, variant="B")
    m3 = await world.message(e3, c3, T0, variant="A")
    m4 = await world.message(e4, c4, T0, variant="B")
    # Delivery progresses in several statements, as the worker writes it.
    for m in (m1, m2, m3):
        await world.set_message(m, status="sending")
        await world.set_message(m, status="sent", sent_at=minutes(5))
    await world.set_message(m1, status="delivered", delivered_at=minutes(6))
    await world.set_message(m2, status="bounced", bounced_at=minutes(7))
    await world.set_message(m4, status="failed", failed_at=minutes(5))
    await world.set_message(m1, first_opened_at=minutes(10))
    await world.set_message(m1, first_clicked_at=minutes(12))
    await world.set_message(m3, first_opened_at=minutes(70))
    # Opens: three for m1 (duplicates count in totals, once in uniques), one for m3.
    for at in (10, 20, 80):
        await world.event(c1, "email.opened", minutes(at), message_id=m1, step_key="hello")
    await world.event(c1, "email.clicked", minutes(12), message_id=m1, url="https://a.example")
    await world.event(c3, "email.opened", minutes(70), message_id=m3)
    await world.event(c3, "email.opened", minutes(71), message_id="not-a-uuid")
    # Conversions.
    await world.event(c1, "purchase", minutes(120), revenue="100.00")  # counts
    await world.event(c1, "purchase", minutes(180), revenue="50.00")  # a second one counts
    await world.event(c3, "purchase", T0 + timedelta(days=8))  # outside the 7-day window
    await world.event(c2, "purchase", T0, revenue="999")  # before the touch
    await world.event(c4, "purchase", minutes(60), revenue="999")  # never touched (failed)
    await world.event(c1, "browse", minutes(30))  # not a goal
    # A late event: occurred six days after the touch, received much later.
    await world.event(c3, "purchase", T0 + timedelta(days=6), revenue="20.0")
    await world.set_enrollment(
        e2, state="exited", exit_reason="unsubscribed", finished_at=minutes(61)
    )
    await world.set_enrollment(e4, state="completed", finished_at=minutes(62))
    return {"contacts": (c1, c2, c3, c4), "messages": (m1, m2, m3, m4)}


EXPECTED_TOTALS = {
    "enrolled": 4,
    "completed": 1,
    "exited": 1,
    "unsubscribed": 1,
    "sent": 3,
    "delivered": 1,
    "bounced": 1,
    "failed": 1,
    "unknown": 0,
    "opened": {"unique": 2, "total": 4},
    "clicked": {"unique": 1, "total": 1},
    "replied": {"unique": 0, "total": 0},
    "converted": 3,
    "revenue": "170.0000",
    "rates": {
        "open": 1.0,
        "click": 0.5,
        "click_to_open": 0.5,
        "reply": 0.0,
        "conversion": 0.75,
        "bounce": pytest.approx(1 / 3),
        "unsubscribe": 0.25,
    },
}
