"""Messages API (authenticated) and the public token endpoints: open pixel, click
redirect, one-click unsubscribe (RFC 8058). The token endpoints take no API key: the
signed token is the authority, and anything we did not sign answers 404."""

from __future__ import annotations

import base64
import html
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.channels import service
from app.channels.schemas import (
    MessageChannel,
    MessageFilters,
    MessageOut,
    MessageStatus,
    UnsubscribeOut,
)
from app.config import Settings
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page

router = APIRouter(prefix="/v1")
Paging = Annotated[PageParams, Depends(page_params)]
Reader = Annotated[Principal, Caller("sequences", "read")]
# base64url only; long enough for a click token carrying a 4 KiB URL.
Token = Annotated[
    str,
    Path(
        min_length=1,
        max_length=6000,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="A signed token from a message.",
    ),
]

# The smallest transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.herald.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]


# --- messages API ---------------------------------------------------------------------------


def message_filters(
    enrollment_id: Annotated[uuid.UUID | None, Query(description="Only this enrollment.")] = None,
    contact_id: Annotated[uuid.UUID | None, Query(description="Only this contact.")] = None,
    status: Annotated[MessageStatus | None, Query(description="Only this status.")] = None,
    channel: Annotated[MessageChannel | None, Query(description="Only this channel.")] = None,
) -> MessageFilters:
    return MessageFilters(enrollment_id, contact_id, status, channel)


@router.get(
    "/messages",
    tags=["Messages"],
    summary="List messages",
    description=(
        "Messages of the workspace (one per enrollment, send step and visit), newest first, "
        "filtered by enrollment, contact, status and channel."
    ),
    response_model=Page[MessageOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_messages(
    session: Session,
    principal: Reader,
    paging: Paging,
    filters: Annotated[MessageFilters, Depends(message_filters)],
) -> Page[MessageOut]:
    page = await service.list_messages(session, principal.workspace_id, paging, filters)
    return Page[MessageOut](
        data=[MessageOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/messages/{message_id}",
    tags=["Messages"],
    summary="Get a message",
    description=(
        "One message with its rendered content, status, attempts, last error, provider id "
        "and first open / click times. Other workspaces' ids answer 404."
    ),
    response_model=MessageOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_message(message_id: uuid.UUID, session: Session, principal: Reader) -> MessageOut:
    message = await service.get_message(session, principal.workspace_id, message_id)
    return MessageOut.model_validate(message)


# --- tracking -------------------------------------------------------------------------------


@router.get(
    "/t/o/{token}",
    tags=["Tracking"],
    summary="Open pixel",
    description=(
        "A 1x1 transparent GIF embedded in emails. Records an `email.opened` event for the "
        "message's contact (properties `message_id`, `step_key`) and sets the message's "
        "`first_opened_at` the first time. No API key: the token is signed. Tampered or "
        "unknown tokens answer 404."
    ),
    response_class=Response,
    responses={
        200: {"description": "The pixel.", "content": {"image/gif": {"example": "GIF89a..."}}},
        **problem_responses(404, 422),
    },
)
async def open_pixel(token: Token, session: Session, settings: AppSettings) -> Response:
    await service.record_open(session, settings, token)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/t/c/{token}",
    tags=["Tracking"],
    summary="Click redirect",
    description=(
        "Redirects (302) to the link the message's template contained, after recording an "
        "`email.clicked` event (properties `message_id`, `step_key`, `url`) and setting "
        "`first_clicked_at` the first time. The destination is inside the signed token, so "
        "only links Herald rendered redirect (no open redirect). No API key. Tampered or "
        "unknown tokens answer 404."
    ),
    status_code=302,
    response_class=RedirectResponse,
    responses={
        302: {
            "description": "To the link's destination.",
            "headers": {
                "Location": {"description": "The link's URL.", "schema": {"type": "string"}}
            },
        },
        **problem_responses(404, 422),
    },
)
async def click_redirect(token: Token, session: Session, settings: AppSettings) -> Response:
    url = await service.record_click(session, settings, token)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


# --- unsubscribe ----------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem">
{body}
</body></html>
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=title, body=body), headers=NO_STORE)


@router.get(
    "/unsubscribe/{token}",
    tags=["Tracking"],
    summary="Unsubscribe confirmation page",
    description=(
        "A small HTML page with a button that POSTs the unsubscribe. Visiting it changes "
        "nothing (mail scanners prefetch links). No API key. Tampered or unknown tokens "
        "answer 404."
    ),
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The confirmation page.",
            "content": {"text/html": {"example": "<!doctype html><form method=post>...</form>"}},
        },
        **problem_responses(404, 422),
    },
)
async def unsubscribe_page(token: Token, session: Session, settings: AppSettings) -> HTMLResponse:
    await service.unsubscribe_target(session, settings, token)
    action = html.escape(f"/v1/unsubscribe/{token}")
    return _page(
        "Unsubscribe",
        "<h1>Unsubscribe</h1><p>Stop receiving these messages?</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/unsubscribe/{token}",
    tags=["Tracking"],
    summary="One-click unsubscribe",
    description=(
        "RFC 8058 one-click unsubscribe, as mail clients send it from the `List-Unsubscribe` "
        "and `List-Unsubscribe-Post` headers: no API key, any or no body (the form "
        "`List-Unsubscribe=One-Click` included), no redirect. Records consent "
        "`unsubscribed` for the message's channel (source `one_click`, the caller's IP), "
        "suppresses the address and ends the contact's live enrollments (reason "
        "`unsubscribed`). Idempotent. Answers an HTML page to browsers (`Accept: "
        "text/html`), JSON otherwise. Tampered or unknown tokens answer 404."
    ),
    response_model=UnsubscribeOut,
    responses={
        200: {
            "description": "Unsubscribed (also when already unsubscribed).",
            "content": {"text/html": {"example": "<!doctype html><h1>Unsubscribed</h1>"}},
        },
        **problem_responses(404, 413, 422),
    },
)
async def one_click_unsubscribe(
    token: Token, request: Request, session: Session, settings: AppSettings
) -> Any:
    ip = request.client.host if request.client else None
    channel = await service.unsubscribe(session, settings, token, ip)
    if "text/html" in request.headers.get("accept", ""):
        return _page(
            "Unsubscribed", "<h1>Unsubscribed</h1><p>You will not receive these messages.</p>"
        )
    answer = UnsubscribeOut(unsubscribed=True, channel=channel)
    return JSONResponse(answer.model_dump(), headers=NO_STORE)
