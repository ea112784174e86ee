"""Sequences: the draft definition, its validation, publishing immutable versions (with the
templates pinned) and the signing secret of `webhook` steps."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.egress import GuardPolicy
from app.core.errors import Conflict, FieldError, NotFound, Unprocessable
from app.core.etag import check_if_match
from app.core.pagination import PageParams, PageResult
from app.core.usage import UsageOut, find_usage, refuse_if_used
from app.sequences.definition import SequenceDefinition, dump
from app.sequences.models import Sequence, SequenceVersion
from app.sequences.repository import (
    ReferenceLookup,
    SequenceRepository,
    SequenceVersionRepository,
    signing_secrets_by_id,
)
from app.sequences.schemas import SequenceCreate, SequenceUpdate
from app.sequences.validation import parse_definition, refused_destinations, validate

SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


# -- CRUD ------------------------------------------------------------------------------------


async def create_sequence(
    session: AsyncSession, workspace_id: uuid.UUID, body: SequenceCreate, destinations: GuardPolicy
) -> Sequence:
    await _refuse_destinations(body.definition, destinations)
    sequence = Sequence(
        name=body.name,
        description=body.description,
        definition=dump(body.definition),
        version=1,
        signing_secret=new_signing_secret(),
    )
    SequenceRepository(session, workspace_id).add(sequence)
    await session.flush()
    return sequence


async def list_sequences(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, name: str | None
) -> PageResult[Sequence]:
    conditions = [Sequence.name.icontains(name, autoescape=True)] if name else []
    return await SequenceRepository(session, workspace_id).page(params, *conditions)


async def get_sequence(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID
) -> Sequence:
    return await SequenceRepository(session, workspace_id).get_or_404(sequence_id)


async def update_sequence(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    body: SequenceUpdate,
    if_match: str | None,
    *,
    destinations: GuardPolicy,
) -> Sequence:
    sequence = await SequenceRepository(session, workspace_id).for_edit_or_404(sequence_id)
    check_if_match(if_match, sequence.id, sequence.version)
    given = body.model_fields_set
    nulls = [
        field for field in ("name", "definition") if field in given and getattr(body, field) is None
    ]
    if nulls:
        raise Unprocessable(
            f"The request has invalid fields: {', '.join(f'body/{f}' for f in nulls)}.",
            errors=[
                FieldError(
                    pointer=f"/{field}",
                    location="body",
                    message=f"`{field}` cannot be null.",
                    code="missing",
                )
                for field in nulls
            ],
        )
    changed = False
    if body.name is not None and body.name != sequence.name:
        sequence.name, changed = body.name, True
    if "description" in given and body.description != sequence.description:
        sequence.description, changed = body.description, True
    if body.definition is not None:
        await _refuse_destinations(body.definition, destinations)
        definition = dump(body.definition)
        if definition != sequence.definition:
            sequence.definition, changed = definition, True
    if changed:
        sequence.version += 1
        sequence.updated_at = utcnow()
    await session.flush()
    return sequence


async def usage(session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID) -> UsageOut:
    await get_sequence(session, workspace_id, sequence_id)
    return await find_usage(session, workspace_id, "sequence", sequence_id)


async def delete_sequence(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, if_match: str | None
) -> None:
    repository = SequenceRepository(session, workspace_id)
    # The row lock also orders this against enrollments being inserted (their foreign key
    # takes a KEY SHARE lock on the sequence), so none can start behind the check.
    sequence = await repository.locked_or_404(sequence_id)
    check_if_match(if_match, sequence.id, sequence.version)
    if await repository.has_live_enrollments(sequence.id):
        raise Conflict(
            f"Sequence {sequence.id} has active or waiting enrollments; exit them (or let them "
            "finish) before deleting it."
        )
    await refuse_if_used(session, workspace_id, "sequence", sequence.id)
    await session.delete(sequence)
    await session.flush()


async def rotate_signing_secret(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID
) -> Sequence:
    sequence = await SequenceRepository(session, workspace_id).for_edit_or_404(sequence_id)
    sequence.signing_secret = new_signing_secret()
    await session.flush()
    return sequence


async def signing_secrets(
    session: AsyncSession, sequence_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The current secrets of these sequences, for delivery's `webhook` sends (registered
    as the channels' signing secret source by app/wiring.py)."""
    return await signing_secrets_by_id(session, sequence_ids)


# -- validation and publishing ---------------------------------------------------------------


async def validation_errors(
    session: AsyncSession, workspace_id: uuid.UUID, sequence: Sequence, destinations: GuardPolicy
) -> list[FieldError]:
    """Every problem that would stop the draft from being published."""
    parsed = parse_definition(sequence.definition)
    if isinstance(parsed, list):
        return parsed
    return await validate(session, workspace_id, parsed, destinations)


