"""Metrics benchmark (issue 7): one campaign with N messages (default 1,000,000) and 3N events
(opens, clicks, purchases), generated in SQL so the capture triggers fire as in production
(statement-level, set-wise). Prints: capture cost of the bulk inserts, fold time, read
latency p50/p99 of stats / breakdown / time series (sequential, in process, through the
service functions), and the trigger overhead on batched event inserts and message updates
(1,000 rows per statement, trigger enabled vs disabled). Not a test: it prints figures.

Usage: `BENCH_DATABASE_URL=postgresql://... uv run --no-sync python -m bench.metrics
[--messages 1000000] [--reads 200]` (the database is migrated to head; use a scratch one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import create_workspace
from app.config import MetricsSettings, async_database_url
from app.core.db import create_engine, create_session_factory, transaction
from app.core.ids import new_id
from app.metrics import service
from app.migrate import upgrade

START = datetime(2030, 1, 1, tzinfo=UTC)
STEPS = 4

SETUP_SQL = [
    "INSERT INTO sequences (id, workspace_id, name, version, definition, published_version,"
    " signing_secret, created_at, updated_at) VALUES (:seq, :ws, 'Bench', 1, '{}', 1, 'x',"
    " :now, :now)",
    "INSERT INTO sequence_versions (id, workspace_id, sequence_id, number, definition,"
    " published_at) VALUES (:ver, :ws, :seq, 1, '{}', :now)",
    "INSERT INTO campaigns (id, workspace_id, name, kpis, channels, include_segments,"
    " exclude_segments, sequence_id, type, reentry, timezone, tags, status, version,"
    " approval_round, goal, created_at, updated_at, launched_at) VALUES (:camp, :ws, 'Bench',"
    " '[]', ARRAY['email'], '[]', '[]', :seq, 'one_off', '{}', 'Europe/Paris',"
    ' ARRAY[]::varchar[], \'running\', 1, 1, \'{"event_type": "purchase", "window": "P7D"}\','
    " :now, :now, :now)",
]
CONTACTS_SQL = (
    "INSERT INTO contacts (id, workspace_id, external_id, email, attributes, created_at,"
    " updated_at) SELECT md5('c' || n)::uuid, :ws, 'c-' || n, 'c' || n || '@example.com', '{}',"
    " :now, :now"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n"
)
ENROLLMENTS_SQL = (
    "INSERT INTO enrollments (id, workspace_id, contact_id, sequence_id, sequence_version_id,"
    " campaign_id, source, state, step_key, step_visit, step_entered_at, visits, failures,"
    " started_at, updated_at)"
    " SELECT md5('e' || n)::uuid, :ws, md5('c' || n)::uuid, :seq, :ver, :camp, 'campaign',"
    " 'active', 's0', 1, :now, '{}', 0, :now, :now"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n"
)
# Step n % 4, variant A/B, sent over 14 days; 95% delivered, 3% bounced; 40% opened,
# 8% clicked.
MESSAGES_SQL = (
    "INSERT INTO messages (id, workspace_id, enrollment_id, contact_id, sequence_id,"
    " campaign_id, step_key, visit, channel, variant, content, status, attempts, due_at,"
    " created_at, updated_at, sent_at, delivered_at, bounced_at, first_opened_at,"
    " first_clicked_at)"
    " SELECT md5('m' || n)::uuid, :ws, md5('e' || n)::uuid, md5('c' || n)::uuid, :seq, :camp,"
    " 's' || (n % 4), 1, 'email', CASE WHEN n % 2 = 0 THEN 'A' ELSE 'B' END, '{}',"
    " CASE WHEN n % 100 < 95 THEN 'delivered' WHEN n % 100 < 98 THEN 'bounced' ELSE 'sent' END,"
    " 1, t, t, t, t,"
    " CASE WHEN n % 100 < 95 THEN t + interval '1 minute' END,"
    " CASE WHEN n % 100 BETWEEN 95 AND 97 THEN t + interval '2 minutes' END,"
    " CASE WHEN n % 5 < 2 AND n % 100 < 95 THEN t + interval '1 hour' END,"
    " CASE WHEN n % 25 < 2 AND n % 100 < 95 THEN t + interval '2 hours' END"
    " FROM (SELECT n, CAST(:start AS timestamptz) + (n % 1209600) * interval '1 second' AS t"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n) g"
)
# About three events per message (3,046,668 for 1M): 1.3M opens (two for opened messages,
# one for 50% of the others), 80k clicks, 667k purchases (a third at +1 day, a third at
# +2 days; the goal type, so queued), 1M page views (not a metrics type: not queued).
EVENTS_SQL = (
    "INSERT INTO events (id, workspace_id, contact_id, type, properties, revenue, occurred_at,"
    " received_at)"
    " SELECT gen_random_uuid(), :ws, md5('c' || n)::uuid, k.type,"
    " CASE WHEN k.type = 'purchase' THEN '{}'::jsonb"
    " ELSE jsonb_build_object('message_id', md5('m' || n)::uuid) END,"
    " CASE WHEN k.type = 'purchase' THEN 49.90 END,"
    " CAST(:start AS timestamptz) + (n % 1209600) * interval '1 second' + k.lag, :now"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n CROSS JOIN (VALUES"
    " ('email.opened', interval '1 hour'), ('email.opened', interval '3 hours'),"
    " ('email.clicked', interval '2 hours'), ('purchase', interval '1 day'),"
    " ('purchase', interval '2 days'), ('page.viewed', interval '5 minutes')) k(type, lag)"
    " WHERE (k.type = 'email.opened' AND n % 5 < 2) OR (k.type = 'email.clicked'"
    " AND n % 25 < 2) OR (k.type = 'purchase' AND k.lag = interval '1 day' AND n % 3 = 0)"
    " OR (k.type = 'purchase' AND k.lag = interval '2 days' AND n % 3 = 1)"
    " OR k.type = 'page.viewed' OR (k.type = 'email.opened'"
    " AND k.lag = interval '1 hour' AND n % 5 >= 2 AND n % 10 < 9)"
)
BATCH_EVENTS_SQL = (
    "INSERT INTO events (id, workspace_id, contact_id, type, properties, occurred_at,"
    " received_at) SELECT gen_random_uuid(), :ws, md5('c' || (n % CAST(:contacts AS int)))::uuid,"
    " 'page.viewed', '{}', :now, :now"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n"
)
BATCH_GOALS_SQL = BATCH_EVENTS_SQL.replace("'page.viewed'", "'purchase'")
LEASE_SQL = (
    "UPDATE enrollments SET lease_until = :now, updated_at = :now"
    " WHERE id IN (SELECT md5('e' || n)::uuid"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n)"
)
UPDATE_SQL = (
    "UPDATE messages SET replied_at = :now, updated_at = :now"
    " WHERE id IN (SELECT md5('m' || n)::uuid"
    " FROM generate_series(CAST(:first AS int), CAST(:last AS int)) n)"
)


async def timed(label: str, action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    elapsed = time.perf_counter() - started
    print(f"  {label}: {elapsed:.2f} s", flush=True)
    return elapsed


async def bulk(engine: AsyncEngine, sql: str, params: dict[str, Any], total: int) -> None:
    step = 250_000
    for first in range(0, total, step):
        async with engine.begin() as conn:
            last = min(first + step, total) - 1
            await conn.execute(text(sql), {**params, "first": first, "last": last})


async def latency(label: str, reads: int, call: Callable[[], Awaitable[Any]]) -> None:
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"  {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({reads} reads)", flush=True)


async def overhead(
    engine: AsyncEngine, label: str, sql: str, *, table: str, trigger: str, params: dict[str, Any]
) -> None:
    """Same statements (1,000 rows each), trigger enabled vs disabled, alternating."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(40):
        enabled = round_ % 2 == 0
        async with engine.begin() as conn:
            action = "ENABLE" if enabled else "DISABLE"
            await conn.execute(text(f"ALTER TABLE {table} {action} TRIGGER {trigger}"))
        first = 10_000_000 + round_ * 1000 if "INSERT" in sql else (round_ % 20) * 1000
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text(sql), {**params, "first": first, "last": first + 999})
        times[enabled].append(time.perf_counter() - started)
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"  {label}: {off * 1000:.1f} ms without, {on * 1000:.1f} ms with the trigger"
        f" ({on / off:.2f}x)",
        flush=True,
    )


