"""Privilege ceilings: nobody grants more than they hold (docs/api.md, "Privilege ceilings").

Two ladders are checked. Scopes: a key creates (or revokes) only keys whose every scope is
within its own (`Principal.can_grant`). Base roles, `viewer` < `editor` < `admin` < `owner`:
a caller acts with the role of the member its key is bound to, re-read from the database on
each check (a demotion takes effect at once). A key bound to no member is a service
credential and ranks as `admin`: it never acts as an owner, and only a caller of `admin` rank
or above may create one (otherwise an editor could mint an unbound key to outrank itself).

The last owner of a workspace is protected from everyone, themselves included: they cannot be
demoted or removed, and their last workspace-wide `admin` key cannot be revoked (409
`last-owner`). Ownership moves only through `POST /v1/members/{id}/transfer-ownership` (or an
owner promoting a member to owner).

Every change to members or keys first locks the workspace's owners (`serialise`), so such
changes run one at a time per workspace and never check a ceiling against a stale role.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict, Forbidden
from app.workspaces.models import ApiKey, Member
from app.workspaces.repository import ApiKeyRepository, MemberRepository

ROLE_RANK: dict[str, int] = {"viewer": 1, "editor": 2, "admin": 3, "owner": 4}
OWNER = "owner"
UNBOUND_RANK_ROLE = "admin"  # the rank of a key bound to no member


class PrivilegeCeiling(Forbidden):
    """The caller tried to grant, change or take away more than it holds."""

    slug, title = "privilege-ceiling", "Privilege ceiling"


class LastOwner(Conflict):
    """The change would leave the workspace without an owner (or its owner without a key)."""

    slug, title = "last-owner", "Last owner"


def rank(role: str) -> int:
    return ROLE_RANK.get(role, 0)


async def caller_role(session: AsyncSession, principal: Principal) -> str:
    """The base role the caller acts with (see the module docstring)."""
    if principal.member_id is None:
        return UNBOUND_RANK_ROLE
    member = await MemberRepository(session, principal.workspace_id).get(principal.member_id)
    # A key whose member is gone is revoked with them; until then it holds nothing.
    return member.role if member is not None else "none"


def _require_role(actor: str, role: str, doing: str) -> None:
    if role == OWNER and actor != OWNER:
        raise PrivilegeCeiling(f"Only an owner can {doing} an owner.")
    if rank(role) > rank(actor):
        raise PrivilegeCeiling(
            f"Your key acts as `{actor}`; it cannot {doing} a member with role `{role}`."
        )


def check_role_grant(actor: str, role: str) -> None:
    """The caller may give `role` (on create or update)."""
    _require_role(actor, role, "create or promote to" if role == OWNER else "grant")


def check_member_change(actor: str, member: Member) -> None:
    """The caller may edit or remove `member` (no one above the caller)."""
    _require_role(actor, member.role, "change or remove")


def check_scopes(principal: Principal, scopes: Iterable[str], doing: str) -> None:
    beyond = sorted(scope for scope in scopes if not principal.can_grant(scope))
    if beyond:
        raise PrivilegeCeiling(
            f"Your key cannot {doing} a key with scopes beyond its own: {', '.join(beyond)}."
        )


async def check_key_binding(
    session: AsyncSession, principal: Principal, actor: str, member_id: uuid.UUID | None, doing: str
) -> None:
    """A key may be bound (or, for revocation, belong) only to a member no more privileged
    than the caller's own; an unbound key ranks as `admin`."""
    if member_id is None:
        role = UNBOUND_RANK_ROLE
    else:
        member = await MemberRepository(session, principal.workspace_id).get_or_404(member_id)
        role = member.role
    if role == OWNER and actor != OWNER:
        raise PrivilegeCeiling(f"Only an owner can {doing} a key bound to an owner.")
    if rank(role) > rank(actor):
        bound = "bound to no member (ranks as `admin`)" if member_id is None else f"of a `{role}`"
        raise PrivilegeCeiling(f"Your key acts as `{actor}`; it cannot {doing} a key {bound}.")


async def serialise(session: AsyncSession, workspace_id: uuid.UUID) -> list[Member]:
    """Lock the workspace's owners before any change to members or keys, and return them.

    Every such change takes this lock first, so they run one at a time per workspace and each
    reads roles and keys as the previous one committed them: two owners demoting each other
    at once leave one owner, and a role read for a ceiling check cannot be stale. (A
    workspace always has an owner, so there is always a row to lock.)"""
    return await MemberRepository(session, workspace_id).owners_for_update()


def check_not_last_owner(owners: list[Member], doing: str) -> None:
    """Refuse taking the owner role away when only one owner is left (`owners` from
    `serialise`)."""
    if len(owners) <= 1:
        raise LastOwner(
            f"The last owner cannot be {doing}: a workspace keeps at least one owner. Make "
            "another member owner first, or use POST /v1/members/{id}/transfer-ownership."
        )


async def check_not_last_owner_key(session: AsyncSession, key: ApiKey) -> None:
    """Refuse revoking the last live workspace-wide `admin` key held by an owner (after
    `serialise`)."""
    if key.revoked_at is not None or "admin" not in key.scopes or key.member_id is None:
        return
    owners = await MemberRepository(session, key.workspace_id).owners_for_update()
    owner_ids = [owner.id for owner in owners]
    if key.member_id not in owner_ids:
        return
    live = await ApiKeyRepository(session, key.workspace_id).live_admin_keys_of(owner_ids)
    if live <= 1:
        raise LastOwner(
            "This is the last owner's last `admin` key: revoking it would lock the workspace "
            "out of its own administration. Create another admin key for an owner first."
        )
