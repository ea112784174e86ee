"""What providers report about sent messages (delivered, bounced, complained, opened,
clicked, replied), applied to Herald: message rows, `email.*` events, suppressions, exits and
webhooks. Stateless; everything runs in the caller's transaction (docs/inbound.md).

Set-wise: one lookup for all messages (any workspace: the message decides the workspace,
providers are deployment-wide), then per workspace one event ingestion call, one UPDATE per
kind of outcome, one exit call per reason and one webhook emission call. Suppressions go
through the suppression service one address at a time (only hard bounces and complaints).

Dedup rides on event ingestion: the provider's event id becomes the event's `event_id`
(`<provider>:<id>`), and an item ingestion answers `duplicate` changes nothing else.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import repository
from app.channels.notices import contacts_stopped
from app.channels.repository import MessageRef
from app.contacts.consent import service as suppressions
from app.contacts.consent.schemas import SuppressionCreate
from app.core.clock import utcnow
from app.core.errors import AppError
from app.events import service as events
from app.outbox import catalogue
from app.outbox.emit import Emission, emit_many

log = structlog.get_logger("herald.channels.outcomes")

OutcomeKind = Literal["delivered", "bounced", "complained", "opened", "clicked", "replied"]
OutcomeStatus = Literal["accepted", "duplicate", "unknown_message"]

EVENT_TYPES: dict[str, str] = {
    "delivered": "email.delivered",
    "bounced": "email.bounced",
    "complained": "email.complained",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "replied": "email.replied",
}
# Only email messages take provider events (SMS / webhook-step reports: see docs).
CHANNEL = "email"
# events.client_event_id is VARCHAR(255): provider name (<= 50) + ":" + id (<= 200).
MAX_DEDUP_KEY = 255


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One validated provider report, `index` being its position in the request."""

    index: int
    kind: OutcomeKind
    message_id: uuid.UUID | None
    provider_message_id: str | None
    occurred_at: datetime
    event_id: str | None = None
    bounce_type: Literal["hard", "soft"] | None = None
    reason: str | None = None
    url: str | None = None


# --- the mapping ----------------------------------------------------------------------------


async def apply_provider_events(
    session: AsyncSession, provider: str, reports: Sequence[ProviderEvent]
) -> dict[int, OutcomeStatus]:
    """Apply the reports; returns each one's outcome by index. Nothing about the message
    (workspace, contact) is returned: the answer goes back to the provider."""
    if not reports:
        return {}
    found = await repository.find_messages_for_outcomes(
        session,
        [r.message_id for r in reports if r.message_id is not None],
        [r.provider_message_id for r in reports if r.provider_message_id is not None],
    )
    by_id = {ref.id: ref for ref in found}
    by_provider_id: dict[str, list[MessageRef]] = defaultdict(list)
    for ref in found:
        if ref.provider_message_id is not None:
            by_provider_id[ref.provider_message_id].append(ref)

    statuses: dict[int, OutcomeStatus] = {}
    per_workspace: dict[uuid.UUID, list[tuple[ProviderEvent, MessageRef]]] = defaultdict(list)
    for report in reports:
        message = _message_of(report, by_id, by_provider_id)
        if message is None or message.channel != CHANNEL:
            statuses[report.index] = "unknown_message"
            continue
        per_workspace[message.workspace_id].append((report, message))

    now = utcnow()
    for workspace_id, pairs in per_workspace.items():
        fresh = await _record_events(session, workspace_id, provider, pairs)
        for report, _ in pairs:
            statuses[report.index] = "accepted" if report.index in fresh else "duplicate"
        applied = [(report, ref) for report, ref in pairs if report.index in fresh]
        await _apply(session, workspace_id, provider, applied, recorded=fresh, now=now)
    return statuses


def _message_of(
    report: ProviderEvent,
    by_id: dict[uuid.UUID, MessageRef],
    by_provider_id: dict[str, list[MessageRef]],
) -> MessageRef | None:
    if report.message_id is not None:
        return by_id.get(report.message_id)
    assert report.provider_message_id is not None
    candidates = by_provider_id.get(report.provider_message_id, [])
    # Two messages sharing a provider id (two providers' id spaces colliding) cannot be
    # told apart: touching either could be wrong, so neither is.
    return candidates[0] if len(candidates) == 1 else None


