"""Workspaces, members and API keys. Stateless; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import auth
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from app.core.pagination import PageParams, PageResult
from app.workspaces import ceilings
from app.workspaces.models import ApiKey, Member, Workspace
from app.workspaces.repository import (
    ApiKeyLookup,
    ApiKeyRepository,
    MemberRepository,
    WorkspaceStore,
)
from app.workspaces.schemas import (
    ApiKeyCreate,
    MemberCreate,
    MemberUpdate,
    OwnershipChange,
    WorkspaceSettings,
    WorkspaceUpdate,
)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    token: str


@dataclass(frozen=True)
class BootstrappedWorkspace:
    workspace: Workspace
    owner: Member
    key: IssuedKey


async def authenticate(session: AsyncSession, token: str) -> auth.Principal:
    if not auth.is_well_formed(token):
        raise Unauthorized("The API key is malformed; expected `Bearer hk_...`.")
    lookup = ApiKeyLookup(session)
    key = await lookup.by_hash(auth.hash_key(token))
    if key is None:
        raise Unauthorized("The API key is not recognised.")
    if key.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    await lookup.touch(key.id, utcnow())
    return auth.Principal(
        workspace_id=key.workspace_id,
        api_key_id=key.id,
        member_id=key.member_id,
        scopes=frozenset(key.scopes),
    )


async def create_workspace(
    session: AsyncSession, name: str, owner_email: str, owner_name: str
) -> BootstrappedWorkspace:
    """A new tenant with its owner and an admin key bound to the owner."""
    workspace = WorkspaceStore(session).add(Workspace(name=name))
    await session.flush()
    owner = MemberRepository(session, workspace.id).add(
        Member(email=owner_email.lower(), name=owner_name, role="owner", reviewer_roles=[])
    )
    await session.flush()
    key = await issue_key(
        session,
        workspace.id,
        ApiKeyCreate(name="Owner admin key", scopes=["admin"], member_id=owner.id),
    )
    return BootstrappedWorkspace(workspace, owner, key)


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    workspace = await WorkspaceStore(session).get(workspace_id)
    if workspace is None:
        raise NotFound("The workspace no longer exists.")
    return workspace


async def update_workspace(
    session: AsyncSession, workspace_id: uuid.UUID, changes: WorkspaceUpdate
) -> Workspace:
    workspace = await get_workspace(session, workspace_id)
    if "name" in changes.model_fields_set:
        if changes.name is None:
            raise Unprocessable("`name` cannot be null.")
        workspace.name = changes.name
    if changes.settings is not None:
        current = WorkspaceSettings.model_validate(workspace.settings or {}).model_dump()
        for section, values in changes.settings.model_dump(exclude_none=True).items():
            current[section].update(values)
        # A new dict (not an in-place edit) so SQLAlchemy sees the JSONB change.
        workspace.settings = WorkspaceSettings.model_validate(current).model_dump()
    await session.flush()
    return workspace


async def get_settings(session: AsyncSession, workspace_id: uuid.UUID) -> WorkspaceSettings:
    """The workspace's typed settings (defaults for anything never set)."""
    settings = await WorkspaceStore(session).settings_of(workspace_id)
    return WorkspaceSettings.model_validate(settings or {})


async def list_members(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams
) -> PageResult[Member]:
    return await MemberRepository(session, workspace_id).page(params)


async def get_member(
    session: AsyncSession, workspace_id: uuid.UUID, member_id: uuid.UUID
) -> Member:
    return await MemberRepository(session, workspace_id).get_or_404(member_id)


async def create_member(
    session: AsyncSession, principal: auth.Principal, data: MemberCreate
) -> Member:
    """Add a member with a role no higher than the caller's (owners only by an owner)."""
    await ceilings.serialise(session, principal.workspace_id)
    ceilings.check_role_grant(await ceilings.caller_role(session, principal), data.role)
    return await insert_member(session, principal.workspace_id, data)


async def insert_member(
    session: AsyncSession, workspace_id: uuid.UUID, data: MemberCreate
) -> Member:
    """Add a member with no ceiling check (the operator's tools and `create_member`)."""
    members = MemberRepository(session, workspace_id)
    if await members.by_email(data.email) is not None:
        raise Conflict(f"A member with email {data.email} already exists.")
    member = members.add(Member(**data.model_dump()))
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"A member with email {data.email} already exists.") from exc
    return member


async def update_member(
    session: AsyncSession, principal: auth.Principal, member_id: uuid.UUID, changes: MemberUpdate
) -> Member:
    """Edit a member the caller outranks or equals; the last owner keeps the owner role."""
    owners = await ceilings.serialise(session, principal.workspace_id)
    member = await get_member(session, principal.workspace_id, member_id)
    actor = await ceilings.caller_role(session, principal)
    ceilings.check_member_change(actor, member)
    values = changes.model_dump(exclude_unset=True)
    for field, value in values.items():
        if value is None:
            raise Unprocessable(f"`{field}` cannot be null.")
    role = values.get("role", member.role)
    ceilings.check_role_grant(actor, role)
    if member.role == ceilings.OWNER and role != ceilings.OWNER:
        ceilings.check_not_last_owner(owners, "demoted")
    for field, value in values.items():
        setattr(member, field, value)
    await session.flush()
    return member


