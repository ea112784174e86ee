"""Engine benchmark (issue 4, item 10; issue 15): throughput, lateness and scan cost of the step
engine, and delivery through a real SMTP server at the configured rate.

(a) CPU yardstick, not a configuration users run: messages/s through real `herald worker`
    processes (log provider, rate limit out of the way) for N enrollments of "send -> wait
    PT0S -> send", with 1 and then 2 workers, each beside arq's own no-op job rate measured
    in the same run with the same number of arq worker processes (`bench/engine_noop.py`):
    per-worker rates and Herald msg/s per worker over arq no-op jobs/s per worker for that
    process count;
(b) lateness (message.created_at - message.due_at) of steps spread uniformly over 60 s, with
    workers running normally (cron scan every second, lookahead);
(c) `lease_due` time with 1,000,000 waiting enrollments and 1,000 due, beside 10,000 waiting
    (`bench/engine_scan.py`), and the scan's plan;
(d) what users run: one `herald worker` with the SMTP provider (default settings otherwise)
    sending to a local aiosmtpd server at configured rates of 100/s, 500/s and unlimited, a
    backlog of `--smtp-seconds` worth of messages at that rate (enrolled at once): achieved
    rate (server receive times) over configured, worker CPU per message, and delivery
    lateness p50/p99 = `sent_at - due_at` minus the backlog's own expected delay (the k-th
    message sent cannot leave before k/rate seconds).

Starts embedded PostgreSQL + Redis (or BENCH_DATABASE_URL / BENCH_REDIS_URL), migrates, makes
the templates and sequences through a short-lived `herald serve`, contacts and enrollments
set-wise in SQL; workers are `herald worker` processes (`python -m app.cli worker`), given
work only once idle. Usage: `uv run --no-sync python -m bench.engine [--parts abc]
[--enrollments 100000] [--workers 1,2] [--noop-jobs 20000] [--profile PREFIX]
[--lateness-steps 10000] [--waiting 1000000] [--due 1000] [--runs 7] [--fillfactor N]`;
`--workers` are the process counts of (a), for Herald and arq alike, and `--noop-jobs` the
no-op jobs per count (shared by its processes). (d): `[--smtp-rates 100,500,0]` (0:
unlimited) `[--smtp-seconds 20] [--smtp-unlimited 5000] [--smtp-workers 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import create_workspace
from app.config import async_database_url
from app.contacts.models import Contact
from app.core.clock import utcnow
from app.core.db import create_engine, create_session_factory
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from app.sequences.enrollments.repository import VersionLookup
from app.sequences.enrollments.service import enroll_contacts
from bench.audience_ingest import cpu_seconds, postmaster_pids
from bench.engine_noop import measure_noop_rate
from bench.engine_scan import measure_scan
from bench.support import api_env, wait_ready

CONTACTS_SQL = """
INSERT INTO contacts (id, workspace_id, external_id, email, attributes, created_at, updated_at)
SELECT md5('e' || n)::uuid, :ws, 'e-' || n, 'e' || n || '@bench.example',
       jsonb_build_object('first_name', 'Ada ' || n), :now, :now
