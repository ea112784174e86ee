"""Property: a reply or an unsubscribe committed before a step's claim prevents that step
(DESIGN.md section 4). Hypothesis draws, for one contact of "send a -> wait PT1H -> send b ->
wait PT1H -> send c" (exit rules: replied, unsubscribed), a script of replies, unsubscribes,
clock moves and scans; a plain-Python model of the promise predicts the messages and the
enrollment's final state, and the engine, driven through the API and a burst worker, must
agree. Every example starts from empty tables and an empty Redis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from app.channels.tracking import make_token
from app.config import Settings
from app.core.clock import clock
from app.core.state import AppState
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant, make_tenant
from tests.sequences.engine.fault_support import truncate_all

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SENDS = ("a", "b", "c")
WAIT_MINUTES = 60
Kind = Literal["reply", "unsubscribe", "advance", "scan"]
Op = tuple[Kind, int]  # (kind, minutes to advance; 0 unless "advance")

operations = st.lists(
    st.one_of(
        st.just(("reply", 0)),
        st.just(("unsubscribe", 0)),
        st.just(("scan", 0)),
        st.tuples(st.just("advance"), st.sampled_from([1, 30, 59, 60, 61, 120])),
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Model:
    """What the promise implies. A claim (a scan reaching the enrollment while it is due,
    or woken by a reply) first checks the exit rules in their listed order against
    everything committed before it; only then does it run the due send."""

    minute: int = 0
    due: int | None = 0  # the next claim's due minute; None once the enrollment has ended
    woken: bool = False  # a reply made it due now (ingestion wakes exit-rule enrollments)
    step: int = 0
    replied: bool = False
    opted_out: bool = False
    sent: list[str] = field(default_factory=list)
    state: str = "active"
    reason: str | None = None

    def reply(self) -> None:
        self.replied = True
        self.woken = self.due is not None

    def unsubscribe(self, one_click: bool) -> None:
        self.opted_out = True
        if one_click and self.due is not None:  # the endpoint ends live enrollments at once
            self.end("exited", "unsubscribed")

    def scan(self) -> None:
        if self.due is None or not (self.woken or self.due <= self.minute):
            return
        self.woken = False
        if self.replied:
            self.end("exited", "replied")
        elif self.opted_out:
            self.end("exited", "unsubscribed")
        else:
            self.sent.append(SENDS[self.step])
            self.step += 1
            if self.step == len(SENDS):
                self.end("completed", None)
            else:
                self.due = self.minute + WAIT_MINUTES  # a plain wait stays `active`

    def end(self, state: str, reason: str | None) -> None:
        self.due, self.woken, self.state, self.reason = None, False, state, reason


async def _setup(client: httpx.AsyncClient, factory: Factory) -> tuple[Tenant, str, str]:
    tenant = await make_tenant(factory, "Acme")
    template_id = await factories.email_template(client, tenant, "Hello")
    steps: list[dict[str, object]] = []
    for key in SENDS:
        if steps:
            steps.append({"key": f"wait_{key}", "type": "wait", "duration": "PT1H"})
        steps.append({"key": key, "type": "send", "channel": "email", "template_id": template_id})
    definition = {
        "steps": steps,
        "settings": {"exit_rules": [{"on": "replied"}, {"on": "unsubscribed"}]},
    }
    sequence_id = await factories.published_sequence(client, tenant, definition)
    contact_id = await factories.contact(client, tenant, email="ada@example.com")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    return tenant, contact_id, enrollment_id


async def _unsubscribe(
    client: httpx.AsyncClient,
    tenant: Tenant,
    app_settings: Settings,
    factory: Factory,
    contact_id: str,
    enrollment_id: str,
) -> bool:
    """One-click with the latest message's token when there is a message; otherwise the
    consent API (which only records the opt-out: the next claim acts on it). True when it
    was one-click."""
    sent = await factories.messages(factory, enrollment_id)
    if sent:
        token = make_token(app_settings, "unsubscribe", sent[-1].id)
        response = await client.post(f"/v1/unsubscribe/{token}")
        assert response.status_code == 200, response.text
        return True
    response = await client.put(
        f"/v1/contacts/{contact_id}/consent/email",
        json={"status": "unsubscribed", "source": "preference_center"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return False


@settings(
    max_examples=30,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=operations)
# The cases the promise is about, always run: an exit event between a step's due time and
# its claim, through each path (wake-up, one-click, consent API), and both rules at once.
@example(script=[("scan", 0), ("advance", 60), ("reply", 0), ("scan", 0)])
@example(script=[("scan", 0), ("advance", 61), ("unsubscribe", 0), ("scan", 0)])
@example(script=[("unsubscribe", 0), ("scan", 0), ("advance", 120), ("scan", 0)])
@example(script=[("scan", 0), ("advance", 60), ("scan", 0), ("reply", 0), ("advance", 60)])
@example(script=[("reply", 0), ("unsubscribe", 0), ("scan", 0)])
async def test_exit_events_committed_before_a_claim_prevent_its_step(
    client: httpx.AsyncClient,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
    script: list[Op],
) -> None:
    await truncate_all(state)
    clock.freeze(NOW)
    tenant, contact_id, enrollment_id = await _setup(client, session_factory)
    model = Model()
    for kind, minutes in script:
        if kind == "advance":
            clock.advance(timedelta(minutes=minutes))
            model.minute += minutes
        elif kind == "scan":
            await harness.scan(state, settings)
            model.scan()
        elif kind == "reply":
            await factories.event(client, tenant, contact_id, "email.replied")
            model.reply()
        else:
            one_click = await _unsubscribe(
                client, tenant, settings, session_factory, contact_id, enrollment_id
            )
            model.unsubscribe(one_click)

    sent = await factories.messages(session_factory, enrollment_id)
    assert [m.step_key for m in sent] == model.sent
    assert all(m.created_at >= m.due_at for m in sent)
    row = await factories.enrollment(session_factory, enrollment_id)
    assert (row.state, row.exit_reason) == (model.state, model.reason)
    assert uuid.UUID(contact_id) == row.contact_id
