"""Administrative operations behind the CLI (each one transaction on its own engine)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import bump_epoch
from app.core.db import create_engine, create_session_factory, transaction
from app.core.pagination import PageParams
from app.workspaces import service
from app.workspaces.schemas import ApiKeyCreate


@asynccontextmanager
async def admin_session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with transaction(create_session_factory(engine)) as session:
            yield session
    finally:
        await engine.dispose()


async def create_workspace(
    database_url: str, name: str, owner_email: str, owner_name: str
) -> service.BootstrappedWorkspace:
    async with admin_session(database_url) as session:
        return await service.create_workspace(session, name, owner_email, owner_name)


async def create_key(
    database_url: str,
    workspace_id: uuid.UUID,
    name: str,
    scopes: list[str],
    member_id: uuid.UUID | None,
) -> str:
    data = ApiKeyCreate(name=name, scopes=scopes, member_id=member_id)
    async with admin_session(database_url) as session:
        return (await service.issue_key(session, workspace_id, data)).token


async def list_keys(database_url: str, workspace_id: uuid.UUID) -> list[str]:
    lines: list[str] = []
    async with admin_session(database_url) as session:
        params = PageParams(limit=200, after_id=None)
        while True:
            page = await service.list_keys(session, workspace_id, params)
            for key in page.items:
                state = "revoked" if key.revoked_at else "active"
                lines.append(
                    f"{key.id}  {key.prefix}...  {state}  {','.join(key.scopes)}  {key.name}"
                )
            if page.next_cursor is None:
                return lines
            params = PageParams(limit=200, after_id=page.items[-1].id)


async def revoke_key(
    database_url: str, redis_url: str | None, workspace_id: uuid.UUID, key_id: uuid.UUID
) -> bool:
    """Revoke, then move the credentials epoch so running API processes drop their cached
    copy (app/core/principals.py). False when Redis was not reachable: processes
    then stop accepting the key within the cache TTL (60 s)."""
    async with admin_session(database_url) as session:
        await service.revoke_key_as_operator(session, workspace_id, key_id)
    if redis_url is None:
        return False
    redis = Redis.from_url(redis_url)
    try:
        await bump_epoch(redis)
    except RedisError:
        return False
    finally:
        await redis.aclose()
    return True


async def ensure_dev_key(database_url: str, saved_key: str | None) -> tuple[str, bool]:
    """First start: create the default workspace and its admin key. Later starts: reuse the
    saved key while it still works, else issue a fresh admin key, bound like the first one to
    the (first) owner member, so the printed key always acts as the owner. Returns
    (key, created)."""
    from app.workspaces.repository import MemberRepository, WorkspaceStore

    async with admin_session(database_url) as session:
        workspace = await WorkspaceStore(session).first()
        if workspace is None:
            created = await service.create_workspace(
                session, "Default workspace", "owner@example.com", "Workspace owner"
            )
            return created.key.token, True
        if saved_key and await service.verify_key(session, saved_key):
            return saved_key, False
        owner = await MemberRepository(session, workspace.id).first_owner()
        issued = await service.issue_key(
            session,
            workspace.id,
            ApiKeyCreate(
                name="herald dev admin key",
                scopes=["admin"],
                member_id=owner.id if owner is not None else None,
            ),
        )
        return issued.token, True


async def reencrypt_secrets(database_url: str) -> dict[str, int]:
    """Re-encrypt every stored secret under the first key of `HERALD_SECURITY__ENCRYPTION_KEYS`
    (one transaction: all or nothing). Returns the rows rewritten per `table.column`."""
    from app.core import encryption
    from app.models import Base

    ring = encryption.keyring()
    engine = create_engine(database_url, pool_size=1)
    counts: dict[str, int] = {}
    try:
        async with engine.begin() as connection:
            for table, column in encryption.encrypted_columns(Base.metadata):
                counts[f"{table}.{column}"] = await connection.run_sync(
                    encryption.rewrite_column, table, column, ring.rotate
                )
    finally:
        await engine.dispose()
    return counts
