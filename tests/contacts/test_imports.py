"""Bulk imports end to end: upload, a real arq worker in burst mode, counts and row errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.contacts.imports.service import run_import
from app.contacts.models import Contact, ContactImport, ContactImportChunk
from app.core.db import transaction
from app.main import create_app
from tests.fixtures.clients import client_for
from tests.fixtures.tenants import Tenant
from tests.fixtures.worker import run_jobs

CSV = "text/csv"
NDJSON = "application/x-ndjson"


async def upload(
    client: httpx.AsyncClient,
    tenant: Tenant,
    content: bytes | str,
    media_type: str,
    **params: str,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/contacts/imports",
        content=content.encode() if isinstance(content, str) else content,
        params=params,
        headers={**tenant.headers, "Content-Type": media_type},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "queued"
    return body


async def imported(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    content: bytes | str,
    media_type: str,
) -> dict[str, Any]:
    created = await upload(client, tenant, content, media_type)
    await run_jobs(settings)
    response = await client.get(f"/v1/contacts/imports/{created['id']}", headers=tenant.headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


async def all_errors(
    client: httpx.AsyncClient, tenant: Tenant, import_id: str, limit: int = 200
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            f"/v1/contacts/imports/{import_id}/errors", params=params, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        rows.extend(response.json()["data"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return rows


async def contacts_by_email(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get("/v1/contacts", params={"limit": 200}, headers=tenant.headers)
    return {c["email"] or c["external_id"]: c for c in response.json()["data"]}


CSV_FILE = (
    "\ufeffemail,external_id,phone,timezone,locale,attributes.plan,"
    "attributes.seats:number,attributes.vip:boolean,attributes.prefs:json\r\n"
    'Ana@Example.com,crm-1,+351 912 345 678,Europe/Lisbon,pt-PT,pro,12,yes,"{""a"": 1}"\r\n'
    "bad-email,crm-2,,,,,,,\r\n"
    "bo@example.com,,,Mars/Base,,,,,\r\n"
    "\r\n"
    'cy@example.com,,,,,"multi\nline",3.5,false,\r\n'
    "dee@example.com,,,,,team,many,maybe,\r\n"
    ",,,,,,,,\r\n"
    "ed@example.com,,,,,,,,,extra\r\n"
    "fay@example.com,,,,,basic,,,\r\n"
)


async def test_csv_import_with_bad_rows(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    result = await imported(client, tenant, settings, CSV_FILE, CSV)
    assert result["status"] == "completed", result
    assert result["format"] == "csv"
    assert result["processed_rows"] == result["total_rows"] == 8
    assert result["created_count"] == 3
    assert result["failed_count"] == 5
    assert (result["updated_count"], result["unchanged_count"]) == (0, 0)
    assert result["finished_at"] is not None

    contacts = await contacts_by_email(client, tenant)
    assert set(contacts) == {"ana@example.com", "cy@example.com", "fay@example.com"}
    ana = contacts["ana@example.com"]
    assert ana["external_id"] == "crm-1"
    assert ana["phone"] == "+351912345678"
    assert ana["attributes"] == {"plan": "pro", "seats": 12, "vip": True, "prefs": {"a": 1}}
    assert contacts["cy@example.com"]["attributes"] == {
        "plan": "multi\nline",
        "seats": 3.5,
        "vip": False,
    }

    errors = {
        row["row_number"]: row["errors"] for row in await all_errors(client, tenant, result["id"])
    }
    # line numbers: the blank line 5 and the two-line record 6-7 count as lines
    assert set(errors) == {3, 4, 8, 9, 10}
    assert [e["field"] for e in errors[3]] == ["email"]
    assert [e["field"] for e in errors[4]] == ["timezone"]
    assert {e["field"] for e in errors[8]} == {"attributes.seats", "attributes.vip"}
    assert [e["field"] for e in errors[9]] == ["row"]  # neither email nor external_id
    assert [e["field"] for e in errors[10]] == ["row"]  # more cells than columns


async def test_reimporting_the_same_file_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    first = await imported(client, tenant, settings, CSV_FILE, CSV)
    before = await contacts_by_email(client, tenant)
    second = await imported(client, tenant, settings, CSV_FILE, CSV)
    assert second["sha256"] == first["sha256"]
    assert second["size_bytes"] == len(CSV_FILE.encode())
    assert (second["created_count"], second["updated_count"]) == (0, 0)
    assert second["unchanged_count"] == 3
    assert second["failed_count"] == 5
    assert await contacts_by_email(client, tenant) == before


async def test_ndjson_import_updates_and_reports(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await client.post(
        "/v1/contacts",
        json={"external_id": "u-1", "email": "u1@example.com", "attributes": {"plan": "pro"}},
        headers=tenant.headers,
    )
    lines = [
        json.dumps({"external_id": "u-1", "attributes": {"plan": None, "seats": 3}}),
        json.dumps({"email": "new@example.com", "locale": "en-GB"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"email": "x@example.com", "nickname": "x"}),
        "",
        json.dumps({"external_id": "u-2", "email": "u1@example.com"}),
        json.dumps({"external_id": "u-1", "attributes": {"seats": 3}}),
    ]
    result = await imported(client, tenant, settings, "\n".join(lines), NDJSON)
    assert result["status"] == "completed"
    assert result["processed_rows"] == 7
    assert (result["created_count"], result["updated_count"]) == (1, 1)
    assert result["unchanged_count"] == 1
    assert result["failed_count"] == 4

    contacts = await contacts_by_email(client, tenant)
    assert contacts["u1@example.com"]["attributes"] == {"seats": 3}
    assert contacts["new@example.com"]["locale"] == "en-GB"
    errors = {
        row["row_number"]: row["errors"]
        for row in await all_errors(client, tenant, result["id"], 2)
    }
    assert [e["field"] for e in errors[3]] == ["row"]
    assert [e["field"] for e in errors[4]] == ["row"]
    assert [e["field"] for e in errors[5]] == ["nickname"]
    assert [e["field"] for e in errors[7]] == ["email"]


async def test_row_errors_naming_unstorable_keys_do_not_fail_the_import(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """A JSON key is quoted in the row error's field; NUL or a lone surrogate there used to
    make the error INSERT fail, failing the whole import (and its good rows) as internal."""
    lines = [
        '{"email": "ok@example.com"}',
        '{"email": "b@example.com", "bad\\u0000": 1}',
        '{"email": "c@example.com", "attributes": {"k\\ud800": 1}}',
    ]
    result = await imported(client, tenant, settings, "\n".join(lines), NDJSON)
    assert result["status"] == "completed", result["error"]
    assert (result["created_count"], result["failed_count"]) == (1, 2)
    errors = {
        row["row_number"]: row["errors"] for row in await all_errors(client, tenant, result["id"])
    }
    assert [e["field"] for e in errors[2]] == ["bad\ufffd"]
    assert sorted(errors) == [2, 3]


async def test_unreadable_files_fail_with_a_reason(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    bad_header = await imported(
        client, tenant, settings, "email,favourite_colour\na@x.io,red\n", CSV
    )
    assert bad_header["status"] == "failed"
    assert "favourite_colour" in bad_header["error"]

    good_then_binary = b'{"email": "ok@example.com"}\n{"email": "\xff\xfe"}\n'
    broken = await imported(client, tenant, settings, good_then_binary, NDJSON)
    assert broken["status"] == "failed"
    assert "UTF-8" in broken["error"]
    assert broken["created_count"] == 1  # the line before the bad bytes landed


async def test_upload_rejections(client: httpx.AsyncClient, tenant: Tenant) -> None:
    wrong_type = await client.post(
        "/v1/contacts/imports",
        content=b"email\na@example.com\n",
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == "application/problem+json"
    latin1 = await client.post(
        "/v1/contacts/imports",
        content=b"email\n",
        headers={**tenant.headers, "Content-Type": "text/csv; charset=latin-1"},
    )
    assert latin1.status_code == 415
    empty = await client.post(
        "/v1/contacts/imports", content=b"", headers={**tenant.headers, "Content-Type": CSV}
    )
    assert empty.status_code == 422
    listed = await client.get("/v1/contacts/imports", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_upload_is_stored_in_chunks_and_listed(
    client: httpx.AsyncClient, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    content = "email\n" + "".join(f"p{i:07d}@example.com\n" for i in range(150_000))
    created = await upload(client, tenant, content, CSV, filename="people.csv")
    assert created["filename"] == "people.csv"
    assert created["size_bytes"] == len(content)
    async with session_factory() as session:
        chunks = (
            await session.execute(
                select(ContactImportChunk.seq, func.length(ContactImportChunk.data))
                .where(ContactImportChunk.import_id == created["id"])
                .order_by(ContactImportChunk.seq)
            )
        ).all()
    assert [seq for seq, _ in chunks] == list(range(len(chunks)))
    assert len(chunks) == -(-len(content) // 1_048_576)  # 1 MiB chunks
    assert sum(size for _, size in chunks) == len(content)
    listed = await client.get("/v1/contacts/imports", headers=tenant.headers)
    assert [i["id"] for i in listed.json()["data"]] == [created["id"]]


async def test_large_import_with_many_bad_rows(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    lines = ["external_id,email,attributes.n:number"]
    for i in range(20_000):
        email = f"bad-{i}" if i % 16 == 0 else f"c{i}@example.com"
        lines.append(f"id-{i},{email},{i}")
    result = await imported(client, tenant, settings, "\n".join(lines) + "\n", CSV)
    assert result["status"] == "completed", result
    assert result["processed_rows"] == 20_000
    assert result["failed_count"] == 1_250
    assert result["created_count"] == 18_750
    assert result["errors_truncated"] is True
    stored = await all_errors(client, tenant, result["id"])
    assert len(stored) == 1_000
    assert stored[0]["row_number"] == 2  # id-0, on the line after the header
    async with session_factory() as session:
        count = (
            await session.execute(
                select(func.count()).where(Contact.workspace_id == tenant.workspace_id)
            )
        ).scalar_one()
    assert count == 18_750


async def test_concurrent_imports_of_overlapping_rows(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Two batches upserting the same 3,000 contacts in opposite orders at the same time."""
    lines = [f"id-{i},c{i}@example.com,{i}" for i in range(3_000)]
    forward = "external_id,email,attributes.n:number\n" + "\n".join(lines)
    backward = "external_id,email,attributes.n:number\n" + "\n".join(reversed(lines))

    async def run(content: str) -> None:
        created = await upload(client, tenant, content, CSV)
        await run_import(
            lambda: transaction(session_factory), tenant.workspace_id, uuid.UUID(created["id"])
        )

    await asyncio.gather(run(forward), run(backward))
    listed = await client.get("/v1/contacts/imports", headers=tenant.headers)
    for item in listed.json()["data"]:
        assert item["status"] == "completed", item
        assert item["failed_count"] == 0
        assert item["created_count"] + item["updated_count"] + item["unchanged_count"] == 3_000
    async with session_factory() as session:
        count = (
            await session.execute(
                select(func.count()).where(Contact.workspace_id == tenant.workspace_id)
            )
        ).scalar_one()
    assert count == 3_000


