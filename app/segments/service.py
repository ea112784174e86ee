"""Segments: CRUD with versions for ETags, preview and count, static members, history.

Stateless; the caller owns the transaction. Membership upkeep lives in `membership`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.db import StatementTimeout, statement_timeout
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.etag import check_if_match
from app.core.pagination import PageParams, PageResult
from app.core.repository import Window
from app.core.usage import UsageOut, UsageRef, find_usage, refuse_if_used, register_usage_finder
from app.segments import membership
from app.segments.compiler import CompileContext, member_ids
from app.segments.entries_repository import EntryQueries
from app.segments.models import Segment, SegmentCountSnapshot, SegmentMembershipChange
from app.segments.repository import (
    ContactLookup,
    ContactRef,
    MemberRow,
    MembershipRepository,
    SegmentRepository,
    contact_in,
)
from app.segments.rules import Rule, RuleError, parse_rule, referenced_segment_ids
from app.segments.rules.nodes import PropertyFilter
from app.segments.schemas import MemberReferences, PreviewRequest, SegmentCreate, SegmentUpdate


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[ContactRef]
    computed_at: datetime


@dataclass(frozen=True)
class LiveCount:
    segment_id: uuid.UUID
    count: int
    source: str
    computed_at: datetime


@dataclass(frozen=True)
class MembersChange:
    matched: int
    changed: int
    unchanged: int
    not_found_ids: list[uuid.UUID]
    not_found_external_ids: list[str]
    not_found_emails: list[str]
    member_count: int


# -- CRUD ------------------------------------------------------------------------------------


async def create_segment(
    session: AsyncSession, workspace_id: uuid.UUID, body: SegmentCreate
) -> Segment:
    if body.kind == "static" and body.rule is not None:
        raise _field("/rule", "Static segments have no rule; omit `rule`.", "extra_forbidden")
    if body.kind == "dynamic" and body.rule is None:
        raise _field("/rule", "Dynamic segments need a `rule`.", "missing")
    segment = Segment(
        name=body.name,
        description=body.description,
        kind=body.kind,
        rule=body.rule,
        version=1,
        member_count=0,
    )
    if body.rule is not None:
        await _validated(session, workspace_id, membership.checked_rule(body.rule), None)
    SegmentRepository(session, workspace_id).add(segment)
    await session.flush()
    if segment.kind == "dynamic":
        membership.enqueue_refresh(session, workspace_id, segment.id)
    return segment


async def list_segments(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams, kind: str | None
) -> PageResult[Segment]:
    conditions = [Segment.kind == kind] if kind is not None else []
    return await SegmentRepository(session, workspace_id).page(params, *conditions)


async def get_segment(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID
) -> Segment:
    return await SegmentRepository(session, workspace_id).get_or_404(segment_id)


async def update_segment(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    body: SegmentUpdate,
    if_match: str | None,
) -> Segment:
    segment = await SegmentRepository(session, workspace_id).locked_or_404(segment_id)
    check_if_match(if_match, segment.id, segment.version)
    given = body.model_fields_set
    if "name" in given and body.name is None:
        raise _field("/name", "A segment needs a name.", "missing")
    rule_changed = False
    if "rule" in given:
        if segment.kind == "static":
            raise _field("/rule", "Static segments have no rule.", "extra_forbidden")
        if body.rule is None:
            raise _field("/rule", "A dynamic segment's rule cannot be removed.", "missing")
        await _validated(session, workspace_id, membership.checked_rule(body.rule), segment.id)
        rule_changed = body.rule != segment.rule
        segment.rule = body.rule
    changed = rule_changed
    if body.name is not None and body.name != segment.name:
        segment.name, changed = body.name, True
    if "description" in given and body.description != segment.description:
        segment.description, changed = body.description, True
    if changed:
        segment.version += 1
        segment.updated_at = utcnow()
    await session.flush()
    if rule_changed:
        membership.enqueue_refresh(session, workspace_id, segment.id)
        # Segments referencing this one inline its rule: their members change too.
        for dependent in await _dependents(session, workspace_id, segment.id):
            membership.enqueue_refresh(session, workspace_id, dependent)
    return segment


async def _dependents(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID
) -> set[uuid.UUID]:
    """Segments whose rules reference this one, directly or through others."""
    repository = SegmentRepository(session, workspace_id)
    found: set[uuid.UUID] = set()
    frontier = [segment_id]
    while frontier:
        current = frontier.pop()
        for other in await repository.mentioning(current):
            if other.id not in found and other.id != segment_id and _references(other, current):
                found.add(other.id)
                frontier.append(other.id)
    return found


async def usage(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> UsageOut:
    await get_segment(session, workspace_id, segment_id)
    return await find_usage(session, workspace_id, "segment", segment_id)


async def delete_segment(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, if_match: str | None
) -> None:
    segment = await SegmentRepository(session, workspace_id).locked_or_404(segment_id)
    check_if_match(if_match, segment.id, segment.version)
    await refuse_if_used(session, workspace_id, "segment", segment_id)
    await session.delete(segment)
    await session.flush()


async def _segment_users(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID
) -> list[UsageRef]:
    """Segments whose rules reference this one."""
    candidates = await SegmentRepository(session, workspace_id).mentioning(segment_id)
    return [
        UsageRef(kind="segment", id=other.id, name=other.name, via="rule")
        for other in candidates
        if _references(other, segment_id)
    ]


def register_usage() -> None:
    """Called once per process by app/wiring.py: other segments' rules use a segment."""
    register_usage_finder("segment", "segments", _segment_users)


