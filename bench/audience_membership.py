"""Incremental membership upkeep on the audience dataset (not a test; prints figures).

Needs the dataset `python -m bench.audience` generated (1M contacts, 10M events) in
BENCH_DATABASE_URL. Saves rules (a), (b) and (c) of bench/audience.py as dynamic segments,
fills them (a full refresh each), then times the job that keeps them current: batches of
dirty contacts (`segments_refresh_contacts`, DIRTY_BATCH at a time) re-evaluated against all
three segments, committed like the worker does; and full refreshes that change nothing (what
the per-minute tick runs for time-relative rules). Before each batch it VACUUMs the segment
tables, as autovacuum would keep up with them in service (the CI machine's PostgreSQL runs
with autovacuum off, and their dead rows would otherwise pile up from batch to batch).
Everything it creates is deleted at the end.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_audience \\
        uv run --no-sync python -m bench.audience_membership --batches 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import datetime

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import async_database_url
from app.core.db import create_engine, create_session_factory
from app.segments.membership import DIRTY_BATCH, refresh_contacts, refresh_segment
from app.segments.models import Segment
from app.segments.repository import DirtyContactQueue
from bench.audience import RULE_A, RULE_B, RULE_C

NAME_PREFIX = "bench-incremental "
RULES = (("(a)", RULE_A), ("(b)", RULE_B), ("(c)", RULE_C))
Factory = async_sessionmaker[AsyncSession]
SEGMENT_TABLES = ("segment_dirty_contacts", "segment_memberships", "segment_membership_changes")


async def run(url: str, batches: int) -> None:
    engine = create_engine(url, pool_size=1)
    factory = create_session_factory(engine)
    try:
        async with factory() as session:
            row = (await session.execute(text("SELECT ws, now FROM bench_audience"))).one()
        ws, now = row[0], row[1]
        await _cleanup(factory, ws)
        segment_ids = await _create_segments(factory, ws)
        for (label, _), segment_id in zip(RULES, segment_ids, strict=True):
            started = time.perf_counter()
            async with factory() as session:
                moves = await refresh_segment(session, ws, segment_id, now)
                await session.commit()
            entered = moves.entered if moves else 0
            print(f"first fill of {label}: {entered:,} members in {_since(started):,.0f} ms")
        await _vacuum(engine)
        for (label, _), segment_id in zip(RULES, segment_ids, strict=True):
            steady = []
            for _ in range(3):
                started = time.perf_counter()
                async with factory() as session:
                    await refresh_segment(session, ws, segment_id, now)
                    await session.commit()
                steady.append(_since(started))
            print(
                f"full refresh of {label}, nothing changed: median {statistics.median(steady):,.0f}"
                f" ms (runs {', '.join(f'{s:,.0f}' for s in steady)})"
            )
        samples = [await _one_batch(engine, factory, ws, now) for _ in range(batches)]
        per_batch = statistics.median(samples)
        print(
            f"dirty batches of {DIRTY_BATCH:,} contacts against 3 segments: median "
            f"{per_batch:,.0f} ms per batch (runs {', '.join(f'{s:,.0f}' for s in samples)}),"
            f" {DIRTY_BATCH / per_batch * 1000:,.0f} contacts/s"
        )
    finally:
        await _cleanup(factory, ws)
        await engine.dispose()


async def _one_batch(engine: AsyncEngine, factory: Factory, ws: uuid.UUID, now: datetime) -> float:
    async with factory() as session:
        sample = await session.execute(
            text("SELECT id FROM contacts TABLESAMPLE SYSTEM (1) LIMIT :n"), {"n": DIRTY_BATCH}
        )
        await DirtyContactQueue(session, ws).mark([r[0] for r in sample])
        await session.commit()
    await _vacuum(engine)
    started = time.perf_counter()
    async with factory() as session:
        done = await refresh_contacts(session, ws, now)
        await session.commit()
    assert done == DIRTY_BATCH, done
    return _since(started)


async def _vacuum(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {', '.join(SEGMENT_TABLES)}"))


async def _create_segments(factory: Factory, ws: uuid.UUID) -> list[uuid.UUID]:
    async with factory() as session:
        segments = [
            Segment(workspace_id=ws, name=NAME_PREFIX + label, kind="dynamic", rule=rule)
            for label, rule in RULES
        ]
        session.add_all(segments)
        await session.commit()
        return [segment.id for segment in segments]


async def _cleanup(factory: Factory, ws: uuid.UUID) -> None:
    async with factory() as session:
        await session.execute(
            delete(Segment).where(Segment.workspace_id == ws, Segment.name.startswith(NAME_PREFIX))
        )
        await session.execute(
            text("DELETE FROM segment_dirty_contacts WHERE workspace_id = :ws"), {"ws": ws}
        )
        await session.commit()


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL")
    if not database_url:
        raise SystemExit("BENCH_DATABASE_URL: the database `python -m bench.audience` filled")
    asyncio.run(run(async_database_url(database_url), args.batches))


if __name__ == "__main__":
    main()