async def check_draft(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    destinations: GuardPolicy,
) -> list[FieldError]:
    sequence = await get_sequence(session, workspace_id, sequence_id)
    return await validation_errors(session, workspace_id, sequence, destinations)


async def _refuse_destinations(definition: SequenceDefinition, destinations: GuardPolicy) -> None:
    """A draft naming a webhook URL the SSRF guard refuses is not saved (422 per step)."""
    errors = await refused_destinations(definition, destinations)
    if errors:
        raise Unprocessable(
            f"{len(errors)} webhook step(s) name a URL Herald may not call; see `errors`.",
            errors=errors,
        )


async def publish(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    sequence_id: uuid.UUID,
    if_match: str | None,
    destinations: GuardPolicy,
) -> SequenceVersion:
    sequence = await SequenceRepository(session, workspace_id).for_edit_or_404(sequence_id)
    check_if_match(if_match, sequence.id, sequence.version)
    parsed = parse_definition(sequence.definition)
    if isinstance(parsed, list):
        raise _unpublishable(parsed)
    errors = await validate(session, workspace_id, parsed, destinations)
    if errors:
        raise _unpublishable(errors)
    definition = await pinned_definition(
        ReferenceLookup(session, workspace_id), dump(parsed.normalised())
    )
    versions = SequenceVersionRepository(session, workspace_id)
    if sequence.published_version is not None:
        latest = await versions.by_number(sequence.id, sequence.published_version)
        if latest is not None and latest.definition == definition:
            raise Conflict(
                f"The draft is unchanged since version {latest.number} (and so are the "
                "template versions it pins); nothing to publish."
            )
    number = (sequence.published_version or 0) + 1
    version = SequenceVersion(
        sequence_id=sequence.id, number=number, definition=definition, published_at=utcnow()
    )
    versions.add(version)
    sequence.published_version = number
    await session.flush()
    return version


def _unpublishable(errors: list[FieldError]) -> Unprocessable:
    return Unprocessable(
        f"The draft has {len(errors)} problem(s) and cannot be published; see `errors` (the "
        "same list as GET /v1/sequences/{id}/validation).",
        errors=errors,
    )


async def pinned_definition(lookup: ReferenceLookup, definition: dict[str, Any]) -> dict[str, Any]:
    """Each `template_id` gets the template's current published version id beside it, so an
    enrollment sends exactly what was published with this version."""
    holders: list[dict[str, Any]] = []
    for step in definition["steps"]:
        if step["type"] in ("send", "webhook") and "template_id" in step:
            holders.append(step)
        holders.extend(step.get("variants", []) if step["type"] == "send" else [])
    ids = {uuid.UUID(holder["template_id"]) for holder in holders}
    found = await lookup.templates_by_id(ids, lock=True)
    for holder in holders:
        _, version_id = found.get(uuid.UUID(holder["template_id"]), (None, None))
        if version_id is None:  # deleted since `validate` read it (it cannot be unpublished)
            raise Conflict(
                f"Template {holder['template_id']} was deleted while publishing; check "
                "GET /v1/sequences/{id}/validation and retry."
            )
        holder["template_version_id"] = str(version_id)
    return definition


async def list_versions(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, params: PageParams
) -> PageResult[SequenceVersion]:
    await get_sequence(session, workspace_id, sequence_id)
    return await SequenceVersionRepository(session, workspace_id).of_parent(sequence_id, params)


async def get_version(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, number: int
) -> SequenceVersion:
    await get_sequence(session, workspace_id, sequence_id)
    version = await SequenceVersionRepository(session, workspace_id).by_number(sequence_id, number)
    if version is None:
        raise NotFound(f"Sequence {sequence_id} has no published version {number}.")
    return version


async def version_for_enrollment(
    session: AsyncSession, workspace_id: uuid.UUID, sequence_id: uuid.UUID, number: int | None
) -> SequenceVersion:
    """The version an enrollment runs: `number`, or the latest published when None.

    404 for an unknown sequence; 422 when it has no published version (or not `number`)."""
    sequence = await get_sequence(session, workspace_id, sequence_id)
    wanted = sequence.published_version if number is None else number
    if wanted is None:
        raise Unprocessable(
            f"Sequence {sequence_id} has no published version; publish it before enrolling."
        )
    version = await SequenceVersionRepository(session, workspace_id).by_number(sequence_id, wanted)
    if version is None:
        raise Unprocessable(f"Sequence {sequence_id} has no published version {wanted}.")
    return version
