"""`Idempotency-Key` on POST: the first response is stored and replayed for 24 hours.

- Same key, same request: the stored status and body come back with `Idempotent-Replayed: true`.
- Same key, different request (method, path, query or body): 422.
- Same key while the first request is still running: 409.
Keys are per workspace. 5xx responses are not stored, so the client can retry. A request that
died mid-flight (crashed process) frees its key after `in_flight_timeout_seconds`.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import ForeignKey, LargeBinary, String, delete, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import encryption
from app.core.clock import utcnow
from app.core.db import Base, rowcount, transaction
from app.core.errors import AppError, problem_response
from app.core.middleware import header
from app.core.state import app_state

_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
_SPOOL_IN_MEMORY_BYTES = 1_048_576
_REPLAY_CHUNK_BYTES = 65_536
_REPLAYED_HEADERS = {"content-type", "location", "etag", "cache-control"}
REPLAY_HEADER = "idempotent-replayed"


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column()
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)


class IdempotencyRepository:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def claim(
        self, key: str, fingerprint: str, now: datetime, ttl: timedelta, stale_after: timedelta
    ) -> bool:
        """Take the key for this request; False when a live record already holds it."""
        values: dict[str, Any] = {
            "workspace_id": self.workspace_id,
            "key": key,
            "fingerprint": fingerprint,
            "state": "in_flight",
            "created_at": now,
            "expires_at": now + ttl,
            "response_status": None,
            "response_headers": None,
            "response_body": None,
        }
        table = IdempotencyRecord.__table__
        statement = (
            insert(IdempotencyRecord)
            .values(**values)
            .on_conflict_do_update(
                index_elements=["workspace_id", "key"],
                set_={k: v for k, v in values.items() if k not in ("workspace_id", "key")},
                where=(table.c.expires_at < now)
                | ((table.c.state == "in_flight") & (table.c.created_at < now - stale_after)),
            )
            .returning(table.c.key)
        )
        return (await self.session.execute(statement)).first() is not None

    async def get(self, key: str) -> IdempotencyRecord | None:
        result = await self.session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == self.workspace_id, IdempotencyRecord.key == key
            )
        )
        return result.scalar_one_or_none()

    async def complete(self, key: str, status: int, headers: dict[str, str], body: bytes) -> None:
        await self.session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.workspace_id == self.workspace_id, IdempotencyRecord.key == key
            )
            .values(
                state="completed",
                response_status=status,
                response_headers=headers,
                response_body=body,
            )
        )

    async def release(self, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == self.workspace_id, IdempotencyRecord.key == key
            )
        )


# A reply that shows a secret once (a new API key, a webhook or sequence signing secret)
# says `Cache-Control: no-store`; the stored copy kept for replays is then sealed with the
# keys of HERALD_SECURITY__ENCRYPTION_KEYS, like every secret at rest (docs/api.md).
SHOWN_ONCE = "no-store"
_SEALED = b"herald-sealed:v1:"


def shown_once(response: Response) -> None:
    """Mark a reply that carries a secret shown only here: no cache keeps it, and the
    idempotency store keeps it encrypted."""
    response.headers["Cache-Control"] = SHOWN_ONCE


def _stored_body(headers: dict[str, str], body: bytes) -> bytes:
    cache_control = {k.lower(): v for k, v in headers.items()}.get("cache-control", "")
    if SHOWN_ONCE not in cache_control:
        return body
    return _SEALED + encryption.encrypt(body.decode()).encode()


def _replayed_body(stored: bytes | None) -> bytes:
    if stored is None:
        return b""
    if stored.startswith(_SEALED):
        return encryption.decrypt(stored[len(_SEALED) :].decode()).encode()
    return stored


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Housekeeping across all workspaces (run by the worker)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now)
    )
    return rowcount(result)


def _fingerprint_start(scope: Scope) -> hashlib._Hash:
    """SHA-256 over method, path and query; the body is fed in as it streams."""
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
        digest.update(part.encode() + b"\0")
    return digest


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not _KEY_PATTERN.match(key):
            response = problem_response(
                400,
                "`Idempotency-Key` must be 1-255 visible ASCII characters.",
                slug="bad-idempotency-key",
            )
            await response(scope, receive, send)
            return
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES) as spool:
            request_fingerprint = await _spool_body(scope, receive, spool)
            await self._handle(scope, _replaying(spool, receive), send, key, request_fingerprint)

    async def _handle(
        self, scope: Scope, replay_receive: Receive, send: Send, key: str, request_fingerprint: str
    ) -> None:
        from app.core.deps import resolve_principal

        try:
            principal = await resolve_principal(Request(scope))
        except AppError:
            # Unauthenticated: let the route answer its precise 401/403.
            await self.app(scope, replay_receive, send)
            return

        state = app_state(Request(scope))
        settings = state.settings.idempotency
        async with transaction(state.session_factory) as session:
            store = IdempotencyRepository(session, principal.workspace_id)
            owned = await store.claim(
                key,
                request_fingerprint,
                utcnow(),
                timedelta(hours=settings.ttl_hours),
                timedelta(seconds=settings.in_flight_timeout_seconds),
            )
            existing = None if owned else await store.get(key)
        if not owned:
            await _answer_existing(existing, request_fingerprint, scope, replay_receive, send)
            return
        await self._run_and_record(scope, replay_receive, send, principal.workspace_id, key)

    async def _run_and_record(
        self, scope: Scope, receive: Receive, send: Send, workspace_id: uuid.UUID, key: str
    ) -> None:
        captured: dict[str, Any] = {"status": 500, "headers": {}, "body": bytearray()}

        async def capturing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() in _REPLAYED_HEADERS
                }
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        state = app_state(Request(scope))
        try:
            await self.app(scope, receive, capturing_send)
        except BaseException:
            async with transaction(state.session_factory) as session:
                await IdempotencyRepository(session, workspace_id).release(key)
            raise
        async with transaction(state.session_factory) as session:
            store = IdempotencyRepository(session, workspace_id)
            if captured["status"] >= 500:
                await store.release(key)
            else:
                body = _stored_body(captured["headers"], bytes(captured["body"]))
                await store.complete(key, captured["status"], captured["headers"], body)


async def _answer_existing(
    existing: IdempotencyRecord | None,
    request_fingerprint: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    if existing is not None and existing.fingerprint != request_fingerprint:
        response = problem_response(
            422,
            "This Idempotency-Key was used with a different request; use a new key.",
            slug="idempotency-key-reused",
            title="Idempotency key reused",
        )
    elif existing is None or existing.state != "completed" or existing.response_status is None:
        response = problem_response(
            409,
            "A request with this Idempotency-Key is still in progress; retry shortly.",
            slug="idempotency-key-in-flight",
            title="Request in progress",
            headers={"Retry-After": "1"},
        )
    else:
        await send(
            {
                "type": "http.response.start",
                "status": existing.response_status,
                "headers": [
                    *(
                        (k.encode(), v.encode())
                        for k, v in (existing.response_headers or {}).items()
                    ),
                    (REPLAY_HEADER.encode(), b"true"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _replayed_body(existing.response_body)})
        return
    await response(scope, receive, send)


async def _spool_body(scope: Scope, receive: Receive, spool: IO[bytes]) -> str:
    """Copy the body aside (memory for small bodies, a temp file for uploads) while hashing
    it, so a 50 MiB import with an Idempotency-Key never sits in memory whole."""
    digest = _fingerprint_start(scope)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        digest.update(chunk)
        spool.write(chunk)
        if not message.get("more_body", False):
            break
    spool.seek(0)
    return digest.hexdigest()


def _replaying(spool: IO[bytes], receive: Receive) -> Receive:
    finished = False

    async def replay() -> Message:
        nonlocal finished
        if finished:
            return await receive()
        chunk = spool.read(_REPLAY_CHUNK_BYTES)
        finished = len(chunk) < _REPLAY_CHUNK_BYTES
        return {"type": "http.request", "body": chunk, "more_body": not finished}

    return replay
