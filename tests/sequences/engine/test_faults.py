"""Fault tests of the engine's promises (DESIGN.md section 4): a worker SIGKILLed mid-run and
a Redis FLUSHALL with pending work lose nothing, duplicate nothing and fire nothing early."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.channels.models import Message
from app.config import Settings
from app.core.clock import clock, utcnow
from app.core.db import transaction
from app.core.state import AppState
from app.sequences.engine.scheduler import lease_due
from tests.fixtures import factories
from tests.fixtures import worker as harness
from tests.fixtures.factories import Factory
from tests.fixtures.processes import WorkerProcess, wait_until, worker_env
from tests.fixtures.services import Services
from tests.fixtures.tenants import Tenant
from tests.sequences.engine.fault_support import (
    add_contacts,
    count_enrollments,
    enroll_all,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CONTACTS = 500
KILLS_AT = (1, 250, 500, 750)  # SIGKILL one worker once this many messages exist
SENDING_LEASE_SETTING = "sending_lease_seconds"


def _sending_lease_seconds() -> float:
    """How long a send interrupted between its `sending` lease and its outcome stays
    unretried: the workers run with `HERALD_CHANNELS__SENDING_LEASE_SECONDS=5`."""
    return 5.0


async def _two_sends(client: httpx.AsyncClient, tenant: Tenant, pause: str) -> str:
    first = await factories.email_template(client, tenant, "First")
    second = await factories.email_template(client, tenant, "Second")
    definition = {
        "steps": [
            {"key": "first", "type": "send", "channel": "email", "template_id": first},
            {"key": "pause", "type": "wait", "duration": pause},
            {"key": "second", "type": "send", "channel": "email", "template_id": second},
        ]
    }
    return await factories.published_sequence(client, tenant, definition)


async def _message_count(factory: Factory, status: str | None = None) -> int:
    async with factory() as session:
        query = select(func.count()).select_from(Message)
        if status is not None:
            query = query.where(Message.status == status)
        return int(await session.scalar(query) or 0)


async def _assert_once_each_never_early(factory: Factory, enrollments: int) -> None:
    """Exactly one message per (enrollment, send step), all sent, none before its due time,
    and each enrollment's second send after its first."""
    async with factory() as session:
        rows = (
            await session.execute(
                select(
                    Message.enrollment_id,
                    Message.step_key,
                    Message.status,
                    Message.due_at,
                    Message.created_at,
                )
            )
        ).all()
    assert len(rows) == 2 * enrollments
    by_enrollment: dict[uuid.UUID, dict[str, datetime]] = {}
    for enrollment_id, step_key, status, due_at, created_at in rows:
        assert status == "sent", (enrollment_id, step_key, status)
        assert created_at >= due_at, (enrollment_id, step_key, due_at, created_at)
        steps = by_enrollment.setdefault(enrollment_id, {})
        assert step_key not in steps, (enrollment_id, step_key)
        steps[step_key] = created_at
    assert len(by_enrollment) == enrollments
    for enrollment_id, steps in by_enrollment.items():
        assert set(steps) == {"first", "second"}, enrollment_id
        assert steps["second"] > steps["first"], enrollment_id


@pytest.mark.slow
async def test_sigkilled_workers_lose_nothing_and_duplicate_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    session_factory: Factory,
    database_url: str,
    services: Services,
    tmp_path: Path,
) -> None:
    sequence_id = await _two_sends(client, tenant, "PT1S")
    await add_contacts(session_factory, tenant.workspace_id, CONTACTS, "kill")
    assert len(await enroll_all(state, tenant.workspace_id, sequence_id)) == CONTACTS
    env = worker_env(
        database_url,
        services.redis_url,
        engine__lease_seconds="5",
        # Small batches: many jobs in flight, so a kill lands in the middle of some.
        engine__batch_size="25",
        channels__email_provider="log",
        channels__rate_per_second="100000",
        **{f"channels__{SENDING_LEASE_SETTING}": "5"},
        logging__level="WARNING",
    )
    log_path = tmp_path / "workers.log"
    steady = WorkerProcess(env, log_path)
    victim = WorkerProcess(env, log_path)
    kills_with_work_left = 0
    try:
        # Workers start sending within seconds on a quiet box (imports alone take ~20 s when
        # the two cores are shared with other suites); a worker that cannot fails here.
        await wait_until(
            partial(_at_least, session_factory, 1),
            timeout=120,
            what=f"a first send (log: {log_path})",
        )
        for threshold in KILLS_AT:
            await wait_until(
                partial(_at_least, session_factory, threshold),
                timeout=120,
                what=f"{threshold} messages (log: {log_path})",
            )
            if await count_enrollments(session_factory, "completed") < CONTACTS:
                kills_with_work_left += 1
            victim.kill()
            victim = WorkerProcess(env, log_path)

        async def all_completed() -> bool:
            return await count_enrollments(session_factory, "completed") == CONTACTS

        await wait_until(all_completed, timeout=120, what="every enrollment completed")

        # A send interrupted between its `sending` lease and its outcome is re-driven
        # (the log provider is idempotent) once that lease runs out.
        async def all_sent() -> bool:
            return await _message_count(session_factory, "sent") >= 2 * CONTACTS

        await wait_until(all_sent, timeout=_sending_lease_seconds() + 60, what="every message sent")
    finally:
        victim.stop()
        steady.stop()
    assert kills_with_work_left >= 1
    await _assert_once_each_never_early(session_factory, CONTACTS)


