"""Audience benchmark: segment counts compiled by `app.segments.compiler` on 1M contacts and
10M events, each beside a hand-written SQL count in the same run, plus a full membership
refresh. Not a test: it prints figures (median of several runs).

Starts embedded PostgreSQL (or uses BENCH_DATABASE_URL), migrates, generates the data
in-database with generate_series, VACUUM ANALYZE, then times. `--ingest` also starts Redis and
an API process and runs `bench/audience_ingest.py`'s HTTP batch ingestion against the same
workspace (its contacts are `c-0` .. `c-N`).

Usage: `uv run --no-sync python -m bench.audience [--contacts 1000000] [--events 10000000]
[--runs 7] [--ingest] [--ingest-seconds 20] [--ingest-concurrency 4]`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Executable, bindparam, column, event, insert, table, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.admin import create_workspace
from app.config import async_database_url
from app.core.clock import utcnow
from app.core.db import create_engine
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.migrate import upgrade
from app.segments.compiler import CompileContext, count_statement, member_ids
from app.segments.rules import parse_rule
from bench.support import api_env, wait_ready

EVENT_TYPES = (  # type, share of events (percent)
    ("email.sent", 40),
    ("email.opened", 25),
    ("email.clicked", 15),
    ("page.viewed", 10),
    ("email.replied", 5),
    ("purchase", 5),
)

CONTACTS_SQL = """
INSERT INTO contacts (id, workspace_id, external_id, email, attributes, timezone, locale,
                      created_at, updated_at, last_activity_at)
SELECT md5('c' || n)::uuid, :ws, 'c-' || n, 'c' || n || '@' || (ARRAY['example.com',
       'mail.example', 'corp.example', 'shop.example'])[1 + n % 4],
       jsonb_build_object(
         'plan', CASE WHEN r < 0.55 THEN 'free' WHEN r < 0.80 THEN 'pro'
                      WHEN r < 0.95 THEN 'team' ELSE 'enterprise' END,
         'country', (ARRAY['US', 'FR', 'DE', 'GB', 'BR', 'IN', 'JP', 'ES'])[1 + (n / 7) % 8],
         'signup', to_char(signup, 'YYYY-MM-DD'),
         'score', (n::bigint * 7919) % 100),
       (ARRAY['Europe/Paris', 'America/New_York', 'Asia/Tokyo', NULL])[1 + n % 4],
       (ARRAY['fr-FR', 'en-US', 'de-DE', 'ja-JP'])[1 + n % 4],
       signup, signup, CAST(:now AS timestamptz) - random() * interval '90 days'
FROM (SELECT n, random() AS r,
             CAST(:now AS timestamptz) - random() * interval '730 days' AS signup
      FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n) AS g
"""

EVENTS_SQL = """
INSERT INTO events (id, workspace_id, contact_id, type, properties, revenue, occurred_at,
                    received_at, source)
SELECT gen_random_uuid(), :ws,
       md5('c' || (random() * (CAST(:contacts AS int) - 1))::int)::uuid, t.type,
       CASE t.type WHEN 'purchase' THEN jsonb_build_object('revenue', t.revenue)
                   WHEN 'email.clicked' THEN jsonb_build_object('campaign', 'c' || g % 20)
                   ELSE '{}'::jsonb END,
       t.revenue, t.at, t.at, 'bench'
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
CROSS JOIN LATERAL (
  SELECT CASE WHEN p < 40 THEN 'email.sent' WHEN p < 65 THEN 'email.opened'
              WHEN p < 80 THEN 'email.clicked' WHEN p < 90 THEN 'page.viewed'
              WHEN p < 95 THEN 'email.replied' ELSE 'purchase' END AS type,
         CASE WHEN p >= 95 THEN round((random() * 200)::numeric, 2) END AS revenue,
         CAST(:now AS timestamptz) - random() * interval '90 days' AS at
  FROM (SELECT (random() * 100)::int + g * 0 AS p) AS d
) AS t
"""

RULE_A = {
    "all": [
        {"attribute": {"field": "attributes.plan", "op": "eq", "value": "enterprise"}},
        {"attribute": {"field": "attributes.country", "op": "in", "value": ["FR", "DE"]}},
    ]
}
SQL_A = """
SELECT count(*) FROM contacts
WHERE workspace_id = :ws AND erased_at IS NULL
  AND attributes @> '{"plan": "enterprise"}'
  AND (attributes @> '{"country": "FR"}' OR attributes @> '{"country": "DE"}')