async def test_upload_over_the_limit_is_413_and_stores_nothing(
    settings: Settings, tenant: Tenant, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    small = settings.model_copy(
        update={"http": settings.http.model_copy(update={"max_upload_bytes": 4096})}
    )
    app = create_app(small)
    content = ("email\n" + "".join(f"p{i:05d}@example.com\n" for i in range(1_000))).encode()

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1024):
            yield content[start : start + 1024]

    async with app.router.lifespan_context(app), client_for(app) as client:
        headers = {**tenant.headers, "Content-Type": CSV}
        declared = await client.post("/v1/contacts/imports", content=content, headers=headers)
        chunked = await client.post("/v1/contacts/imports", content=streamed(), headers=headers)
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
    async with session_factory() as session:
        stored = (
            await session.execute(select(func.count()).select_from(ContactImport))
        ).scalar_one()
        chunks = (
            await session.execute(select(func.count()).select_from(ContactImportChunk))
        ).scalar_one()
    assert (stored, chunks) == (0, 0)


async def test_job_reruns_are_safe(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    result = await imported(client, tenant, settings, CSV_FILE, CSV)
    import_id = uuid.UUID(result["id"])

    # A duplicate job for a finished import does nothing.
    await run_import(lambda: transaction(session_factory), tenant.workspace_id, import_id)
    again = await client.get(f"/v1/contacts/imports/{import_id}", headers=tenant.headers)
    assert again.json() == result

    # A worker died mid-way: the import is still `running`; the next run starts it over.
    async with transaction(session_factory) as session:
        await session.execute(
            update(ContactImport)
            .where(ContactImport.id == import_id)
            .values(status="running", processed_rows=4, created_count=4)
        )
    await run_import(lambda: transaction(session_factory), tenant.workspace_id, import_id)
    rerun = (await client.get(f"/v1/contacts/imports/{import_id}", headers=tenant.headers)).json()
    assert rerun["status"] == "completed"
    assert rerun["processed_rows"] == 8
    assert (rerun["created_count"], rerun["unchanged_count"], rerun["failed_count"]) == (0, 3, 5)
    assert len(await all_errors(client, tenant, result["id"])) == 5


async def test_cr_only_and_mixed_line_endings_parse(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """Old Mac exports end lines with a lone CR; hand-merged files mix CR, LF and CRLF (both
    failed the whole import with "An internal error"). A quoted field keeps its break."""
    cr_only = 'email,attributes.note\ral@cr.example,"one\rtwo"\r\rbe@cr.example,x\r'
    result = await imported(client, tenant, settings, cr_only, CSV)
    assert (result["status"], result["created_count"], result["failed_count"]) == (
        "completed",
        2,
        0,
    )
    mixed = "email,attributes.plan\r\nca@mix.example,a\rcb@mix.example,b\ncc@mix.example,c\r\n"
    result = await imported(client, tenant, settings, mixed, CSV)
    assert (result["status"], result["created_count"]) == ("completed", 3)
    ndjson = '{"email": "da@nd.example"}\r{"email": "db@nd.example"}\r\n{"email": 1}\n'
    result = await imported(client, tenant, settings, ndjson, NDJSON)
    assert (result["created_count"], result["failed_count"]) == (2, 1)
    errors = await all_errors(client, tenant, result["id"])
    assert [error["row_number"] for error in errors] == [3]  # lines count CR as a break
    contacts = await contacts_by_email(client, tenant)
    assert contacts["al@cr.example"]["attributes"] == {"note": "one\rtwo"}
    assert contacts["cb@mix.example"]["attributes"] == {"plan": "b"}


async def test_a_header_broken_by_a_stray_cr_fails_with_a_reason(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    result = await imported(client, tenant, settings, 'email,"attributes.a\r', CSV)
    assert result["status"] == "failed"
    assert "header" in result["error"]
    assert "internal" not in result["error"].lower()
