"""Consent (current + history) and the suppression list. Stateless; never commits.

Other domains call `is_suppressed` / `suppressed_addresses` at send time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.consent.addresses import (
    address_hash,
    contact_addresses,
    hashes_of,
    lenient_hash,
    normalize_address,
)
from app.contacts.consent.reach_repository import Reachability
from app.contacts.consent.repository import (
    ConsentChangeRepository,
    ContactConsentRepository,
    ContactRefs,
    SuppressionRepository,
)
from app.contacts.consent.schemas import ConsentUpdate, SuppressionCheck, SuppressionCreate
from app.contacts.models import ConsentChange, Contact, ContactConsent, Suppression
from app.contacts.notices import contacts_changed
from app.contacts.vocabulary import CHANNELS
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.pagination import PageParams, PageResult
from app.outbox import emit
from app.outbox.catalogue import ContactSuppressed, ContactUnsubscribed

RECENT_HISTORY = 20


@dataclass(frozen=True)
class ConsentView:
    contact_id: uuid.UUID
    current: dict[str, ContactConsent | None]  # every channel, None when never recorded
    recent_history: Sequence[ConsentChange]


@dataclass(frozen=True)
class CheckResult:
    address: str
    suppression: Suppression | None


# --- consent -------------------------------------------------------------------------------


async def lock_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact | None:
    """The contact, locked until commit (concurrent consent changes to it serialise, and
    each sees the one before), or None. Erased contacts are returned: the caller decides."""
    return await ContactRefs(session, workspace_id).get_for_update(contact_id)


async def get_consent(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> ConsentView:
    await ContactRefs(session, workspace_id).get_or_404(contact_id)
    return await _view(session, workspace_id, contact_id)


async def consent_history(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel: str | None,
    params: PageParams,
) -> PageResult[ConsentChange]:
    await ContactRefs(session, workspace_id).get_or_404(contact_id)
    return await ConsentChangeRepository(session, workspace_id).page_for_contact(
        params, contact_id, channel
    )


async def set_consent(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel: str,
    change: ConsentUpdate,
) -> ConsentView:
    """Record a consent change: always in history; current only if it is the latest.

    A change backdated before the current one (by `occurred_at`) is kept in history but
    does not override the newer state. When it becomes current, unsubscribing suppresses
    the contact's address on that channel, and subscribing lifts an `unsubscribed`
    suppression (never `hard_bounce`, `complaint`, `manual` or `erased`)."""
    contact = await ContactRefs(session, workspace_id).locked_or_404(contact_id)
    if contact.erased_at is not None:
        raise Conflict(f"Contact {contact_id} has been erased; its consent cannot change.")
    now = utcnow()
    occurred_at = (change.occurred_at or now).astimezone(UTC)
    if occurred_at > now:
        raise Unprocessable(
            "`occurred_at` is in the future.",
            errors=[
                FieldError(
                    pointer="/occurred_at",
                    location="body",
                    message=f"must not be later than the current time ({now.isoformat()})",
                    code="in_future",
                )
            ],
        )
    ip = str(change.ip) if change.ip is not None else None
    consents = ContactConsentRepository(session, workspace_id)
    before = await consents.status_of(contact_id, channel)
    ConsentChangeRepository(session, workspace_id).add(
        ConsentChange(
            contact_id=contact_id,
            channel=channel,
            status=change.status,
            source=change.source,
            ip=ip,
            changed_at=occurred_at,
        )
    )
    became_current = await consents.set_if_newer(
        contact_id,
        channel,
        status=change.status,
        source=change.source,
        ip=ip,
        changed_at=occurred_at,
    )
    if became_current:
        if change.status == "unsubscribed" and before != "unsubscribed":
            unsubscribed = ContactUnsubscribed(
                contact_id=contact_id, channel=channel, source=change.source
            )
            await emit.emit(session, workspace_id, unsubscribed, occurred_at=now)
        await _follow_with_suppression(
            session, workspace_id, contact, channel, status=change.status, source=change.source
        )
    await session.flush()
    await contacts_changed.publish(session, workspace_id, [contact_id])
    return await _view(session, workspace_id, contact_id)


async def _follow_with_suppression(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact: Contact,
    channel: str,
    *,
    status: str,
    source: str,
) -> None:
    address = contact_addresses(contact.email, contact.phone).get(channel)
    if address is None:
        return
    suppressions = SuppressionRepository(session, workspace_id)
    key = lenient_hash(channel, address)
    if status == "unsubscribed":
        created = await suppressions.insert_if_absent(
            channel, key, reason="unsubscribed", source=source, note=None, now=utcnow()
        )
        if created is not None:
            await emit_suppressed(session, created, contact.id)
    elif status == "subscribed":
        await suppressions.lift_unsubscribed(channel, key)


async def _view(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> ConsentView:
    rows = await ContactConsentRepository(session, workspace_id).for_contact(contact_id)
    by_channel = {row.channel: row for row in rows}
    history = await ConsentChangeRepository(session, workspace_id).for_contact(
        contact_id, RECENT_HISTORY
    )
    return ConsentView(
        contact_id=contact_id,
        current={channel: by_channel.get(channel) for channel in CHANNELS},
        recent_history=history,
    )


# --- suppressions --------------------------------------------------------------------------


def _hash_or_422(channel: str, address: str, pointer: str) -> str:
    try:
        return address_hash(channel, address)
    except ValueError as exc:
        raise Unprocessable(
            f"The address at {pointer} is not a valid {channel} address.",
            errors=[
                FieldError(
                    pointer=pointer, location="body", message=str(exc), code="invalid_address"
                )
            ],
        ) from exc


async def create_suppression(
    session: AsyncSession, workspace_id: uuid.UUID, data: SuppressionCreate
) -> tuple[Suppression, bool]:
    """(entry, created). The same channel + address again returns the existing entry."""
    key = _hash_or_422(data.channel, data.address, "/address")
    suppressions = SuppressionRepository(session, workspace_id)
    created = await suppressions.insert_if_absent(
        data.channel, key, reason=data.reason, source=data.source, note=data.note, now=utcnow()
    )
    if created is not None:
        normalized = normalize_address(data.channel, data.address)

        async def holder() -> uuid.UUID | None:
            return await suppressions.holder(data.channel, normalized)

        await emit_suppressed(session, created, holder)
        return created, True
    existing = await suppressions.by_hash(data.channel, key)
    if existing is None:  # pragma: no cover - the conflicting row is visible once committed
        raise Conflict("A concurrent request is suppressing this address; retry.")
    return existing, False


async def emit_suppressed(
    session: AsyncSession,
    entry: Suppression,
    contact: uuid.UUID | Callable[[], Awaitable[uuid.UUID | None]] | None,
) -> int:
    """`contact.suppressed` for a new entry (every insert into the list calls this). The
    contact is given, or looked up (a callable) only when an endpoint listens."""

    async def build() -> list[emit.Emission]:
        contact_id = await contact() if callable(contact) else contact
        data = ContactSuppressed(contact_id=contact_id, channel=entry.channel, reason=entry.reason)
        return [emit.Emission(entry.workspace_id, data, entry.created_at)]

    return await emit.emit_lazy(session, [entry.workspace_id], [ContactSuppressed.TYPE], build)


async def emit_erased_suppression(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel: str,
    now: datetime,
) -> None:
    """`contact.suppressed` (`erased`) for an address an erasure put on the list."""
    data = ContactSuppressed(contact_id=contact_id, channel=channel, reason="erased")
    await emit.emit(session, workspace_id, data, occurred_at=now)


async def list_suppressions(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    channel: str | None,
    reason: str | None,
    params: PageParams,
) -> PageResult[Suppression]:
    return await SuppressionRepository(session, workspace_id).page_filtered(params, channel, reason)


async def get_suppression(
    session: AsyncSession, workspace_id: uuid.UUID, suppression_id: uuid.UUID
) -> Suppression:
    return await SuppressionRepository(session, workspace_id).get_or_404(suppression_id)


async def delete_suppression(
    session: AsyncSession, workspace_id: uuid.UUID, suppression_id: uuid.UUID
) -> None:
    suppressions = SuppressionRepository(session, workspace_id)
    entry = await suppressions.locked_or_404(suppression_id)
    if entry.reason == "erased":
        raise Conflict(
            "Suppressions left by an erasure cannot be deleted: they are what keeps an "
            "erased person from being contacted again."
        )
    await suppressions.remove(entry)


async def check_suppressions(
    session: AsyncSession, workspace_id: uuid.UUID, data: SuppressionCheck
) -> list[CheckResult]:
    """Which of up to 1,000 addresses are suppressed, in one query. Malformed ones: 422."""
    hashes: list[str] = []
    errors: list[FieldError] = []
    for index, address in enumerate(data.addresses):
        try:
            hashes.append(address_hash(data.channel, address))
        except ValueError as exc:
            errors.append(
                FieldError(
                    pointer=f"/addresses/{index}",
                    location="body",
                    message=str(exc),
                    code="invalid_address",
                )
            )
    if errors:
        raise Unprocessable(
            f"{len(errors)} address(es) are not valid {data.channel} addresses.", errors=errors
        )
    found = await SuppressionRepository(session, workspace_id).matching(data.channel, hashes)
    by_hash = {entry.address_hash: entry for entry in found}
    return [
        CheckResult(address, by_hash.get(key))
        for address, key in zip(data.addresses, hashes, strict=True)
    ]


async def is_suppressed(
    session: AsyncSession, workspace_id: uuid.UUID, channel: str, address: str
) -> bool:
    """Send-time check for one address (normalised and hashed like every entry)."""
    return bool(await suppressed_addresses(session, workspace_id, channel, [address]))


async def suppressed_addresses(
    session: AsyncSession, workspace_id: uuid.UUID, channel: str, addresses: Collection[str]
) -> set[str]:
    """The subset of `addresses` (as given) that is suppressed on `channel`; one query."""
    hashes = hashes_of(channel, addresses)
    found = await SuppressionRepository(session, workspace_id).matching(
        channel, set(hashes.values())
    )
    suppressed = {entry.address_hash for entry in found}
    return {address for address, key in hashes.items() if key in suppressed}


def reachable(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    candidates: Select[Any] | None,
    *,
    excluded: Select[Any] | None,
    channels: list[str],
) -> Select[Any]:
    """The contacts among `candidates` a campaign on `channels` may reach (see
    `Reachability.query`): one SELECT for the caller to compose, nothing executed."""
    return Reachability(session, workspace_id).query(candidates, excluded, channels)
