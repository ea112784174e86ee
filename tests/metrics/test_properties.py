"""Property: after any sequence of message, enrollment and event changes (folds at random
points), what reads serve equals a recount from the raw rows, before and after the fold.

Time only moves forward, as in production: a message is sent "now", and events occur at or
before "now" (late events included), so a touch never appears before an already-examined
goal event (docs/metrics.md, limits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from app.config import MetricsSettings
from app.contacts.models import Contact
from app.core.db import transaction
from app.metrics.models import MetricDelta, MetricPendingEvent
from tests.fixtures.factories import Factory
from tests.fixtures.metrics import NO_SETTLE, World
from tests.fixtures.tenants import Tenant

START = datetime(2030, 3, 1, tzinfo=UTC)
STAMPS = ("delivered_at", "bounced_at", "first_opened_at", "first_clicked_at", "replied_at")

operations = st.one_of(
    st.tuples(st.just("enroll"), st.sampled_from(["A", "B", None]), st.sampled_from(["s1", "s2"])),
    st.tuples(st.just("send"), st.integers(0, 20)),
    st.tuples(st.just("stamp"), st.integers(0, 20), st.sampled_from(STAMPS)),
    st.tuples(st.just("fail"), st.integers(0, 20), st.sampled_from(["failed", "unknown"])),
    st.tuples(
        st.just("event"),
        st.integers(0, 20),
        st.sampled_from(["email.opened", "email.clicked", "email.replied"]),
        st.integers(0, 3000),
    ),
    st.tuples(
        st.just("goal"), st.integers(0, 20), st.integers(0, 5000), st.sampled_from([None, "9.5"])
    ),
    st.tuples(st.just("exit"), st.integers(0, 20), st.sampled_from(["unsubscribed", "done"])),
    st.tuples(st.just("erase"), st.integers(0, 20)),
    st.tuples(st.just("fold"), st.booleans()),
    st.tuples(st.just("wait"), st.integers(1, 3000)),
)


@dataclass
class Model:
    world: World
    now: datetime = START
    rows: list[dict[str, Any]] = field(default_factory=list)  # contact, enrollment, message

    def pick(self, index: int) -> dict[str, Any] | None:
        live = [row for row in self.rows if not row["erased"]]
        return live[index % len(live)] if live else None


async def apply(model: Model, op: tuple[Any, ...]) -> None:
    world, kind = model.world, op[0]
    model.now += timedelta(minutes=1)
    if kind == "enroll":
        contact = await world.contact()
        enrollment = await world.enroll(contact, model.now)
        message = await world.message(enrollment, contact, model.now, variant=op[1], step_key=op[2])
        model.rows.append(
            {"contact": contact, "enrollment": enrollment, "message": message, "erased": False}
        )
        return
    if kind == "wait":
        model.now += timedelta(minutes=op[1])
        return
    if kind == "fold":
        await world.fold(NO_SETTLE if op[1] else MetricsSettings(settle_seconds=10**6))
        return
    row = model.pick(op[1])
    if row is None:
        return
    if kind == "send":
        await world.set_message(row["message"], status="sent", sent_at=model.now)
    elif kind == "stamp":
        await world.set_message(row["message"], **{op[2]: model.now})
    elif kind == "fail":
        await world.set_message(row["message"], status=op[2], failed_at=model.now)
    elif kind == "event":
        at = model.now - timedelta(minutes=op[3])
        await world.event(row["contact"], op[2], at, message_id=row["message"])
    elif kind == "goal":
        at = model.now - timedelta(minutes=op[2])
        await world.event(row["contact"], "purchase", at, revenue=op[3])
    elif kind == "exit":
        state = "exited" if op[2] == "unsubscribed" else "completed"
        reason = "unsubscribed" if op[2] == "unsubscribed" else None
        await world.set_enrollment(
            row["enrollment"], state=state, exit_reason=reason, finished_at=model.now
        )
    elif kind == "erase":
        async with transaction(world.factory) as session:
            await session.execute(delete(Contact).where(Contact.id == row["contact"]))
        row["erased"] = True


@settings(
    max_examples=30,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operations, min_size=1, max_size=30))
async def test_reads_equal_recount_at_every_step(
    session_factory: Factory, tenant: Tenant, ops: list[tuple[Any, ...]]
) -> None:
    world = await World(
        session_factory, tenant, goal={"event_type": "purchase", "window": "P1D"}
    ).setup()
    model = Model(world)
    for variant in ("A", "B", None):  # a few contacts to act on from the first operation
        await apply(model, ("enroll", variant, "s1"))
    for op in ops:
        await apply(model, op)
        assert await world.recount() == [], op
    await world.fold()
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(MetricDelta)) == 0
        assert await session.scalar(select(func.count()).select_from(MetricPendingEvent)) == 0
    assert await world.recount() == []
