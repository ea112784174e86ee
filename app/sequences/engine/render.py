"""Rendering a message's content at claim time, with its own tracked links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.channels.tracking import message_links
from app.templates.rendering import RenderContext, RenderError
from app.templates.sandbox import limits_for, render_bounded
from app.templates.service import contact_fields

if TYPE_CHECKING:
    from app.config import Settings
    from app.contacts.models import Contact


@dataclass
class RenderedMessage:
    content: dict[str, Any]
    error: str | None = None

    @property
    def status(self) -> str:
        return "queued" if self.error is None else "failed"


async def render_message(
    settings: Settings,
    message_id: uuid.UUID,
    contact: Contact,
    template: tuple[str, dict[str, Any]] | None,
    campaign: dict[str, Any] | None = None,
) -> RenderedMessage:
    """The template's content for this contact and campaign, within the channel's render
    budget (a runaway template is stopped in the sandbox process, never in this worker); a
    template error fails this message only, with the reason in its `error`."""
    if template is None:
        return RenderedMessage({}, "the pinned template version no longer exists")
    links = message_links(settings, message_id)
    context = RenderContext(
        contact=contact_fields(contact),
        campaign=campaign or {},
        unsubscribe_url=links.unsubscribe_url,
        link=links.link,
    )
    channel, content = template
    limits = limits_for(settings, channel)
    try:
        rendered = await render_bounded(
            content, context, limits, processes=settings.templates.sandbox_processes
        )
    except RenderError as exc:
        if exc.limit is not None:
            return RenderedMessage({}, f"template_limit ({exc.limit}) at {exc.pointer}: {exc}")
        return RenderedMessage({}, f"{exc.pointer}: {exc}")
    return RenderedMessage(rendered.content)
