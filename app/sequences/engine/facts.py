"""What one engine pass knows about the batch's contacts, loaded set-wise up front:
contacts, consent, suppressions, recent sends (frequency caps), exit-rule events, templates."""

from __future__ import annotations

import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.consent.addresses import contact_addresses, lenient_hash
from app.sequences.engine.repository import EngineRepository, StepMessage
from app.sequences.engine.versions import ParsedVersion
from app.templates import service as templates

if TYPE_CHECKING:
    from app.contacts.models import Contact
    from app.sequences.engine.repository import EngineRepository
    from app.sequences.engine.versions import ParsedVersion

_TEMPLATE_CACHE_SIZE = 1024
_templates: OrderedDict[uuid.UUID, tuple[str, dict[str, Any]]] = OrderedDict()


@dataclass
class BatchFacts:
    contacts: dict[uuid.UUID, Contact]
    unsubscribed: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    suppressed: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)
    latest_events: dict[tuple[uuid.UUID, str], datetime] = field(default_factory=dict)
    non_members: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # by segment
    sends: dict[tuple[uuid.UUID, str], list[datetime]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (campaign, step) -> declared experiment winner the remaining contacts get
    winners: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)
    # enrollment -> the message its current step (and visit) created, if any
    step_messages: dict[uuid.UUID, StepMessage] = field(default_factory=dict)

    def address(self, contact: Contact, channel: str) -> str | None:
        return contact.email if channel == "email" else contact.phone

    def send_block(self, contact: Contact, channel: str) -> str | None:
        """Why a send on `channel` may not go to this contact now, if it may not."""
        if contact.erased_at is not None:
            return "erased"
        if self.address(contact, channel) is None:
            return "no_address"
        if (contact.id, channel) in self.unsubscribed:
            return "unsubscribed"
        if (contact.id, channel) in self.suppressed:
            return "suppressed"
        return None

    def any_opt_out(self, contact_id: uuid.UUID) -> bool:
        return any(key[0] == contact_id for key in (*self.unsubscribed, *self.suppressed))


async def load_facts(
    repo: EngineRepository,
    contact_ids: Collection[uuid.UUID],
    versions: Iterable[ParsedVersion],
    now: datetime,
) -> BatchFacts:
    versions = list(versions)
    contacts = {contact.id: contact for contact in await repo.contacts(contact_ids)}
    facts = BatchFacts(contacts)
    facts.unsubscribed = await repo.unsubscribed(contact_ids)
    await _load_suppressions(repo, facts)
    exit_types = {kind for version in versions for kind in version.exit_event_types}
    facts.latest_events = await repo.latest_events(contact_ids, exit_types)
    segments = {
        rule.segment_id
        for version in versions
        for rule in version.definition.settings.exit_rules
        if rule.on == "left_segment" and rule.segment_id is not None
    }
    for segment_id in segments:
        facts.non_members[segment_id] = await repo.non_members(segment_id, contact_ids)
    caps = [cap for version in versions for cap in version.definition.settings.frequency_caps]
    if caps:
        await repo.lock_contacts(contact_ids)
        longest = max(cap.period for cap in caps)
        for contact_id, channel, created_at in await repo.recent_sends(contact_ids, now - longest):
            facts.sends[(contact_id, channel)].append(created_at)
    return facts


async def _load_suppressions(repo: EngineRepository, facts: BatchFacts) -> None:
    wanted: dict[tuple[str, str], list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for contact in facts.contacts.values():
        for channel, address in contact_addresses(contact.email, contact.phone).items():
            wanted[(channel, lenient_hash(channel, address))].append((contact.id, channel))
    found = await repo.suppressed_hashes([key for _, key in wanted])
    for (_, key), owners in wanted.items():
        if key in found:
            for owner in owners:
                facts.suppressed[owner] = found[key]


async def template_contents(
    session: AsyncSession, workspace_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, dict[str, Any]]]:
    """(channel, content) of published template versions; immutable, so cached."""
    missing = [item for item in ids if item not in _templates]
    if missing:
        found = await templates.version_contents(session, workspace_id, missing)
        for version_id, (channel, content) in found.items():
            _templates[version_id] = (channel, content)
            if len(_templates) > _TEMPLATE_CACHE_SIZE:
                _templates.popitem(last=False)
    return {item: _templates[item] for item in ids if item in _templates}
