"""Webhook delivery benchmark (issue 6, item 7): deliveries/s with one `herald worker` to a
local receiver.

N events are emitted in one transaction (`emit_many`, as a domain would) to endpoints whose
receiver is a separate process answering 200 at once (HTTP/1.1 keep-alive, so the figure is
Herald's cost, not connection set-up); the worker is started and idle first. The rate is
N / (last delivery completed - first delivery created), from the database's timestamps.
Two shapes: all events to one endpoint (bounded by `max_concurrency_per_endpoint` requests
in flight) and the same events spread over several endpoints (one job each).

Starts embedded PostgreSQL + Redis (or BENCH_DATABASE_URL / BENCH_REDIS_URL).
Usage: `uv run --no-sync python -m bench.webhooks [--events 20000] [--endpoints 1,10]
[--timeout 600]`. `--receiver PORT` runs the receiver alone (used by the benchmark).

`--attempts N` measures the attempt path alone, in this process, with no database: N
signed, guarded attempts (8 in flight, as one endpoint's job) to the same receiver; prints
the process CPU per attempt. The steadier figure on a shared machine, and the one to watch
when changing app/webhooks/dispatch/sender.py or app/core/egress.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import text

from app.admin import create_workspace
from app.config import async_database_url
from app.core.db import create_engine, create_session_factory, transaction
from app.core.jobs import JobQueue
from app.core.signing import new_secret
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from app.outbox.catalogue import ContactUnsubscribed
from app.outbox.emit import Emission, emit_many
from bench.audience_ingest import cpu_seconds, postmaster_pids
from bench.engine import stop_workers, wait_idle
from bench.support import api_env

QUEUE = "herald:queue"  # settings.worker.queue_name (the default)


# -- the receiver (its own process) ----------------------------------------------------------


async def _serve(port: int) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n"
        b'{"ok":true}'
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    lowered = name.strip().lower()
                    if lowered == b"content-length":
                        length = int(value)
                    elif lowered == b"connection" and value.strip().lower() == b"close":
                        close = True
                await reader.readexactly(length)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# -- the attempt path alone ------------------------------------------------------------------


async def _attempts(port: int, count: int) -> None:
    import ipaddress

    import httpx

    from app.core.clock import utcnow
    from app.core.egress import GuardPolicy
    from app.webhooks.dispatch.sender import Target, attempt

    policy = GuardPolicy((ipaddress.ip_network("127.0.0.0/8"),), {})
    target = Target(uuid.uuid4(), f"http://127.0.0.1:{port}/hook", (new_secret(),))
    payload = ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email").model_dump(mode="json")
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False) as http:

        async def one() -> None:
            async with gate:
                result = await attempt(
                    http,
                    target,
                    uuid.uuid4(),
                    payload,
                    now=utcnow(),
                    timeout=15.0,
                    policy=policy,
                )
                assert result.outcome == "success", result

        await wait_listening(port)
        await asyncio.gather(*(one() for _ in range(200)))  # warm: connections, caches
        cpu, started = time.process_time(), time.monotonic()
        for _ in range(max(count // 100, 1)):
            await asyncio.gather(*(one() for _ in range(100)))
        done = max(count // 100, 1) * 100
        cpu, wall = time.process_time() - cpu, time.monotonic() - started
    print(
        f"attempt path: {done:,} attempts, {1000 * cpu / done:.2f} ms CPU per attempt, "
        f"{done / wall:,.0f}/s (load average {os.getloadavg()[0]:.1f})"
    )


async def wait_listening(port: int, limit_seconds: float = 120.0) -> None:
    """The receiver is a fresh process (slow to import on a loaded machine): a delivery
    attempted before it listens fails and waits for its 5-s retry, which skews the run."""
    deadline = time.monotonic() + limit_seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def attempts_only(count: int) -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--receiver", str(port)])
    try:
        asyncio.run(_attempts(port, count))
    finally:
        receiver.terminate()
        receiver.wait()


# -- setup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    database_url: str
    redis_url: str
    pg_dir: Path
    workspace_id: uuid.UUID
    receiver_url: str


async def _sql(url: str, statement: str, params: dict[str, object]) -> list[tuple[object, ...]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def make_endpoints(bench: Bench, count: int) -> None:
    url = async_database_url(bench.database_url)
    await _sql(url, "TRUNCATE webhook_endpoints, webhook_events CASCADE", {})
    for _ in range(count):
        await _sql(
            url,
            "INSERT INTO webhook_endpoints (id, workspace_id, url, event_types, secret, enabled,"
            " version, created_at, updated_at) VALUES (gen_random_uuid(), :ws, :url,"
            " ARRAY['*'], :secret, true, 1, now(), now())",
            {"ws": bench.workspace_id, "url": bench.receiver_url, "secret": new_secret()},
        )


async def emit_events(bench: Bench, events: int) -> float:
    """Emit in one transaction; the jobs reach Redis after the commit. Returns seconds."""
    engine = create_engine(async_database_url(bench.database_url), pool_size=2)
    pool = await create_pool(RedisSettings.from_dsn(bench.redis_url))
    started = time.monotonic()
    try:
        async with transaction(create_session_factory(engine), JobQueue(pool, QUEUE)) as session:
            await emit_many(
                session,
                [
                    Emission(
                        bench.workspace_id,
                        ContactUnsubscribed(contact_id=uuid.uuid4(), channel="email"),
                    )
                    for _ in range(events)
                ],
            )
        return time.monotonic() - started
    finally:
        await pool.aclose()
        await engine.dispose()


async def wait_delivered(bench: Bench, expected: int, limit_seconds: float) -> int:
    url = async_database_url(bench.database_url)
    started = last_change = time.monotonic()
    done = 0
    while time.monotonic() - started < limit_seconds:
        [(done_value,)] = await _sql(
            url, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'", {}
        )
        if int(str(done_value)) != done:
            done, last_change = int(str(done_value)), time.monotonic()
        if done >= expected:
            break
        if time.monotonic() - last_change > 30:  # stalled: say where things stand
            for sql in (
                "SELECT status, count(*) FROM webhook_deliveries GROUP BY 1",
                "SELECT outcome, left(error, 120), count(*) FROM webhook_attempts GROUP BY 1, 2",
            ):
                print("  stalled:", await _sql(url, sql, {}))
            break
        await asyncio.sleep(0.25)
    return done


@dataclass(frozen=True)
class Run:
    endpoints: int
    deliveries: int
    window: float
    emit_seconds: float
    worker_cpu: float
    pg_cpu: float
    attempts: int


def run(bench: Bench, endpoints: int, events: int, timeout: float) -> Run:
    asyncio.run(make_endpoints(bench, endpoints))
    redis.Redis.from_url(bench.redis_url).flushdb()
    env = {
        **api_env(bench.database_url, bench.redis_url, free_port()),  # PORT unused
        "HERALD_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)
    worker_cpu = cpu_seconds(lambda: {worker.pid})
    pg_cpu = cpu_seconds(lambda: postmaster_pids(bench.pg_dir))
    expected = events  # every event to one endpoint each (spread round-robin below)
    try:
        wait_idle(worker_cpu)
        cpu_before, pg_before = worker_cpu(), pg_cpu()
        emit_seconds = asyncio.run(_emit_spread(bench, endpoints, events))
        done = asyncio.run(wait_delivered(bench, expected, timeout))
        cpu, pg_used = worker_cpu() - cpu_before, pg_cpu() - pg_before
    finally:
        stop_workers([worker])
    url = async_database_url(bench.database_url)
    [(window, attempts)] = asyncio.run(
        _sql(
            url,
            "SELECT extract(epoch FROM max(d.completed_at) - min(d.created_at)),"
            " (SELECT count(*) FROM webhook_attempts) FROM webhook_deliveries AS d"
            " WHERE d.status = 'succeeded'",
            {},
        )
    )
    if done < expected:
        print(f"  WARNING: only {done:,} of {expected:,} delivered before stopping")
    return Run(
        endpoints,
        done,
        float(str(window or 0)),
        emit_seconds,
        cpu,
        pg_used,
        int(str(attempts)),
    )


async def _emit_spread(bench: Bench, endpoints: int, events: int) -> float:
    """`events` deliveries in all: with several endpoints, each subscribes to everything, so
    emit events / endpoints events (each delivered to every endpoint)."""
    return await emit_events(bench, max(events // endpoints, 1))


def setup(database_url: str, redis_url: str, pg_dir: Path, receiver_port: int) -> Bench:
    url = async_database_url(database_url)
    upgrade(url)
    created = asyncio.run(create_workspace(url, "Bench", "o@bench.example", "O"))
    return Bench(
        database_url,
        redis_url,
        pg_dir,
        created.workspace.id,
        f"http://127.0.0.1:{receiver_port}/hook",
    )


def _counts(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000, help="deliveries per run")
    parser.add_argument("--endpoints", type=_counts, default=[1, 10], help="e.g. 1,10")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--receiver", type=int, help="run only the receiver on this port")
    parser.add_argument("--attempts", type=int, help="measure the attempt path alone")
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve(args.receiver))
        return
    if args.attempts:
        attempts_only(args.attempts)
        return

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-webhooks-"))
    postgres, embedded_redis = EmbeddedPostgres(workdir / "pg"), EmbeddedRedis(workdir / "redis")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL") or embedded_redis.start()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.webhooks", "--receiver", str(port)])
    lines = [f"load average at start: {os.getloadavg()[0]:.1f}"]
    try:
        bench = setup(database_url, redis_url, workdir / "pg", port)
        asyncio.run(wait_listening(port))
        for endpoints in args.endpoints:
            events = args.events - args.events % endpoints
            print(f"{events:,} deliveries to {endpoints} endpoint(s), 1 worker", flush=True)
            result = run(bench, endpoints, events, args.timeout)
            rate = result.deliveries / max(result.window, 1e-9)
            line = (
                f"{endpoints} endpoint(s): {result.deliveries:,} deliveries "
                f"({result.attempts:,} attempts) in {result.window:.1f} s = {rate:,.0f}/s; "
                f"emit {result.emit_seconds:.2f} s; CPU per 1,000 deliveries: worker "
                f"{1e6 * result.worker_cpu / max(result.deliveries, 1):.0f} ms, PostgreSQL "
                f"{1e6 * result.pg_cpu / max(result.deliveries, 1):.0f} ms"
            )
            print("  " + line, flush=True)
            lines.append(line)
        print("\nSummary")
        for line in lines:
            print("  " + line)
    finally:
        receiver.terminate()
        receiver.wait()
        embedded_redis.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