FROM generate_series(1, CAST(:count AS int)) AS n
"""
EMAIL = {
    "subject": "Hello {{ contact.attributes.first_name | default('there') }}",
    "html": "<p>Hello {{ contact.attributes.first_name | default('there') }}</p>"
    "<a href=\"{{ link('https://example.com/offer') }}\">offer</a>"
    '<a href="{{ unsubscribe_url }}">unsubscribe</a>',
    "text": "Hello {{ contact.attributes.first_name | default('there') }}",
}


@dataclass(frozen=True)
class Bench:
    database_url: str  # as the worker processes get it
    redis_url: str
    pg_dir: Path
    workspace_id: uuid.UUID
    two_sends: uuid.UUID  # send -> wait PT0S -> send
    one_send: uuid.UUID  # send


# -- setup -----------------------------------------------------------------------------------


def create_sequences(base_url: str, token: str) -> tuple[uuid.UUID, uuid.UUID]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:

        def created(path: str, body: dict[str, object]) -> str:
            response = client.post(path, json=body)
            assert response.status_code == 201, response.text
            found: str = response.json()["id"]
            published = client.post(f"{path}/{found}/publish")
            assert published.status_code == 201, published.text
            return found

        template = created("/v1/templates", {"name": "Bench", "channel": "email", "content": EMAIL})
        send = {"type": "send", "channel": "email", "template_id": template}
        two = created(
            "/v1/sequences",
            {
                "name": "send, wait 1 s, send",
                "definition": {
                    "steps": [
                        {"key": "first", **send},
                        {"key": "pause", "type": "wait", "duration": "PT1S"},
                        {"key": "second", **send},
                    ]
                },
            },
        )
        one = created(
            "/v1/sequences",
            {"name": "one send", "definition": {"steps": [{"key": "only", **send}]}},
        )
    return uuid.UUID(two), uuid.UUID(one)


def setup(database_url: str, redis_url: str, pg_dir: Path, contacts: int) -> Bench:
    url = async_database_url(database_url)
    upgrade(url)
    created = asyncio.run(create_workspace(url, "Bench", "o@bench.example", "O"))
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=api_env(database_url, redis_url, port)
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        two, one = create_sequences(base_url, created.key.token)
    finally:
        api.terminate()
        api.wait()
    ws = created.workspace.id
    asyncio.run(_sql(url, [(CONTACTS_SQL, {"ws": ws, "now": utcnow(), "count": contacts})]))
    return Bench(database_url, redis_url, pg_dir, ws, two, one)


async def _sql(url: str, statements: list[tuple[str, dict[str, object]]]) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement, params in statements:
                await conn.execute(text(statement), params)
    finally:
        await engine.dispose()


async def reset(bench: Bench) -> None:
    """Empty the engine's tables and Redis (queue, metrics) between runs."""
    await _sql(
        async_database_url(bench.database_url),
        [("TRUNCATE enrollment_steps, messages, enrollments CASCADE", {})],
    )
    redis.Redis.from_url(bench.redis_url).flushdb()


