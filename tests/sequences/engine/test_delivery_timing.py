"""Send steps end when their message is settled, and the steps after them are timed from the
provider's acceptance (`sent_at`), not from the claim: moved clock, real worker in burst mode,
a real local peer refusing connections to hold a message back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.channels.delivery import deliver
from app.channels.models import Message
from app.config import HttpProviderSettings, Settings
from app.core.clock import clock
from app.core.ids import new_id
from app.core.state import AppState
from app.sequences.models import Enrollment, SequenceVersion
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.channels import free_port
from tests.fixtures.factories import Factory
from tests.fixtures.tenants import Tenant

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _held(settings: Settings) -> Settings:
    """Email through an HTTP provider nobody listens to: every attempt is a retryable
    connection error, so the message stays `queued` (nothing settles)."""
    http = HttpProviderSettings(url=f"http://127.0.0.1:{free_port()}/send")
    channels = settings.channels.model_copy(update={"email_provider": "http", "http": http})
    return settings.model_copy(update={"channels": channels})


def _log(settings: Settings) -> Settings:
    channels = settings.channels.model_copy(update={"email_provider": "log"})
    return settings.model_copy(update={"channels": channels})


def _ctx(state: AppState, settings: Settings) -> Any:
    return {
        "redis": state.redis,
        "settings": _log(settings),
        "engine": state.engine,
        "session_factory": state.session_factory,
        "queue": state.queue,
        "http": state.http,
    }


async def _first_message(factory: Factory, enrollment_id: str) -> Message:
    [message] = await factories.messages(factory, enrollment_id)
    return message


async def _reply_sequence(client: httpx.AsyncClient, tenant: Tenant, **settings: Any) -> str:
    first = await factories.email_template(client, tenant, "First")
    nudge = await factories.email_template(client, tenant, "Nudge")
    definition: dict[str, Any] = {
        "steps": [
            {"key": "first", "type": "send", "channel": "email", "template_id": first},
            {
                "key": "reply",
                "type": "wait_for_event",
                "event_type": "email.replied",
                "timeout": "PT10M",
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
            {"key": "nudge", "type": "send", "channel": "email", "template_id": nudge},
            {"key": "done", "type": "exit", "reason": "nudged"},
            {"key": "thanks", "type": "exit", "reason": "replied"},
        ]
    }
    if settings:
        definition["settings"] = settings
    return await factories.published_sequence(client, tenant, definition)


async def _held_first_send(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    sequence_id: str,
) -> str:
    """Enroll one contact at T0; its first message cannot leave (peer down)."""
    contact_id = await factories.contact(
        client, tenant, email=f"{uuid.uuid4().hex[:8]}@acme.example"
    )
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    await harness.scan(state, _held(settings))
    return enrollment_id


async def test_the_wait_after_a_send_starts_when_the_provider_accepts_the_message(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(T0)
    first = await factories.email_template(client, tenant, "First")
    second = await factories.email_template(client, tenant, "Second")
    sequence_id = await factories.published_sequence(
        client,
        tenant,
        {
            "steps": [
                {"key": "first", "type": "send", "channel": "email", "template_id": first},
                {"key": "pause", "type": "wait", "duration": "PT1H"},
                {"key": "second", "type": "send", "channel": "email", "template_id": second},
            ]
        },
    )
    enrollment_id = await _held_first_send(client, tenant, state, settings, sequence_id)
    message = await _first_message(session_factory, enrollment_id)
    assert (message.status, message.attempts) == ("queued", 1)  # refused, retry pending
    held = await factories.enrollment(session_factory, enrollment_id)
    assert (held.step_key, held.state) == ("first", "active")  # not past the send

    # The peer is back 20 minutes later: accepted then.
    clock.advance(timedelta(minutes=20))
    assert (await deliver(_ctx(state, settings), [message.id])).sent == 1
    sent = await _first_message(session_factory, enrollment_id)
    assert sent.sent_at == T0 + timedelta(minutes=20)
    await harness.run_jobs(_log(settings))  # the settle woke the enrollment

    waiting = await factories.enrollment(session_factory, enrollment_id)
    assert waiting.step_key == "second"
    assert waiting.next_action_at == T0 + timedelta(minutes=20, hours=1)
    clock.advance(timedelta(minutes=59, seconds=59))
    await harness.scan(state, _log(settings))
    assert len(await factories.messages(session_factory, enrollment_id)) == 1
    clock.advance(timedelta(seconds=1))
    await harness.scan(state, _log(settings))
    later = await factories.messages(session_factory, enrollment_id)
    assert [m.step_key for m in later] == ["first", "second"]
    assert later[1].sent_at == T0 + timedelta(minutes=80)


async def test_a_reply_after_sent_at_wins_even_before_the_wait_began(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    """The reply came after the email left but before the engine saw the send settle; one
    that predates the email's acceptance (a reply to something else) does not count."""
    clock.freeze(T0)
    sequence_id = await _reply_sequence(client, tenant)
    quick = await _held_first_send(client, tenant, state, settings, sequence_id)
    early = await _held_first_send(client, tenant, state, settings, sequence_id)
    quick_contact = (await factories.enrollment(session_factory, quick)).contact_id
    early_contact = (await factories.enrollment(session_factory, early)).contact_id

    clock.advance(timedelta(minutes=1))
    await factories.event(client, tenant, str(early_contact), "email.replied")  # before A left
    clock.advance(timedelta(minutes=1))
    ids = [(await _first_message(session_factory, e)).id for e in (quick, early)]
    assert (await deliver(_ctx(state, settings), ids)).sent == 2  # sent_at = T0 + 2 min
    clock.advance(timedelta(seconds=5))
    await factories.event(client, tenant, str(quick_contact), "email.replied")
    await harness.run_jobs(_log(settings))  # the settle wake-ups run only now

    replied = await factories.enrollment(session_factory, quick)
    assert (replied.state, replied.exit_reason) == ("exited", "replied")
    assert [m.step_key for m in await factories.messages(session_factory, quick)] == ["first"]
    waiting = await factories.enrollment(session_factory, early)
    assert waiting.next_action_at == T0 + timedelta(minutes=12)  # sent_at + PT10M
    clock.advance(timedelta(minutes=10))
    await harness.scan(state, _log(settings))
    nudged = await factories.messages(session_factory, early)
    assert [m.step_key for m in nudged] == ["first", "nudge"]


