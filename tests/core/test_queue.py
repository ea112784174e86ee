"""Jobs reach Redis only after commit, under deterministic ids, and a real worker runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from arq.jobs import Job
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.core.clock import clock
from app.core.db import transaction
from app.core.idempotency import IdempotencyRepository
from app.core.jobs import enqueue
from app.core.observability import job_counts
from app.core.state import AppState
from tests.fixtures import worker as harness
from tests.fixtures.tenants import Tenant


async def queued_ids(state: AppState) -> set[str]:
    return {
        str(job.job_id) for job in await state.redis.queued_jobs(queue_name=state.queue.queue_name)
    }


async def test_job_is_enqueued_only_after_commit(state: AppState) -> None:
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "purge_idempotency_keys", job_key=("after-commit",))
        assert await queued_ids(state) == set()
    assert await queued_ids(state) == {"purge_idempotency_keys:after-commit"}


async def test_rollback_enqueues_nothing(state: AppState) -> None:
    async def enqueue_then_fail() -> None:
        async with transaction(state.session_factory, state.queue) as session:
            enqueue(session, "purge_idempotency_keys", job_key=("rolled-back",))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await enqueue_then_fail()
    assert await queued_ids(state) == set()


async def test_same_job_key_is_enqueued_once(state: AppState) -> None:
    for _ in range(3):
        async with transaction(state.session_factory, state.queue) as session:
            enqueue(session, "purge_idempotency_keys", job_key=("once",))
    assert await queued_ids(state) == {"purge_idempotency_keys:once"}


async def test_real_worker_runs_the_job_and_counts_it(
    state: AppState,
    settings: Settings,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock.freeze(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    async with transaction(session_factory) as session:
        store = IdempotencyRepository(session, tenant.workspace_id)
        await store.claim(
            "old",
            "f",
            clock.now() - timedelta(hours=25),
            timedelta(hours=24),
            timedelta(seconds=60),
        )
    await harness.periodic(state, settings, "purge_idempotency_keys", "manual")

    job = Job("purge_idempotency_keys:manual", state.redis, _queue_name=state.queue.queue_name)
    assert await job.result(timeout=5) == 1
    counts = await job_counts(state.redis)
    assert counts[b"purge_idempotency_keys|succeeded"] == b"1"


async def test_a_drain_job_refused_as_taken_is_queued_again(state: AppState) -> None:
    """arq refuses an id whose job is queued or still running; a drain job then gets one
    more run under `<id>:again`, so rows committed now are not left for the next sweep."""
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "purge_idempotency_keys", job_key=("drain",), again_if_taken=True)
    assert await queued_ids(state) == {"purge_idempotency_keys:drain"}
    # The first is still there (queued here; running in the race): taken.
    async with transaction(state.session_factory, state.queue) as session:
        enqueue(session, "purge_idempotency_keys", job_key=("drain",), again_if_taken=True)
        enqueue(session, "purge_idempotency_keys", job_key=("plain",))
        enqueue(session, "purge_idempotency_keys", job_key=("plain",))
    assert await queued_ids(state) == {
        "purge_idempotency_keys:drain",
        "purge_idempotency_keys:drain:again",
        "purge_idempotency_keys:plain",
    }