def _params(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "ws": uuid.UUID(state["workspace_id"]),
        "camp": uuid.UUID(state["campaign_id"]),
        "seq": uuid.UUID(state["sequence_id"]),
        "ver": uuid.UUID(state["version_id"]),
        "now": START,
        "start": START,
        "contacts": state["messages"],
    }


async def seed(database_url: str, messages: int) -> dict[str, Any]:
    """Generate the campaign and fold: its ids and an API key."""
    created = await create_workspace(
        async_database_url(database_url), f"Bench {uuid.uuid4().hex[:6]}", "b@x.io", "B"
    )
    state: dict[str, Any] = {
        "workspace_id": str(created.workspace.id),
        "campaign_id": str(new_id()),
        "sequence_id": str(new_id()),
        "version_id": str(new_id()),
        "token": created.key.token,
        "messages": messages,
    }
    params = _params(state)
    engine = create_engine(async_database_url(database_url), pool_size=4)
    factory = create_session_factory(engine)
    async with engine.begin() as conn:
        for sql in SETUP_SQL:
            await conn.execute(text(sql), params)
    print(f"campaign with {messages:,} messages", flush=True)
    await timed("contacts", lambda: bulk(engine, CONTACTS_SQL, params, messages))
    await timed("enrollments (+ trigger)", lambda: bulk(engine, ENROLLMENTS_SQL, params, messages))
    await timed("messages (+ trigger)", lambda: bulk(engine, MESSAGES_SQL, params, messages))
    await timed("events (+ queue trigger)", lambda: bulk(engine, EVENTS_SQL, params, messages))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        count = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
        queued = (
            await conn.execute(text("SELECT count(*) FROM metric_pending_events"))
        ).scalar_one()
        print(f"  {count:,} events, {queued:,} queued for metrics", flush=True)
        for table in ("contacts", "enrollments", "messages", "events", "metric_pending_events"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
    elapsed = await timed("fold (events -> facts, deltas -> rollups)", lambda: fold(factory))
    print(f"  fold throughput: {queued / elapsed:,.0f} events/s", flush=True)
    await vacuum_metrics(engine)
    await engine.dispose()
    return state


async def fold(factory: Any) -> int:
    """Fold everything queued (catch-up), in one transaction: events folded."""
    config = MetricsSettings(settle_seconds=0, pending_batch=50_000)
    async with transaction(factory) as session:
        result = await service.fold(session, config, datetime.now(UTC) + timedelta(days=3650))
    return result.events


async def vacuum_metrics(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("metric_rollups", "metric_event_facts", "metric_deltas"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
        await conn.execute(text("VACUUM metric_pending_events"))


async def reads(database_url: str, state: dict[str, Any], count: int) -> None:
    """Read latency through the service functions, in process, sequential."""
    engine = create_engine(async_database_url(database_url), pool_size=4)
    factory = create_session_factory(engine)
    ws, campaign = uuid.UUID(state["workspace_id"]), uuid.UUID(state["campaign_id"])
    config = MetricsSettings()

    async def stats(group_by: Any = None) -> None:
        async with factory() as session:
            await service.campaign_stats(session, ws, campaign, group_by)

    async def series(bucket: Any, group_by: Any = None) -> None:
        async with factory() as session:
            await service.campaign_timeseries(
                session,
                ws,
                campaign,
                config,
                bucket=bucket,
                start=START,
                end=START + timedelta(days=16),
                group_by=group_by,
            )

    async with factory() as session:
        totals = (await service.campaign_stats(session, ws, campaign)).totals
    print(
        f"  totals: sent {totals.sent:,}, opened {totals.opened.unique:,}/"
        f"{totals.opened.total:,}, clicked {totals.clicked.unique:,}/{totals.clicked.total:,},"
        f" converted {totals.converted:,}, revenue {totals.revenue}",
        flush=True,
    )
    print("read latency (in process, sequential)", flush=True)
    await latency("stats", count, stats)
    await latency("stats group_by=variant", count, lambda: stats("variant"))
    await latency("timeseries day (16 days)", count, lambda: series("day"))
    await latency("timeseries hour (384 hours)", count, lambda: series("hour"))
    await engine.dispose()


async def overheads(database_url: str, state: dict[str, Any]) -> None:
    engine = create_engine(async_database_url(database_url), pool_size=4)
    params = _params(state)
    print("trigger overhead per 1,000-row statement (median of 20 each)", flush=True)
    await overhead(
        engine,
        "events insert",
        BATCH_EVENTS_SQL,
        table="events",
        trigger="metrics_queue_events_insert",
        params=params,
    )
    await overhead(
        engine,
        "goal events insert",
        BATCH_GOALS_SQL,
        table="events",
        trigger="metrics_queue_events_insert",
        params=params,
    )
    await overhead(
        engine,
        "messages update",
        UPDATE_SQL,
        table="messages",
        trigger="metrics_capture_messages_update",
        params=params,
    )
    await overhead(
        engine,
        "enrollments lease update (no metric change)",
        LEASE_SQL,
        table="enrollments",
        trigger="metrics_capture_enrollments_update",
        params=params,
    )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "what",
        nargs="*",
        default=["seed", "reads", "overhead"],
        choices=["seed", "reads", "overhead"],
        help="phases (default: all); HTTP load and ingestion: bench/metrics_load.py",
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--state", type=Path, default=Path("/tmp/herald-bench-metrics.json"))
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL")
    if not database_url:
        raise SystemExit("set BENCH_DATABASE_URL to a scratch PostgreSQL database")
    upgrade(database_url)
    if "seed" in args.what:
        args.state.write_text(json.dumps(asyncio.run(seed(database_url, args.messages))))
        print(f"state (ids, API key) written to {args.state}", flush=True)
    state = json.loads(args.state.read_text())
    if "reads" in args.what:
        asyncio.run(reads(database_url, state, args.reads))
    if "overhead" in args.what:
        asyncio.run(overheads(database_url, state))


if __name__ == "__main__":
    main()
