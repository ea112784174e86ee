from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.models import ConsentChange, Contact, ContactConsent, Suppression
from app.core.db import rowcount
from app.core.ids import new_id
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository


class ContactRefs(WorkspaceRepository[Contact]):
    """The contact a consent change, export or erasure is about (read and locked only)."""

    model = Contact
    noun = "contact"


class ContactConsentRepository:
    """Current consent rows (keyed by contact + channel, so no `WorkspaceEntity` id)."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def for_contact(self, contact_id: uuid.UUID) -> Sequence[ContactConsent]:
        result = await self.session.execute(
            select(ContactConsent)
            .where(
                ContactConsent.workspace_id == self.workspace_id,
                ContactConsent.contact_id == contact_id,
            )
            .order_by(ContactConsent.channel)
        )
        return result.scalars().all()

    async def status_of(self, contact_id: uuid.UUID, channel: str) -> str | None:
        """The current status on one channel (a column read: no ORM object to go stale)."""
        result = await self.session.execute(
            select(ContactConsent.status).where(
                ContactConsent.workspace_id == self.workspace_id,
                ContactConsent.contact_id == contact_id,
                ContactConsent.channel == channel,
            )
        )
        return result.scalar_one_or_none()

    async def set_if_newer(
        self,
        contact_id: uuid.UUID,
        channel: str,
        *,
        status: str,
        source: str | None,
        ip: str | None,
        changed_at: datetime,
    ) -> bool:
        """Make this the current consent unless a later change is already recorded.

        One statement (upsert with a condition), so concurrent changes cannot interleave
        between the read and the write. True when the row now holds this change."""
        statement = insert(ContactConsent).values(
            workspace_id=self.workspace_id,
            contact_id=contact_id,
            channel=channel,
            status=status,
            source=source,
            ip=ip,
            changed_at=changed_at,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[ContactConsent.contact_id, ContactConsent.channel],
            set_={
                "status": statement.excluded.status,
                "source": statement.excluded.source,
                "ip": statement.excluded.ip,
                "changed_at": statement.excluded.changed_at,
            },
            where=ContactConsent.changed_at <= statement.excluded.changed_at,
        ).returning(ContactConsent.contact_id)
        return (await self.session.execute(upsert)).first() is not None

    async def forget_ip(self, contact_id: uuid.UUID) -> None:
        await self.session.execute(
            update(ContactConsent)
            .where(
                ContactConsent.workspace_id == self.workspace_id,
                ContactConsent.contact_id == contact_id,
            )
            .values(ip=None)
        )


class ConsentChangeRepository(WorkspaceRepository[ConsentChange]):
    model = ConsentChange
    noun = "consent change"

    async def page_for_contact(
        self, params: PageParams, contact_id: uuid.UUID, channel: str | None
    ) -> PageResult[ConsentChange]:
        conditions = [ConsentChange.contact_id == contact_id]
        if channel is not None:
            conditions.append(ConsentChange.channel == channel)
        return await self.page(params, *conditions)

    async def for_contact(
        self, contact_id: uuid.UUID, limit: int | None = None
    ) -> Sequence[ConsentChange]:
        """Newest recorded first."""
        statement = (
            self.scoped()
            .where(ConsentChange.contact_id == contact_id)
            .order_by(ConsentChange.id.desc())
        )
        if limit is not None:
            statement = statement.limit(limit)
        return (await self.session.execute(statement)).scalars().all()

    async def forget_ip(self, contact_id: uuid.UUID) -> int:
        result = await self.session.execute(
            update(ConsentChange)
            .where(
                ConsentChange.workspace_id == self.workspace_id,
                ConsentChange.contact_id == contact_id,
                ConsentChange.ip.is_not(None),
            )
            .values(ip=None)
        )
        return rowcount(result)


class SuppressionRepository(WorkspaceRepository[Suppression]):
    model = Suppression
    noun = "suppression"

    async def page_filtered(
        self, params: PageParams, channel: str | None, reason: str | None
    ) -> PageResult[Suppression]:
        conditions = []
        if channel is not None:
            conditions.append(Suppression.channel == channel)
        if reason is not None:
            conditions.append(Suppression.reason == reason)
        return await self.page(params, *conditions)

    async def insert_if_absent(
        self,
        channel: str,
        address_hash: str,
        *,
        reason: str,
        source: str | None,
        note: str | None,
        now: datetime,
    ) -> Suppression | None:
        """The new entry, or None when (channel, hash) is already suppressed (race-free)."""
        statement = (
            insert(Suppression)
            .values(
                id=new_id(),
                workspace_id=self.workspace_id,
                channel=channel,
                address_hash=address_hash,
                reason=reason,
                source=source,
                note=note,
                created_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[
                    Suppression.workspace_id,
                    Suppression.channel,
                    Suppression.address_hash,
                ]
            )
            .returning(Suppression)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def holder(self, channel: str, normalized: str) -> uuid.UUID | None:
        """The live contact holding this (normalised) address, if any."""
        column = Contact.email if channel == "email" else Contact.phone
        result = await self.session.execute(
            select(Contact.id)
            .where(
                Contact.workspace_id == self.workspace_id,
                column == normalized,
                Contact.erased_at.is_(None),
            )
            .order_by(Contact.id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def by_hash(self, channel: str, address_hash: str) -> Suppression | None:
        result = await self.session.execute(
            self.scoped().where(
                Suppression.channel == channel, Suppression.address_hash == address_hash
            )
        )
        return result.scalar_one_or_none()

    async def matching(self, channel: str, hashes: Collection[str]) -> Sequence[Suppression]:
        """Every entry among `hashes`, in one query (`= ANY` on the unique index)."""
        if not hashes:
            return []
        result = await self.session.execute(
            self.scoped().where(
                Suppression.channel == channel, Suppression.address_hash.in_(list(set(hashes)))
            )
        )
        return result.scalars().all()

    async def matching_pairs(self, pairs: Collection[tuple[str, str]]) -> Sequence[Suppression]:
        if not pairs:
            return []
        result = await self.session.execute(
            self.scoped()
            .where(tuple_(Suppression.channel, Suppression.address_hash).in_(list(pairs)))
            .order_by(Suppression.id.desc())
        )
        return result.scalars().all()

    async def mark_erased(self, channel: str, address_hash: str, now: datetime) -> bool:
        """Ensure an `erased` entry: a new one, or the existing entry turned into one.
        True when the address was not suppressed as `erased` before.

        The note of an existing entry is dropped (free text may name the person)."""
        before = await self.session.execute(
            select(Suppression.reason).where(
                Suppression.workspace_id == self.workspace_id,
                Suppression.channel == channel,
                Suppression.address_hash == address_hash,
            )
        )
        was_erased = before.scalar_one_or_none() == "erased"
        statement = insert(Suppression).values(
            id=new_id(),
            workspace_id=self.workspace_id,
            channel=channel,
            address_hash=address_hash,
            reason="erased",
            source="erasure",
            note=None,
            created_at=now,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    Suppression.workspace_id,
                    Suppression.channel,
                    Suppression.address_hash,
                ],
                set_={"reason": "erased", "source": "erasure", "note": None},
            )
        )
        return not was_erased

    async def lift_unsubscribed(self, channel: str, address_hash: str) -> bool:
        """Remove an `unsubscribed` entry (only that reason); True when one was removed."""
        result = await self.session.execute(
            delete(Suppression)
            .where(
                Suppression.workspace_id == self.workspace_id,
                Suppression.channel == channel,
                Suppression.address_hash == address_hash,
                Suppression.reason == "unsubscribed",
            )
            .returning(Suppression.id)
        )
        return result.first() is not None

    async def remove(self, suppression: Suppression) -> None:
        await self.session.delete(suppression)
        await self.session.flush()
