"""Outages with real processes (issue 15, 7(c)): `herald serve` in its own process under a
stream of concurrent requests while its PostgreSQL restarts (`pg_ctl restart -m immediate`)
or stops for a few seconds, and while its Redis stops: every answer is 2xx, or 503
problem+json with `Retry-After`; the API recovers on its own within seconds; SIGTERM then
stops it with exit status 0.

PostgreSQL and Redis here are private embedded instances, not the session's: restarting the
session's server would break the pooled connections of every other test (and a run against
TEST_DATABASE_URL cannot restart a server it does not own). Costs ~5 s of initdb + migrations.
The outages last real seconds: what is measured is the server's answer while a dependency is
really gone, not a timer of ours.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import JobStatus

from app.config import async_database_url
from app.core.db import create_engine, create_session_factory
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from tests.fixtures.processes import PROBE, WorkerEnv, WorkerProcess, arq_pool, wait_for_key
from tests.fixtures.tenants import Tenant, make_tenant

pytestmark = pytest.mark.slow

CLIENTS = 6
RECOVERY_SECONDS = 5.0


@dataclass
class Stack:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str
    redis_url: str
    tenant: Tenant


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Not under pytest's basetemp: another pytest starting meanwhile makes that folder private
    # again (0700), which locks out the `pgserver` user initdb runs as (when run as root).
    workdir = Path(tempfile.mkdtemp(prefix="herald-outages-"))
    postgres = EmbeddedPostgres(workdir / "postgres")
    redis = EmbeddedRedis(workdir / "redis")
    try:
        database_url = async_database_url(postgres.start("herald"))
        redis_url = redis.start()
        upgrade(database_url)
        tenant = asyncio.run(_tenant(database_url))
        yield Stack(postgres, redis, database_url, redis_url, tenant)
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _tenant(database_url: str) -> Tenant:
    engine = create_engine(database_url, pool_size=1)
    try:
        return await make_tenant(create_session_factory(engine), "Outage")
    finally:
        await engine.dispose()


class Serve:
    """`herald serve` in a child process."""

    def __init__(self, stack: Stack, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": stack.database_url,
            "REDIS_URL": stack.redis_url,
            "HERALD_ENVIRONMENT": "test",
            "HERALD_LOGGING__LEVEL": "WARNING",
            # The stream is the point here, not the per-key rate limit.
            "HERALD_HTTP__RATE_LIMIT_PER_MINUTE": "100000000",
        }
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"herald serve did not become ready: {log_path.read_text()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(stack: Stack, tmp_path: Path) -> Iterator[Serve]:
    server = Serve(stack, tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.kill()


@dataclass
class Answer:
    at: float
    method: str
    path: str
    status: int
    retry_after: str | None
    content_type: str


@dataclass
class Load:
    """Concurrent clients reading and writing until stopped."""

    base_url: str
    tenant: Tenant
    answers: list[Answer] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def _client(self, number: int) -> None:
        emails = itertools.count()
        run = uuid.uuid4().hex[:8]
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.tenant.headers, timeout=30
        ) as http:
            while not self.stopping.is_set():
                requests: list[tuple[str, str, dict[str, object]]] = [
                    ("GET", "/v1/contacts?limit=5", {}),
                    (
                        "POST",
                        "/v1/contacts",
                        {"json": {"email": f"{run}-{number}-{next(emails)}@x.io"}},
                    ),
                    ("GET", "/v1/workspace", {}),
                    ("GET", "/readyz", {}),
                ]
                for method, path, extra in requests:
                    response = await http.request(method, path, **extra)  # type: ignore[arg-type]
                    self.answers.append(
                        Answer(
                            time.monotonic(),
                            method,
                            path,
                            response.status_code,
                            response.headers.get("retry-after"),
                            response.headers.get("content-type", ""),
                        )
                    )

    async def run_while(self, scenario: Callable[[], Awaitable[None]]) -> None:
        clients = [asyncio.create_task(self._client(n)) for n in range(CLIENTS)]
        try:
            await scenario()
        finally:
            self.stopping.set()
            await asyncio.gather(*clients)

    async def wait_for_success_after(self, since: float) -> float:
        """Seconds from `since` until every client path answered 2xx again."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recent = [a for a in self.answers if a.at > since]
            ok_paths = {a.path for a in recent if 200 <= a.status < 300}
            if {"/v1/contacts?limit=5", "/v1/contacts", "/v1/workspace", "/readyz"} <= ok_paths:
                return time.monotonic() - since
            await asyncio.sleep(0.05)
        raise AssertionError("the API did not recover within 30 s")

    def unexpected(self) -> list[Answer]:
        return [
            a
            for a in self.answers
            if not (200 <= a.status < 300)
            and not (
                a.status == 503
                and a.retry_after is not None
                and a.content_type == "application/problem+json"
            )
        ]

    def summary(self) -> str:
        counts: dict[tuple[str, str, int], int] = {}
        for a in self.answers:
            counts[(a.method, a.path, a.status)] = counts.get((a.method, a.path, a.status), 0) + 1
        return repr(sorted(counts.items()))

    def unavailable(self) -> int:
        return sum(1 for a in self.answers if a.status == 503)


async def _settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