"""

RULE_A2 = {"attribute": {"field": "attributes.score", "op": "gte", "value": 90}}
SQL_A2 = """
SELECT count(*) FROM contacts
WHERE workspace_id = :ws AND erased_at IS NULL
  AND jsonb_typeof(attributes -> 'score') = 'number' AND (attributes ->> 'score')::numeric >= 90
"""

RULE_B = {
    "all": [
        {"event": {"type": "email.clicked", "within": "P7D"}},
        {"not": {"event": {"type": "email.replied", "within": "P30D"}}},
        {"attribute": {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]}},
    ]
}
SQL_B = """
SELECT count(*) FROM contacts c
WHERE c.workspace_id = :ws AND c.erased_at IS NULL
  AND c.attributes ->> 'plan' IN ('pro', 'team')
  AND EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.workspace_id = :ws
              AND e.type = 'email.clicked' AND e.occurred_at >= :d7
              AND e.occurred_at <= :now)
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.workspace_id = :ws
                  AND e.type = 'email.replied' AND e.occurred_at >= :d30
                  AND e.occurred_at <= :now)
"""

RULE_C = {
    "any": [
        {
            "all": [
                {"attribute": {"field": "attributes.plan", "op": "eq", "value": "enterprise"}},
                {
                    "event": {
                        "type": "purchase",
                        "where": [{"property": "revenue", "op": "gt", "value": 100}],
                        "count": {"gte": 1},
                        "within": "P30D",
                    }
                },
            ]
        },
        {
            "all": [
                {"attribute": {"field": "locale", "op": "eq", "value": "fr-FR"}},
                {"not": {"event": {"type": "email.opened", "within": "P14D"}}},
                {
                    "any": [
                        {"attribute": {"field": "attributes.score", "op": "gte", "value": 95}},
                        {
                            "attribute": {
                                "field": "created_at",
                                "op": "within_last",
                                "value": "P30D",
                            }
                        },
                    ]
                },
            ]
        },
    ]
}
SQL_C = """
SELECT count(*) FROM contacts c
WHERE c.workspace_id = :ws AND c.erased_at IS NULL
  AND ((c.attributes ->> 'plan' = 'enterprise'
        AND EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.workspace_id = :ws
                    AND e.type = 'purchase' AND e.occurred_at >= :d30
                    AND e.occurred_at <= :now AND (e.properties ->> 'revenue')::numeric > 100))
    OR (c.locale = 'fr-FR'
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.workspace_id = :ws
                        AND e.type = 'email.opened'
                        AND e.occurred_at >= :d14 AND e.occurred_at <= :now)
        AND ((c.attributes ->> 'score')::int >= 95 OR c.created_at >= :d30)))
