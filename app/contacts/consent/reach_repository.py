"""Who a campaign may reach, as one SELECT of contact ids (never executed here): the launch
and the trigger sweep compose it into their INSERT ... SELECT of enrollments."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, and_, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.models import Contact, ContactConsent, Suppression

# Channel -> the contact column its suppression hash is computed from.
ADDRESS_COLUMNS = {"email": Contact.email, "sms": Contact.phone}


def address_hash_sql(channel: str) -> Any:
    """`app.contacts.consent.addresses.lenient_hash(channel, stored)` computed in SQL.

    Stored emails and phones are already normalised (the contact schemas normalise on every
    write), and normalising is idempotent, so the lenient hash of a stored value is
    `sha256("<channel>:<stored>")`. `convert_to(..., 'UTF8')` hashes the UTF-8 bytes exactly
    like Python's `str.encode()`; a `::bytea` cast would instead read backslashes as escapes
    and `lower()` would follow the database collation, not Python's `str.lower`
    (tests/campaigns/test_launch.py proves the equality on tricky addresses)."""
    column = ADDRESS_COLUMNS[channel]
    return func.encode(func.sha256(func.convert_to(f"{channel}:" + column, "UTF8")), "hex")


class Reachability:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def query(
        self,
        candidates: Select[Any] | None,
        excluded: Select[Any] | None,
        channels: list[str],
    ) -> Select[Any]:
        """Ids of this workspace's contacts among `candidates` (None: nobody) that are not
        erased, not among `excluded`, not suppressed and not unsubscribed on `channels`."""
        if candidates is None:
            return select(Contact.id).where(false())
        conditions: list[Any] = [
            Contact.workspace_id == self.workspace_id,
            Contact.erased_at.is_(None),
            Contact.id.in_(candidates),
        ]
        if excluded is not None:
            conditions.append(~Contact.id.in_(excluded))
        addressable = [channel for channel in channels if channel in ADDRESS_COLUMNS]
        if addressable:
            conditions.append(~self._suppressed(addressable))
            conditions.append(~self._unsubscribed(addressable))
        return select(Contact.id).where(and_(*conditions))

    def _suppressed(self, channels: list[str]) -> Any:
        return or_(
            *(
                exists().where(
                    Suppression.workspace_id == self.workspace_id,
                    Suppression.channel == channel,
                    Suppression.address_hash == address_hash_sql(channel),
                )
                for channel in channels
            )
        )

    def _unsubscribed(self, channels: list[str]) -> Any:
        return exists().where(
            ContactConsent.workspace_id == self.workspace_id,
            ContactConsent.contact_id == Contact.id,
            ContactConsent.channel.in_(channels),
            ContactConsent.status == "unsubscribed",
        )
