"""Launch benchmark (issue 5): a `one_off` campaign launched to a 1,000,000-contact static
segment with a 100,000-contact exclusion segment and 10,000 suppressed addresses, timed
beside a raw `INSERT ... SELECT` of 1,000,000 rows into a table of the enrollments' shape
(`CREATE TABLE ... (LIKE enrollments INCLUDING ALL)`) in the same run. Not a test: it
prints figures.

Starts embedded PostgreSQL (or uses BENCH_DATABASE_URL), migrates, generates the data in
SQL (contacts, membership rows, suppressions), VACUUM ANALYZE, then per run: the audience
count alone, `launch()` (the real function: audience SELECT -> `enroll_count` INSERT ...
SELECT, campaign row, audit, commit) and the raw inserts, each from a clean table. Beside
each wall-clock figure it prints the server backend's CPU seconds for the same work (read
from /proc, embedded server only): on a box shared with other work, wall time follows the
load average (printed too) while CPU time does not.

Usage: `uv run --no-sync python -m bench.launch [--contacts 1000000] [--runs 3]
[--explain] [--subscribed]` (`--subscribed`: an endpoint wants `enrollment.started`, so the
launch also writes one webhook event and delivery per enrollment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.admin import create_workspace
from app.audit.service import Actor
from app.campaigns.lifecycle import launch
from app.campaigns.models import Campaign
from app.config import async_database_url
from app.core.clock import utcnow
from app.core.db import create_engine, create_session_factory, transaction
from app.core.ids import new_id
from app.embedded import EmbeddedPostgres
from app.migrate import upgrade
from app.outbox.models import WebhookEndpoint
from app.sequences.enrollments.service import enroll_contacts

CONTACTS_SQL = """
INSERT INTO contacts (id, workspace_id, external_id, email, attributes, created_at, updated_at)
SELECT md5('c' || n)::uuid, :ws, 'c-' || n, 'c' || n || '@example.com', '{}'::jsonb, :now, :now
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
"""
# Include: every contact. Exclude: every 10th (100,000). Suppressed: n % 100 = 1 (10,000,
# none of them excluded), hashed like `lenient_hash` (tests/campaigns/test_launch.py).
MEMBERS_SQL = """
INSERT INTO segment_memberships (workspace_id, segment_id, contact_id, entered_at)
SELECT :ws, :segment, md5('c' || n)::uuid, :now
FROM generate_series(0, CAST(:contacts AS int) - 1) AS n WHERE n % CAST(:every AS int) = 0
"""
SUPPRESSIONS_SQL = """
INSERT INTO suppressions (id, workspace_id, channel, address_hash, reason, created_at)
SELECT gen_random_uuid(), :ws, 'email',
       encode(sha256(convert_to('email:c' || n || '@example.com', 'UTF8')), 'hex'),
       'hard_bounce', :now
FROM generate_series(0, CAST(:contacts AS int) - 1) AS n WHERE n % 100 = 1
"""
RAW_SQL = """
INSERT INTO {table} (id, workspace_id, contact_id, sequence_id, sequence_version_id,
    campaign_id, source, state, step_key, step_visit, step_entered_at, next_action_at,
    exit_events, visits, failures, started_at, updated_at)
SELECT gen_random_uuid(), :ws, m.contact_id, :sequence, :version, :campaign, 'campaign',
       'active', 'nap', 1, :now, :now, NULL, '{"nap": 1}'::jsonb, 0, :now, :now