"""

CASES = (
    ("(a) attribute: plan = enterprise and country in (FR, DE)", RULE_A, SQL_A),
    ("(a2) attribute: score >= 90 (no index helps)", RULE_A2, SQL_A2),
    ("(b) clicked 7d, no reply 30d, plan in (pro, team)", RULE_B, SQL_B),
    ("(c) 3-level nested rule", RULE_C, SQL_C),
)


async def timed(run: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    """Median milliseconds over `runs` runs after one warm-up, and the last result."""
    result = await run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


async def generate(
    conn: AsyncConnection, ws: uuid.UUID, now: datetime, contacts: int, events: int
) -> None:
    started = time.perf_counter()
    await conn.execute(text("SET session_replication_role = replica"))  # no FK triggers
    await conn.execute(text("SET maintenance_work_mem = '1GB'"))
    dropped: list[str] = []
    for name in ("contacts", "events"):
        rows = await conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"
                " AND indexname NOT LIKE 'pk_%'"
            ),
            {"t": name},
        )
        for index, definition in rows.all():
            await conn.execute(text(f'DROP INDEX "{index}"'))
            dropped.append(definition)
    step = 100_000
    for first in range(0, contacts, step):
        last = min(first + step, contacts) - 1
        await conn.execute(text(CONTACTS_SQL), {"ws": ws, "now": now, "first": first, "last": last})
    print(f"  {contacts:,} contacts in {time.perf_counter() - started:.0f} s", flush=True)
    step = 1_000_000
    for first in range(0, events, step):
        last = min(first + step, events) - 1
        await conn.execute(
            text(EVENTS_SQL),
            {"ws": ws, "now": now, "first": first, "last": last, "contacts": contacts},
        )
        print(f"  {last + 1:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    for definition in dropped:
        await conn.execute(text(definition))
    print(f"  indexes rebuilt ({time.perf_counter() - started:.0f} s)", flush=True)
    await conn.execute(text("SET session_replication_role = origin"))


async def explain(database_url: str, ws: uuid.UUID, now: datetime) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each compiled count, exactly as executed (docs/indexes.md)."""
    engine = create_engine(database_url, pool_size=1)

    def prefix(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> tuple[str, Any]:
        return "EXPLAIN (ANALYZE, BUFFERS) " + statement, params

    event.listen(engine.sync_engine, "before_cursor_execute", prefix, retval=True)
    ctx = CompileContext(workspace_id=ws, now=now, segments={})
    try:
        async with engine.connect() as conn:
            for label, rule_json, _ in CASES:
                plan = await conn.execute(count_statement(parse_rule(rule_json), ctx))
                print(f"\n--- {label}\n" + "\n".join(str(row[0]) for row in plan.all()), flush=True)
    finally:
        await engine.dispose()


async def yardstick(conn: AsyncConnection, ws: uuid.UUID, runs: int) -> str:
    """The machine's speed at the work every broad count shares: one serial pass over the 1M
    contacts with the workspace and erasure tests. VMs of the same kind have differed by more
    than 2x here, so counts from different sessions are compared through this figure."""
    await conn.execute(text("SET max_parallel_workers_per_gather = 0"))
    scan = text(
        "SELECT count(*) FROM contacts WHERE workspace_id = :ws AND erased_at IS NULL"
    ).bindparams(ws=ws)

    async def run() -> Any:
        return (await conn.execute(scan)).scalar_one()

    ms, _ = await timed(run, runs)
    await conn.execute(text("RESET max_parallel_workers_per_gather"))
    line = f"{'yardstick: serial scan of the contacts (no rule)':<58} {ms:7.1f} ms"
    print(line, flush=True)
    return line


async def measure(database_url: str, ws: uuid.UUID, now: datetime, runs: int) -> list[str]:
    # Herald's own engine factory: the connection settings (jit off, UTC) the API uses.
    engine = create_engine(database_url, pool_size=2)
    ctx = CompileContext(workspace_id=ws, now=now, segments={})
    lines: list[str] = []
    try:
        async with engine.connect() as conn:
            lines.append(await yardstick(conn, ws, runs))
            for label, rule_json, sql in CASES:
                rule = parse_rule(rule_json)
                compiled: Executable = count_statement(rule, ctx)
                stamp = DateTime(timezone=True)
                hand = text(sql).bindparams(
                    *(
                        bindparam(n, type_=stamp)
                        for n in ("now", "d7", "d14", "d30")
                        if f":{n}" in sql
                    )
                )
                windows = {"now": now, **{f"d{d}": now - timedelta(days=d) for d in (7, 14, 30)}}

                async def run_compiled(s: Executable = compiled) -> Any:
                    return (await conn.execute(s)).scalar_one()

                async def run_hand(s: Executable = hand, w: dict[str, Any] = windows) -> Any:
                    return (await conn.execute(s, {"ws": ws, **w})).scalar_one()

                ms_compiled, n_compiled = await timed(run_compiled, runs)
                ms_hand, n_hand = await timed(run_hand, runs)
                same = "counts equal" if n_compiled == n_hand else "COUNTS DIFFER"
                line = (
                    f"{label:<58} compiled {ms_compiled:7.1f} ms   hand-written "
                    f"{ms_hand:7.1f} ms   ratio {ms_compiled / ms_hand:4.2f}   "
                    f"count {n_compiled:,} ({same})"
                )
                print(line, flush=True)
                lines.append(line)
            refresh = member_ids(parse_rule(RULE_B), ctx)
            await conn.execute(
                text("CREATE TEMP TABLE scratch_members (contact_id uuid PRIMARY KEY)")
            )
            await conn.commit()

            async def run_refresh() -> int:
                await conn.execute(text("TRUNCATE scratch_members"))
                target = table("scratch_members", column("contact_id"))
                done = await conn.execute(insert(target).from_select(["contact_id"], refresh))
                await conn.commit()
                return int(done.rowcount)

            ms_refresh, inserted = await timed(run_refresh, max(3, runs // 2))
            line = (
                f"{'full membership refresh of (b): INSERT ... SELECT':<58} "
                f"{ms_refresh:7.1f} ms   {inserted:,} rows"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        await engine.dispose()
    return lines


def ingest(database_url: str, token: str, contacts: int, seconds: float, concurrency: int) -> None:
    try:
        module = importlib.import_module("bench.audience_ingest")
    except ImportError:
        print("--ingest: bench/audience_ingest.py is not there; skipped")
        return
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-audience-redis-"))
    redis = EmbeddedRedis(workdir)
    redis_url = os.environ.get("BENCH_REDIS_URL") or redis.start()
    port = free_port()
    env = api_env(database_url, redis_url, port)
    api = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        figures = module.run(base_url, token, seconds, concurrency, contacts=contacts)
        print(f"ingestion (bench/audience_ingest.py, {concurrency} clients): {figures}")
    finally:
        api.terminate()
        api.wait()
        redis.stop()


async def load(  # noqa: PLR0917 - a script's plumbing
    url: str, ws: uuid.UUID, now: datetime, token: str, contacts: int, events: int
) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await generate(conn, ws, now, contacts, events)
            started = time.perf_counter()
            await conn.execute(text("VACUUM ANALYZE contacts"))
            await conn.execute(text("VACUUM ANALYZE events"))
            print(f"  VACUUM ANALYZE ({time.perf_counter() - started:.0f} s)")
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_audience"
                    " (ws uuid, now timestamptz, token text)"
                )
            )
            await conn.execute(
                text("INSERT INTO bench_audience VALUES (:ws, :now, :token)"),
                {"ws": ws, "now": now, "token": token},
            )
    finally:
        await engine.dispose()


async def saved_dataset(url: str) -> tuple[uuid.UUID, datetime, str] | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT to_regclass('bench_audience')"))).scalar() is None:
                return None
            row = (await conn.execute(text("SELECT ws, now, token FROM bench_audience"))).first()
            return None if row is None else (row[0], row[1], row[2])
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print the compiled plans")
    parser.add_argument(
        "--reuse", action="store_true", help="with BENCH_DATABASE_URL: reuse a generated dataset"
    )
    parser.add_argument("--ingest", action="store_true")
    parser.add_argument("--ingest-seconds", type=float, default=20.0)
    parser.add_argument("--ingest-concurrency", type=int, default=4)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-audience-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    url = async_database_url(database_url)
    try:
        upgrade(url)
        found = asyncio.run(saved_dataset(url)) if args.reuse else None
        if found is not None:
            ws, now, token = found
            print(f"reusing the dataset generated at {now.isoformat()}")
        else:
            created = asyncio.run(create_workspace(url, "Bench", "o@bench.example", "O"))
            ws, now, token = created.workspace.id, utcnow(), created.key.token
            print(f"generating {args.contacts:,} contacts and {args.events:,} events", flush=True)
            asyncio.run(load(url, ws, now, token, args.contacts, args.events))
        print(f"median of {args.runs} runs after a warm-up; now = {now.isoformat()}")
        asyncio.run(measure(url, ws, now, args.runs))
        if args.explain:
            asyncio.run(explain(url, ws, now))
        if args.ingest:
            ingest(
                database_url,
                token,
                args.contacts,
                args.ingest_seconds,
                args.ingest_concurrency,
            )
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