async def _record_events(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    provider: str,
    pairs: list[tuple[ProviderEvent, MessageRef]],
) -> dict[int, bool]:
    """The `email.*` events through ingestion (segments, waits, exit rules see them).
    Returns the indexes that are new (not a duplicate), each mapped to whether the contact
    could still take an event (False: erased; the message facts still apply)."""
    raw: list[dict[str, Any]] = []
    for report, ref in pairs:
        properties: dict[str, Any] = {
            "message_id": str(ref.id),
            "step_key": ref.step_key,
            "provider": provider,
        }
        if report.kind == "bounced":
            properties["bounce_type"] = report.bounce_type or "hard"
        if report.reason is not None:
            properties["reason"] = report.reason
        if report.url is not None:
            properties["url"] = report.url
        item: dict[str, Any] = {
            "contact_id": ref.contact_id,
            "type": EVENT_TYPES[report.kind],
            "properties": properties,
            "occurred_at": report.occurred_at,
            "source": f"provider:{provider}",
        }
        if report.event_id is not None:
            item["event_id"] = f"{provider}:{report.event_id}"[:MAX_DEDUP_KEY]
        raw.append(item)
    answer = await events.ingest_batch(session, workspace_id, raw, may_use_reserved=True)
    fresh: dict[int, bool] = {}
    for result in answer["results"]:
        report = pairs[result["index"]][0]
        if result["status"] == "accepted":
            fresh[report.index] = True
        elif result["status"] == "rejected":
            # An erased contact (or one erased mid-request): no event, but the message row
            # still records what happened; nothing to dedup on, nothing to notify.
            codes = {error["code"] for error in result["errors"]}
            log.info(
                "provider_event_not_recorded",
                message_id=str(pairs[result["index"]][1].id),
                codes=sorted(codes),
            )
            fresh[report.index] = False
    return fresh


async def _apply(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    provider: str,
    pairs: list[tuple[ProviderEvent, MessageRef]],
    *,
    recorded: dict[int, bool],
    now: datetime,
) -> None:
    # Message facts: one UPDATE per kind, the earliest report per message; delivered before
    # bounced, so a batch holding both ends `bounced` whatever its order. A soft bounce is
    # temporary (the provider retries): event and webhook only, the row waits for the
    # verdict (`delivered` or a hard bounce).
    firsts: dict[str, dict[uuid.UUID, datetime]] = defaultdict(dict)
    for report, ref in pairs:
        if report.kind in repository.OUTCOME_COLUMNS and not _soft(report):
            current = firsts[report.kind].get(ref.id)
            if current is None or report.occurred_at < current:
                firsts[report.kind][ref.id] = report.occurred_at
    for kind in repository.OUTCOME_COLUMNS:
        if firsts.get(kind):
            await repository.mark_outcomes(session, workspace_id, kind, firsts[kind], now)

    live = [(report, ref) for report, ref in pairs if recorded.get(report.index)]
    await _suppress_and_exit(session, workspace_id, provider, live, now)
    emissions = [
        Emission(workspace_id, data, report.occurred_at)
        for report, ref in live
        if (data := _webhook_data(report, ref)) is not None
    ]
    await emit_many(session, emissions)


async def _suppress_and_exit(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    provider: str,
    pairs: list[tuple[ProviderEvent, MessageRef]],
    now: datetime,
) -> None:
    """Hard bounces and complaints: the address goes on the suppression list (reasons
    `hard_bounce` / `complaint`) and the contact's live enrollments exit with that reason.
    Soft bounces do neither."""
    exits: dict[str, set[uuid.UUID]] = defaultdict(set)
    suppressed: set[tuple[str, str]] = set()
    for report, ref in pairs:
        if report.kind == "complained":
            reason = "complaint"
        elif report.kind == "bounced" and not _soft(report):
            reason = "hard_bounce"
        else:
            continue
        exits[reason].add(ref.contact_id)
        if ref.recipient is None or (reason, ref.recipient) in suppressed:
            continue  # scrubbed by an erasure (already suppressed as `erased`)
        suppressed.add((reason, ref.recipient))
        entry = SuppressionCreate(
            channel=CHANNEL,
            address=ref.recipient,
            reason=reason,
            source=f"provider:{provider}",
            note=report.reason[:2000] if report.reason else None,
        )
        try:
            async with session.begin_nested():
                await suppressions.create_suppression(session, workspace_id, entry)
        except AppError as error:  # an address the suppression list cannot hash
            log.warning("provider_suppression_skipped", message_id=str(ref.id), reason=error.detail)
    for reason, contact_ids in exits.items():
        await contacts_stopped.publish(session, workspace_id, sorted(contact_ids), reason, now)


def _soft(report: ProviderEvent) -> bool:
    return report.kind == "bounced" and report.bounce_type == "soft"


def _webhook_data(report: ProviderEvent, ref: MessageRef) -> catalogue.EventData | None:
    common: dict[str, Any] = {
        "message_id": ref.id,
        "contact_id": ref.contact_id,
        "enrollment_id": ref.enrollment_id,
        "sequence_id": ref.sequence_id,
        "campaign_id": ref.campaign_id,
        "step_key": ref.step_key,
        "channel": ref.channel,
        "variant": ref.variant,
    }
    if report.kind == "delivered":
        return catalogue.MessageDelivered(**common)
    if report.kind == "bounced":
        return catalogue.MessageBounced(
            **common, bounce_type=report.bounce_type or "hard", reason=report.reason
        )
    if report.kind == "opened":
        return catalogue.MessageOpened(**common)
    if report.kind == "clicked":
        return catalogue.MessageClicked(**common, url=report.url)
    if report.kind == "replied":
        return catalogue.MessageReplied(**common)
    # Complaints: the catalogue has no message event; the suppression announces them
    # (`contact.suppressed`, reason `complaint`) and the exit (`enrollment.exited`).
    return None
