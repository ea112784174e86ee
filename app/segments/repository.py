"""The workspace-scoped queries of the segments domain: segments, memberships, changes,
snapshots and the dirty-contact queue. The system-wide queries of upkeep (which workspaces
and segments have work, snapshots, the history purge) are in `sweep_repository.py`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    DateTime,
    Select,
    String,
    Uuid,
    any_,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from app.contacts.models import Contact
from app.core.ids import sql_uuid7
from app.core.pagination import (
    InvalidCursor,
    PageParams,
    PageResult,
    apply_page,
    to_page,
)
from app.core.repository import Window, WorkspaceRepository, window_clauses
from app.segments.compiler import CompileContext, count_statement
from app.segments.models import (
    Segment,
    SegmentCountSnapshot,
    SegmentDirtyContact,
    SegmentMembership,
    SegmentMembershipChange,
)
from app.segments.rules import Rule

Membership = SegmentMembership
Change = SegmentMembershipChange
# A condition on a contact id column (membership rows are tested through an alias).
ContactTest = Callable[[InstrumentedAttribute[uuid.UUID]], ColumnElement[bool]]


def contact_in(ids: Collection[uuid.UUID]) -> ContactTest:
    """`column = ANY(:ids)`: one array parameter however many ids (an IN list binds one
    parameter per id and per use), and an index condition on the membership primary key."""
    array = literal(sorted(set(ids)), ARRAY(Uuid))
    return lambda column: column == any_(array)


class SegmentRepository(WorkspaceRepository[Segment]):
    model = Segment
    noun = "segment"

    async def by_ids(self, ids: Collection[uuid.UUID]) -> list[Segment]:
        if not ids:
            return []
        statement = self.scoped().where(Segment.id.in_(list(ids)))
        return list((await self.session.execute(statement)).scalars().all())

    async def mentioning(self, segment_id: uuid.UUID) -> list[Segment]:
        """Segments whose rule text contains this id: candidates for a reference (the caller
        confirms by parsing, so a string that merely contains the id is not a reference)."""
        statement = self.scoped().where(
            Segment.id != segment_id,
            Segment.rule.is_not(None),
            cast(Segment.rule, String).contains(str(segment_id)),
        )
        return list((await self.session.execute(statement)).scalars().all())

    async def every(self) -> list[Segment]:
        """All segments of the workspace (rules reference static and dynamic ones)."""
        statement = self.scoped().order_by(Segment.id)
        return list((await self.session.execute(statement)).scalars().all())

    async def has_dynamic(self) -> bool:
        statement = select(
            exists().where(Segment.workspace_id == self.workspace_id, Segment.kind == "dynamic")
        )
        return bool((await self.session.execute(statement)).scalar())

    async def set_refreshed(self, segment_id: uuid.UUID, count: int, now: datetime) -> None:
        await self.session.execute(
            update(Segment)
            .where(Segment.workspace_id == self.workspace_id, Segment.id == segment_id)
            .values(member_count=count, refreshed_at=now)
        )

    async def add_to_count(self, segment_id: uuid.UUID, delta: int) -> None:
        if delta == 0:
            return
        await self.session.execute(
            update(Segment)
            .where(Segment.workspace_id == self.workspace_id, Segment.id == segment_id)
            .values(member_count=Segment.member_count + delta)
        )


@dataclass(frozen=True)
class MemberRow:
    contact_id: uuid.UUID
    email: str | None
    external_id: str | None
    entered_at: datetime


@dataclass(frozen=True)
class ContactRef:
    id: uuid.UUID
    email: str | None
    external_id: str | None


class MembershipRepository:
    """The membership table of one workspace, and its entered/left journal.

    Writes are set-wise: one INSERT ... SELECT (or DELETE) per segment, with the journal rows
    written by the same statement through a data-modifying CTE."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        if not isinstance(workspace_id, uuid.UUID):
            raise TypeError("a workspace repository needs the caller's workspace id")
        self.session = session
        self.workspace_id = workspace_id

    def _of(self, segment_id: uuid.UUID) -> list[ColumnElement[bool]]:
        return [Membership.workspace_id == self.workspace_id, Membership.segment_id == segment_id]

    def ids_query(self, segment_id: uuid.UUID) -> Select[uuid.UUID]:
        return select(Membership.contact_id).where(*self._of(segment_id))

    @staticmethod
    def union_ids(queries: list[Select[Any]]) -> Select[Any]:
        """Contact ids in any of these id SELECTs (UNION: each id once)."""
        if len(queries) == 1:
            return queries[0]
        return select(union(*queries).subquery().c[0])

    async def is_member(self, segment_id: uuid.UUID, contact_id: uuid.UUID) -> bool:
        statement = select(
            exists().where(*self._of(segment_id), Membership.contact_id == contact_id)
        )
        return bool((await self.session.execute(statement)).scalar())

    async def count(self, segment_id: uuid.UUID) -> int:
        statement = select(func.count()).select_from(Membership).where(*self._of(segment_id))
        return int((await self.session.execute(statement)).scalar_one())

    async def page(self, segment_id: uuid.UUID, params: PageParams) -> PageResult[MemberRow]:
        statement = (
            select(Membership.contact_id, Contact.email, Contact.external_id, Membership.entered_at)
            .join(Contact, Contact.id == Membership.contact_id)
            .where(*self._of(segment_id), Contact.workspace_id == self.workspace_id)
        )
        paged: Select[Any] = apply_page(statement, Membership.contact_id, params)  # type: ignore[arg-type]
        rows = (await self.session.execute(paged)).all()
        members = [MemberRow(r.contact_id, r.email, r.external_id, r.entered_at) for r in rows]
        return to_page(members, params, lambda member: member.contact_id)

    def _current(self, segment_id: uuid.UUID, among: ContactTest | None) -> Select[uuid.UUID]:
        """Member ids of a segment (limited to `among`), read through an alias, so conditions
        built by the rule compiler (which may look up other segments' memberships) never
        correlate with the table being written."""
        current = aliased(Membership, name="current")
        statement = select(current.contact_id).where(
            current.workspace_id == self.workspace_id, current.segment_id == segment_id
        )
        return statement if among is None else statement.where(among(current.contact_id))

    async def end_all(self, contact_id: uuid.UUID, now: datetime) -> int:
        """End every membership of one contact, static and dynamic, in ONE statement: delete
        them, journal each as `left`, and count each segment one member down. Returns how
        many ended."""
        left = (
            delete(Membership)
            .where(
                Membership.workspace_id == self.workspace_id, Membership.contact_id == contact_id
            )
            .returning(Membership.segment_id)
            .cte("left")
        )
        journal = self._journal_rows(
            left.c.segment_id, literal(contact_id, Uuid), "left", now, returning=Change.segment_id
        )
        counted = (
            update(Segment)
            .where(Segment.workspace_id == self.workspace_id, Segment.id == journal.c.segment_id)
            # explicit: SQLAlchemy does not apply Python-side `onupdate` inside a CTE
            .values(member_count=Segment.member_count - 1, updated_at=now)
            .returning(Segment.id)
            .cte("counted")
        )
        statement = select(func.count()).select_from(counted)
        return int((await self.session.execute(statement)).scalar_one())

    async def enter(
        self,
        segment_id: uuid.UUID,
        candidates: Select[uuid.UUID],
        now: datetime,
        *,
        among: ContactTest | None = None,
    ) -> int:
        """Insert the candidates that are not members yet (`among` bounds the members to
        compare with); journal them as `entered`. Returns how many entered."""
        entered = self._entering(segment_id, candidates, now, among)
        (count,) = await self._counted(self._journal(segment_id, entered, "entered", now))
        return count

    async def leave(
        self, segment_id: uuid.UUID, now: datetime, *, among: ContactTest | None = None
    ) -> int:
        """Delete the members (limited to `among`); journal them as `left`. Returns how many
        left."""
        left = self._leaving(segment_id, None, among)
        (count,) = await self._counted(self._journal(segment_id, left, "left", now))
        return count

    async def sync(
        self,
        segment_id: uuid.UUID,
        matching: Select[uuid.UUID],
        now: datetime,
        *,
        among: ContactTest | None = None,
    ) -> tuple[int, int]:
        """Make the members (limited to `among`) exactly `matching`, journalled, in ONE
        statement: `matching` (a compiled rule) is a CTE that the insert of entrants and the
        delete of leavers both read, so the rule is evaluated once. Every part of the
        statement sees the same snapshot, and entrants (not members) and leavers (members)
        are disjoint. Returns (entered, left)."""
        answer = matching.cte("matching")
        ids: Select[uuid.UUID] = select(next(iter(answer.c)))
        entered = self._entering(segment_id, ids, now, among)
        left = self._leaving(segment_id, ids, among)
        moved = await self._counted(
            self._journal(segment_id, entered, "entered", now),
            self._journal(segment_id, left, "left", now),
        )
        return moved[0], moved[1]

    def _entering(
        self,
        segment_id: uuid.UUID,
        candidates: Select[uuid.UUID],
        now: datetime,
        among: ContactTest | None,
    ) -> CTE:
        """INSERT ... RETURNING of the candidates that are not members yet.

        New members are `candidates EXCEPT members`: a set operation, so the plan stays
        linear whatever the statistics say about a membership table that just grew (an
        anti-join misestimated as one row turns into a nested loop over both sets)."""
        source = candidates.except_(self._current(segment_id, among)).subquery("candidates")
        return (
            insert(Membership)
            .from_select(
                ["workspace_id", "segment_id", "contact_id", "entered_at"],
                select(
                    literal(self.workspace_id, Uuid),
                    literal(segment_id, Uuid),
                    next(iter(source.c)),
                    literal(now, DateTime(timezone=True)),
                ),
            )
            .on_conflict_do_nothing()
            .returning(Membership.contact_id)
            .cte("entered")
        )

    def _leaving(
        self, segment_id: uuid.UUID, keep: Select[uuid.UUID] | None, among: ContactTest | None
    ) -> CTE:
        """DELETE ... RETURNING of the members (limited to `among`) not in `keep`: leavers
        are `members EXCEPT keep`."""
        current = self._current(segment_id, among)
        leavers = (current if keep is None else current.except_(keep)).subquery("leavers")
        # The leavers are collected into one array (an InitPlan computed once), then deleted
        # through the primary key: a join here could be planned as a nested loop that
        # recomputes the set difference for every member.
        leaver_ids = cast(
            select(func.array_agg(next(iter(leavers.c)))).scalar_subquery(), ARRAY(Uuid)
        )
        return (
            delete(Membership)
            .where(*self._of(segment_id), Membership.contact_id == any_(leaver_ids))
            .returning(Membership.contact_id)
            .cte("left")
        )

    def _journal(self, segment_id: uuid.UUID, moved: CTE, change: str, now: datetime) -> CTE:
        """INSERT ... RETURNING of one journal row per contact `moved` returned."""
        return self._journal_rows(literal(segment_id, Uuid), moved.c.contact_id, change, now)

    def _journal_rows(
        self,
        segment: ColumnElement[uuid.UUID],
        contact: ColumnElement[uuid.UUID],
        change: str,
        now: datetime,
        *,
        returning: Any = Change.contact_id,
    ) -> CTE:
        """INSERT ... RETURNING of journal rows `(segment, contact)`, one per row of the CTE
        those columns come from."""
        return (
            insert(Change)
            .from_select(
                ["id", "workspace_id", "segment_id", "contact_id", "change", "occurred_at"],
                select(
                    sql_uuid7(now),
                    literal(self.workspace_id, Uuid),
                    segment,
                    contact,
                    literal(change, String),
                    literal(now, DateTime(timezone=True)),
                ),
            )
            .returning(returning)
            .cte(f"journal_{change}")
        )

    async def _counted(self, *journals: CTE) -> list[int]:
        """Run the statement the journal CTEs make up; the rows each one wrote, counted in
        SQL (a first fill journals every member)."""
        counts = [select(func.count()).select_from(j).scalar_subquery() for j in journals]
        return list((await self.session.execute(select(*counts))).one())

    def journalled_at(
        self,
        now: datetime,
        change: str,
        *,
        segment_ids: Collection[uuid.UUID] | None = None,
        contact_id: uuid.UUID | None = None,
    ) -> Select[Any]:
        """(data, occurred_at) of the `change` journal rows written at `now` (of these
        segments, or of this contact), data being the `segment.entered` / `segment.left`
        payload: a SELECT for the outbox's `emit_from_query`."""
        conditions = [
            Change.workspace_id == self.workspace_id,
            Change.occurred_at == now,
            Change.change == change,
        ]
        if segment_ids is not None:
            conditions.append(Change.segment_id.in_(list(segment_ids)))
        if contact_id is not None:
            conditions.append(Change.contact_id == contact_id)
        data = func.jsonb_build_object(
            "segment_id", Change.segment_id, "contact_id", Change.contact_id
        )
        return select(data, Change.occurred_at).where(*conditions)

    async def page_changes(
        self,
        segment_id: uuid.UUID,
        params: PageParams,
        window: Window,
        change: str | None,
        contact_id: uuid.UUID | None,
    ) -> PageResult[SegmentMembershipChange]:
        statement = select(Change).where(
            Change.workspace_id == self.workspace_id, Change.segment_id == segment_id
        )
        statement = statement.where(*window_clauses(Change.occurred_at, window))
        if change is not None:
            statement = statement.where(Change.change == change)
        if contact_id is not None:
            statement = statement.where(Change.contact_id == contact_id)
        paged = apply_page(statement, Change.id, params)
        rows = (await self.session.execute(paged)).scalars().all()
        return to_page(rows, params, lambda item: item.id)

    async def page_snapshots(
        self, segment_id: uuid.UUID, params: PageParams, window: Window
    ) -> PageResult[SegmentCountSnapshot]:
        """Newest first. Snapshots have no id: the cursor carries the last `taken_at`
        (microseconds since the epoch), in the same opaque form as id cursors."""
        statement = select(SegmentCountSnapshot).where(
            SegmentCountSnapshot.workspace_id == self.workspace_id,
            SegmentCountSnapshot.segment_id == segment_id,
        )
        if params.after_id is not None:
            statement = statement.where(
                SegmentCountSnapshot.taken_at < _cursor_time(params.after_id)
            )
        statement = statement.where(*window_clauses(SegmentCountSnapshot.taken_at, window))
        statement = statement.order_by(SegmentCountSnapshot.taken_at.desc()).limit(params.limit + 1)
        rows = (await self.session.execute(statement)).scalars().all()
        return to_page(rows, params, lambda item: _time_cursor(item.taken_at))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_MICROS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _time_cursor(taken_at: datetime) -> uuid.UUID:
    return uuid.UUID(int=max((taken_at - _EPOCH) // timedelta(microseconds=1), 0))


def _cursor_time(cursor: uuid.UUID) -> datetime:
    if cursor.int > _LAST_MICROS:
        raise InvalidCursor
    return _EPOCH + timedelta(microseconds=cursor.int)


class ContactLookup:
    """Contacts of one workspace found by id, external id or email, set-wise."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def matching(
        self, ids: Collection[uuid.UUID], external_ids: Collection[str], emails: Collection[str]
    ) -> Select[uuid.UUID]:
        return select(Contact.id).where(
            Contact.workspace_id == self.workspace_id,
            Contact.erased_at.is_(None),
            or_(
                Contact.id.in_(list(ids)),
                Contact.external_id.in_(list(external_ids)),
                Contact.email.in_(list(emails)),
            ),
        )

    async def found(
        self, ids: Collection[uuid.UUID], external_ids: Collection[str], emails: Collection[str]
    ) -> list[ContactRef]:
        statement = self.matching(ids, external_ids, emails).add_columns(
            Contact.email, Contact.external_id
        )
        rows = (await self.session.execute(statement)).all()
        return [ContactRef(r.id, r.email, r.external_id) for r in rows]

    async def count_matching(self, rule: Rule, ctx: CompileContext) -> int:
        """How many contacts of the workspace the rule matches, evaluated now."""
        return int((await self.session.execute(count_statement(rule, ctx))).scalar_one())

    async def sample(self, members: Select[uuid.UUID], size: int) -> list[ContactRef]:
        if size == 0:
            return []
        statement = (
            select(Contact.id, Contact.email, Contact.external_id)
            .where(
                Contact.workspace_id == self.workspace_id, Contact.id.in_(members.scalar_subquery())
            )
            .order_by(Contact.id.desc())
            .limit(size)
        )
        return [
            ContactRef(r.id, r.email, r.external_id)
            for r in (await self.session.execute(statement)).all()
        ]


class DirtyContactQueue:
    """Contacts of one workspace waiting for their dynamic memberships to be re-evaluated."""

    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def mark(self, contact_ids: Collection[uuid.UUID]) -> None:
        # Sorted, so concurrent ingest transactions lock the same keys in the same order.
        ids = sorted(set(contact_ids))
        statement = insert(SegmentDirtyContact).from_select(
            ["workspace_id", "contact_id", "token"],
            select(
                literal(self.workspace_id, Uuid),
                func.unnest(literal(ids, ARRAY(Uuid))),
                func.gen_random_uuid(),
            ),
        )
        statement = statement.on_conflict_do_update(
            index_elements=["workspace_id", "contact_id"],
            set_={"token": statement.excluded.token},
        )
        await self.session.execute(statement)

    async def peek(self, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Up to `limit` (contact id, token) pairs, read without locking."""
        statement = (
            select(SegmentDirtyContact.contact_id, SegmentDirtyContact.token)
            .where(SegmentDirtyContact.workspace_id == self.workspace_id)
            .limit(limit)
        )
        return [(r.contact_id, r.token) for r in (await self.session.execute(statement)).all()]

    async def forget(self, pairs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Delete the rows still carrying the token that was read (not re-noted since).

        The pairs travel as two arrays joined by `unnest`: two parameters however large the
        batch (a row-value IN list binds two per pair and plans slowly at thousands)."""
        if not pairs:
            return
        read = (
            select(
                func.unnest(literal([c for c, _ in pairs], ARRAY(Uuid))).label("contact_id"),
                func.unnest(literal([t for _, t in pairs], ARRAY(Uuid))).label("token"),
            )
        ).subquery("read")
        await self.session.execute(
            delete(SegmentDirtyContact).where(
                SegmentDirtyContact.workspace_id == self.workspace_id,
                SegmentDirtyContact.contact_id == read.c.contact_id,
                SegmentDirtyContact.token == read.c.token,
            )
        )