def _references(other: Segment, segment_id: uuid.UUID) -> bool:
    try:
        return segment_id in referenced_segment_ids(parse_rule(other.rule))
    except RuleError:
        return True  # an unreadable rule might reference it: refuse rather than break it


async def _validated(
    session: AsyncSession, workspace_id: uuid.UUID, rule: Rule, editing: uuid.UUID | None
) -> CompileContext:
    """References exist, form no cycle, and the rule compiles."""
    refs = await membership.referenced_segments(session, workspace_id, rule, editing)
    ctx = CompileContext(workspace_id, utcnow(), refs)
    try:
        member_ids(rule, ctx)
    except RuleError as exc:
        raise membership.rule_problem(exc) from exc
    return ctx


def _field(pointer: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(
        f"The request has an invalid field: body{pointer}.",
        errors=[FieldError(pointer=pointer, location="body", message=message, code=code)],
    )


# -- preview and count -----------------------------------------------------------------------


async def preview(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    body: PreviewRequest,
    *,
    timeout_seconds: float,
) -> Preview:
    rule = membership.checked_rule(body.rule)
    ctx = await _validated(session, workspace_id, rule, None)
    contacts = ContactLookup(session, workspace_id)
    async with _bounded(session, timeout_seconds, "/rule"):
        count = await contacts.count_matching(rule, ctx)
        sample = await contacts.sample(member_ids(rule, ctx), body.sample_size)
    return Preview(count, sample, ctx.now)


@asynccontextmanager
async def _bounded(
    session: AsyncSession, seconds: float, pointer: str | None
) -> AsyncIterator[None]:
    """Evaluation of a rule on the request path, bounded: a rule that would hold a database
    connection for minutes answers 422 instead (the transaction stays usable)."""
    try:
        async with statement_timeout(session, seconds):
            yield
    except StatementTimeout as exc:
        message = (
            f"The rule took longer than {seconds:g} s to evaluate "
            "(HERALD_SEGMENTS__EVALUATION_TIMEOUT_SECONDS). Narrow it, or save it as a "
            "dynamic segment: its member_count is kept current in the background."
        )
        errors = (
            []
            if pointer is None
            else [
                FieldError(
                    pointer=pointer, location="body", message=message, code="evaluation_timeout"
                )
            ]
        )
        raise Unprocessable(message, errors=errors) from exc


async def count(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, *, timeout_seconds: float
) -> LiveCount:
    segment = await get_segment(session, workspace_id, segment_id)
    now = utcnow()
    if segment.kind == "static":
        total = await MembershipRepository(session, workspace_id).count(segment.id)
        return LiveCount(segment.id, total, "membership", now)
    rule, ctx = await membership.compile_context(session, segment, now)
    try:
        async with _bounded(session, timeout_seconds, None):
            total = await ContactLookup(session, workspace_id).count_matching(rule, ctx)
    except RuleError as exc:
        raise Conflict(f"Segment {segment.id}'s rule does not compile: {exc}") from exc
    return LiveCount(segment.id, total, "live", now)


# -- members, changes, history ---------------------------------------------------------------


async def list_members(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, params: PageParams
) -> PageResult[MemberRow]:
    await get_segment(session, workspace_id, segment_id)
    return await MembershipRepository(session, workspace_id).page(segment_id, params)


async def add_members(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, body: MemberReferences
) -> MembersChange:
    return await _change_members(session, workspace_id, segment_id, body, adding=True)


async def remove_members(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, body: MemberReferences
) -> MembersChange:
    return await _change_members(session, workspace_id, segment_id, body, adding=False)


async def _change_members(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    body: MemberReferences,
    *,
    adding: bool,
) -> MembersChange:
    segment = await SegmentRepository(session, workspace_id).locked_or_404(segment_id)
    if segment.kind != "static":
        raise Conflict(
            f"Segment {segment_id} is dynamic: its members follow its rule. "
            "Only static segments take explicit members."
        )
    lookup = ContactLookup(session, workspace_id)
    ids, external_ids, emails = set(body.contact_ids), set(body.external_ids), set(body.emails)
    found = await lookup.found(ids, external_ids, emails)
    matching = lookup.matching(ids, external_ids, emails)
    memberships = MembershipRepository(session, workspace_id)
    now = utcnow()

    among = contact_in([ref.id for ref in found])
    if adding:
        changed = await memberships.enter(segment_id, matching, now, among=among)
        delta = changed
    else:
        changed = await memberships.leave(segment_id, now, among=among)
        delta = -changed
    repository = SegmentRepository(session, workspace_id)
    await repository.add_to_count(segment_id, delta)
    await session.refresh(segment, ["member_count"])
    if changed:
        await membership.emit_membership_changes(
            session, workspace_id, now, segment_ids=[segment_id]
        )
        # Dynamic segments may reference this one.
        await membership.note_contacts_changed(session, workspace_id, [ref.id for ref in found])
    return MembersChange(
        matched=len(found),
        changed=changed,
        unchanged=len(found) - changed,
        not_found_ids=sorted(ids - {ref.id for ref in found}),
        not_found_external_ids=sorted(external_ids - {ref.external_id for ref in found}),
        not_found_emails=sorted(emails - {ref.email for ref in found}),
        member_count=segment.member_count,
    )


async def list_changes(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    params: PageParams,
    *,
    window: Window,
    change: str | None,
    contact_id: uuid.UUID | None,
) -> PageResult[SegmentMembershipChange]:
    await get_segment(session, workspace_id, segment_id)
    return await MembershipRepository(session, workspace_id).page_changes(
        segment_id, params, window, change, contact_id
    )


async def history(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    params: PageParams,
    window: Window,
) -> PageResult[SegmentCountSnapshot]:
    await get_segment(session, workspace_id, segment_id)
    return await MembershipRepository(session, workspace_id).page_snapshots(
        segment_id, params, window
    )


def segment_entries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    window: tuple[datetime, datetime, datetime | None],
) -> Select[Any]:
    """(contact_id, entered_at) of contacts who entered the segment in the window
    (after, until] and before the optional end: one SELECT for a trigger sweep to compose."""
    return EntryQueries(session, workspace_id).segment_entries(segment_id, *window)


def event_entries(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    event_type: str,
    filters: list[PropertyFilter],
    window: tuple[datetime, datetime, datetime | None],
) -> Select[Any]:
    """(contact_id, entered_at) of contacts who did the event (matching the rule-language
    property filters) in the window: one SELECT for a trigger sweep to compose."""
    return EntryQueries(session, workspace_id).event_entries(event_type, filters, *window)
