from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, StringConstraints, field_validator

from app.core.auth import VALID_SCOPES
from app.core.schemas import DocumentedAs, RequestModel, ResponseModel

BaseRole = Literal["owner", "admin", "editor", "viewer"]
ReviewerRole = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$", max_length=64)]
# PostgreSQL text cannot hold NUL (pydantic already refuses unpaired surrogates).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]

_EXAMPLE_TIME = "2026-11-22T09:30:00Z"


UnknownContacts = Literal["create", "reject"]


class EventSettings(ResponseModel):
    """How event ingestion behaves in this workspace."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"unknown_contacts": "create"}]})

    unknown_contacts: UnknownContacts = Field(
        "create",
        description=(
            "An event naming an `external_id` or `email` no contact has: `create` the contact "
            "(default) or `reject` the event."
        ),
    )


class WorkspaceSettings(ResponseModel):
    """Typed workspace settings, stored in `workspaces.settings`; missing keys take defaults."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": {"unknown_contacts": "create"}}]}
    )

    events: EventSettings = Field(default_factory=EventSettings)


class EventSettingsUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"unknown_contacts": "reject"}]})

    unknown_contacts: UnknownContacts | None = None


class WorkspaceSettingsUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"events": {"unknown_contacts": "reject"}}]}
    )

    events: EventSettingsUpdate | None = None


class WorkspaceOut(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6a",
                    "name": "Acme Marketing",
                    "settings": {"events": {"unknown_contacts": "create"}},
                    "created_at": _EXAMPLE_TIME,
                    "updated_at": _EXAMPLE_TIME,
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    settings: WorkspaceSettings
    created_at: datetime
    updated_at: datetime


class WorkspaceUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Acme Growth Team"},
                {"settings": {"events": {"unknown_contacts": "reject"}}},
            ]
        }
    )

    name: Name | None = None
    settings: WorkspaceSettingsUpdate | None = Field(
        None, description="Only the settings given change; the others keep their value."
    )


class MemberCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "dana@acme.example",
                    "name": "Dana Reviewer",
                    "role": "editor",
                    "reviewer_roles": ["brand_lead"],
                }
            ]
        }
    )

    email: EmailStr
    name: Name
    role: BaseRole = "viewer"
    reviewer_roles: list[ReviewerRole] = Field(
        default_factory=list,
        max_length=20,
        description="Free-form roles approvals can name, e.g. `brand_lead`, `compliance`.",
    )

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class MemberUpdate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "admin", "reviewer_roles": ["compliance"]}]}
    )

    name: Name | None = None
    role: BaseRole | None = None
    reviewer_roles: list[ReviewerRole] | None = Field(None, max_length=20)


class MemberOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6b",
                    "email": "dana@acme.example",
                    "name": "Dana Reviewer",
                    "role": "editor",
                    "reviewer_roles": ["brand_lead"],
                    "created_at": _EXAMPLE_TIME,
                    "updated_at": _EXAMPLE_TIME,
                }
            ]
        },
    )

    id: uuid.UUID
    email: str
    name: str
    role: Annotated[str, DocumentedAs(BaseRole)]
    reviewer_roles: list[str]
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "CRM sync", "scopes": ["contacts:write", "events:write"]},
                {
                    "name": "Dana's approvals",
                    "scopes": ["read", "approvals:write"],
                    "member_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6b",
                },
            ]
        }
    )

    name: Name
    scopes: list[str] = Field(
        min_length=1,
        max_length=30,
        description="`read`, `write`, `admin`, or per area such as `contacts:write`.",
    )
    member_id: uuid.UUID | None = Field(
        None, description="Bind the key to a member (needed for approval decisions)."
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - VALID_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        return sorted(set(value))


class ApiKeyOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6c",
                    "name": "CRM sync",
                    "prefix": "hk_Zx81Qa9P",
                    "scopes": ["contacts:write", "events:write"],
                    "member_id": None,
                    "created_at": _EXAMPLE_TIME,
                    "last_used_at": None,
                    "revoked_at": None,
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    scopes: list[str]
    member_id: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6c",
                    "name": "CRM sync",
                    "prefix": "hk_Zx81Qa9P",
                    "scopes": ["contacts:write", "events:write"],
                    "member_id": None,
                    "created_at": _EXAMPLE_TIME,
                    "last_used_at": None,
                    "revoked_at": None,
                    "key": "hk_Zx81Qa9PqT3mV0bq1sPp2cYy6d9WcFv7eK8n5rHjLwA",
                }
            ]
        },
    )

    key: str = Field(description="The secret. Shown only in this response; store it now.")


class OwnershipChange(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"previous_owner_role": "admin", "issue_owner_key": True},
                {"previous_owner_role": "viewer", "issue_owner_key": False},
            ]
        }
    )

    previous_owner_role: Literal["admin", "editor", "viewer"] = Field(
        "admin", description="The base role the calling owner takes once the transfer is done."
    )
    issue_owner_key: bool = Field(
        True,
        description=(
            "Issue a workspace-wide `admin` key bound to the new owner and return it once in "
            "`owner_key`, to hand over (the new owner may hold no key yet)."
        ),
    )


class OwnershipTransferred(ResponseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "owner": {
                        "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6b",
                        "email": "dana@acme.example",
                        "name": "Dana Reviewer",
                        "role": "owner",
                        "reviewer_roles": [],
                        "created_at": _EXAMPLE_TIME,
                        "updated_at": _EXAMPLE_TIME,
                    },
                    "previous_owner": {
                        "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6a",
                        "email": "owner@acme.example",
                        "name": "Olivia Owner",
                        "role": "admin",
                        "reviewer_roles": [],
                        "created_at": _EXAMPLE_TIME,
                        "updated_at": _EXAMPLE_TIME,
                    },
                    "owner_key": {
                        "id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6c",
                        "name": "Owner admin key (dana@acme.example)",
                        "prefix": "hk_Zx81Qa9P",
                        "scopes": ["admin"],
                        "member_id": "0190f3c8-8d2e-7b61-9a55-3f1e2d4c5b6b",
                        "created_at": _EXAMPLE_TIME,
                        "last_used_at": None,
                        "revoked_at": None,
                        "key": "hk_Zx81Qa9PqT3mV0bq1sPp2cYy6d9WcFv7eK8n5rHjLwA",
                    },
                }
            ]
        }
    )

    owner: MemberOut = Field(description="The new owner.")
    previous_owner: MemberOut = Field(description="The caller, now with `previous_owner_role`.")
    owner_key: ApiKeyCreated | None = Field(
        description="The new owner's `admin` key (secret shown only here), or null when "
        "`issue_owner_key` was false."
    )