FROM segment_memberships m
WHERE m.workspace_id = :ws AND m.segment_id = :segment
"""
DEFINITION = {
    "steps": [{"key": "nap", "type": "wait", "duration": "P1D"}, {"key": "x", "type": "exit"}]
}


async def generate(
    engine: AsyncEngine, ws: uuid.UUID, now: datetime, contacts: int
) -> dict[str, uuid.UUID]:
    ids = {name: new_id() for name in ("include", "exclude", "sequence", "version", "campaign")}
    started = time.perf_counter()
    async with engine.begin() as conn:
        step = 200_000
        for first in range(0, contacts, step):
            last = min(first + step, contacts) - 1
            await conn.execute(
                text(CONTACTS_SQL), {"ws": ws, "now": now, "first": first, "last": last}
            )
        for name in ("include", "exclude"):
            await conn.execute(
                text(
                    "INSERT INTO segments (id, workspace_id, name, kind, version, member_count,"
                    " created_at, updated_at) VALUES (:id, :ws, :name, 'static', 1, 0, :now, :now)"
                ),
                {"id": ids[name], "ws": ws, "name": name, "now": now},
            )
        params = {"ws": ws, "now": now, "contacts": contacts}
        await conn.execute(text(MEMBERS_SQL), {**params, "segment": ids["include"], "every": 1})
        await conn.execute(text(MEMBERS_SQL), {**params, "segment": ids["exclude"], "every": 10})
        await conn.execute(text(SUPPRESSIONS_SQL), params)
        await _sequence(conn, ws, now, ids)
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("contacts", "segment_memberships", "suppressions", "contact_consents"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))
        await conn.execute(text("DROP TABLE IF EXISTS bench_enrollments"))
        await conn.execute(text("CREATE TABLE bench_enrollments (LIKE enrollments INCLUDING ALL)"))
    return ids


async def _sequence(
    conn: AsyncConnection, ws: uuid.UUID, now: datetime, ids: dict[str, uuid.UUID]
) -> None:
    import json

    definition = json.dumps(DEFINITION)
    await conn.execute(
        text(
            "INSERT INTO sequences (id, workspace_id, name, version, definition, published_version,"
            " signing_secret, created_at, updated_at) VALUES (:id, :ws, 'Bench', 1,"
            " CAST(:d AS jsonb), 1, 'whsec_bench', :now, :now)"
        ),
        {"id": ids["sequence"], "ws": ws, "d": definition, "now": now},
    )
    await conn.execute(
        text(
            "INSERT INTO sequence_versions (id, workspace_id, sequence_id, number, definition,"
            " published_at) VALUES (:id, :ws, :s, 1, CAST(:d AS jsonb), :now)"
        ),
        {"id": ids["version"], "ws": ws, "s": ids["sequence"], "d": definition, "now": now},
    )
    await conn.execute(
        text(
            "INSERT INTO campaigns (id, workspace_id, name, kpis, channels, include_segments,"
            " exclude_segments, sequence_id, type, reentry, timezone, tags, status, version,"
            " approval_round, created_at, updated_at) VALUES (:id, :ws, 'Bench launch', '[]',"
            " ARRAY['email'], CAST(:inc AS jsonb), CAST(:exc AS jsonb), :s, 'one_off', '{}',"
            " 'UTC', ARRAY[]::varchar[], 'approved', 1, 1, :now, :now)"
        ),
        {
            "id": ids["campaign"],
            "ws": ws,
            "inc": json.dumps([str(ids["include"])]),
            "exc": json.dumps([str(ids["exclude"])]),
            "s": ids["sequence"],
            "now": now,
        },
    )


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a server backend so far (0 when not readable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backend(execute: Any) -> int | None:
    return int((await execute(text("SELECT pg_backend_pid()"))).scalar_one())


class Samples:
    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall.setdefault(name, []).append(wall)
        self.cpu.setdefault(name, []).append(cpu)

    def last(self, name: str) -> str:
        return f"{self.wall[name][-1]:.2f} s (cpu {self.cpu[name][-1]:.2f} s)"

    def median(self, name: str) -> tuple[float, float]:
        return statistics.median(self.wall[name]), statistics.median(self.cpu[name])


async def measure(engine: AsyncEngine, ws: uuid.UUID, ids: dict[str, uuid.UUID], runs: int) -> None:
    factory = create_session_factory(engine)
    samples = Samples()
    enrolled = raw_rows = audience_size = 0
    loads: list[float] = []
    for run in range(runs):
        await _reset(engine, ids)
        async with transaction(factory) as session:  # schedule: pins the version
            campaign = await session.get(Campaign, ids["campaign"])
            assert campaign is not None
            await launch.schedule(session, campaign, Actor.system(), utcnow())
        async with factory() as session:
            campaign = await session.get(Campaign, ids["campaign"])
            assert campaign is not None
            pid = await _backend(session.execute)
            cpu, started = _cpu_seconds(pid), time.perf_counter()
            query = await launch.audience(session, campaign, utcnow())
            audience_size = int(
                (
                    await session.execute(select(func.count()).select_from(query.subquery()))
                ).scalar_one()
            )
            samples.add("audience", time.perf_counter() - started, _cpu_seconds(pid) - cpu)
        loads.append(os.getloadavg()[0])
        async with transaction(factory) as session:
            pid = await _backend(session.execute)
            cpu, started = _cpu_seconds(pid), time.perf_counter()
            campaign = await session.get(Campaign, ids["campaign"])
            assert campaign is not None
            enrolled = await launch.launch(session, campaign, utcnow())
        samples.add("launch", time.perf_counter() - started, _cpu_seconds(pid) - cpu)
        raw_rows = await _raw(engine, ws, ids, "bench_enrollments", samples=samples, name="raw")
        # The floor for this schema: the same raw insert into `enrollments` itself (its
        # foreign keys checked per row, its metrics trigger), under another campaign id.
        other = {**ids, "campaign": new_id()}
        await _raw(engine, ws, other, "enrollments", samples=samples, name="raw_fk")
        loads.append(os.getloadavg()[0])
        print(
            f"  run {run + 1}: audience count {samples.last('audience')}, launch "
            f"{samples.last('launch')} ({enrolled:,}), raw insert {samples.last('raw')}"
            f" ({raw_rows:,}), raw insert into enrollments {samples.last('raw_fk')};"
            f" load average {loads[-2]:.1f} -> {loads[-1]:.1f}",
            flush=True,
        )
    print(f"audience {audience_size:,} contacts; median of {runs} runs (wall, backend cpu):")
    figures = {name: samples.median(name) for name in ("audience", "launch", "raw", "raw_fk")}
    labels = {
        "audience": "audience count (SELECT count(*) of the audience query)",
        "launch": f"launch() enrolling {enrolled:,}",
        "raw": f"raw INSERT ... SELECT of {raw_rows:,} rows (LIKE table)",
        "raw_fk": "raw INSERT ... SELECT into enrollments itself (foreign keys, trigger)",
    }
    for name, (wall, cpu) in figures.items():
        print(f"  {labels[name]}: {wall:.2f} s (cpu {cpu:.2f} s)")
    (launch_s, launch_cpu), (raw_s, raw_cpu) = figures["launch"], figures["raw"]
    raw_fk_s, raw_fk_cpu = figures["raw_fk"]
    print(
        f"  ratio launch / raw: {launch_s / raw_s:.2f}x"
        f" (cpu {launch_cpu / max(raw_cpu, 0.01):.2f}x; target <= 3x and < 10 s)"
    )
    print(
        f"  ratio launch / raw into enrollments: {launch_s / raw_fk_s:.2f}x"
        f" (cpu {launch_cpu / max(raw_fk_cpu, 0.01):.2f}x)"
    )
    print(f"  load average (1 min) during the runs: {min(loads):.1f} .. {max(loads):.1f}")


async def explain(engine: AsyncEngine, ids: dict[str, uuid.UUID]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the launch's INSERT ... SELECT, exactly as executed
    (rolled back): where the time goes, foreign-key triggers included."""
    await _reset(engine, ids)
    factory = create_session_factory(engine)
    async with transaction(factory) as session:
        campaign = await session.get(Campaign, ids["campaign"])
        assert campaign is not None
        await launch.schedule(session, campaign, Actor.system(), utcnow())

    def prefix(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> tuple[str, Any]:
        if statement.lstrip().startswith("INSERT INTO enrollments"):
            return "EXPLAIN (ANALYZE, BUFFERS) " + statement, params
        return statement, params

    event.listen(engine.sync_engine, "before_cursor_execute", prefix, retval=True)
    try:
        async with factory() as session:
            campaign = await session.get(Campaign, ids["campaign"])
            assert campaign is not None
            query = await launch.audience(session, campaign, utcnow())
            version = await launch.pinned_version(session, campaign)
            # With the EXPLAIN prefix, the "ids" RETURNING yields are the plan's lines.
            plan = await enroll_contacts(
                session,
                campaign.workspace_id,
                version,
                query,
                campaign_id=campaign.id,
                source="campaign",
            )
            print("\n".join(str(line) for line in plan))
            await session.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", prefix)


async def _raw(
    engine: AsyncEngine,
    ws: uuid.UUID,
    ids: dict[str, uuid.UUID],
    table: str,
    *,
    samples: Samples,
    name: str,
) -> int:
    async with engine.begin() as conn:
        pid = await _backend(conn.execute)
        cpu, started = _cpu_seconds(pid), time.perf_counter()
        result = await conn.execute(
            text(RAW_SQL.replace("{table}", table)),
            {
                "ws": ws,
                "sequence": ids["sequence"],
                "version": ids["version"],
                "campaign": ids["campaign"],
                "segment": ids["include"],
                "now": utcnow(),
            },
        )
    samples.add(name, time.perf_counter() - started, _cpu_seconds(pid) - cpu)
    return int(result.rowcount)


async def _reset(engine: AsyncEngine, ids: dict[str, uuid.UUID]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE enrollments, bench_enrollments, campaign_actions, metric_deltas,"
                " webhook_events CASCADE"
            )
        )
        await conn.execute(
            text(
                "UPDATE campaigns SET status = 'approved', launched_at = NULL,"
                " enrolled_count = NULL WHERE id = :id"
            ),
            {"id": ids["campaign"]},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE enrollments"))
        await conn.execute(text("VACUUM ANALYZE bench_enrollments"))
        await conn.execute(text("CHECKPOINT"))


async def _subscribe(engine: AsyncEngine, ws: uuid.UUID) -> None:
    """An enabled endpoint wanting `enrollment.started`: the launch then emits set-wise."""
    async with transaction(create_session_factory(engine)) as session:
        session.add(
            WebhookEndpoint(
                workspace_id=ws,
                url="https://hooks.example/bench",
                event_types=["enrollment.started"],
                secret="whsec_" + "a" * 32,
            )
        )


async def run(url: str, contacts: int, runs: int, show_plan: bool, subscribed: bool) -> None:
    created = await create_workspace(url, "Bench", "o@bench.example", "O")
    ws, now = created.workspace.id, utcnow()
    engine = create_engine(url, pool_size=2)
    try:
        print(f"generating {contacts:,} contacts, segments and suppressions", flush=True)
        ids = await generate(engine, ws, now, contacts)
        if subscribed:
            await _subscribe(engine, ws)
        await measure(engine, ws, ids, runs)
        if show_plan:
            await explain(engine, ids)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="print the launch INSERT's plan")
    parser.add_argument(
        "--subscribed", action="store_true", help="an endpoint subscribes to enrollment.started"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-launch-"))
    postgres = EmbeddedPostgres(workdir / "pg")
    database_url = os.environ.get("BENCH_DATABASE_URL") or postgres.start("herald_bench")
    url = async_database_url(database_url)
    try:
        upgrade(url)
        asyncio.run(run(url, args.contacts, args.runs, args.explain, args.subscribed))
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
