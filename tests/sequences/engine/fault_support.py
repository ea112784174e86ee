"""Helpers for the engine fault tests: set-wise contacts and enrollments, counts, and clean
tables between hypothesis examples. Real worker processes and `wait_until`:
tests/fixtures/processes.py."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text

from app.contacts.models import Contact
from app.core.db import transaction
from app.core.state import AppState
from app.models import Base
from app.sequences.enrollments.service import enroll_contacts
from app.sequences.models import Enrollment, SequenceVersion
from tests.fixtures.factories import Factory


async def add_contacts(factory: Factory, workspace_id: uuid.UUID, count: int, tag: str) -> None:
    async with transaction(factory) as session:
        session.add_all(
            Contact(workspace_id=workspace_id, email=f"{tag}{i}@example.com") for i in range(count)
        )


async def enroll_all(
    state: AppState, workspace_id: uuid.UUID, sequence_id: str, source: str = "fault-test"
) -> list[uuid.UUID]:
    """Every contact of the workspace, set-wise (INSERT ... SELECT, as a launch does)."""
    async with transaction(state.session_factory, state.queue) as session:
        version = (
            await session.execute(
                select(SequenceVersion)
                .where(SequenceVersion.sequence_id == uuid.UUID(sequence_id))
                .order_by(SequenceVersion.number.desc())
                .limit(1)
            )
        ).scalar_one()
        contacts = select(Contact.id).where(Contact.workspace_id == workspace_id)
        return await enroll_contacts(
            session, workspace_id, version, contacts, campaign_id=None, source=source
        )


async def count_enrollments(factory: Factory, state: str) -> int:
    async with factory() as session:
        found = await session.scalar(
            select(func.count()).select_from(Enrollment).where(Enrollment.state == state)
        )
        return int(found or 0)


async def truncate_all(state: AppState) -> None:
    """What the `_isolate` fixture does after a test: empty tables, empty Redis."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await state.redis.flushdb()
