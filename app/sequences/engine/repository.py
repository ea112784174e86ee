"""Every query the engine runs for one workspace (claims, set-wise checks, bulk writes)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    String,
    Table,
    and_,
    case,
    cast,
    column,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from app.channels.models import Message
from app.contacts.models import Contact, ContactConsent, Suppression
from app.events.models import Event
from app.segments.compiler import CompileContext, condition, property_condition
from app.segments.models import SegmentMembership
from app.segments.rules.nodes import PropertyFilter, Rule
from app.sequences.models import LIVE_STATES, Enrollment, EnrollmentStep, SequenceVersion

MESSAGES: Table = Message.__table__  # type: ignore[assignment]
STEPS: Table = EnrollmentStep.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StepMessage:
    """The message of an enrollment's current send step: status, acceptance time, and when
    it last changed (a failure's or an `unknown`'s time)."""

    step_key: str
    visit: int
    status: str
    sent_at: datetime | None
    updated_at: datetime


def _complete(rows: list[dict[str, Any]], table: Table) -> list[dict[str, Any]]:
    """Every row with the same keys (executemany needs one shape); absent columns NULL."""
    keys = {key for row in rows for key in row}
    return [{key: row.get(key) for key in keys} for row in rows]


class EngineRepository:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    # -- claims ------------------------------------------------------------------------------

    async def claim_due(self, ids: Collection[uuid.UUID], now: datetime) -> Sequence[Enrollment]:
        """The listed enrollments that are live and due, locked for this transaction.

        The conditional claim: a row another job already advanced is no longer due and is
        skipped; a row another job holds right now is skipped too (SKIP LOCKED), never
        waited for, so two jobs never run the same step."""
        result = await self.session.execute(
            select(Enrollment)
            .where(
                Enrollment.workspace_id == self.workspace_id,
                Enrollment.id.in_(list(ids)),
                Enrollment.state.in_(LIVE_STATES),
                Enrollment.next_action_at <= now,
            )
            .order_by(Enrollment.id)
            .with_for_update(skip_locked=True)
        )
        return result.scalars().all()

    async def release_leases(self, ids: Collection[uuid.UUID]) -> None:
        """Rows a job was given but could not run yet: the next scan may lease them again."""
        if ids:
            await self.session.execute(
                update(Enrollment)
                .where(Enrollment.workspace_id == self.workspace_id, Enrollment.id.in_(list(ids)))
                .values(lease_until=None)
            )

    async def versions(self, ids: Collection[uuid.UUID]) -> Sequence[SequenceVersion]:
        result = await self.session.execute(
            select(SequenceVersion).where(
                SequenceVersion.workspace_id == self.workspace_id,
                SequenceVersion.id.in_(list(ids)),
            )
        )
        return result.scalars().all()

    async def contacts(self, ids: Collection[uuid.UUID]) -> Sequence[Contact]:
        result = await self.session.execute(
            select(Contact).where(
                Contact.workspace_id == self.workspace_id, Contact.id.in_(list(ids))
            )
        )
        return result.scalars().all()

    # -- set-wise checks ---------------------------------------------------------------------

    async def latest_events(
        self, contact_ids: Collection[uuid.UUID], types: Collection[str]
    ) -> dict[tuple[uuid.UUID, str], datetime]:
        """(contact, type) -> the latest occurrence, for exit rules on events."""
        if not contact_ids or not types:
            return {}
        result = await self.session.execute(
            select(Event.contact_id, Event.type, func.max(Event.occurred_at))
            .where(
                Event.workspace_id == self.workspace_id,
                Event.contact_id.in_(list(contact_ids)),
                Event.type.in_(list(types)),
            )
            .group_by(Event.contact_id, Event.type)
        )
        return {(row[0], row[1]): row[2] for row in result}

    async def unsubscribed(self, contact_ids: Collection[uuid.UUID]) -> set[tuple[uuid.UUID, str]]:
        """(contact, channel) pairs whose consent is `unsubscribed`."""
        if not contact_ids:
            return set()
        result = await self.session.execute(
            select(ContactConsent.contact_id, ContactConsent.channel).where(
                ContactConsent.workspace_id == self.workspace_id,
                ContactConsent.contact_id.in_(list(contact_ids)),
                ContactConsent.status == "unsubscribed",
            )
        )
        return {(row[0], row[1]) for row in result}

    async def suppressed_hashes(self, hashes: Collection[str]) -> dict[str, str]:
        """Address hashes on the suppression list -> their reason. A hash covers the channel
        (`sha256("<channel>:<address>")`), so the hash alone identifies an entry."""
        if not hashes:
            return {}
        result = await self.session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.workspace_id == self.workspace_id,
                Suppression.channel.in_(["email", "sms"]),  # the index's middle column
                Suppression.address_hash.in_(list(hashes)),
            )
        )
        return {row[0]: row[1] for row in result}

    async def non_members(
        self, segment_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
    ) -> set[uuid.UUID]:
        if not contact_ids:
            return set()
        result = await self.session.execute(
            select(SegmentMembership.contact_id).where(
                SegmentMembership.workspace_id == self.workspace_id,
                SegmentMembership.segment_id == segment_id,
                SegmentMembership.contact_id.in_(list(contact_ids)),
            )
        )
        return set(contact_ids) - {row[0] for row in result}

    async def recent_sends(
        self, contact_ids: Collection[uuid.UUID], since: datetime
    ) -> Sequence[Row[uuid.UUID, str, datetime]]:
        """Messages that count against frequency caps: every channel, every sequence."""
        if not contact_ids:
            return []
        result = await self.session.execute(
            select(Message.contact_id, Message.channel, Message.created_at).where(
                Message.workspace_id == self.workspace_id,
                Message.contact_id.in_(list(contact_ids)),
                Message.created_at > since,
                Message.status != "failed",
            )
        )
        return result.all()

    async def lock_contacts(self, contact_ids: Iterable[uuid.UUID]) -> None:
        """Serialise frequency-cap decisions per contact across concurrent batches (locks
        taken in a fixed order, so two batches cannot deadlock)."""
        keys = sorted(str(contact_id) for contact_id in set(contact_ids))
        if keys:
            await self.session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                    "FROM unnest(CAST(:keys AS text[])) AS t(k) ORDER BY k"
                ),
                {"keys": keys},
            )

    async def event_since(
        self,
        contact_id: uuid.UUID,
        event_type: str,
        filters: Sequence[PropertyFilter],
        since: datetime,
        until: datetime,
    ) -> datetime | None:
        """When the first matching event in [since, until] happened, if one did."""
        result = await self.session.execute(
            select(func.min(Event.occurred_at)).where(
                Event.workspace_id == self.workspace_id,
                Event.contact_id == contact_id,
                Event.type == event_type,
                Event.occurred_at >= since,
                Event.occurred_at <= until,
                *(property_condition(item) for item in filters),
            )
        )
        return result.scalar_one_or_none()

    async def offered_before(self, enrollment_id: uuid.UUID, sent_at: datetime) -> datetime:
        """When the enrollment's message accepted at `sent_at` was handed to its provider
        (`sent_at` itself when none matches): the earliest instant a reply to it can have."""
        result = await self.session.execute(
            select(func.min(Message.offered_at)).where(
                Message.workspace_id == self.workspace_id,
                Message.enrollment_id == enrollment_id,
                Message.sent_at == sent_at,
            )
        )
        offered = result.scalar_one_or_none()
        return min(offered, sent_at) if offered is not None else sent_at

    async def matches(self, contact_id: uuid.UUID, rule: Rule, ctx: CompileContext) -> bool:
        result = await self.session.execute(
            select(Contact.id).where(
                Contact.workspace_id == self.workspace_id,
                Contact.id == contact_id,
                condition(rule, ctx),
            )
        )
        return result.first() is not None

    async def is_member(self, segment_id: uuid.UUID, contact_id: uuid.UUID) -> bool:
        return not await self.non_members(segment_id, [contact_id])

    async def merge_attributes(
        self, contact_id: uuid.UUID, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge `changes` into the contact's attributes (`None` removes a key)."""
        kept = {key: value for key, value in changes.items() if value is not None}
        removed = [key for key, value in changes.items() if value is None]
        merged = Contact.attributes.op("||")(cast(kept, JSONB))
        if removed:
            merged = merged.op("-")(cast(removed, ARRAY(String)))
        result = await self.session.execute(
            update(Contact)
            .where(
                Contact.workspace_id == self.workspace_id,
                Contact.id == contact_id,
                Contact.erased_at.is_(None),
            )
            .values(attributes=merged)
            .returning(Contact.attributes)
        )
        return result.scalar_one_or_none()

    async def step_messages(
        self, enrollments: Collection[Enrollment]
    ) -> dict[uuid.UUID, StepMessage]:
        """The message each enrollment's current step (and visit) created, if any: a send
        step whose message is not settled yet holds its enrollment."""
        keys = [(e.id, e.step_key, e.step_visit) for e in enrollments if e.step_key is not None]
        if not keys:
            return {}
        ids, steps, visits = zip(*keys, strict=True)
        result = await self.session.execute(
            text(
                """
                SELECT m.enrollment_id, m.step_key, m.visit, m.status, m.sent_at, m.updated_at
                FROM unnest(CAST(:ids AS uuid[]), CAST(:steps AS text[]),
                            CAST(:visits AS int[])) AS k(id, step_key, visit)
                JOIN messages m ON m.enrollment_id = k.id AND m.step_key = k.step_key
                                AND m.visit = k.visit
                WHERE m.workspace_id = :workspace_id
                """
            ),
            {
                "ids": list(ids),
                "steps": list(steps),
                "visits": list(visits),
                "workspace_id": self.workspace_id,
            },
        )
        return {row[0]: StepMessage(*row[1:]) for row in result.all()}

    async def deliver_instantly(self, enrollment_id: uuid.UUID, now: datetime) -> bool:
        """Dry runs only: the enrollment's queued messages count as accepted at `now` (no
        provider, no rate limit) and the enrollment is due again to go on from them."""
        result = await self.session.execute(
            update(Message)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.enrollment_id == enrollment_id,
                Message.status == "queued",
            )
            .values(status="sent", sent_at=now, next_attempt_at=None, updated_at=now)
            .returning(Message.id)
        )
        if not result.all():
            return False
        await self.session.execute(
            update(Enrollment)
            .where(Enrollment.workspace_id == self.workspace_id, Enrollment.id == enrollment_id)
            .values(next_action_at=now)
        )
        return True

    # -- bulk writes -------------------------------------------------------------------------

    async def insert_messages(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert messages; a (enrollment, step, visit) that already has one keeps it.

        Core executemany (compiled once, sent as batched multi-row VALUES by SQLAlchemy's
        insertmanyvalues): a multi-row `.values(rows)` would be compiled afresh per batch."""
        if not rows:
            return set()
        statement = (
            pg_insert(MESSAGES)
            .on_conflict_do_nothing(constraint="uq_messages_enrollment_step_visit")
            .returning(MESSAGES.c.id)
        )
        result = await self.session.execute(statement, _complete(rows, MESSAGES))
        return {row[0] for row in result}

    async def insert_steps(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(STEPS), _complete(rows, STEPS))

    async def save_enrollments(self, rows: list[dict[str, Any]]) -> None:
        """UPDATE by primary key, one executemany."""
        if rows:
            await self.session.execute(update(Enrollment), rows)

    # -- event wake-ups and exits -------------------------------------------------------------

    async def wake(
        self, pairs: Collection[tuple[uuid.UUID, str]], now: datetime
    ) -> list[uuid.UUID]:
        """Make due now every live enrollment of these contacts that waits for, or exits on,
        the paired event type. One statement for the whole batch of events."""
        if not pairs:
            return []
        # Two array parameters, not a VALUES list: one bind per row made SQLAlchemy compile a
        # new ~2,000-parameter statement for every ingested batch (~40 % of its API CPU).
        contact_ids, kinds = zip(*pairs, strict=True)
        incoming = (
            func.unnest(cast(list(contact_ids), ARRAY(Uuid())), cast(list(kinds), ARRAY(String())))
            .table_valued(column("contact_id", Uuid()), column("type", String()))
            .render_derived(name="incoming")
        )
        result = await self.session.execute(
            update(Enrollment)
            .where(
                Enrollment.workspace_id == self.workspace_id,
                Enrollment.state.in_(LIVE_STATES),
                Enrollment.contact_id == incoming.c.contact_id,
                or_(
                    Enrollment.wait_event_type == incoming.c.type,
                    Enrollment.exit_events.any_() == incoming.c.type,
                ),
                Enrollment.next_action_at > now,
            )
            .values(next_action_at=now, lease_until=None, updated_at=now)
            .returning(Enrollment.id)
        )
        return sorted({row[0] for row in result})

    async def end_live(
        self,
        state: str,
        reason: str,
        now: datetime,
        *,
        contact_ids: Collection[uuid.UUID] | None = None,
        enrollment_ids: Collection[uuid.UUID] | None = None,
        campaign_id: uuid.UUID | None = None,
        include_paused: bool = True,
    ) -> list[Row[uuid.UUID, str | None, uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID | None]]:
        """End live (and paused) enrollments selected by contact, id or campaign: (id,
        step_key, contact_id, sequence_id, sequence_version_id, campaign_id) of each."""
        states = (*LIVE_STATES, "paused") if include_paused else LIVE_STATES
        filters = [Enrollment.workspace_id == self.workspace_id, Enrollment.state.in_(states)]
        if contact_ids is not None:
            filters.append(Enrollment.contact_id.in_(list(contact_ids)))
        if enrollment_ids is not None:
            filters.append(Enrollment.id.in_(list(enrollment_ids)))
        if campaign_id is not None:
            filters.append(Enrollment.campaign_id == campaign_id)
        result = await self.session.execute(
            update(Enrollment)
            .where(and_(*filters))
            .values(
                state=state,
                exit_reason=reason,
                finished_at=now,
                next_action_at=None,
                lease_until=None,
                wait_event_type=None,
                updated_at=now,
            )
            .returning(
                Enrollment.id,
                Enrollment.step_key,
                Enrollment.contact_id,
                Enrollment.sequence_id,
                Enrollment.sequence_version_id,
                Enrollment.campaign_id,
            )
        )
        return list(result.all())

    async def set_paused(
        self, campaign_id: uuid.UUID, paused: bool, now: datetime
    ) -> list[Row[uuid.UUID, datetime | None, str | None]]:
        source = ("active", "waiting") if paused else ("paused",)
        result = await self.session.execute(
            update(Enrollment)
            .where(
                Enrollment.workspace_id == self.workspace_id,
                Enrollment.campaign_id == campaign_id,
                Enrollment.state.in_(source),
            )
            .values(
                state="paused"
                if paused
                else case((Enrollment.wait_event_type.is_not(None), "waiting"), else_="active"),
                lease_until=None,
                updated_at=now,
            )
            .returning(Enrollment.id, Enrollment.next_action_at, Enrollment.wait_event_type)
        )
        return list(result.all())


async def lease_due_enrollments(
    session: AsyncSession, now: datetime, due_by: datetime, limit: int, lease_until: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, datetime | None]]:
    """The scheduler scan, across workspaces: lease up to `limit` live enrollments due by
    `due_by` whose lease (if any) ran out before `now`, in due order, skipping rows another
    scan holds. (workspace, id, next_action_at) of each."""
    due = (
        select(Enrollment.id)
        .where(
            Enrollment.state.in_(LIVE_STATES),
            Enrollment.next_action_at <= due_by,
            or_(Enrollment.lease_until.is_(None), Enrollment.lease_until < now),
        )
        .order_by(Enrollment.next_action_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Enrollment)
        .where(Enrollment.id.in_(due.scalar_subquery()))
        .values(lease_until=lease_until)
        .returning(Enrollment.workspace_id, Enrollment.id, Enrollment.next_action_at)
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1], row[2]) for row in result.all()]


async def settled_enrollments(
    session: AsyncSession, settled: Collection[tuple[uuid.UUID, uuid.UUID, str, int]], now: datetime
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Make due now the live enrollments still on the (step, visit) of these settled
    messages, given as (workspace, enrollment, step, visit): (workspace, id) of each. The
    worker's delivery settles messages of any workspace; each row is matched within its own
    workspace."""
    if not settled:
        return []
    workspaces, enrollments, steps, visits = zip(*settled, strict=True)
    result = await session.execute(
        text(
            """
            UPDATE enrollments AS e SET next_action_at = :now, lease_until = NULL,
                updated_at = :now
            FROM unnest(CAST(:workspaces AS uuid[]), CAST(:enrollments AS uuid[]),
                        CAST(:steps AS text[]), CAST(:visits AS int[]))
                 AS v(workspace_id, id, step_key, visit)
            WHERE e.id = v.id AND e.workspace_id = v.workspace_id
              AND e.state IN ('active', 'waiting')
              AND e.step_key = v.step_key AND e.step_visit = v.visit
            RETURNING e.workspace_id, e.id
            """
        ),
        {
            "workspaces": list(workspaces),
            "enrollments": list(enrollments),
            "steps": list(steps),
            "visits": list(visits),
            "now": now,
        },
    )
    return [(row[0], row[1]) for row in result.all()]