def test_postgres_restart_and_stop_under_load_answer_only_2xx_or_503(
    stack: Stack, serve: Serve
) -> None:
    """Observed: 18-46 x 500 during `pg_ctl restart -m immediate`, 127-148 during a 6 s stop."""
    load = Load(serve.base_url, stack.tenant)
    recoveries: dict[str, float] = {}

    async def scenario() -> None:
        await _settle(1.0)
        await asyncio.to_thread(stack.postgres.pg_ctl, "restart", "-m", "immediate")
        back = time.monotonic()
        recoveries["restart"] = await load.wait_for_success_after(back)
        await _settle(0.5)
        await asyncio.to_thread(stack.postgres.pg_ctl, "stop", "-m", "immediate")
        await _settle(3.0)  # a short stop: every request in it finds no server
        await asyncio.to_thread(stack.postgres.pg_ctl, "restart", "-m", "fast")
        back = time.monotonic()
        recoveries["stop"] = await load.wait_for_success_after(back)
        await _settle(0.5)

    asyncio.run(load.run_while(scenario))
    print(f"postgres: {len(load.answers)} answers, recovery {recoveries}, {load.summary()}")
    assert load.unexpected() == [], load.summary() + serve.log_path.read_text()[-3000:]
    assert load.unavailable() > 0  # the outage was seen
    assert len(load.answers) > 200
    assert all(seconds < RECOVERY_SECONDS for seconds in recoveries.values()), recoveries
    assert serve.terminate() == 0, serve.log_path.read_text()[-4000:]


def test_redis_stop_and_start_under_load_answer_only_2xx_or_503(stack: Stack, serve: Serve) -> None:
    load = Load(serve.base_url, stack.tenant)
    recoveries: dict[str, float] = {}

    async def scenario() -> None:
        await _settle(1.0)
        await asyncio.to_thread(stack.redis.stop)
        await _settle(2.0)
        await asyncio.to_thread(stack.redis.start)  # same port, same data directory
        back = time.monotonic()
        recoveries["redis"] = await load.wait_for_success_after(back)
        await _settle(0.5)

    asyncio.run(load.run_while(scenario))
    print(f"redis: {len(load.answers)} answers, recovery {recoveries}, {load.summary()}")
    assert load.unexpected() == [], load.summary() + serve.log_path.read_text()[-3000:]
    assert load.unavailable() > 0
    assert all(seconds < RECOVERY_SECONDS for seconds in recoveries.values()), recoveries
    assert serve.terminate() == 0, serve.log_path.read_text()[-4000:]


async def _runs(pool: ArqRedis, marker: str) -> int:
    return int(await pool.get(f"{marker}:runs") or 0)


async def _until_runs(pool: ArqRedis, marker: str, worker: WorkerProcess) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 30:
        assert worker.process.poll() is None, worker.output()
        if await _runs(pool, marker):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job did not run within 30 s: {worker.output()[-3000:]}")


def test_a_worker_rides_out_postgres_and_redis_outages(stack: Stack, tmp_path: Path) -> None:
    """A job that meets a PostgreSQL outage backs off and runs once the server is back (within
    5 s), exactly once; a Redis outage pauses the worker instead of ending it; the worker logs
    each outage once (start and end), not a traceback per job."""
    env = WorkerEnv(stack.database_url, stack.redis_url, f"herald:test:{uuid.uuid4().hex[:8]}")
    worker = WorkerProcess(env, tmp_path / "worker.log", PROBE)
    resumed: dict[str, float] = {}

    async def scenario() -> tuple[int, int, JobStatus]:
        pool = await arq_pool(env)
        try:
            await wait_for_key(pool, f"{env.queue}:health-check", worker)
            # PostgreSQL stops; a job is queued meanwhile and keeps meeting the outage.
            await asyncio.to_thread(stack.postgres.pg_ctl, "stop", "-m", "immediate")
            during_pg = uuid.uuid4().hex
            job = await pool.enqueue_job("database_job", during_pg)
            assert job is not None
            await asyncio.sleep(3.0)  # several retries' worth of outage
            assert await _runs(pool, during_pg) == 0
            await asyncio.to_thread(stack.postgres.pg_ctl, "restart", "-m", "fast")
            resumed["postgres"] = await _until_runs(pool, during_pg, worker)
            # Redis stops under the worker's polling loop, then comes back.
            await asyncio.to_thread(stack.redis.stop)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(stack.redis.start)
            after_redis = uuid.uuid4().hex
            await pool.enqueue_job("database_job", after_redis)
            resumed["redis"] = await _until_runs(pool, after_redis, worker)
            await asyncio.sleep(2.0)  # a doubled run would show by now
            return await _runs(pool, during_pg), await _runs(pool, after_redis), await job.status()
        finally:
            await pool.aclose()

    try:
        runs_pg, runs_redis, status = asyncio.run(scenario())
        exit_status, _ = worker.stop()
    finally:
        worker.kill()
    log = worker.output()
    print(f"worker: resumed {resumed} s after the recovery; runs {runs_pg}, {runs_redis}")
    assert (runs_pg, runs_redis) == (1, 1), log[-3000:]
    assert status == JobStatus.complete
    assert resumed["postgres"] < RECOVERY_SECONDS, resumed
    assert resumed["redis"] < RECOVERY_SECONDS, resumed
    # One warning as each outage starts and one as it ends, not one per failed job (dozens):
    # a periodic job that skips the database on some tick may end an outage early, so a
    # third pair is tolerated.
    assert log.count('"storage_unavailable"') in (2, 3), log[-3000:]
    assert log.count('"storage_recovered"') in (2, 3), log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert exit_status == 0, log[-3000:]
