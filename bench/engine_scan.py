"""Part (c) of bench/engine.py: the scheduler scan (`lease_due`) timed in-process with many
waiting enrollments and a few due, to show its cost follows due work, not waiting work.

Enrollments are generated in SQL with foreign-key triggers off (`session_replication_role =
replica`): the scan reads only `enrollments`, so waiting rows need no contact rows. Half of
the waiting rows sit on a `wait` (state active), half on a `wait_for_event` (state waiting),
due 1 h to 30 days ahead; the due rows are active and 0-60 s overdue. Each timed run is one
`lease_due` plus its commit (the jobs it would enqueue stay in the session, unflushed), then
the leases are reset for the next run.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.config import Settings, get_settings
from app.core.clock import utcnow
from app.core.db import create_engine, create_session_factory
from app.sequences.engine.scheduler import lease_due
from app.sequences.models import Enrollment, SequenceVersion

UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
  substring(int8send(floor(extract(epoch FROM CAST(:now AS timestamptz)) * 1000)::bigint)
  FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""

ROWS_SQL = f"""
INSERT INTO enrollments (id, workspace_id, sequence_id, sequence_version_id, contact_id, source,
                         state, step_key, step_visit, step_entered_at, next_action_at,
                         wait_event_type, visits, started_at, updated_at)
SELECT {UUID7}, :ws, :seq, :version, md5(CAST(:prefix AS text) || n)::uuid, 'bench',
       CASE WHEN p.due OR n % 2 = 1 THEN 'active' ELSE 'waiting' END,
       CASE WHEN p.due THEN 'first' WHEN n % 2 = 1 THEN 'pause' ELSE 'reply' END, 1,
       CAST(:now AS timestamptz),
       CASE WHEN p.due THEN CAST(:now AS timestamptz) - random() * interval '60 seconds'
            ELSE CAST(:now AS timestamptz) + interval '1 hour' + random() * interval '30 days'
       END,
       CASE WHEN NOT p.due AND n % 2 = 0 THEN 'email.replied' END,
       '{{}}'::jsonb, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n,
     (SELECT CAST(:due AS boolean) AS due) AS p
"""


async def _load(
    engine: AsyncEngine, params: dict[str, Any], prefix: str, span: tuple[int, int], due: bool
) -> None:
    step = 200_000
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET session_replication_role = replica"))  # no FK triggers
        for first in range(span[0], span[1], step):
            last = min(first + step, span[1]) - 1
            values = {**params, "prefix": prefix, "first": first, "last": last, "due": due}
            await conn.execute(text(ROWS_SQL), values)
        await conn.execute(text("SET session_replication_role = origin"))
        await conn.execute(text("VACUUM ANALYZE enrollments"))


async def _time_scans(
    factory: async_sessionmaker[Any], settings: Settings, runs: int
) -> tuple[list[float], int, int]:
    """Milliseconds of `lease_due` + commit per run (after one warm-up), rows, batches."""
    lookahead = timedelta(milliseconds=settings.engine.lookahead_ms)
    samples: list[float] = []
    leased = batches = 0
    for run in range(runs + 1):
        async with factory() as session:
            started = time.perf_counter()
            found = await lease_due(session, settings, utcnow(), lookahead)
            await session.commit()
            elapsed = (time.perf_counter() - started) * 1000
            ids = [item for batch in found for item in batch.ids]
            await session.execute(
                update(Enrollment).where(Enrollment.id.in_(ids)).values(lease_until=None)
            )
            await session.commit()
        leased, batches = len(ids), len(found)
        if run:
            samples.append(elapsed)
    return samples, leased, batches


async def _explain(
    engine: AsyncEngine, factory: async_sessionmaker[Any], settings: Settings
) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the scan's statement exactly as `lease_due` sends it
    (captured from the driver, then re-run under EXPLAIN and rolled back)."""
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith("UPDATE enrollments SET lease_until"):
            captured.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with factory() as session:
            lookahead = timedelta(milliseconds=settings.engine.lookahead_ms)
            await lease_due(session, settings, utcnow(), lookahead)
            await session.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    statement, params = captured[0]
    async with engine.connect() as conn:
        plan = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
        lines = [str(row[0]) for row in plan.all()]
        await conn.rollback()
    return statement + "\n" + "\n".join(lines)


async def _hot_updates(engine: AsyncEngine) -> str:
    """How many enrollment updates were HOT (no index entries): a lease changes no indexed
    column, so only a full heap page forces new entries in every index."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        row = (
            await conn.execute(
                text(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                    " WHERE relname = 'enrollments'"
                )
            )
        ).one()
    return f"enrollments updates so far: {row[0]:,}, of which HOT {row[1]:,}"


def _line(label: str, samples: list[float], leased: int, batches: int) -> str:
    return (
        f"lease_due with {label}: median {statistics.median(samples):.1f} ms "
        f"(min {min(samples):.1f}, max {max(samples):.1f}, {len(samples)} runs), "
        f"{leased:,} rows leased in {batches} batches"
    )


async def measure_scan(
    url: str,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    sizes: tuple[int, int, int],
    fillfactor: int | None = None,
) -> list[str]:
    """`fillfactor`: set on `enrollments` before loading (an experiment: room on each heap
    page lets lease updates be HOT)."""
    waiting, due, runs = sizes
    small = min(10_000, waiting)
    settings = get_settings()
    engine = create_engine(url, pool_size=2)
    factory = create_session_factory(engine)
    lines: list[str] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE enrollment_steps, messages, enrollments CASCADE"))
            if fillfactor is not None:
                await conn.execute(text(f"ALTER TABLE enrollments SET (fillfactor = {fillfactor})"))
            version = (
                await conn.execute(
                    select(SequenceVersion.id).where(SequenceVersion.sequence_id == sequence_id)
                )
            ).scalar_one()
        now: datetime = utcnow()
        params = {"ws": workspace_id, "seq": sequence_id, "version": version, "now": now}
        print(f"(c) scan: {due:,} due + {small:,} waiting", flush=True)
        await _load(engine, params, "d", (0, due), due=True)
        await _load(engine, params, "w", (0, small), due=False)
        lines.append(
            _line(f"{small:,} waiting + {due:,} due", *await _time_scans(factory, settings, runs))
        )
        print("  " + lines[-1], flush=True)
        if waiting > small:
            print(f"(c) scan: {due:,} due + {waiting:,} waiting (loading)", flush=True)
            started = time.perf_counter()
            await _load(engine, params, "w", (small, waiting), due=False)
            print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
            label = f"{waiting:,} waiting + {due:,} due"
            lines.append(_line(label, *await _time_scans(factory, settings, runs)))
            print("  " + lines[-1], flush=True)
        lines.append(await _hot_updates(engine))
        print("  " + lines[-1], flush=True)
        print("\n--- the scan's statement and plan, EXPLAIN (ANALYZE, BUFFERS):", flush=True)
        print(await _explain(engine, factory, settings), flush=True)
    finally:
        await engine.dispose()
    return lines
