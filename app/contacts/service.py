"""Contacts: CRUD and upsert. Stateless; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.models import Contact
from app.contacts.notices import contact_leaving, contacts_changed
from app.contacts.repository import ContactFilters, ContactRepository, UpsertResult, UpsertRow
from app.contacts.schemas import ContactCreate, ContactUpdate, ContactUpsert
from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, NotFound, Unprocessable
from app.core.ids import new_id
from app.core.normalize import normalize_email
from app.core.pagination import PageParams, PageResult


def _taken(field: str, value: str | None) -> Conflict:
    return Conflict(
        f"Another contact already has {field} {value!r}.",
        errors=[
            FieldError(
                pointer=f"/{field}",
                location="body",
                message=f"already used by another contact: {value}",
                code="duplicate",
            )
        ],
    )


async def get_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    """Erased contacts answer 404 like ids that never existed."""
    contact = await ContactRepository(session, workspace_id).get_live(contact_id)
    if contact is None:
        raise NotFound(f"No contact with id {contact_id}.")
    return contact


async def live_contact_id(
    session: AsyncSession, workspace_id: uuid.UUID, key: str, value: uuid.UUID | str
) -> uuid.UUID | None:
    """The live contact identified by `key` ("id", "external_id" or "email", normalised
    here), or None."""
    if key == "email":
        value = normalize_email(str(value))
    return await ContactRepository(session, workspace_id).live_id_by(key, value)


async def list_contacts(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, filters: ContactFilters
) -> PageResult[Contact]:
    return await ContactRepository(session, workspace_id).search(params, filters)


async def create_contact(
    session: AsyncSession, workspace_id: uuid.UUID, data: ContactCreate
) -> Contact:
    contacts = ContactRepository(session, workspace_id)
    taken = await contacts.identity_taken(data.external_id, data.email, None)
    if taken is not None:
        raise _taken(taken, getattr(data, taken))
    now = utcnow()
    values = data.model_dump()
    values["attributes"] = {k: v for k, v in data.attributes.items() if v is not None}
    contact = contacts.add(Contact(**values, created_at=now, updated_at=now))
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict("Another contact already has this external_id or email.") from exc
    await contacts_changed.publish(session, workspace_id, [contact.id])
    return contact


async def update_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID, changes: ContactUpdate
) -> Contact:
    # Locked: read unlocked, a change racing an erasure was written back onto the erased row.
    contact = await ContactRepository(session, workspace_id).get_live(contact_id, lock=True)
    if contact is None:
        raise NotFound(f"No contact with id {contact_id}.")
    fields = changes.model_dump(exclude_unset=True)
    patch = fields.pop("attributes", None)
    for name, value in fields.items():
        setattr(contact, name, value)
    if contact.external_id is None and contact.email is None:
        raise Unprocessable(
            "A contact needs an external_id or an email; this change would remove both.",
            errors=[
                FieldError(
                    pointer=f"/{name}",
                    location="body",
                    message="cannot be null while the other identifier is empty",
                    code="identity_missing",
                )
                for name in ("external_id", "email")
                if name in fields
            ],
        )
    if patch is not None:
        contact.attributes = merge_attributes(contact.attributes, patch)
    if not session.is_modified(contact):
        return contact
    taken = await ContactRepository(session, workspace_id).identity_taken(
        fields.get("external_id"), fields.get("email"), contact.id
    )
    if taken is not None:
        raise _taken(taken, fields[taken])
    contact.updated_at = utcnow()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("Another contact already has this external_id or email.") from exc
    await contacts_changed.publish(session, workspace_id, [contact.id])
    return contact


def merge_attributes(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Shallow merge: keys in the patch replace stored ones; a `None` value removes the key."""
    merged = {**stored, **patch}
    return {key: value for key, value in merged.items() if value is not None}


async def delete_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    """Hard delete (consents, events and memberships cascade). Erasure is a privacy request.

    Memberships are ended first through the segments journal, so each segment's
    `member_count` stays exact and `segment.left` is emitted; the journal rows themselves
    then go with the contact (their foreign key cascades)."""
    contact = await get_contact(session, workspace_id, contact_id)
    await contact_leaving.publish(session, workspace_id, contact.id, utcnow())
    await ContactRepository(session, workspace_id).delete(contact)
    session.expunge(contact)


def upsert_row(data: ContactUpsert) -> UpsertRow:
    return UpsertRow(
        external_id=data.external_id,
        email=data.email,
        phone=data.phone,
        timezone=data.timezone,
        locale=data.locale,
        attributes=dict(data.attributes),
    )


async def upsert_rows(
    session: AsyncSession, workspace_id: uuid.UUID, rows: Sequence[UpsertRow]
) -> list[UpsertResult]:
    """The one upsert path (API and import): set-wise, then segment membership is told."""
    results = await ContactRepository(session, workspace_id).upsert_many(rows, utcnow())
    changed = [r.contact_id for r in results if r.outcome in ("created", "updated")]
    if changed:
        await contacts_changed.publish(session, workspace_id, [i for i in changed if i])
    return results


async def upsert_contact(
    session: AsyncSession, workspace_id: uuid.UUID, data: ContactUpsert
) -> tuple[Contact, str]:
    (result,) = await upsert_rows(session, workspace_id, [upsert_row(data)])
    if result.outcome == "conflict" or result.contact_id is None:
        raise Conflict(
            "external_id and email point at two different contacts.",
            errors=[
                FieldError(
                    pointer=f"/{result.field or 'email'}",
                    location="body",
                    message=result.message or "identifies another contact",
                    code="conflict",
                )
            ],
        )
    contact = await ContactRepository(session, workspace_id).get_live(result.contact_id)
    if contact is None:
        raise Conflict("This external_id or email belongs to an erased contact.")
    await session.refresh(contact)
    return contact, result.outcome


# --- for dry runs (the sequence simulator) --------------------------------------------------


async def email_in_use(session: AsyncSession, workspace_id: uuid.UUID, email: str) -> bool:
    """Whether any contact of the workspace has this email (as stored: no normalisation)."""
    taken = await ContactRepository(session, workspace_id).identity_taken(None, email, None)
    return taken is not None


@dataclass(frozen=True)
class BareContact:
    external_id: str
    email: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    attributes: dict[str, Any]


async def add_unannounced_contact(
    session: AsyncSession, workspace_id: uuid.UUID, given: BareContact
) -> uuid.UUID:
    """Store the contact as given and flush, telling nobody (no notice: segments are not
    asked to re-evaluate it): for work that is rolled back, like the sequence simulator's
    hypothetical contact. Raises IntegrityError when its email or external id is taken."""
    contact = Contact(
        id=new_id(),
        external_id=given.external_id,
        email=given.email,
        phone=given.phone,
        timezone=given.timezone,
        locale=given.locale,
        attributes=given.attributes,
    )
    ContactRepository(session, workspace_id).add(contact)
    await session.flush()
    return contact.id
