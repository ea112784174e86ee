"""FastAPI dependencies shared by every router: the request transaction and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Level, Principal
from app.core.clock import utcnow
from app.core.db import transaction
from app.core.errors import Forbidden, TooManyRequests, Unauthorized
from app.core.principals import admit, authenticate
from app.core.ratelimit import STATE_KEY as RATE_LIMIT_STATE
from app.core.ratelimit import RateLimitStatus, count_and_status
from app.core.state import app_state

# Declares the security scheme in OpenAPI; the header itself is parsed below so that each
# failure gets its own precise 401.
bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="hk_...",
    description="An API key: `Authorization: Bearer hk_...`. Keys are created by admins.",
)


# Run after a successful endpoint, inside its transaction (e.g. audit of key use, so the
# audit row commits or rolls back with the change). Registered by domains at app creation.
SuccessHook = Callable[[AsyncSession, Request, Response], Awaitable[None]]
SUCCESS_HOOKS: list[SuccessHook] = []


async def db_session(request: Request, response: Response) -> AsyncIterator[AsyncSession]:
    state = app_state(request)
    async with transaction(state.session_factory, state.queue) as session:
        yield session
        for hook in SUCCESS_HOOKS:
            await hook(session, request, response)


# scope="function": the transaction commits before the response is sent.
Session = Annotated[AsyncSession, Depends(db_session, scope="function")]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Missing `Authorization: Bearer <api key>` header.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be `Bearer <api key>`.")
    return token.strip()


async def resolve_principal(request: Request, session: AsyncSession | None = None) -> Principal:
    """Authenticate once per request (the idempotency layer may already have done it).

    With `session`, a database lookup rides in the request's own transaction (one pool
    checkout per request instead of two)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    state = app_state(request)
    token = bearer_token(request)
    if session is not None:
        principal = await authenticate(state.principals, state.redis, session, token)
    else:
        async with transaction(state.session_factory) as own_session:
            principal = await authenticate(state.principals, state.redis, own_session, token)
    request.state.principal = principal
    return principal


async def _admit(request: Request, session: AsyncSession) -> tuple[Principal, RateLimitStatus]:
    """The caller and its rate-limit window (with the seconds to wait when over the limit):
    one Redis round trip and no SQL for a key seen recently (app/core/principals.py)."""
    state = app_state(request)
    limit = state.settings.http.rate_limit_per_minute
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached, await count_and_status(state.redis, cached.api_key_id, limit, utcnow())
    admission = await admit(state.principals, state.redis, session, bearer_token(request), limit)
    request.state.principal = admission.principal
    return admission.principal, admission.rate


def require(area: str, level: Level) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(
        request: Request,
        session: Session,
        _: Annotated[object, Depends(bearer_scheme)] = None,
    ) -> Principal:
        principal, rate = await _admit(request, session)
        # Told on the response by RateLimitHeadersMiddleware (app/core/ratelimit.py).
        setattr(request.state, RATE_LIMIT_STATE, rate)
        if not principal.allows(area, level):
            raise Forbidden(
                f"This operation needs the `{level}` or `{area}:{level}` scope (or higher)."
            )
        if rate.retry_after is not None:
            raise TooManyRequests(
                "This API key is over its request rate limit.", retry_after=rate.retry_after
            )
        return principal

    return dependency


def Caller(area: str, level: Level) -> Any:  # noqa: N802 - reads as a type in signatures
    """`principal: Caller("members", "read")` authenticates, checks scope and rate."""
    return Depends(require(area, level))
