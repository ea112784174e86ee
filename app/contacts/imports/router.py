from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from app.contacts.imports import service
from app.contacts.imports.schemas import FieldProblem, ImportOut, ImportRowErrorOut
from app.contacts.models import ContactImport
from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.schemas import Page

router = APIRouter(prefix="/v1")
Paging = Annotated[PageParams, Depends(page_params)]


def _out(record: ContactImport) -> ImportOut:
    fields = {
        name: getattr(record, name) for name in ImportOut.model_fields if name != "errors_truncated"
    }
    return ImportOut(**fields, errors_truncated=service.errors_truncated(record))


@router.post(
    "/contacts/imports",
    tags=["Imports"],
    summary="Upload a contact import",
    description=(
        "Send the file itself as the request body, `Content-Type: text/csv` or "
        "`application/x-ndjson` (UTF-8; `application/csv`, `application/ndjson` and "
        "`application/jsonl` are accepted too; anything else is a 415). Up to 50 MiB "
        "(`HERALD_HTTP__MAX_UPLOAD_BYTES`; larger is a 413). The file is stored and an import "
        "is queued (202); a worker then upserts every row exactly like "
        "`POST /v1/contacts/upsert`, so importing the same file twice changes nothing.\n\n"
        "**CSV**: a header row naming columns `email`, `external_id`, `phone`, `timezone`, "
        "`locale` and `attributes.<key>` (text) or `attributes.<key>:number|boolean|json`; "
        "at least `email` or `external_id`. Empty cells keep the stored value.\n\n"
        "**NDJSON**: one JSON object per line, shaped like the upsert body.\n\n"
        "Poll `GET /v1/contacts/imports/{import_id}` for progress; rejected rows are listed "
        "by `GET /v1/contacts/imports/{import_id}/errors`."
    ),
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportOut,
    responses=problem_responses(*COMMON_ERRORS, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "examples": [
                            "email,external_id,attributes.plan,attributes.seats:number\n"
                            "ana@example.com,crm-1,pro,12\n"
                        ],
                    }
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "examples": [
                            '{"email": "ana@example.com", "attributes": {"plan": "pro"}}\n'
                        ],
                    }
                },
            },
        }
    },
)
async def create_import(
    request: Request,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "write")],
    filename: Annotated[
        str | None, Query(max_length=255, description="The file's name, for your records.")
    ] = None,
) -> ImportOut:
    record = await service.create_import(
        session,
        principal.workspace_id,
        request.headers.get("content-type"),
        filename,
        request.stream(),
    )
    return _out(record)


@router.get(
    "/contacts/imports",
    tags=["Imports"],
    summary="List imports",
    description="Imports of the workspace with their status and counts, newest first.",
    response_model=Page[ImportOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_imports(
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
    paging: Paging,
) -> Page[ImportOut]:
    page = await service.list_imports(session, principal.workspace_id, paging)
    return Page[ImportOut](data=[_out(i) for i in page.items], next_cursor=page.next_cursor)


@router.get(
    "/contacts/imports/{import_id}",
    tags=["Imports"],
    summary="Get an import",
    description=(
        "Status (`queued`, `running`, `completed`, `failed` with `error`) and counts: rows "
        "processed so far, created, updated, unchanged and failed. Counts grow batch by "
        "batch (about 1,000 rows) while the import runs."
    ),
    response_model=ImportOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_import(
    import_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
) -> ImportOut:
    return _out(await service.get_import(session, principal.workspace_id, import_id))


@router.get(
    "/contacts/imports/{import_id}/errors",
    tags=["Imports"],
    summary="List an import's rejected rows",
    description=(
        "Rejected rows in file order, each with its line number and one message per field "
        "(`row` when the whole row is unusable). The first 1,000 rejected rows are kept; "
        "`failed_count` on the import counts them all."
    ),
    response_model=Page[ImportRowErrorOut],
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def list_import_errors(
    import_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("contacts", "read")],
    paging: Paging,
) -> Page[ImportRowErrorOut]:
    page = await service.list_errors(session, principal.workspace_id, import_id, paging)
    return Page[ImportRowErrorOut](
        data=[
            ImportRowErrorOut(
                row_number=row.row_number,
                errors=[FieldProblem(**problem) for problem in row.errors],
            )
            for row in page.items
        ],
        next_cursor=page.next_cursor,
    )
