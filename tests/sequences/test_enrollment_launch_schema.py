"""The enrollments schema a fast launch relies on (migration 0012_enrollment_launch): bulk
inserts write ids ascending in contact order, one composite foreign key keeps an
enrollment's sequence and workspace those of its version, deletions still cascade, and a
bulk insert orders itself against a sequence delete by a KEY SHARE lock."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import literal, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.contacts.models import Contact
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.errors import Conflict
from app.core.ids import ordered_uuid7
from app.sequences import service
from app.sequences.enrollments.service import enroll_count, enrollment_columns
from app.sequences.models import Enrollment, Sequence, SequenceVersion
from tests.fixtures.tenants import Tenant
from tests.sequences.helpers import create_sequence

Factory = async_sessionmaker[AsyncSession]
WAIT = {"steps": [{"key": "nap", "type": "wait", "duration": "P1D"}, {"key": "x", "type": "exit"}]}


async def _published(client: httpx.AsyncClient, tenant: Tenant) -> tuple[uuid.UUID, uuid.UUID]:
    sequence = await create_sequence(client, tenant, WAIT)
    published = await client.post(f"/v1/sequences/{sequence['id']}/publish", headers=tenant.headers)
    assert published.status_code == 201, published.text
    return uuid.UUID(sequence["id"]), uuid.UUID(published.json()["id"])


async def _contacts(factory: Factory, workspace_id: uuid.UUID, count: int) -> None:
    async with transaction(factory) as session:
        session.add_all(
            Contact(workspace_id=workspace_id, email=f"c{i}@example.com") for i in range(count)
        )


async def _enroll_all(factory: Factory, workspace_id: uuid.UUID, version_id: uuid.UUID) -> int:
    async with transaction(factory) as session:
        version = await session.get(SequenceVersion, version_id)
        assert version is not None
        contacts = select(Contact.id).where(Contact.workspace_id == workspace_id)
        return await enroll_count(
            session, workspace_id, version, contacts, campaign_id=None, source="campaign"
        )


async def test_bulk_ids_ascend_in_contact_order_and_are_uuid7(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    _, version_id = await _published(client, tenant)
    await _contacts(session_factory, tenant.workspace_id, 300)
    assert await _enroll_all(session_factory, tenant.workspace_id, version_id) == 300
    assert await _enroll_all(session_factory, tenant.workspace_id, version_id) == 0  # idempotent
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(Enrollment.contact_id, Enrollment.id, Enrollment.started_at).order_by(
                    Enrollment.contact_id
                )
            )
        ).all()
    ids = [row.id for row in rows]
    assert ids == sorted(ids)  # contact order is id order: every index is appended to
    assert len(set(ids)) == 300
    for row in rows:
        assert row.id.version == 7
        assert row.id.variant == uuid.RFC_4122
        assert row.id.int >> 80 == int(row.started_at.timestamp() * 1000)  # its millisecond


async def test_ordered_ids_carry_the_counter_into_the_millisecond(session_factory: Factory) -> None:
    now = utcnow()
    positions = [0, 1, 2, 16383, 16384, 4095 << 14, (1 << 26) - 1, 1 << 26, (1 << 26) + 1]
    async with session_factory() as session:
        made = [
            (await session.execute(select(ordered_uuid7(now, literal(position))))).scalar_one()
            for position in positions
        ]
    assert made == sorted(made)
    millis = int(now.timestamp() * 1000)
    for position, made_id in zip(positions, made, strict=True):
        assert made_id.version == 7
        assert made_id.variant == uuid.RFC_4122
        assert made_id.int >> 80 == millis + (position >> 26)
        counter = ((made_id.int >> 64) & 0xFFF) << 14 | ((made_id.int >> 48) & 0x3FFF)
        assert counter == position % (1 << 26)


def _row(workspace_id: uuid.UUID, sequence_id: uuid.UUID, version: SequenceVersion) -> Enrollment:
    columns = enrollment_columns(version, utcnow(), None, "api")
    columns.pop("sequence_id")
    return Enrollment(workspace_id=workspace_id, sequence_id=sequence_id, **columns)


async def test_composite_key_keeps_sequence_and_workspace_those_of_the_version(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    sequence_id, version_id = await _published(client, tenant)
    other_sequence_id, _ = await _published(client, tenant)
    await _contacts(session_factory, tenant.workspace_id, 1)
    async with session_factory() as session:
        version = await session.get(SequenceVersion, version_id)
        contact_id = await session.scalar(select(Contact.id))
    assert version is not None
    assert contact_id is not None
    wrong = [
        (tenant.workspace_id, other_sequence_id),  # another sequence of the same workspace
        (other_tenant.workspace_id, sequence_id),  # the version of another tenant
    ]
    for workspace_id, claimed_sequence in wrong:
        async with session_factory() as session:
            row = _row(workspace_id, claimed_sequence, version)
            row.contact_id = contact_id
            session.add(row)
            with pytest.raises(IntegrityError, match="fk_enrollments_version_sequence_workspace"):
                await session.commit()
    async with transaction(session_factory) as session:
        row = _row(tenant.workspace_id, sequence_id, version)
        row.contact_id = contact_id
        session.add(row)


async def test_workspace_deletion_still_cascades(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, session_factory: Factory
) -> None:
    for owner in (tenant, other_tenant):
        _, version_id = await _published(client, owner)
        await _contacts(session_factory, owner.workspace_id, 5)
        assert await _enroll_all(session_factory, owner.workspace_id, version_id) == 5
    async with transaction(session_factory) as session:
        await session.execute(
            text("DELETE FROM workspaces WHERE id = :id"), {"id": tenant.workspace_id}
        )
    async with session_factory() as session:
        left = (await session.execute(select(Enrollment.workspace_id))).scalars().all()
    assert left == [other_tenant.workspace_id] * 5


async def test_bulk_insert_orders_itself_before_a_sequence_delete(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: Factory
) -> None:
    """Enrollments reference the version, not the sequence: the bulk insert's KEY SHARE
    lock on the sequence is what makes `delete_sequence` (FOR UPDATE) wait for it, then see
    the new live enrollments and refuse, rather than cascade them away."""
    sequence_id, version_id = await _published(client, tenant)
    await _contacts(session_factory, tenant.workspace_id, 3)
    locked = select(Sequence.id).where(Sequence.id == sequence_id).with_for_update()
    async with session_factory() as enrolling, enrolling.begin():
        version = await enrolling.get(SequenceVersion, version_id)
        assert version is not None
        contacts = select(Contact.id).where(Contact.workspace_id == tenant.workspace_id)
        await enroll_count(
            enrolling, tenant.workspace_id, version, contacts, campaign_id=None, source="api"
        )
        async with session_factory() as deleter, deleter.begin():
            await deleter.execute(text("SET LOCAL lock_timeout = '50ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await deleter.execute(locked)
    async with session_factory() as deleter, deleter.begin():
        with pytest.raises(Conflict):
            await service.delete_sequence(deleter, tenant.workspace_id, sequence_id, None)
