"""Rendering a message's content at claim time, with its own tracked links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.channels.tracking import message_links
from app.templates.rendering import RenderContext, RenderError, render
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


def render_message(
    settings: Settings,
    message_id: uuid.UUID,
    contact: Contact,
    template: tuple[str, dict[str, Any]] | None,
) -> RenderedMessage:
    """The template's content for this contact; a template error fails this message only."""
    if template is None:
        return RenderedMessage({}, "the pinned template version no longer exists")
    links = message_links(settings, message_id)
    context = RenderContext(
        contact=contact_fields(contact), unsubscribe_url=links.unsubscribe_url, link=links.link
    )
    try:
        return RenderedMessage(render(template[1], context).content)
    except RenderError as exc:
        return RenderedMessage({}, f"{exc.pointer}: {exc}")
