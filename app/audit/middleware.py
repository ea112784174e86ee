"""Key-use auditing: every successful (2xx) POST, PUT, PATCH or DELETE made with an API key
leaves one `api.<method>` audit event naming the entity from the route's path template.

Two ways in, one row per request:
- `record_key_use(session, request, response)` writes the row in the request's own
  transaction (atomic with the change). It is meant to be called from the request `Session`
  dependency just before it commits (see docs/audit.md for the hook).
- `KeyUseAuditMiddleware` writes the row in its own transaction just before the response
  starts, for requests the in-transaction hook did not record (every request, until the hook
  is wired; afterwards only writes that do not use the request `Session`). A crash between
  the change's commit and this write loses the row: that is the price of not reaching the
  change's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.audit.service import Actor, record
from app.core.auth import Principal
from app.core.db import transaction

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Set in the request's scope state once the row exists, so the middleware never adds a second.
RECORDED = "audit_key_use_recorded"
_ENTITY_TYPE_LENGTH = 32  # AuditEvent.entity_type

log = structlog.get_logger("herald.audit")


@dataclass(frozen=True)
class KeyUse:
    action: str
    entity_type: str
    entity_id: uuid.UUID | None
    data: dict[str, Any]


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _singular(collection: str) -> str:
    noun = collection.replace("-", "_")
    if noun.endswith("ies"):
        noun = noun[:-3] + "y"
    elif noun.endswith("s"):
        noun = noun[:-1]
    return noun[:_ENTITY_TYPE_LENGTH] or "api"


def entity_of(
    route_path: str, path_params: Mapping[str, Any], location: str | None
) -> tuple[str, uuid.UUID | None]:
    """The entity a write touched, from its path template: the last `{<type>_id}` parameter
    holding a UUID (`/v1/templates/{template_id}/publish` -> template); without one (a
    create), the first collection names the type and a `Location` of the form
    `/v1/<collection>/<uuid>` names the new id."""
    segments = [s for s in route_path.split("/") if s and s != "v1"]
    for segment in reversed(segments):
        name = segment[1:-1] if segment.startswith("{") and segment.endswith("}") else None
        if name is not None and name.endswith("_id"):
            found = _as_uuid(path_params.get(name))
            if found is not None:
                return name[: -len("_id")][:_ENTITY_TYPE_LENGTH], found
    collection = segments[0] if segments else ""
    entity_id = None
    if location and collection:
        parts = [p for p in urlsplit(location).path.split("/") if p]
        if parts[:-1] == ["v1", collection]:
            entity_id = _as_uuid(parts[-1])
    return _singular(collection), entity_id


def key_use(
    method: str,
    *,
    path: str,
    route_path: str,
    path_params: Mapping[str, Any],
    status: int,
    location: str | None,
) -> KeyUse:
    entity_type, entity_id = entity_of(route_path, path_params, location)
    return KeyUse(
        action=f"api.{method.lower()}",
        entity_type=entity_type,
        entity_id=entity_id,
        data={"path": path, "route": route_path, "status": status},
    )


def _auditable(scope: Scope, status: int) -> tuple[Principal, str] | None:
    """(principal, route template) when this response is a key's successful write."""
    if scope.get("method") not in WRITE_METHODS or not 200 <= status < 300:
        return None
    state = scope.get("state") or {}
    principal = state.get("principal")
    route_path = getattr(scope.get("route"), "path", None)
    if not isinstance(principal, Principal) or not isinstance(route_path, str):
        return None
    if state.get(RECORDED):
        return None
    return principal, route_path


async def _write(
    session: AsyncSession,
    scope: Scope,
    caller: tuple[Principal, str],
    *,
    status: int,
    location: str | None,
) -> None:
    principal, route_path = caller
    use = key_use(
        scope["method"],
        path=scope["path"],
        route_path=route_path,
        path_params=scope.get("path_params") or {},
        status=status,
        location=location,
    )
    await record(
        session,
        principal.workspace_id,
        Actor.of(principal),
        use.action,
        entity_type=use.entity_type,
        entity_id=use.entity_id,
        data=use.data,
    )
    scope.setdefault("state", {})[RECORDED] = True


async def record_key_use(session: AsyncSession, request: Request, response: Response) -> None:
    """In-transaction recording, for the request `Session` dependency after its `yield`
    returned normally (the endpoint succeeded). `response` is FastAPI's sub-response: its
    status when the endpoint set one, else the route's declared status."""
    route = request.scope.get("route")
    status = response.status_code or getattr(route, "status_code", None) or 200
    found = _auditable(request.scope, status)
    if found is not None:
        await _write(
            session, request.scope, found, status=status, location=response.headers.get("location")
        )


class KeyUseAuditMiddleware:
    """Records key writes the in-transaction hook did not, in a transaction of its own,
    before the response starts (so a client that saw the 2xx can already list the row).
    Sits inside the idempotency layer: a replayed response changes nothing and is not
    recorded again."""

    def __init__(
        self, app: ASGIApp, session_factory: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.app = app
        self.session_factory = session_factory

    def _factory(self, scope: Scope) -> async_sessionmaker[AsyncSession]:
        if self.session_factory is not None:
            return self.session_factory
        factory: async_sessionmaker[AsyncSession] = scope["app"].state.herald.session_factory
        return factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_after_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._record(scope, message)
            await send(message)

        await self.app(scope, receive, send_after_recording)

    async def _record(self, scope: Scope, start: Message) -> None:
        status = int(start["status"])
        found = _auditable(scope, status)
        if found is None:
            return
        location = MutableHeaders(raw=list(start.get("headers", []))).get("location")
        try:
            async with transaction(self._factory(scope)) as session:
                await _write(session, scope, found, status=status, location=location)
        except Exception:
            # The change is committed; failing the response now would tell the client it
            # was not. Log loudly instead.
            log.exception("key_use_audit_failed", path=scope.get("path"), status=status)
