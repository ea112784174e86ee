from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.etag import IfMatch, make_etag, responses_with_etag, set_etag
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page
from app.core.state import app_state
from app.core.usage import USAGE_RESPONSES, UsageOut, delete_responses, usage_description
from app.templates import service
from app.templates.models import Template, TemplateVersion
from app.templates.schemas import (
    Channel,
    TemplateCreate,
    TemplateOut,
    TemplatePreviewOut,
    TemplatePreviewRequest,
    TemplateUpdate,
    TemplateVersionOut,
)

router = APIRouter(prefix="/v1", tags=["Templates"])
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("templates", "read")]
Writer = Annotated[Principal, Caller("templates", "write")]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647, description="Version number.")]


def _etag_responses(status: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return responses_with_etag("template", status, *errors)


def _out(template: Template, response: Response | None = None) -> TemplateOut:
    if response is not None:
        set_etag(response, template.id, template.version)
    return TemplateOut(
        id=template.id,
        name=template.name,
        channel=template.channel,
        locked=template.locked,
        content=template.content,
        version=template.version,
        etag=make_etag(template.id, template.version),
        published_version=template.published_version,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _version_out(version: TemplateVersion) -> TemplateVersionOut:
    return TemplateVersionOut.model_validate(version)


@router.post(
    "/templates",
    summary="Create a template",
    description=(
        "A draft for one channel (`email`, `sms`, `webhook`). The content is validated for the "
        "channel and every string is syntax-checked as a jinja2 template: errors answer 422 "
        "with a pointer under `/content`. The response carries an `ETag`."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateOut,
    responses=_etag_responses(201, 422),
)
async def create_template(
    body: TemplateCreate, session: Session, principal: Writer, response: Response
) -> TemplateOut:
    template = await service.create_template(session, principal.workspace_id, body)
    response.headers["Location"] = f"/v1/templates/{template.id}"
    return _out(template, response)


@router.get(
    "/templates",
    summary="List templates",
    description="Templates of the workspace, newest first, optionally filtered by `channel`.",
    response_model=Page[TemplateOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_templates(
    session: Session,
    principal: Reader,
    paging: Paging,
    channel: Annotated[Channel | None, Query(description="Only this channel.")] = None,
) -> Page[TemplateOut]:
    page = await service.list_templates(session, principal.workspace_id, paging, channel)
    return Page[TemplateOut](data=[_out(t) for t in page.items], next_cursor=page.next_cursor)


@router.get(
    "/templates/{template_id}",
    summary="Get a template",
    description="One template with its draft content and its `ETag` (header and `etag`).",
    response_model=TemplateOut,
    responses=_etag_responses(200, 404, 422),
)
async def get_template(
    template_id: uuid.UUID, session: Session, principal: Reader, response: Response
) -> TemplateOut:
    template = await service.get_template(session, principal.workspace_id, template_id)
    return _out(template, response)


@router.patch(
    "/templates/{template_id}",
    summary="Update a template's draft",
    description=(
        "Change the name or replace the draft content (validated and syntax-checked like on "
        "create). Published versions never change. Send `If-Match: <ETag>` to refuse the edit "
        "with 412 when the template changed since you read it. 409 while the template is "
        "locked."
    ),
    response_model=TemplateOut,
    responses=_etag_responses(200, 404, 409, 412, 422),
)
async def update_template(
    template_id: uuid.UUID,
    *,
    body: TemplateUpdate,
    session: Session,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> TemplateOut:
    template = await service.update_template(
        session, principal.workspace_id, template_id, body, if_match
    )
    return _out(template, response)


@router.delete(
    "/templates/{template_id}",
    summary="Delete a template",
    description=(
        "Delete a template with its published versions. 409 while locked, and 409 `in-use` "
        "(naming them in `used_by`) while a sequence's draft or published version sends it "
        "(see `GET /v1/templates/{id}/usage`); honours `If-Match`."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=delete_responses(412, 422),
)
async def delete_template(
    template_id: uuid.UUID, session: Session, principal: Writer, if_match: IfMatch = None
) -> Response:
    await service.delete_template(session, principal.workspace_id, template_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/templates/{template_id}/lock",
    summary="Lock a template",
    description="Refuse edits and deletion (409) until unlocked. Locking twice is a no-op.",
    response_model=TemplateOut,
    responses=_etag_responses(200, 404, 422),
)
async def lock_template(
    template_id: uuid.UUID, session: Session, principal: Writer, response: Response
) -> TemplateOut:
    template = await service.set_locked(session, principal.workspace_id, template_id, True)
    return _out(template, response)


@router.post(
    "/templates/{template_id}/unlock",
    summary="Unlock a template",
    description="Allow edits and deletion again. Unlocking an unlocked template is a no-op.",
    response_model=TemplateOut,
    responses=_etag_responses(200, 404, 422),
)
async def unlock_template(
    template_id: uuid.UUID, session: Session, principal: Writer, response: Response
) -> TemplateOut:
    template = await service.set_locked(session, principal.workspace_id, template_id, False)
    return _out(template, response)


@router.post(
    "/templates/{template_id}/publish",
    # Where the 201's Location points (app/core/locations.py).
    openapi_extra={"x-location": "/v1/templates/{template_id}/versions/{number}"},
    summary="Publish a version",
    description=(
        "Snapshot the current draft as the next immutable version (1, 2, ...). Undefined merge "
        "fields are reported in `undefined_fields` as warnings; a draft with syntax errors is "
        "refused with 422. Publishing a locked template is allowed."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateVersionOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def publish_template(
    template_id: uuid.UUID, session: Session, principal: Writer
) -> TemplateVersionOut:
    version = await service.publish(session, principal.workspace_id, template_id)
    return _version_out(version)


@router.get(
    "/templates/{template_id}/versions",
    summary="List published versions",
    description="Published versions of the template, newest first.",
    response_model=Page[TemplateVersionOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_template_versions(
    template_id: uuid.UUID, session: Session, principal: Reader, paging: Paging
) -> Page[TemplateVersionOut]:
    page = await service.list_versions(session, principal.workspace_id, template_id, paging)
    return Page[TemplateVersionOut](
        data=[_version_out(v) for v in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/templates/{template_id}/versions/{version}",
    summary="Get a published version",
    description="One published version by its number, exactly as it was published.",
    response_model=TemplateVersionOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_template_version(
    template_id: uuid.UUID, version: VersionNumber, session: Session, principal: Reader
) -> TemplateVersionOut:
    found = await service.get_version(session, principal.workspace_id, template_id, version)
    return _version_out(found)


@router.post(
    "/templates/{template_id}/preview",
    summary="Preview a template",
    description=(
        "Render the draft (or a published `version`) for an existing contact (`contact_id`) or "
        "a made-up `contact`. Undefined merge fields render empty and are listed in "
        "`undefined_fields`. `campaign.*` comes from `campaign_id` (an existing campaign) or a "
        "made-up `campaign`. Templates failing at render time answer 422 with a pointer under "
        "`/content`: sandbox violations as `validation-error`, and a render stopped by a bound "
        "(CPU time, memory, output size per message, integer size, repetition, range) as "
        "`template-limit` with `limit` naming it (see docs/templates.md)."
    ),
    response_model=TemplatePreviewOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def preview_template(
    template_id: uuid.UUID,
    body: TemplatePreviewRequest,
    session: Session,
    principal: Reader,
    request: Request,
) -> TemplatePreviewOut:
    settings = app_state(request).settings
    result = await service.preview(session, settings, principal.workspace_id, template_id, body)
    return TemplatePreviewOut(
        template_id=result.template_id,
        version=result.version,
        channel=result.channel,
        content=result.content,
        undefined_fields=result.undefined_fields,
    )


@router.get(
    "/templates/{template_id}/usage",
    summary="What uses this template",
    description=usage_description(
        "template", "sequences whose draft or any published version sends it"
    ),
    response_model=UsageOut,
    responses=USAGE_RESPONSES,
)
async def get_template_usage(
    template_id: uuid.UUID, session: Session, principal: Reader
) -> UsageOut:
    return await service.usage(session, principal.workspace_id, template_id)
