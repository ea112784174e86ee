"""The in-transaction hook proposed for `app/core/deps.py::db_session`: exercised on a small
app whose session dependency is exactly the proposed one, with the fallback middleware in
front (it must not add a second row)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.middleware import KeyUseAuditMiddleware, record_key_use
from app.audit.models import AuditEvent
from app.core.auth import Principal
from app.core.db import transaction
from app.core.deps import Caller
from app.core.errors import Conflict, install_error_handlers
from app.core.state import AppState, app_state
from tests.fixtures.tenants import Tenant


async def db_session(request: Request, response: Response) -> AsyncIterator[AsyncSession]:
    """`app.core.deps.db_session` plus the proposed line (and its `response` parameter)."""
    state = app_state(request)
    async with transaction(state.session_factory, state.queue) as session:
        yield session
        await record_key_use(session, request, response)


HookedSession = Annotated[AsyncSession, Depends(db_session, scope="function")]
Writer = Annotated[Principal, Caller("templates", "write")]


def _app(state: AppState, *, fallback: bool) -> FastAPI:
    hooked = FastAPI()
    hooked.state.herald = state
    install_error_handlers(hooked)
    if fallback:
        hooked.add_middleware(KeyUseAuditMiddleware)

    @hooked.post("/v1/widgets/{widget_id}/spin", status_code=202)
    async def spin(
        widget_id: uuid.UUID,
        session: HookedSession,
        principal: Writer,
        fail: bool = False,
    ) -> dict[str, str]:
        if fail:
            raise Conflict("The widget is already spinning.")
        return {"status": "spinning"}

    return hooked


async def _rows(state: AppState) -> list[AuditEvent]:
    async with transaction(state.session_factory) as session:
        return list((await session.scalars(select(AuditEvent))).all())


@pytest.mark.parametrize("fallback", [False, True])
async def test_hook_records_once_in_the_request_transaction(
    state: AppState, tenant: Tenant, fallback: bool
) -> None:
    """Without the middleware the row is the hook's; with it, still exactly one row."""
    widget = uuid.uuid4()
    transport = httpx.ASGITransport(app=_app(state, fallback=fallback))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        ok = await http.post(f"/v1/widgets/{widget}/spin", headers=tenant.headers)
        refused = await http.post(
            f"/v1/widgets/{widget}/spin", params={"fail": "true"}, headers=tenant.headers
        )
    assert ok.status_code == 202
    assert refused.status_code == 409

    (row,) = await _rows(state)
    assert (row.action, row.entity_type, row.entity_id) == ("api.post", "widget", widget)
    assert row.data == {
        "path": f"/v1/widgets/{widget}/spin",
        "route": "/v1/widgets/{widget_id}/spin",
        "status": 202,
    }
    async with transaction(state.session_factory) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 1
