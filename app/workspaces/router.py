from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response, status

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.idempotency import shown_once
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.pagination import PageParams, page_params
from app.core.principals import credentials_changed
from app.core.schemas import Page
from app.core.state import app_state
from app.workspaces import service
from app.workspaces.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    MemberCreate,
    MemberOut,
    MemberUpdate,
    OwnershipChange,
    OwnershipTransferred,
    WorkspaceOut,
    WorkspaceUpdate,
)

router = APIRouter(prefix="/v1")
Paging = Annotated[PageParams, Depends(page_params)]


@router.get(
    "/workspace",
    tags=["Workspace"],
    summary="Get the caller's workspace",
    description="The workspace the API key belongs to. The workspace always comes from the key.",
    response_model=WorkspaceOut,
    responses=problem_responses(*COMMON_ERRORS),
)
async def get_workspace(
    session: Session, principal: Annotated[Principal, Caller("workspace", "read")]
) -> WorkspaceOut:
    workspace = await service.get_workspace(session, principal.workspace_id)
    return WorkspaceOut.model_validate(workspace, from_attributes=True)


@router.patch(
    "/workspace",
    tags=["Workspace"],
    summary="Rename the workspace or change its settings",
    description=(
        "Change the name and/or settings (e.g. `settings.events.unknown_contacts`). Omitted "
        "fields and settings keep their value. Needs the `admin` scope."
    ),
    response_model=WorkspaceOut,
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def update_workspace(
    body: WorkspaceUpdate,
    session: Session,
    principal: Annotated[Principal, Caller("workspace", "admin")],
) -> WorkspaceOut:
    workspace = await service.update_workspace(session, principal.workspace_id, body)
    return WorkspaceOut.model_validate(workspace, from_attributes=True)


@router.get(
    "/members",
    tags=["Members"],
    summary="List members",
    description="People in the workspace with their base role and reviewer roles, newest first.",
    response_model=Page[MemberOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_members(
    session: Session,
    principal: Annotated[Principal, Caller("members", "read")],
    paging: Paging,
) -> Page[MemberOut]:
    page = await service.list_members(session, principal.workspace_id, paging)
    return Page[MemberOut](
        data=[MemberOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/members",
    tags=["Members"],
    summary="Add a member",
    description=(
        "Add a person with a base role (`owner`, `admin`, `editor`, `viewer`) and optional "
        "free-form reviewer roles that approval policies can name. Email is unique per "
        "workspace. Ceiling: the role cannot be above the role the caller's key acts with "
        "(its member's, `admin` for an unbound key); only an owner adds an owner (403 "
        "`privilege-ceiling`)."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    responses=problem_responses(*COMMON_ERRORS, 409, 422),
)
async def create_member(
    body: MemberCreate,
    session: Session,
    principal: Annotated[Principal, Caller("members", "admin")],
) -> MemberOut:
    member = await service.create_member(session, principal, body)
    return MemberOut.model_validate(member)


@router.get(
    "/members/{member_id}",
    tags=["Members"],
    summary="Get a member",
    description="One member of the caller's workspace; other workspaces' ids answer 404.",
    response_model=MemberOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_member(
    member_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("members", "read")],
) -> MemberOut:
    return MemberOut.model_validate(
        await service.get_member(session, principal.workspace_id, member_id)
    )


@router.patch(
    "/members/{member_id}",
    tags=["Members"],
    summary="Update a member",
    description=(
        "Change a member's name, base role or reviewer roles. Omitted fields stay. Ceiling: "
        "the caller edits only members at or below its own role and grants no role above it; "
        "only an owner promotes or demotes an owner (403 `privilege-ceiling`); the last owner "
        "cannot be demoted (409 `last-owner`)."
    ),
    response_model=MemberOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def update_member(
    member_id: uuid.UUID,
    body: MemberUpdate,
    session: Session,
    principal: Annotated[Principal, Caller("members", "admin")],
) -> MemberOut:
    member = await service.update_member(session, principal, member_id, body)
    return MemberOut.model_validate(member)


@router.delete(
    "/members/{member_id}",
    tags=["Members"],
    summary="Remove a member",
    description=(
        "Remove a member and revoke every API key bound to them. Only members at or below "
        "the caller's role; owners only by an owner (403 `privilege-ceiling`); the last owner "
        "stays (409 `last-owner`)."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def delete_member(
    member_id: uuid.UUID,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Caller("members", "admin")],
) -> Response:
    await service.delete_member(session, principal, member_id)
    credentials_changed(session, app_state(request).redis)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/members/{member_id}/transfer-ownership",
    tags=["Members"],
    summary="Transfer ownership to a member",
    description=(
        "The calling owner makes `member_id` an owner and takes `previous_owner_role` "
        "(default `admin`), in one step. Needs `members:admin` and a key bound to an owner "
        "(403 `privilege-ceiling` otherwise). With `issue_owner_key` (default true) the "
        "response carries a new workspace-wide `admin` key bound to the new owner, shown "
        "once, to hand over. Keys bound to the previous owner keep their scopes: revoke them "
        "if they should not. 409 when the member is already an owner."
    ),
    response_model=OwnershipTransferred,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def transfer_ownership(
    member_id: uuid.UUID,
    session: Session,
    response: Response,
    principal: Annotated[Principal, Caller("members", "admin")],
    body: Annotated[
        OwnershipChange | None,
        Body(examples=[{"previous_owner_role": "admin", "issue_owner_key": True}]),
    ] = None,
) -> OwnershipTransferred:
    done = await service.transfer_ownership(
        session, principal, member_id, body or OwnershipChange()
    )
    owner_key = None
    if done.key is not None:
        shown_once(response)
        out = ApiKeyOut.model_validate(done.key.api_key)
        owner_key = ApiKeyCreated(**out.model_dump(), key=done.key.token)
    return OwnershipTransferred(
        owner=MemberOut.model_validate(done.owner),
        previous_owner=MemberOut.model_validate(done.previous_owner),
        owner_key=owner_key,
    )


@router.get(
    "/api-keys",
    tags=["API keys"],
    summary="List API keys",
    description="Keys of the workspace, revoked ones included. Secrets are never shown again.",
    response_model=Page[ApiKeyOut],
    responses=problem_responses(*COMMON_ERRORS, 422),
)
async def list_api_keys(
    session: Session,
    principal: Annotated[Principal, Caller("api_keys", "admin")],
    paging: Paging,
) -> Page[ApiKeyOut]:
    page = await service.list_keys(session, principal.workspace_id, paging)
    return Page[ApiKeyOut](
        data=[ApiKeyOut.model_validate(k) for k in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/api-keys",
    tags=["API keys"],
    summary="Create an API key",
    description=(
        "Create a key with scopes (`read`, `write`, `admin`, or per area like "
        "`contacts:write`), optionally bound to a member. The secret `key` is in this "
        "response only; Herald stores a hash. Ceiling (403 `privilege-ceiling`): every scope "
        "must be within the caller's own (a workspace-wide `write`/`admin` only from a "
        "workspace-wide scope as high), and the member it is bound to cannot rank above the "
        "caller's member (an unbound key ranks as `admin`)."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def create_api_key(
    body: ApiKeyCreate,
    session: Session,
    response: Response,
    principal: Annotated[Principal, Caller("api_keys", "admin")],
) -> ApiKeyCreated:
    issued = await service.create_key(session, principal, body)
    shown_once(response)
    out = ApiKeyOut.model_validate(issued.api_key)
    return ApiKeyCreated(**out.model_dump(), key=issued.token)


@router.get(
    "/api-keys/{key_id}",
    tags=["API keys"],
    summary="Get an API key",
    description="One key's metadata: prefix, scopes, binding, last use, revocation.",
    response_model=ApiKeyOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def get_api_key(
    key_id: uuid.UUID,
    session: Session,
    principal: Annotated[Principal, Caller("api_keys", "admin")],
) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.get_key(session, principal.workspace_id, key_id))


@router.delete(
    "/api-keys/{key_id}",
    tags=["API keys"],
    summary="Revoke an API key",
    description=(
        "Revoke a key; the next request made with it answers 401. Repeating is harmless. A "
        "caller revokes its own key or keys it could have created (403 `privilege-ceiling`), "
        "never the last owner's last `admin` key (409 `last-owner`)."
    ),
    response_model=ApiKeyOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 409, 422),
)
async def revoke_api_key(
    key_id: uuid.UUID,
    request: Request,
    session: Session,
    principal: Annotated[Principal, Caller("api_keys", "admin")],
) -> ApiKeyOut:
    key = await service.revoke_key(session, principal, key_id)
    credentials_changed(session, app_state(request).redis)
    return ApiKeyOut.model_validate(key)