async def delete_member(
    session: AsyncSession, principal: auth.Principal, member_id: uuid.UUID
) -> None:
    """Removing a member also revokes the keys bound to them. Owners are removed only by an
    owner, and never the last one."""
    owners = await ceilings.serialise(session, principal.workspace_id)
    member = await MemberRepository(session, principal.workspace_id).get_or_404(member_id)
    ceilings.check_member_change(await ceilings.caller_role(session, principal), member)
    if member.role == ceilings.OWNER:
        ceilings.check_not_last_owner(owners, "removed")
    await ApiKeyRepository(session, principal.workspace_id).revoke_for_member(member.id, utcnow())
    await session.delete(member)
    await session.flush()


@dataclass(frozen=True)
class OwnershipTransfer:
    owner: Member
    previous_owner: Member
    key: IssuedKey | None


async def transfer_ownership(
    session: AsyncSession, principal: auth.Principal, member_id: uuid.UUID, data: OwnershipChange
) -> OwnershipTransfer:
    """The calling owner hands the owner role to `member_id` and takes `data.previous_owner_role`
    in one transaction; optionally a new `admin` key bound to the new owner is issued."""
    await ceilings.serialise(session, principal.workspace_id)
    members = MemberRepository(session, principal.workspace_id)
    target = await members.get_or_404(member_id)
    if await ceilings.caller_role(session, principal) != ceilings.OWNER:
        raise ceilings.PrivilegeCeiling(
            "Only an owner can transfer ownership, with a key bound to them."
        )
    assert principal.member_id is not None  # an owner role implies a bound key
    caller = await members.get_or_404(principal.member_id)
    if target.id == caller.id:
        raise Conflict("You already own this workspace; name another member to transfer to.")
    if target.role == ceilings.OWNER:
        raise Conflict(
            f"Member {target.id} is already an owner; to step down, PATCH your own role."
        )
    target.role = ceilings.OWNER
    caller.role = data.previous_owner_role
    await session.flush()
    key = None
    if data.issue_owner_key:
        key = await issue_key(
            session,
            principal.workspace_id,
            ApiKeyCreate(
                name=f"Owner admin key ({target.email})", scopes=["admin"], member_id=target.id
            ),
        )
    return OwnershipTransfer(owner=target, previous_owner=caller, key=key)


async def list_keys(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams
) -> PageResult[ApiKey]:
    return await ApiKeyRepository(session, workspace_id).page(params)


async def get_key(session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    return await ApiKeyRepository(session, workspace_id).get_or_404(key_id)


async def create_key(
    session: AsyncSession, principal: auth.Principal, data: ApiKeyCreate
) -> IssuedKey:
    """`POST /v1/api-keys`: a key within the caller's scopes, bound to a member no more
    privileged than the caller's own (ceilings.py)."""
    ceilings.check_scopes(principal, data.scopes, "create")
    await ceilings.serialise(session, principal.workspace_id)
    actor = await ceilings.caller_role(session, principal)
    await ceilings.check_key_binding(session, principal, actor, data.member_id, "create")
    return await issue_key(session, principal.workspace_id, data)


async def issue_key(
    session: AsyncSession, workspace_id: uuid.UUID, data: ApiKeyCreate
) -> IssuedKey:
    """Issue a key with no ceiling check: bootstrap, the operator's CLI, and `create_key`."""
    if data.member_id is not None:
        await MemberRepository(session, workspace_id).get_or_404(data.member_id)
    token = auth.generate_key()
    key = ApiKeyRepository(session, workspace_id).add(
        ApiKey(
            name=data.name,
            prefix=auth.display_prefix(token),
            key_hash=auth.hash_key(token),
            scopes=data.scopes,
            member_id=data.member_id,
            created_at=utcnow(),
        )
    )
    await session.flush()
    return IssuedKey(key, token)


async def revoke_key(session: AsyncSession, principal: auth.Principal, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key the caller could have created (or its own key); never the last owner's
    last `admin` key."""
    await ceilings.serialise(session, principal.workspace_id)
    key = await get_key(session, principal.workspace_id, key_id)
    if key.revoked_at is None and key.id != principal.api_key_id:
        ceilings.check_scopes(principal, key.scopes, "revoke")
        actor = await ceilings.caller_role(session, principal)
        await ceilings.check_key_binding(session, principal, actor, key.member_id, "revoke")
    return await _revoke(session, key)


async def revoke_key_as_operator(
    session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey:
    """`herald keys revoke`: the operator is above the scope ladder, not the last-owner rule."""
    await ceilings.serialise(session, workspace_id)
    return await _revoke(session, await get_key(session, workspace_id, key_id))


async def _revoke(session: AsyncSession, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        await ceilings.check_not_last_owner_key(session, key)
        key.revoked_at = utcnow()
        await session.flush()
    return key


async def verify_key(session: AsyncSession, token: str) -> bool:
    """Whether a stored bootstrap key still works (used by `herald dev` on restart)."""
    try:
        await authenticate(session, token)
    except Unauthorized:
        return False
    return True
