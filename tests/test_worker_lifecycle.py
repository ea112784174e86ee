"""A real worker process stops gracefully (issue 15, item 5): on SIGTERM it takes no new job,
lets the running ones finish within `HERALD_WORKER__SHUTDOWN_GRACE_SECONDS` (outcomes
recorded), re-queues what the grace period cut short, and exits 0.

Observed before: exit status 1 and a `CancelledError` traceback 1.3 s after SIGTERM, the
running jobs cancelled. Each worker here has its own database (its periodic jobs run there)
and its own queue name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq.jobs import JobStatus

from app.migrate import upgrade
from tests.fixtures.processes import (
    HERALD_WORKER,
    PROBE,
    WorkerEnv,
    WorkerProcess,
    arq_pool,
    wait_for_key,
)
from tests.fixtures.services import Services, create_database, drop_database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker_database(services: Services) -> Iterator[str]:
    name = create_database(services, "herald_worker")
    url = services.database_url(name)
    upgrade(url)
    yield url
    drop_database(services, name)


@pytest.fixture
def worker_env(worker_database: str, services: Services) -> WorkerEnv:
    return WorkerEnv(worker_database, services.redis_url, f"herald:test:{uuid.uuid4().hex[:8]}")


def test_sigterm_lets_a_running_job_finish_and_exits_0(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    worker = WorkerProcess(worker_env, tmp_path / "worker.log", PROBE)
    marker = uuid.uuid4().hex

    async def scenario() -> tuple[int, float, JobStatus, bool, bool]:
        pool = await arq_pool(worker_env)
        try:
            job = await pool.enqueue_job("slow_job", 2.0, marker)
            assert job is not None
            await wait_for_key(pool, f"{marker}:started", worker)
            # Queued behind the running job: must not start once the stop is asked.
            later = await pool.enqueue_job("slow_job", 0.1, f"{marker}-later")
            assert later is not None
            status, took = await asyncio.to_thread(worker.stop)
            info = await job.result_info()
            later_started = bool(await pool.get(f"{marker}-later:started"))
            return (
                status,
                took,
                await later.status(),
                bool(info and info.success),
                later_started,
            )
        finally:
            await pool.aclose()

    try:
        status, took, later_status, succeeded, later_started = asyncio.run(scenario())
    finally:
        worker.kill()
    assert status == 0, worker.output()
    assert "CancelledError" not in worker.output()
    assert succeeded  # the running job finished and its result was recorded
    assert took >= 1.0  # it waited for the job (~2 s from its start), not cancelled it
    assert not later_started
    assert later_status == JobStatus.queued  # left for the next worker, not lost


def test_a_job_past_the_grace_period_is_requeued_and_the_worker_exits_0(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        worker_env, tmp_path / "worker.log", PROBE, HERALD_WORKER__SHUTDOWN_GRACE_SECONDS="1"
    )
    marker = uuid.uuid4().hex

    async def scenario() -> tuple[int, float, JobStatus, bool]:
        pool = await arq_pool(worker_env)
        try:
            job = await pool.enqueue_job("slow_job", 60.0, marker)
            assert job is not None
            await wait_for_key(pool, f"{marker}:started", worker)
            status, took = await asyncio.to_thread(worker.stop)
            finished = bool(await pool.get(f"{marker}:finished"))
            return status, took, await job.status(), finished
        finally:
            await pool.aclose()

    try:
        status, took, job_status, finished = asyncio.run(scenario())
    finally:
        worker.kill()
    assert status == 0, worker.output()
    assert took < 10, took
    assert not finished
    assert job_status == JobStatus.queued  # cancelled after the grace, re-queued: not lost


def test_herald_worker_command_exits_0_on_sigterm(worker_env: WorkerEnv, tmp_path: Path) -> None:
    worker = WorkerProcess(worker_env, tmp_path / "worker.log", HERALD_WORKER)
    try:
        # Started when its health record appears in Redis (arq writes it every poll).
        async def started() -> None:
            pool = await arq_pool(worker_env)
            try:
                await wait_for_key(pool, f"{worker_env.queue}:health-check", worker)
            finally:
                await pool.aclose()

        asyncio.run(started())
        status, _ = worker.stop()
    finally:
        worker.kill()
    assert status == 0, worker.output()
    assert "Traceback" not in worker.output()
