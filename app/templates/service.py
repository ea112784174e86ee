"""Templates: the draft, locking, publishing immutable versions and previews."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts import service as contacts
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, NotFound, Unprocessable
from app.core.etag import check_if_match
from app.core.pagination import PageParams, PageResult
from app.core.usage import UsageOut, find_usage, refuse_if_used
from app.templates import rendering, sandbox
from app.templates.merge_fields import campaign_fields
from app.templates.models import Template, TemplateVersion
from app.templates.repository import TemplateRepository, TemplateVersionRepository
from app.templates.schemas import (
    CONTENT_MODELS,
    HypotheticalCampaign,
    PreviewContact,
    TemplateCreate,
    TemplatePreviewRequest,
    TemplateUpdate,
)

if TYPE_CHECKING:
    from app.config import Settings
    from app.contacts.models import Contact
    from app.core.pagination import PageParams, PageResult


@dataclass(frozen=True)
class Preview:
    template_id: uuid.UUID
    version: int | None
    channel: str
    content: dict[str, Any]
    undefined_fields: list[str]


# -- content ---------------------------------------------------------------------------------


def checked_content(channel: str, content: dict[str, Any]) -> dict[str, Any]:
    """The content validated for its channel and syntax-checked; 422 with pointers if not."""
    model = CONTENT_MODELS[channel]
    try:
        parsed = model.model_validate(content)
    except ValidationError as exc:
        errors = [
            FieldError(
                pointer="/content" + "".join(f"/{part}" for part in error["loc"]),
                location="body",
                message=error["msg"],
                code=error["type"],
            )
            for error in exc.errors(include_url=False)
        ]
        raise Unprocessable(
            f"The content is not valid for a `{channel}` template.", errors=errors
        ) from exc
    value = parsed.model_dump(exclude_none=True)
    try:
        rendering.check_syntax(value)
    except rendering.RenderError as exc:
        raise _render_problem(exc) from exc
    return value


class TemplateLimit(Unprocessable):
    """A render stopped by a sandbox bound (docs/templates.md, Sandbox and limits)."""

    slug, title = "template-limit", "Template limit exceeded"


def _render_problem(exc: rendering.RenderError) -> Unprocessable:
    pointer = "/content" + exc.pointer
    errors = [FieldError(pointer=pointer, location="body", message=exc.message, code=exc.code)]
    if exc.limit is not None:
        return TemplateLimit(
            f"The template at body{pointer} hit the `{exc.limit}` limit: {exc.message}",
            errors=errors,
            extra={"limit": exc.limit},
        )
    return Unprocessable(
        f"The template at body{pointer} cannot be rendered: {exc.message}", errors=errors
    )


# -- CRUD ------------------------------------------------------------------------------------


async def create_template(
    session: AsyncSession, workspace_id: uuid.UUID, body: TemplateCreate
) -> Template:
    template = Template(
        name=body.name,
        channel=body.channel,
        content=checked_content(body.channel, body.content),
        locked=False,
        version=1,
    )
    TemplateRepository(session, workspace_id).add(template)
    await session.flush()
    return template


async def list_templates(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, channel: str | None
) -> PageResult[Template]:
    conditions = [Template.channel == channel] if channel is not None else []
    return await TemplateRepository(session, workspace_id).page(params, *conditions)


async def get_template(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID
) -> Template:
    return await TemplateRepository(session, workspace_id).get_or_404(template_id)


async def update_template(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    template_id: uuid.UUID,
    body: TemplateUpdate,
    if_match: str | None,
) -> Template:
    template = await TemplateRepository(session, workspace_id).locked_or_404(template_id)
    check_if_match(if_match, template.id, template.version)
    _refuse_locked(template, "edited")
    given = body.model_fields_set
    for field in ("name", "content"):
        if field in given and getattr(body, field) is None:
            raise Unprocessable(
                f"The request has an invalid field: body/{field}.",
                errors=[
                    FieldError(
                        pointer=f"/{field}",
                        location="body",
                        message=f"`{field}` cannot be null.",
                        code="missing",
                    )
                ],
            )
    changed = False
    if body.name is not None and body.name != template.name:
        template.name, changed = body.name, True
    if body.content is not None:
        content = checked_content(template.channel, body.content)
        if content != template.content:
            template.content, changed = content, True
    if changed:
        _bump(template)
    await session.flush()
    return template


async def usage(session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID) -> UsageOut:
    await get_template(session, workspace_id, template_id)
    return await find_usage(session, workspace_id, "template", template_id)


async def delete_template(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID, if_match: str | None
) -> None:
    template = await TemplateRepository(session, workspace_id).locked_or_404(template_id)
    check_if_match(if_match, template.id, template.version)
    _refuse_locked(template, "deleted")
    await refuse_if_used(session, workspace_id, "template", template_id)
    await session.delete(template)
    await session.flush()


async def set_locked(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID, locked: bool
) -> Template:
    template = await TemplateRepository(session, workspace_id).locked_or_404(template_id)
    if template.locked != locked:
        template.locked = locked
        _bump(template)
        await session.flush()
    return template


# -- versions --------------------------------------------------------------------------------


async def publish(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID
) -> TemplateVersion:
    template = await TemplateRepository(session, workspace_id).locked_or_404(template_id)
    # Content is checked on every write, but a draft stored by an older rule set is re-checked.
    content = checked_content(template.channel, template.content)
    number = (template.published_version or 0) + 1
    version = TemplateVersion(
        template_id=template.id,
        number=number,
        channel=template.channel,
        content=content,
        undefined_fields=rendering.find_undefined(content),
        published_at=utcnow(),
    )
    TemplateVersionRepository(session, workspace_id).add(version)
    template.published_version = number
    await session.flush()
    return version


async def list_versions(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID, params: PageParams
) -> PageResult[TemplateVersion]:
    await get_template(session, workspace_id, template_id)
    return await TemplateVersionRepository(session, workspace_id).of_parent(template_id, params)


async def get_version(
    session: AsyncSession, workspace_id: uuid.UUID, template_id: uuid.UUID, number: int
) -> TemplateVersion:
    await get_template(session, workspace_id, template_id)
    version = await TemplateVersionRepository(session, workspace_id).by_number(template_id, number)
    if version is None:
        raise NotFound(f"Template {template_id} has no published version {number}.")
    return version


async def version_contents(
    session: AsyncSession, workspace_id: uuid.UUID, version_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, dict[str, Any]]]:
    """(channel, content) of published versions by id (the ones a sequence version pins);
    ids not found in the workspace are left out. One query."""
    return await TemplateVersionRepository(session, workspace_id).contents(version_ids)


# -- preview ---------------------------------------------------------------------------------


async def preview(
    session: AsyncSession,
    settings: Settings,
    workspace_id: uuid.UUID,
    template_id: uuid.UUID,
    body: TemplatePreviewRequest,
) -> Preview:
    template = await get_template(session, workspace_id, template_id)
    content = template.content
    if body.version is not None:
        content = (await get_version(session, workspace_id, template_id, body.version)).content
    if body.contact_id is not None:
        # Erased contacts answer 404 like ids that never existed.
        fields = contact_fields(await contacts.get_contact(session, workspace_id, body.contact_id))
    else:
        assert body.contact is not None  # the schema requires one of the two
        fields = _hypothetical_fields(body.contact)
    context = rendering.RenderContext(
        contact=fields, campaign=await _preview_campaign(session, workspace_id, body)
    )
    limits = sandbox.limits_for(settings, template.channel)
    try:
        result = await sandbox.render_bounded(
            content, context, limits, processes=settings.templates.sandbox_processes
        )
    except rendering.RenderError as exc:
        raise _render_problem(exc) from exc
    return Preview(
        template.id, body.version, template.channel, result.content, result.undefined_fields
    )


def contact_fields(contact: Contact) -> dict[str, Any]:
    """A contact as templates see it (`contact.*`)."""
    return {
        "id": str(contact.id),
        "email": contact.email,
        "external_id": contact.external_id,
        "phone": contact.phone,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "attributes": dict(contact.attributes or {}),
    }


async def _preview_campaign(
    session: AsyncSession, workspace_id: uuid.UUID, body: TemplatePreviewRequest
) -> dict[str, Any]:
    if body.campaign is not None:
        return _hypothetical_campaign(body.campaign)
    if body.campaign_id is None:
        return {}
    found = await campaign_fields(session, workspace_id, [body.campaign_id])
    if body.campaign_id not in found:
        raise NotFound(f"No campaign with id {body.campaign_id}.")
    return found[body.campaign_id]


def _hypothetical_campaign(campaign: HypotheticalCampaign) -> dict[str, Any]:
    fields = campaign.model_dump()
    for key in ("start_at", "end_at"):
        if fields[key] is not None:
            fields[key] = fields[key].isoformat()
    return {"id": None, **fields}


def _hypothetical_fields(contact: PreviewContact) -> dict[str, Any]:
    return {
        "id": None,
        "email": contact.email,
        "external_id": contact.external_id,
        "phone": contact.phone,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "attributes": dict(contact.attributes),
    }


# -- helpers ---------------------------------------------------------------------------------


def _refuse_locked(template: Template, action: str) -> None:
    if template.locked:
        raise Conflict(f"Template {template.id} is locked and cannot be {action}; unlock it first.")


def _bump(template: Template) -> None:
    template.version += 1
    template.updated_at = utcnow()
