"""Privacy requests: export everything about a contact, or erase it. Never commits.

Erasure keeps the contact row (ids stay valid for metrics and foreign keys) but empties
every field that identifies a person, scrubs what other tables hold about them, and leaves
`erased` suppression entries (hashes) so the addresses stay unreachable even if re-imported.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.consent import service as consent_service
from app.contacts.consent.addresses import contact_addresses, lenient_hash
from app.contacts.consent.repository import (
    ConsentChangeRepository,
    ContactConsentRepository,
    ContactRefs,
    SuppressionRepository,
)
from app.contacts.consent.schemas import ConsentChangeOut, ConsentOut, SuppressionOut
from app.contacts.models import Contact
from app.contacts.notices import contacts_changed
from app.contacts.privacy.repository import PrivacyRepository
from app.contacts.privacy.schemas import ContactRecord
from app.contacts.privacy.sections import (
    ErasureContext,
    erasure_steps,
    export_sections,
    register_erasure_step,
    register_export_section,
)
from app.core.clock import utcnow
from app.outbox import emit
from app.outbox.catalogue import ContactErased

EXPORT_FORMAT = "herald.contact-export"
EXPORT_FORMAT_VERSION = 1
MIN_QUOTED_LENGTH = 6


@dataclass(frozen=True)
class Export:
    contact_id: uuid.UUID
    exported_at: datetime
    sections: dict[str, Any]


@dataclass(frozen=True)
class Erasure:
    contact: Contact
    erased_at: datetime
    already_erased: bool
    suppressed: list[tuple[str, str]]  # (channel, address hash)
    removed: dict[str, int]


async def export_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> Export:
    contact = await ContactRefs(session, workspace_id).get_or_404(contact_id)
    sections = {
        name: await section(session, workspace_id, contact)
        for name, section in export_sections().items()
    }
    return Export(contact.id, utcnow(), sections)


async def erase_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> Erasure:
    """Idempotent: erasing again re-runs every scrub (catching anything written since)."""
    contact = await ContactRefs(session, workspace_id).locked_or_404(contact_id)
    already_erased = contact.erased_at is not None
    now = utcnow()
    addresses = contact_addresses(contact.email, contact.phone)
    # Searched for verbatim in free text; a very short external id ("42") would match
    # unrelated rows, and on its own identifies no one in a message or a file.
    identifiers = tuple(
        value
        for value in (contact.email, contact.phone, contact.external_id)
        if value and len(value) >= MIN_QUOTED_LENGTH
    )
    context = ErasureContext(workspace_id, contact, addresses, identifiers, now)

    suppressions = SuppressionRepository(session, workspace_id)
    suppressed: list[tuple[str, str]] = []
    for channel, address in addresses.items():
        key = lenient_hash(channel, address)
        if await suppressions.mark_erased(channel, key, now):
            await consent_service.emit_erased_suppression(
                session, workspace_id, contact.id, channel, now
            )
        suppressed.append((channel, key))

    removed: dict[str, int] = {}
    for step in erasure_steps().values():
        removed.update(await step(session, context))

    contact.email = None
    contact.phone = None
    contact.external_id = None
    contact.attributes = {}
    contact.timezone = None
    contact.locale = None
    erased_at = contact.erased_at or now
    contact.erased_at = erased_at
    await session.flush()
    await contacts_changed.publish(session, workspace_id, [contact.id])
    if not already_erased:
        await emit.emit(
            session, workspace_id, ContactErased(contact_id=contact.id), occurred_at=now
        )
    return Erasure(contact, erased_at, already_erased, suppressed, removed)


# --- the sections and steps of the domains built so far ------------------------------------


async def _contact_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> dict[str, Any]:
    return ContactRecord.model_validate(contact).model_dump(mode="json")


async def _consent_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> dict[str, Any]:
    view = await consent_service.get_consent(session, workspace_id, contact.id)
    history = await ConsentChangeRepository(session, workspace_id).for_contact(contact.id)
    return {
        "current": [
            ConsentOut.model_validate(row).model_dump(mode="json")
            for row in view.current.values()
            if row is not None
        ],
        "history": [ConsentChangeOut.model_validate(c).model_dump(mode="json") for c in history],
    }


async def _suppressions_section(
    session: AsyncSession, workspace_id: uuid.UUID, contact: Contact
) -> list[dict[str, Any]]:
    pairs = [
        (channel, lenient_hash(channel, address))
        for channel, address in contact_addresses(contact.email, contact.phone).items()
    ]
    entries = await SuppressionRepository(session, workspace_id).matching_pairs(pairs)
    return [SuppressionOut.model_validate(entry).model_dump(mode="json") for entry in entries]


async def _erase_consent_ips(session: AsyncSession, context: ErasureContext) -> dict[str, int]:
    await ContactConsentRepository(session, context.workspace_id).forget_ip(context.contact.id)
    changes = ConsentChangeRepository(session, context.workspace_id)
    return {"consent_ips_removed": await changes.forget_ip(context.contact.id)}


async def _erase_quotes(session: AsyncSession, context: ErasureContext) -> dict[str, int]:
    """Places that may quote the identifiers verbatim: imports, stored replays."""
    privacy = PrivacyRepository(session, context.workspace_id)
    return {
        "import_errors_scrubbed": await privacy.scrub_import_errors(context.identifiers),
        "stored_responses_forgotten": await privacy.forget_stored_responses(context.identifiers),
        "import_files_forgotten": await privacy.forget_finished_import_files(context.identifiers),
    }


register_export_section("contact", _contact_section)
register_export_section("consent", _consent_section)
register_export_section("suppressions", _suppressions_section)
register_erasure_step("consent", _erase_consent_ips)
register_erasure_step("quotes", _erase_quotes)
