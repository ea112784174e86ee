"""How the scan groups leased rows into jobs (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.sequences.engine.scheduler import _batches

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WORKSPACE = uuid.uuid4()


def _rows(offsets: list[float]) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None]]:
    return [(WORKSPACE, uuid.uuid4(), NOW + timedelta(seconds=s)) for s in offsets]


def test_overdue_rows_fill_whole_batches() -> None:
    backlog = _rows([-60 + i * 0.06 for i in range(1000)])  # 0-60 s overdue
    batches = _batches(backlog, 200, NOW)
    assert [len(batch.ids) for batch in batches] == [200] * 5
    assert all(batch.due == NOW for batch in batches)  # run at once


def test_future_rows_split_by_due_bucket_and_run_at_their_latest_due() -> None:
    rows = _rows([0.01, 0.05, 0.09, 0.5, 0.55])
    batches = _batches(rows, 200, NOW)
    assert [len(batch.ids) for batch in batches] == [3, 2]
    assert batches[0].due == NOW + timedelta(seconds=0.09)
    assert batches[1].due == NOW + timedelta(seconds=0.55)


def test_batches_never_mix_workspaces() -> None:
    other = uuid.uuid4()
    rows = [*_rows([0, 0]), (other, uuid.uuid4(), NOW)]
    batches = _batches(rows, 200, NOW)
    assert sorted(len(batch.ids) for batch in batches) == [1, 2]
    assert {batch.workspace_id for batch in batches} == {WORKSPACE, other}
