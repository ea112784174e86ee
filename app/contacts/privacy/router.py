from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from app.contacts.privacy import service
from app.contacts.privacy.schemas import ContactExport, ErasureOut, SuppressionKey
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses

router = APIRouter(prefix="/v1")


@router.get(
    "/contacts/{contact_id}/export",
    tags=["Privacy"],
    summary="Export everything about a contact",
    description=(
        "A JSON document (`herald.contact-export`, version 1) with one entry in `sections` "
        "per data domain: `contact` (the row as stored), `consent` (current and full history "
        "with provenance), `events` (all, oldest first), `segments` (current memberships and "
        "every entered/left change), `suppressions` (entries matching the contact's current "
        "addresses). Later domains add their own sections. An erased contact exports what "
        "is left of it."
    ),
    response_model=ContactExport,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def export_contact(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> ContactExport:
    export = await service.export_contact(session, principal.workspace_id, contact_id)
    return ContactExport(
        format=service.EXPORT_FORMAT,
        format_version=service.EXPORT_FORMAT_VERSION,
        contact_id=export.contact_id,
        exported_at=export.exported_at,
        sections=export.sections,
    )


@router.post(
    "/contacts/{contact_id}/erase",
    tags=["Privacy"],
    summary="Erase a contact",
    description=(
        "Remove the person's data in one transaction: the contact keeps its id but loses "
        "email, phone, external id, attributes, timezone and locale (`erased_at` is set); its "
        "events lose their properties and client ids (type, time and revenue stay, so totals "
        "stay honest); consent keeps status and source but loses IP addresses; segment "
        "memberships end (`left` is recorded); import error messages and stored idempotent "
        "replays quoting the person are scrubbed. Each address becomes an `erased` "
        "suppression entry (a hash), which cannot be deleted and keeps the address "
        "unreachable even if it is imported again. Needs `contacts:admin`. Idempotent: "
        "erasing again re-runs the scrub and answers 200 with `already_erased: true`."
    ),
    response_model=ErasureOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def erase_contact(
    contact_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "admin")],
) -> ErasureOut:
    erasure = await service.erase_contact(session, principal.workspace_id, contact_id)
    return ErasureOut(
        contact_id=erasure.contact.id,
        erased_at=erasure.erased_at,
        already_erased=erasure.already_erased,
        suppressed=[
            SuppressionKey(channel=channel, address_hash=key) for channel, key in erasure.suppressed
        ],
        removed=erasure.removed,
    )
