"""Messages API reads, tracking (open / click) and one-click unsubscribe. Stateless; the
caller owns the transaction."""

from __future__ import annotations

import ipaddress
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.models import Message
from app.channels.notices import contacts_stopped
from app.channels.repository import MessageRepository, mark_first, message_by_token_id
from app.channels.schemas import MessageFilters
from app.channels.tracking import TokenData, TokenKind, read_token
from app.config import Settings
from app.contacts.consent import service as consent
from app.contacts.consent.schemas import ConsentUpdate
from app.core.clock import utcnow
from app.core.errors import AppError, NotFound
from app.core.pagination import PageParams, PageResult
from app.events import service as events
from app.events.schemas import EventIn
from app.outbox import emit
from app.outbox.catalogue import MessageClicked, MessageOpened

log = structlog.get_logger("herald.channels")

UNSUBSCRIBE_SOURCE = "one_click"
UNSUBSCRIBE_REASON = "unsubscribed"
EVENT_SOURCE = "herald"
UNSUBSCRIBABLE = ("email", "sms")


# --- messages API ---------------------------------------------------------------------------


async def list_messages(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, filters: MessageFilters
) -> PageResult[Message]:
    return await MessageRepository(session, workspace_id).list_messages(params, filters)


async def get_message(
    session: AsyncSession, workspace_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    return await MessageRepository(session, workspace_id).get_or_404(message_id)


# --- tokens ---------------------------------------------------------------------------------


async def _resolve(
    session: AsyncSession, settings: Settings, token: str, kind: TokenKind
) -> tuple[TokenData, Message]:
    """The token's message, or 404 for anything we did not sign (or no longer have)."""
    data = read_token(settings, token, kind)
    message = await message_by_token_id(session, data.message_id) if data else None
    if data is None or message is None:
        raise NotFound("This link is not valid.")
    return data, message


async def _record_event(
    session: AsyncSession, message: Message, event_type: str, url: str | None = None
) -> None:
    """Through event ingestion, so segments, waits and exit rules see it. A contact that
    can no longer take events (erased) is not an error for the person clicking."""
    properties: dict[str, str] = {"message_id": str(message.id), "step_key": message.step_key}
    if url is not None:
        properties["url"] = url
    event = EventIn(
        contact_id=message.contact_id,
        type=event_type,
        properties=properties,
        source=EVENT_SOURCE,
    )
    try:
        async with session.begin_nested():
            await events.ingest_one(session, message.workspace_id, event, may_use_reserved=True)
    except AppError as error:
        log.info("tracking_event_skipped", message_id=str(message.id), reason=error.detail)


async def record_open(session: AsyncSession, settings: Settings, token: str) -> None:
    _, message = await _resolve(session, settings, token, "open")
    now = utcnow()
    await mark_first(session, message.id, "first_opened_at", now)
    # Every open is emitted (first or not), like every click.
    await emit.emit(
        session, message.workspace_id, emit.message_data(MessageOpened, message), occurred_at=now
    )
    if message.channel == "email":
        await _record_event(session, message, "email.opened")


async def record_click(session: AsyncSession, settings: Settings, token: str) -> str:
    """The signed destination (the redirect target) after recording the click."""
    data, message = await _resolve(session, settings, token, "click")
    if data.url is None:
        raise NotFound("This link is not valid.")
    now = utcnow()
    await mark_first(session, message.id, "first_clicked_at", now)
    clicked = emit.message_data(MessageClicked, message, url=data.url)
    await emit.emit(session, message.workspace_id, clicked, occurred_at=now)
    if message.channel == "email":
        await _record_event(session, message, "email.clicked", data.url)
    return data.url


# --- one-click unsubscribe (RFC 8058) -------------------------------------------------------


async def unsubscribe_target(session: AsyncSession, settings: Settings, token: str) -> Message:
    """Validate the token only (the confirmation page must not change anything)."""
    _, message = await _resolve(session, settings, token, "unsubscribe")
    if message.channel not in UNSUBSCRIBABLE:
        raise NotFound("This link is not valid.")
    return message


async def unsubscribe(session: AsyncSession, settings: Settings, token: str, ip: str | None) -> str:
    """Consent `unsubscribed` (with provenance) + suppression, then the contact's live
    enrollments exit. Idempotent: a repeat records nothing new. Returns the channel."""
    message = await unsubscribe_target(session, settings, token)
    workspace_id, contact_id, channel = message.workspace_id, message.contact_id, message.channel
    # Lock first, so two concurrent clicks serialise and the second sees the first's change.
    contact = await consent.lock_contact(session, workspace_id, contact_id)
    if contact is None or contact.erased_at is not None:
        return channel  # erased: nothing to unsubscribe, and nothing is sent to it any more
    view = await consent.get_consent(session, workspace_id, contact_id)
    current = view.current.get(channel)
    if current is None or current.status != "unsubscribed":
        change = ConsentUpdate(status="unsubscribed", source=UNSUBSCRIBE_SOURCE, ip=_ip(ip))
        await consent.set_consent(session, workspace_id, contact_id, channel, change)
    await contacts_stopped.publish(
        session, workspace_id, [contact_id], UNSUBSCRIBE_REASON, utcnow()
    )
    return channel


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # Consent provenance refuses zoned IPv6 (link-local `%eth0`): keep no address then.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None
    return address