async def test_a_failed_send_goes_on_or_fails_the_enrollment_per_on_send_failure(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    clock.freeze(T0)
    going_on = await _reply_sequence(client, tenant)
    failing = await _reply_sequence(client, tenant, on_send_failure="fail")
    kept = await _held_first_send(client, tenant, state, settings, going_on)
    ended = await _held_first_send(client, tenant, state, settings, failing)
    # Attempts spent: the next refused attempt makes both messages `failed`.
    for enrollment_id in (kept, ended):
        message = await _first_message(session_factory, enrollment_id)
        async with session_factory() as session:
            await session.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(attempts=settings.channels.max_attempts - 1)
            )
            await session.commit()
    clock.advance(timedelta(hours=2))
    await harness.scan(state, _held(settings))  # nothing due in the engine
    ctx = _ctx(state, settings)
    ctx["settings"] = _held(settings)
    ids = [(await _first_message(session_factory, e)).id for e in (kept, ended)]
    assert (await deliver(ctx, ids)).failed == 2
    await harness.run_jobs(_log(settings))

    continuing = await factories.enrollment(session_factory, kept)
    assert (continuing.state, continuing.step_key) == ("waiting", "reply")
    assert ("first", "send_failed") in await factories.outcomes(session_factory, kept)
    failed = await factories.enrollment(session_factory, ended)
    assert (failed.state, failed.exit_reason) == ("failed", "send_failed")


async def test_a_pass_through_more_steps_than_the_budget_exits_with_step_limit(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
) -> None:
    """A loop of instant steps (stored directly: validation refuses such cycles) ends."""
    clock.freeze(T0)
    sequence_id = await factories.published_sequence(
        client, tenant, {"steps": [{"key": "ping", "type": "wait", "duration": "P1D"}]}
    )
    loop = {
        "steps": [
            {"key": "ping", "type": "update_contact", "attributes": {"x": 1}, "next": "pong"},
            {"key": "pong", "type": "update_contact", "attributes": {"x": 2}, "next": "ping"},
        ]
    }
    async with session_factory() as session:
        version = (
            await session.execute(
                select(SequenceVersion).where(SequenceVersion.sequence_id == uuid.UUID(sequence_id))
            )
        ).scalar_one()
        looped = SequenceVersion(
            id=new_id(),
            workspace_id=version.workspace_id,
            sequence_id=version.sequence_id,
            number=2,
            definition=loop,
            published_at=T0,
        )
        session.add(looped)
        await session.commit()
    contact_id = await factories.contact(client, tenant, email="loop@acme.example")
    enrollment_id = await factories.enroll(client, tenant, sequence_id, contact_id)
    async with session_factory() as session:
        await session.execute(
            update(Enrollment)
            .where(Enrollment.id == uuid.UUID(enrollment_id))
            .values(sequence_version_id=looped.id)
        )
        await session.commit()
    await harness.scan(state, settings)

    ended = await factories.enrollment(session_factory, enrollment_id)
    assert (ended.state, ended.exit_reason) == ("exited", "step_limit")
    steps = await factories.outcomes(session_factory, enrollment_id)
    assert len([s for s in steps if s[1] == "updated"]) == 50
    assert steps[-1] == (None, "exited")