async def enroll(
    bench: Bench, sequence_id: uuid.UUID, count: int, spread: tuple[float, float] | None = None
) -> datetime:
    """Enroll `count` contacts set-wise (INSERT ... SELECT); with `spread`, park them on their
    first step due at now + uniform(spread) seconds. Returns the base instant."""
    engine = create_engine(async_database_url(bench.database_url), pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            version = await VersionLookup(session, bench.workspace_id).latest_or_number(
                sequence_id, None
            )
            assert version is not None
            contacts = (
                select(Contact.id)
                .where(Contact.workspace_id == bench.workspace_id)
                .order_by(Contact.id)
                .limit(count)
            )
            await enroll_contacts(
                session, bench.workspace_id, version, contacts, campaign_id=None, source="bench"
            )
            base = utcnow()
            if spread is not None:
                await session.execute(
                    text(
                        "UPDATE enrollments SET next_action_at = CAST(:base AS timestamptz)"
                        " + (CAST(:low AS float8) + random() * CAST(:span AS float8))"
                        " * interval '1 second' WHERE sequence_id = :seq"
                    ),
                    {
                        "base": base,
                        "low": spread[0],
                        "span": spread[1] - spread[0],
                        "seq": sequence_id,
                    },
                )
            await session.commit()
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE enrollments"))
    finally:
        await engine.dispose()
    return base


# -- workers ---------------------------------------------------------------------------------


def start_workers(
    bench: Bench,
    count: int,
    profile: str | None = None,
    channels: dict[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes; with `profile`, each under cProfile writing
    `<profile>-<n>.prof` when it stops. `channels`: `HERALD_CHANNELS__*` settings instead of
    the yardstick's (log provider, no rate limit)."""
    env = {
        **api_env(bench.database_url, bench.redis_url, free_port()),  # PORT unused
        **(
            channels
            or {
                "HERALD_CHANNELS__RATE_PER_SECOND": "100000000",
                "HERALD_CHANNELS__EMAIL_PROVIDER": "log",
            }
        ),
    }
    commands = [[sys.executable, "-m", "app.cli", "worker"] for _ in range(count)]
    if profile:
        commands = [
            [sys.executable, "-m", "cProfile", "-o", f"{profile}-{n}.prof", *command[1:]]
            for n, command in enumerate(commands)
        ]
    return [subprocess.Popen(command, env=env) for command in commands]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_for_messages(bench: Bench, expected: int, limit_seconds: float) -> int:
    """Poll until `expected` messages are sent, progress stalls for 30 s, or timeout."""
    engine = create_engine(async_database_url(bench.database_url), pool_size=1)
    started = last_change = time.monotonic()
    done = -1
    try:
        while time.monotonic() - started < limit_seconds:
            async with engine.connect() as conn:
                count = (
                    await conn.execute(text("SELECT count(*) FROM messages WHERE status = 'sent'"))
                ).scalar_one()
            if count != done:
                done, last_change = count, time.monotonic()
            if done >= expected:
                break
            if time.monotonic() - last_change > 30:
                await _print_states(engine)
                break
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    return done


async def _print_states(engine: AsyncEngine) -> None:
    """Where a stalled run stands: messages by status, enrollments by state and step."""
    async with engine.connect() as conn:
        for sql in (
            "SELECT status, count(*) FROM messages GROUP BY 1",
            "SELECT state, step_key, count(*) FROM enrollments GROUP BY 1, 2",
        ):
            rows = (await conn.execute(text(sql))).all()
            print("  stalled:", ", ".join(" ".join(str(v) for v in row) for row in rows))


# -- (a) throughput --------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    workers: int
    messages: int
    window: float  # first message created -> last message sent (database timestamps)
    wall: float  # enrollment committed -> all sent, by this process's clock
    worker_cpu: float
    pg_cpu: float


def throughput(
    bench: Bench, enrollments: int, workers: int, timeout: float, profile: str | None
) -> Throughput:
    """Workers first (started and idle), then the enrollments: the figures cover the work,
    not the processes' start-up (imports take seconds of CPU)."""
    asyncio.run(reset(bench))
    processes = start_workers(bench, workers, profile and f"{profile}-{workers}w")
    worker_cpu = cpu_seconds(lambda: {p.pid for p in processes})
    pg_cpu = cpu_seconds(lambda: postmaster_pids(bench.pg_dir))
    try:
        wait_idle(worker_cpu)
        cpu_before, pg_before = worker_cpu(), pg_cpu()
        started = time.monotonic()
        asyncio.run(enroll(bench, bench.two_sends, enrollments))
        done = asyncio.run(wait_for_messages(bench, 2 * enrollments, timeout))
        wall = time.monotonic() - started
        cpu, pg_used = worker_cpu() - cpu_before, pg_cpu() - pg_before
    finally:
        stop_workers(processes)
    window = asyncio.run(_window(bench))
    if done < 2 * enrollments:
        print(f"  WARNING: only {done:,} of {2 * enrollments:,} messages sent before stopping")
    return Throughput(workers, done, window, wall, cpu, pg_used)


def wait_idle(probe: Callable[[], float], limit_seconds: float = 60.0) -> None:
    """Until the processes use under 10% of a core over a second (start-up is over)."""
    deadline = time.monotonic() + limit_seconds
    time.sleep(1.0)
    last = probe()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = probe()
        if now - last < 0.1:
            return
        last = now


async def _window(bench: Bench) -> float:
    engine = create_engine(async_database_url(bench.database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT extract(epoch FROM max(sent_at) - min(created_at)),"
                        " min(created_at), max(created_at), min(sent_at), max(sent_at)"
                        " FROM messages"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    print(f"  created {row[1]} .. {row[2]}, sent {row[3]} .. {row[4]}")
    return float(row[0] or 0.0)


def part_a(bench: Bench, args: argparse.Namespace) -> list[str]:
    lines: list[str] = []

    def show(line: str) -> None:
        print("  " + line, flush=True)
        lines.append(line)

    for count in args.workers:
        processes = f"{count} worker process{'es' if count > 1 else ''}"
        print(f"(a) arq no-op rate: {args.noop_jobs:,} jobs, {processes}", flush=True)
        jobs, seconds, cpu = measure_noop_rate(bench.redis_url, "bench:noop", args.noop_jobs, count)
        noop_rate = jobs / seconds
        show(
            f"arq no-op, {processes}: {jobs:,} jobs in {seconds:.1f} s = {noop_rate:,.0f} jobs/s"
            f" ({noop_rate / count:,.0f} per worker); worker CPU per 1,000 jobs"
            f" {1e6 * cpu / jobs:.0f} ms"
        )
        print(f"(a) {args.enrollments:,} enrollments, {processes}", flush=True)
        result = throughput(bench, args.enrollments, count, args.timeout, args.profile)
        rate = result.messages / max(result.window, 1e-9)
        show(
            f"Herald (log provider: CPU yardstick), {processes}: {result.messages:,} "
            f"messages in {result.window:.1f} s = "
            f"{rate:,.0f} msg/s ({rate / count:,.0f} per worker); enroll-to-last-send "
            f"{result.wall:.1f} s; CPU per 1,000 messages: workers "
            f"{1e6 * result.worker_cpu / max(result.messages, 1):.0f} ms, PostgreSQL "
            f"{1e6 * result.pg_cpu / max(result.messages, 1):.0f} ms"
        )
        show(
            f"{count} worker{'s' if count > 1 else ''}: arq no-op {noop_rate:,.0f} jobs/s"
            f" ({noop_rate / count:,.0f} per worker); Herald {rate:,.0f} msg/s"
            f" ({rate / count:,.0f} per worker) = {rate / noop_rate:.2f}x"
        )
    return lines


# -- (b) lateness ----------------------------------------------------------------------------


LATENESS_SQL = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP
       (ORDER BY l), max(l), min(l),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s)
FROM (SELECT extract(epoch FROM created_at - due_at) AS l,
             extract(epoch FROM sent_at - due_at) AS s FROM messages) AS m
"""


def part_b(bench: Bench, args: argparse.Namespace) -> list[str]:
    steps, workers = args.lateness_steps, args.lateness_workers
    low, high = args.lateness_offset, args.lateness_offset + args.lateness_spread
    print(f"(b) {steps:,} steps due over {low:.0f}-{high:.0f} s, {workers} worker(s)", flush=True)
    asyncio.run(reset(bench))
    processes = start_workers(bench, workers)
    try:
        wait_idle(cpu_seconds(lambda: {p.pid for p in processes}))  # up before work is due
        asyncio.run(enroll(bench, bench.one_send, steps, spread=(low, high)))
        asyncio.run(wait_for_messages(bench, steps, high + 60))
    finally:
        stop_workers(processes)
    row = asyncio.run(_fetch(bench, LATENESS_SQL))
    line = (
        f"lateness of {int(row[0]):,} steps over {args.lateness_spread:.0f} s, "
        f"{workers} worker(s): "
        f"p50 {1000 * row[1]:.0f} ms, p99 {1000 * row[2]:.0f} ms, max {1000 * row[3]:.0f} ms "
        f"(min {1000 * row[4]:.0f} ms; sent p99 {1000 * row[5]:.0f} ms after due)"
    )
    print("  " + line, flush=True)
    return [line]


async def _fetch(bench: Bench, sql: str) -> tuple[float, ...]:
    engine = create_engine(async_database_url(bench.database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(sql))).one()
    finally:
        await engine.dispose()
    return tuple(float(value or 0) for value in row)


# -- (d) a real SMTP server at the configured rate -------------------------------------------


class SmtpSink:
    """aiosmtpd handler: the server-side receive time of every email."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: object, session: Session, envelope: Envelope
    ) -> str:
        with self.lock:
            self.times.append(time.time())
        return "250 OK"


SENT_SQL = """
SELECT extract(epoch FROM sent_at - due_at) FROM messages
WHERE status = 'sent' ORDER BY sent_at
"""


def smtp_run(
    bench: Bench,
    rate: int,
    messages: int,
    timeout: float,
    *,
    workers: int = 1,
    profile: str | None = None,
) -> str:
    """One backlog of `messages` through `workers` processes at `rate`/s (0: unlimited)."""
    asyncio.run(reset(bench))
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    channels = {
        "HERALD_CHANNELS__EMAIL_PROVIDER": "smtp",
        "HERALD_CHANNELS__SMTP__HOST": "127.0.0.1",
        "HERALD_CHANNELS__SMTP__PORT": str(port),
        "HERALD_CHANNELS__RATE_PER_SECOND": str(rate or 100_000_000),
    }
    prefix = profile and f"{profile}-smtp-{rate}"
    processes = start_workers(bench, workers, profile=prefix, channels=channels)
    worker_cpu = cpu_seconds(lambda: {p.pid for p in processes})
    try:
        wait_idle(worker_cpu)
        before = worker_cpu()
        asyncio.run(enroll(bench, bench.one_send, messages))
        done = asyncio.run(wait_for_messages(bench, messages, timeout))
        cpu = worker_cpu() - before
    finally:
        stop_workers(processes)
        controller.stop()
    times = sorted(sink.times)
    achieved = (len(times) - 1) / max(times[-1] - times[0], 1e-9) if len(times) > 1 else 0.0
    lateness = [float(str(row[0])) for row in asyncio.run(_rows(bench, SENT_SQL))]
    # The k-th message of a backlog cannot leave before k/rate s: that share is the
    # configured limit at work, not lateness.
    adjusted = [late - (k / rate if rate else 0.0) for k, late in enumerate(lateness)]
    p50, p99 = _percentile(adjusted, 0.5), _percentile(adjusted, 0.99)
    label = f"{rate}/s" if rate else "unlimited"
    ratio = f" = {100 * achieved / rate:.1f} % of configured" if rate else ""
    if done < messages:
        print(f"  WARNING: only {done:,} of {messages:,} sent before stopping")
    return (
        f"SMTP at {label}, {workers} worker(s): {len(times):,} emails received, "
        f"achieved {achieved:,.1f}/s{ratio}; "
        f"worker CPU per message {1000 * cpu / max(done, 1):.2f} ms; lateness beyond the "
        f"backlog's own delay p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms"
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _rows(bench: Bench, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(async_database_url(bench.database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


def part_d(bench: Bench, args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    for rate in args.smtp_rates:
        messages = int(rate * args.smtp_seconds) if rate else args.smtp_unlimited
        label = f"{rate}/s" if rate else "unlimited"
        workers = args.smtp_workers
        print(f"(d) SMTP, {messages:,} emails at {label}, {workers} worker(s)", flush=True)
        line = smtp_run(bench, rate, messages, args.timeout, workers=workers, profile=args.profile)
        print("  " + line, flush=True)
        lines.append(line)
    return lines


# -- main ------------------------------------------------------------------------------------


def _counts(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="abcd", help="which parts to run: a, b, c, d")
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--workers", type=_counts, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--noop-jobs", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per (a) run")
    parser.add_argument("--profile", help="(a), (d): cProfile each worker into PREFIX-...prof")
    parser.add_argument("--lateness-steps", type=int, default=10_000)
    parser.add_argument("--lateness-workers", type=int, default=2)
    parser.add_argument("--lateness-offset", type=float, default=5.0)
    parser.add_argument("--lateness-spread", type=float, default=60.0)
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7, help="(c) repetitions")
    parser.add_argument("--fillfactor", type=int, help="(c) experiment: enrollments fillfactor")
    parser.add_argument("--smtp-rates", type=_counts, default=[100, 500, 0], help="(d) 0: none")
    parser.add_argument("--smtp-seconds", type=float, default=20.0, help="(d) backlog length")
    parser.add_argument("--smtp-unlimited", type=int, default=5_000, help="(d) unlimited run")
    parser.add_argument("--smtp-workers", type=int, default=1, help="(d) worker processes")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-engine-"))
    postgres, embedded_redis = EmbeddedPostgres(workdir / "pg"), EmbeddedRedis(workdir / "redis")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL") or embedded_redis.start()
    lines: list[str] = []
    try:
        smtp = max([int(r * args.smtp_seconds) for r in args.smtp_rates] + [args.smtp_unlimited])
        contacts = max(args.enrollments, args.lateness_steps, smtp if "d" in args.parts else 0)
        bench = setup(database_url, redis_url, workdir / "pg", contacts)
        parts: dict[str, Callable[[], list[str]]] = {
            "a": lambda: part_a(bench, args),
            "b": lambda: part_b(bench, args),
            "d": lambda: part_d(bench, args),
            "c": lambda: asyncio.run(
                measure_scan(
                    async_database_url(database_url),
                    bench.workspace_id,
                    bench.two_sends,
                    (args.waiting, args.due, args.runs),
                    args.fillfactor,
                )
            ),
        }
        for name in args.parts:
            lines.append(f"({name}) load average at start: {os.getloadavg()[0]:.1f}")
            lines += parts[name]()
        print("\nSummary")
        for line in lines:
            print("  " + line)
    finally:
        embedded_redis.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # ~1.5 GB after part (c)


if __name__ == "__main__":
    main()
