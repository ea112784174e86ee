"""Contact queries, including the one set-wise batch upsert used by the API and the import."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Select,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import tuple_ as sql_tuple
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import aliased

from app.contacts.models import Contact
from app.core.ids import new_ids
from app.core.pagination import PageParams, PageResult
from app.core.repository import WorkspaceRepository, window_clauses

CONTACTS: Table = Contact.__table__  # type: ignore[assignment]

# Retries: a concurrent writer may commit a conflicting row between our checks and our
# INSERT (or two batches may deadlock); re-running the batch then sees it and resolves it.
_UPSERT_ATTEMPTS = 4


@dataclass(frozen=True)
class ContactFilters:
    email: str | None = None
    external_id: str | None = None
    attributes: Sequence[tuple[str, Any]] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


@dataclass(frozen=True)
class UpsertRow:
    """One contact to upsert. `None` fields keep the stored value; in `attributes` a `None`
    value removes that key (the rest is merged over the stored attributes)."""

    external_id: str | None
    email: str | None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpsertResult:
    outcome: str  # created, updated, unchanged, conflict
    contact_id: uuid.UUID | None = None
    field: str | None = None
    message: str | None = None


class ContactRepository(WorkspaceRepository[Contact]):
    model = Contact
    noun = "contact"

    def live(self) -> Select[Contact]:
        """Contacts that were not erased (erased ones are invisible to this API)."""
        return self.scoped().where(Contact.erased_at.is_(None))

    async def get_live(self, contact_id: uuid.UUID, *, lock: bool = False) -> Contact | None:
        """`lock`: hold the row until commit (an erasure in progress is waited for, and the
        erased row then no longer matches). FOR NO KEY UPDATE: event ingestion's KEY SHARE
        locks on the contact do not wait for it."""
        statement = self.live().where(Contact.id == contact_id)
        if lock:
            statement = statement.with_for_update(key_share=True)
        result = await self.session.execute(statement)
        return result.scalar_one_or_none()

    async def live_id_by(self, key: str, value: uuid.UUID | str) -> uuid.UUID | None:
        """The id of the live (not erased) contact whose `key` (id, external_id or a
        normalised email) is `value`."""
        column = {"id": Contact.id, "external_id": Contact.external_id, "email": Contact.email}
        statement = select(Contact.id).where(
            Contact.workspace_id == self.workspace_id,
            Contact.erased_at.is_(None),
            column[key] == value,
        )
        found: uuid.UUID | None = (await self.session.execute(statement)).scalar_one_or_none()
        return found

    async def search(self, params: PageParams, filters: ContactFilters) -> PageResult[Contact]:
        conditions: list[ColumnElement[bool]] = [Contact.erased_at.is_(None)]
        if filters.email is not None:
            conditions.append(Contact.email == filters.email)
        if filters.external_id is not None:
            conditions.append(Contact.external_id == filters.external_id)
        if filters.attributes:
            wanted: dict[str, Any] = {}
            for key, value in filters.attributes:
                if key in wanted and wanted[key] != value:
                    return PageResult([], None)  # plan=pro AND plan=team: nothing matches
                wanted[key] = value
            conditions.append(Contact.attributes.contains(wanted))
        conditions += window_clauses(
            Contact.created_at, (filters.created_after, filters.created_before)
        )
        conditions += window_clauses(
            Contact.updated_at, (filters.updated_after, filters.updated_before)
        )
        return await self.page(params, *conditions)

    async def identity_taken(
        self, external_id: str | None, email: str | None, except_id: uuid.UUID | None
    ) -> str | None:
        """Which of external_id / email another contact already uses, if any."""
        for name, column, value in (
            ("external_id", Contact.external_id, external_id),
            ("email", Contact.email, email),
        ):
            if value is None:
                continue
            statement = select(Contact.id).where(
                Contact.workspace_id == self.workspace_id, column == value
            )
            if except_id is not None:
                statement = statement.where(Contact.id != except_id)
            if (await self.session.execute(statement.limit(1))).first() is not None:
                return name
        return None

    async def delete(self, contact: Contact) -> None:
        await self.session.execute(
            delete(Contact).where(
                Contact.workspace_id == self.workspace_id, Contact.id == contact.id
            )
        )

    async def upsert_many(self, rows: Sequence[UpsertRow], now: datetime) -> list[UpsertResult]:
        """Upsert contacts set-wise: per run of rows with distinct keys, one adoption UPDATE
        and one INSERT ... ON CONFLICT ... RETURNING per unique index used as arbiter.

        Matching (see docs/contacts.md): `external_id` wins; an unknown `external_id` adopts
        the contact holding the row's email if that contact has no external id; an email
        held by a contact with another external id is a conflict for that row.
        """
        results: list[UpsertResult] = []
        for run in _distinct_runs(rows):
            results.extend(await self._upsert_run(run, now))
        return results

    async def _upsert_run(self, rows: Sequence[UpsertRow], now: datetime) -> list[UpsertResult]:
        for attempt in range(_UPSERT_ATTEMPTS):
            last = attempt == _UPSERT_ATTEMPTS - 1
            try:
                async with self.session.begin_nested():
                    return await self._upsert_once(rows, now, settle=not last)
            except _Raced:
                continue
            except DBAPIError as exc:
                if not _retryable(exc) or last:
                    raise
        raise AssertionError("unreachable")

    async def _upsert_once(
        self, rows: Sequence[UpsertRow], now: datetime, *, settle: bool
    ) -> list[UpsertResult]:
        """One attempt. `settle`: an email held by a contact without an external id means a
        concurrent upsert created it after the adoption UPDATE's snapshot (each statement
        sees its own under READ COMMITTED): raise `_Raced` so the next attempt adopts it,
        instead of answering a conflict."""
        results: list[UpsertResult | None] = [None] * len(rows)
        adopted = await self._adopt(rows, now)
        owners = await self._email_owners([r.email for r in rows if r.external_id and r.email])
        by_external: dict[str, int] = {}
        by_email: dict[str, int] = {}
        for index, row in enumerate(rows):
            if row.external_id is None:
                assert row.email is not None
                by_email[row.email] = index
                continue
            if row.email in owners and owners[row.email] != row.external_id:
                if settle and owners[row.email] is None:
                    raise _Raced
                results[index] = UpsertResult(
                    "conflict",
                    field="email",
                    message=f"{row.email} belongs to another contact than the one with "
                    f"external_id {row.external_id!r}",
                )
                continue
            by_external[row.external_id] = index

        touched = await self._insert(
            [rows[i] for i in by_external.values()], now, Contact.external_id
        )
        touched_by_email = await self._insert(
            [rows[i] for i in by_email.values()], now, Contact.email
        )
        for key, (contact_id, inserted) in touched.items():
            outcome = "created" if inserted else "updated"
            results[by_external[key]] = UpsertResult(outcome, contact_id)
        for key, (contact_id, inserted) in touched_by_email.items():
            results[by_email[key]] = UpsertResult("created" if inserted else "updated", contact_id)

        missing_external = [k for k in by_external if k not in touched]
        missing_email = [k for k in by_email if k not in touched_by_email]
        ids = await self._ids_by(Contact.external_id, missing_external)
        ids_by_email = await self._ids_by(Contact.email, missing_email)
        for key in missing_external:
            outcome = "updated" if key in adopted else "unchanged"
            results[by_external[key]] = UpsertResult(outcome, ids.get(key))
        for key in missing_email:
            results[by_email[key]] = UpsertResult("unchanged", ids_by_email.get(key))
        return [r if r is not None else UpsertResult("conflict") for r in results]

    async def _adopt(self, rows: Sequence[UpsertRow], now: datetime) -> set[str]:
        """Give an email-only contact the external id of a row naming both (when that
        external id is not used yet). Returns the adopted external ids."""
        pairs = [(r.external_id, r.email) for r in rows if r.external_id and r.email]
        if not pairs:
            return set()
        incoming = select(
            func.unnest(bindparam("ext_ids", type_=ARRAY(String))).label("external_id"),
            func.unnest(bindparam("emails", type_=ARRAY(String))).label("email"),
        ).subquery("incoming")
        holder = aliased(Contact)
        taken = select(holder.id).where(
            holder.workspace_id == self.workspace_id,
            holder.external_id == incoming.c.external_id,
        )
        statement = (
            update(Contact)
            .where(
                Contact.workspace_id == self.workspace_id,
                Contact.email == incoming.c.email,
                Contact.external_id.is_(None),
                Contact.erased_at.is_(None),
                ~taken.exists(),
            )
            .values(external_id=incoming.c.external_id, updated_at=now)
            .returning(Contact.external_id)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(
            statement,
            {"ext_ids": [p[0] for p in pairs], "emails": [p[1] for p in pairs]},
        )
        return {str(row[0]) for row in result if row[0]}

    async def _email_owners(self, emails: Sequence[str | None]) -> dict[str, str | None]:
        rows = await self._lookup(Contact.email, [e for e in emails if e], Contact.external_id)
        return dict(rows)

    async def _ids_by(self, column: Any, keys: Sequence[str]) -> dict[str, uuid.UUID]:
        rows = await self._lookup(column, keys, Contact.id)
        return dict(rows)

    async def _lookup(self, column: Any, keys: Sequence[str], wanted: Any) -> list[tuple[Any, Any]]:
        """(key, wanted) for contacts whose `column` is one of `keys`.

        A join against the unnested keys, not `column = ANY($n)`: during a large import the
        table statistics lag, and the generic plan of the ANY form scanned the workspace and
        compared each row with every key (quadratic over the import)."""
        if not keys:
            return []
        incoming = select(
            func.unnest(bindparam("keys", list(keys), type_=ARRAY(String))).label("key")
        ).subquery("incoming")
        result = await self.session.execute(
            select(column, wanted)
            .select_from(incoming)
            .join(
                Contact,
                and_(Contact.workspace_id == self.workspace_id, column == incoming.c.key),
            )
        )
        return [(row[0], row[1]) for row in result]

    async def _insert(
        self, rows: Sequence[UpsertRow], now: datetime, arbiter: Any
    ) -> dict[str, tuple[uuid.UUID, bool]]:
        """INSERT ... ON CONFLICT (arbiter) DO UPDATE, skipping rows whose stored values
        already equal the merged result. Returns {key: (id, inserted)} of written rows."""
        if not rows:
            return {}
        # A stable order (by key) makes concurrent batches lock rows in the same order.
        rows = sorted(rows, key=lambda r: getattr(r, arbiter.key))
        # One statement shape whatever the batch size (arrays unnested into rows), so it
        # compiles and prepares once instead of once per batch.
        columns = ("external_id", "email", "phone", "timezone", "locale")
        source = select(
            func.unnest(bindparam("ids", type_=ARRAY(Uuid()))).label("id"),
            bindparam("workspace_id", type_=Uuid()).label("workspace_id"),
            *(func.unnest(bindparam(name, type_=ARRAY(String))).label(name) for name in columns),
            cast(func.unnest(bindparam("attributes", type_=ARRAY(Text))), JSONB).label(
                "attributes"
            ),
            bindparam("now", type_=DateTime(timezone=True)).label("created_at"),
            bindparam("now", type_=DateTime(timezone=True)).label("updated_at"),
        )
        statement = insert(CONTACTS).from_select(
            ["id", "workspace_id", *columns, "attributes", "created_at", "updated_at"], source
        )
        new = statement.excluded
        target = CONTACTS.c
        merged = {
            "external_id": func.coalesce(new.external_id, target.external_id),
            "email": func.coalesce(new.email, target.email),
            "phone": func.coalesce(new.phone, target.phone),
            "timezone": func.coalesce(new.timezone, target.timezone),
            "locale": func.coalesce(new.locale, target.locale),
            "attributes": func.jsonb_strip_nulls(
                target.attributes.op("||")(new.attributes), type_=JSONB
            ),
        }
        current = sql_tuple(*(target[name] for name in merged))
        proposed = sql_tuple(*merged.values())
        key_name = arbiter.key
        upsert = statement.on_conflict_do_update(
            index_elements=["workspace_id", key_name],
            index_where=text(f"{key_name} IS NOT NULL"),
            set_={**merged, "updated_at": bindparam("now", type_=DateTime(timezone=True))},
            where=and_(target.erased_at.is_(None), current.is_distinct_from(proposed)),
        ).returning(target.id, target[key_name], literal_column("(xmax = 0)"))
        params: dict[str, Any] = {
            "ids": new_ids(len(rows)),
            "workspace_id": self.workspace_id,
            "attributes": [json.dumps(r.attributes) for r in rows],
            "now": now,
        }
        for name in columns:
            params[name] = [getattr(r, name) for r in rows]
        result = await self.session.execute(upsert, params)
        written = {key: (contact_id, bool(inserted)) for contact_id, key, inserted in result}
        # A created row stores its attributes as sent: drop the `null` (= remove) markers.
        created_with_nulls = [
            written[getattr(r, key_name)][0]
            for r in rows
            if getattr(r, key_name) in written
            and written[getattr(r, key_name)][1]
            and any(v is None for v in r.attributes.values())
        ]
        if created_with_nulls:
            await self.session.execute(
                update(Contact)
                .where(
                    Contact.workspace_id == self.workspace_id,
                    Contact.id.in_(created_with_nulls),
                )
                .values(attributes=func.jsonb_strip_nulls(Contact.attributes))
                .execution_options(synchronize_session=False)
            )
        return written


class _Raced(Exception):
    """A contact appeared between two statements of one upsert attempt: try again."""


def _retryable(exc: DBAPIError) -> bool:
    """Unique violations (a concurrent writer got there first), deadlocks, serialisation."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001")


def _distinct_runs(rows: Sequence[UpsertRow]) -> list[list[UpsertRow]]:
    """Split rows into consecutive runs where no external id or email repeats (ON CONFLICT
    DO UPDATE cannot touch one row twice in a statement); order is kept."""
    runs: list[list[UpsertRow]] = []
    current: list[UpsertRow] = []
    seen: set[str] = set()
    for row in rows:
        keys = {f"x:{row.external_id}"} if row.external_id is not None else set()
        if row.email is not None:
            keys.add(f"e:{row.email}")
        if seen & keys:
            runs.append(current)
            current, seen = [], set()
        current.append(row)
        seen |= keys
    if current:
        runs.append(current)
    return runs