async def _at_least(factory: Factory, messages: int) -> bool:
    return await _message_count(factory) >= messages


# -- Redis FLUSHALL ------------------------------------------------------------------------


async def _scan_without_running(state: AppState, settings: Settings) -> int:
    """The scan's lease + enqueue (what `engine_scan` does), leaving the jobs in Redis."""
    async with transaction(state.session_factory, state.queue) as session:
        batches = await lease_due(
            session, harness.engine_settings(settings), utcnow(), timedelta(0)
        )
    return sum(len(batch.ids) for batch in batches)


async def test_flushall_after_the_scan_runs_late_by_the_lease_never_early_never_twice(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
    redis: Redis,
) -> None:
    clock.freeze(NOW)
    lease = timedelta(seconds=harness.engine_settings(settings).engine.lease_seconds)
    sequence_id = await _two_sends(client, tenant, "PT1H")
    await add_contacts(session_factory, tenant.workspace_id, 50, "flush")
    await enroll_all(state, tenant.workspace_id, sequence_id)

    assert await _scan_without_running(state, settings) == 50
    await redis.flushall()
    await harness.run_jobs(settings)  # the batch jobs are gone: nothing runs
    assert await _message_count(session_factory) == 0

    clock.advance(lease)  # the lease holds up to and including its last instant
    await harness.scan(state, settings)
    assert await _message_count(session_factory) == 0

    clock.advance(timedelta(seconds=1))
    await harness.scan(state, settings)  # the reconciler: expired leases are due again
    await _assert_first_sends(
        session_factory, 50, due=NOW, created=NOW + lease + timedelta(seconds=1)
    )
    await harness.scan(state, settings)
    assert await _message_count(session_factory) == 50  # never twice

    clock.advance(timedelta(hours=1))
    await harness.scan(state, settings)
    assert await _message_count(session_factory, "sent") == 100
    assert await count_enrollments(session_factory, "completed") == 50


async def test_flushall_loses_api_start_jobs_and_the_next_scan_runs_them(
    client: httpx.AsyncClient,
    tenant: Tenant,
    state: AppState,
    settings: Settings,
    session_factory: Factory,
    redis: Redis,
) -> None:
    clock.freeze(NOW)
    sequence_id = await _two_sends(client, tenant, "PT1H")
    for i in range(50):
        contact_id = await factories.contact(client, tenant, email=f"api{i}@example.com")
        await factories.enroll(client, tenant, sequence_id, contact_id)
    await redis.flushall()
    await harness.run_jobs(settings)  # the start jobs are gone: nothing runs
    assert await _message_count(session_factory) == 0

    clock.advance(timedelta(seconds=1))
    await harness.scan(state, settings)  # due since enrollment, no lease: taken at once
    await _assert_first_sends(session_factory, 50, due=NOW, created=NOW + timedelta(seconds=1))
    await harness.scan(state, settings)
    assert await _message_count(session_factory) == 50


async def _assert_first_sends(
    factory: Factory, count: int, *, due: datetime, created: datetime
) -> None:
    async with factory() as session:
        rows = (
            await session.execute(
                select(Message.step_key, Message.status, Message.due_at, Message.created_at)
            )
        ).all()
    assert len(rows) == count
    assert {tuple(row) for row in rows} == {("first", "sent", due, created)}
