"""Dynamic segment membership: kept current in `segment_memberships`, set-wise.

- `note_contacts_changed` (called by contacts, events, consent and privacy code inside their
  own transaction) records the contacts in `segment_dirty_contacts` and enqueues, after
  commit, one job per workspace (`segments_refresh_contacts`). The job drains the dirty rows
  in batches and re-evaluates every dynamic segment for just those contacts: one INSERT ...
  SELECT for entrants and one DELETE for leavers per segment, each journalling
  `entered` / `left` rows in the same statement.
- `refresh_segment` re-evaluates one segment in full (after a rule change, for time-relative
  rules on every tick, and once a day for the rest), again one statement each way.
- `sweep` is the periodic tick: it finds the work from state (dirty rows, rules, last refresh
  times), so it also catches up after worker downtime; and it records count snapshots.
- `is_member` and `members_query` are what launches and step conditions use.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import Conflict, FieldError, Unprocessable
from app.core.jobs import enqueue
from app.events.notices import IngestedEvent
from app.outbox import emit
from app.outbox.catalogue import SegmentEntered, SegmentLeft
from app.segments.compiler import CompileContext, SegmentRef, member_ids
from app.segments.models import Segment
from app.segments.repository import (
    DirtyContactQueue,
    MembershipRepository,
    SegmentRepository,
    contact_in,
)
from app.segments.rules import (
    AttributeNode,
    EventNode,
    Rule,
    RuleError,
    SegmentNode,
    iter_nodes,
    parse_rule,
    referenced_segment_ids,
)
from app.segments.sweep_repository import SegmentSweep

log = structlog.get_logger("herald.segments")

REFRESH_CONTACTS_TASK = "segments_refresh_contacts"
REFRESH_SEGMENT_TASK = "segments_refresh_segment"
DIRTY_BATCH = 5000  # contacts re-evaluated per transaction
FULL_REFRESH_EVERY = timedelta(hours=24)  # safety net for rules that are not time-relative
SNAPSHOT_HEARTBEAT = timedelta(hours=1)  # a count snapshot at least this often


# -- entry point for other domains -----------------------------------------------------------


async def note_contacts_changed(
    session: AsyncSession, workspace_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
) -> None:
    """Schedule re-evaluation of these contacts' dynamic memberships after commit.

    Cheap on the ingest path: one indexed EXISTS, one INSERT of the ids, one buffered job.
    Bursts coalesce: the job id is per workspace, so while a job is queued every later
    change joins it; a job already running drains rows committed while it runs."""
    if not contact_ids or not await SegmentRepository(session, workspace_id).has_dynamic():
        return
    await DirtyContactQueue(session, workspace_id).mark(contact_ids)
    _enqueue_refresh(session, workspace_id)


async def on_events_recorded(
    session: AsyncSession, workspace_id: uuid.UUID, events: Sequence[IngestedEvent]
) -> None:
    """Subscriber of `events_recorded`: event-count rules may now hold for these contacts."""
    contact_ids = list(dict.fromkeys(event.contact_id for event in events))
    await note_contacts_changed(session, workspace_id, contact_ids)


async def end_memberships(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID, now: datetime
) -> int:
    """End every membership of one contact that is going away (erasure, hard deletion):
    `left` journal rows, each segment's `member_count` down, `segment.left` emitted. Returns
    how many memberships ended."""
    removed = await MembershipRepository(session, workspace_id).end_all(contact_id, now)
    if removed:
        await emit_membership_changes(session, workspace_id, now, contact_id=contact_id)
    return removed


async def is_member(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, contact_id: uuid.UUID
) -> bool:
    """Membership as recorded in the membership table (current within seconds)."""
    return await MembershipRepository(session, workspace_id).is_member(segment_id, contact_id)


async def members_query(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, *, live: bool = False
) -> Select[uuid.UUID]:
    """A SELECT of member contact ids, for INSERT ... SELECT at launch.

    By default the membership table; with `live=True` a dynamic segment's rule is evaluated
    at statement time instead (exact at that instant, costlier)."""
    segment = await SegmentRepository(session, workspace_id).get_or_404(segment_id)
    if live and segment.kind == "dynamic":
        rule, ctx = await compile_context(session, segment)
        return member_ids(rule, ctx)
    return MembershipRepository(session, workspace_id).ids_query(segment_id)


async def members_of_any(
    session: AsyncSession, workspace_id: uuid.UUID, segment_ids: list[uuid.UUID]
) -> Select[Any]:
    """Contact ids in any of these segments (`members_query` each, UNION): a launch's
    include or exclude list as one SELECT."""
    queries = [await members_query(session, workspace_id, item) for item in segment_ids]
    return MembershipRepository.union_ids(queries)


# -- rules and compile contexts --------------------------------------------------------------


def checked_rule(data: object) -> Rule:
    """Parse a rule from a request body; errors point into the body's `rule`."""
    try:
        return parse_rule(data)
    except RuleError as exc:
        raise rule_problem(exc) from exc


def rule_problem(exc: RuleError) -> Unprocessable:
    errors = [
        FieldError(pointer="/rule" + e.pointer, location="body", message=e.message, code=e.code)
        for e in exc.errors
    ]
    where = ", ".join(sorted({e.pointer for e in errors}))
    return Unprocessable(f"The rule is invalid at {where}.", errors=errors)


def stored_rule(segment: Segment) -> Rule:
    try:
        return parse_rule(segment.rule)
    except RuleError as exc:
        raise Conflict(
            f"Segment {segment.id} has a stored rule that no longer validates ({exc}); "
            "update its rule."
        ) from exc


async def referenced_segments(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    rule: Rule,
    editing: uuid.UUID | None = None,
) -> dict[uuid.UUID, SegmentRef]:
    """Every segment `rule` references, transitively, as the compiler needs them.

    With `editing` (the id of the segment being saved), a path leading back to it is a cycle
    and answers 422 naming the path."""
    repository = SegmentRepository(session, workspace_id)
    refs: dict[uuid.UUID, SegmentRef] = {}
    parent: dict[uuid.UUID, uuid.UUID | None] = dict.fromkeys(referenced_segment_ids(rule))
    if editing is not None and editing in parent:
        raise _cycle(editing, None, parent)
    frontier = set(parent)
    while frontier:
        found = {segment.id: segment for segment in await repository.by_ids(frontier)}
        frontier = set()
        for segment_id, segment in found.items():
            if segment.kind != "dynamic":
                refs[segment_id] = SegmentRef(kind="static", rule=None)
                continue
            inner = stored_rule(segment)
            refs[segment_id] = SegmentRef(kind="dynamic", rule=inner)
            for nested in referenced_segment_ids(inner):
                if nested == editing:
                    raise _cycle(editing, segment_id, parent)
                if nested not in parent:
                    parent[nested] = segment_id
                    frontier.add(nested)
    return refs


def _cycle(
    editing: uuid.UUID, last: uuid.UUID | None, parent: Mapping[uuid.UUID, uuid.UUID | None]
) -> Unprocessable:
    chain: list[uuid.UUID] = []
    node = last
    while node is not None:
        chain.append(node)
        node = parent.get(node)
    path = " -> ".join(str(item) for item in [editing, *reversed(chain), editing])
    return Unprocessable(
        f"The rule would make segments reference each other in a cycle: {path}.",
        errors=[
            FieldError(
                pointer="/rule",
                location="body",
                message=f"Segment reference cycle: {path}.",
                code="cycle",
            )
        ],
    )


async def compile_context(
    session: AsyncSession, segment: Segment, now: datetime | None = None
) -> tuple[Rule, CompileContext]:
    rule = stored_rule(segment)
    refs = await referenced_segments(session, segment.workspace_id, rule)
    return rule, CompileContext(segment.workspace_id, now or utcnow(), refs)


def is_time_relative(rule: Rule, refs: Mapping[uuid.UUID, SegmentRef], depth: int = 0) -> bool:
    """Whether membership can change with nothing but the passing of time: relative date
    windows (`within_last` / `within_next`) and event windows (`within`), here or in a
    referenced dynamic segment."""
    for node in iter_nodes(rule):
        if isinstance(node, AttributeNode) and node.attribute.op in ("within_last", "within_next"):
            return True
        if isinstance(node, EventNode) and node.event.within is not None:
            return True
        if isinstance(node, SegmentNode) and depth < 32:
            ref = refs.get(node.segment.id)
            if (
                ref is not None
                and ref.rule is not None
                and is_time_relative(ref.rule, refs, depth + 1)
            ):
                return True
    return False


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moves:
    entered: int = 0
    left: int = 0


async def reevaluate(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    rule: Rule,
    ctx: CompileContext,
    *,
    contact_ids: Collection[uuid.UUID] | None = None,
) -> Moves:
    """Bring one dynamic segment's membership in line with its rule, for `contact_ids` or
    (None) for everyone, in one statement that evaluates the rule once (for a batch, over
    just those contacts: `member_ids(..., among=)`)."""
    entered, left = await MembershipRepository(session, workspace_id).sync(
        segment_id,
        member_ids(rule, ctx, among=contact_ids),
        ctx.now,
        among=None if contact_ids is None else contact_in(contact_ids),
    )
    return Moves(entered, left)


async def refresh_contacts(
    session: AsyncSession, workspace_id: uuid.UUID, now: datetime
) -> int | None:
    """Re-evaluate every dynamic segment for one batch of dirty contacts, then clear those
    rows (unless they were noted again meanwhile). Returns the batch size (None: no work)."""
    queue = DirtyContactQueue(session, workspace_id)
    pairs = await queue.peek(DIRTY_BATCH)
    if not pairs:
        return None
    ids = [contact_id for contact_id, _ in pairs]
    repository = SegmentRepository(session, workspace_id)
    segments = await repository.every()
    refs = _workspace_refs(segments)
    ctx = CompileContext(workspace_id, now, refs)
    moved: list[uuid.UUID] = []
    for segment in segments:
        rule = refs[segment.id].rule
        if segment.kind != "dynamic" or rule is None:
            continue
        try:
            moves = await reevaluate(session, workspace_id, segment.id, rule, ctx, contact_ids=ids)
        except RuleError:
            log.warning("segment_rule_not_compilable", segment_id=str(segment.id))
            continue
        await repository.add_to_count(segment.id, moves.entered - moves.left)
        if moves.entered or moves.left:
            moved.append(segment.id)
    if moved:
        await emit_membership_changes(session, workspace_id, now, segment_ids=moved)
    await queue.forget(pairs)
    return len(ids)


async def refresh_segment(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, now: datetime
) -> Moves | None:
    """Full re-evaluation of one dynamic segment; None when it is gone or static.

    The segment row is locked for the transaction, so two full refreshes of one segment
    never interleave (an edit waits for the refresh to commit)."""
    repository = SegmentRepository(session, workspace_id)
    segment = await repository.get_for_update(segment_id)
    if segment is None or segment.kind != "dynamic":
        return None
    rule, ctx = await compile_context(session, segment, now)
    moves = await reevaluate(session, workspace_id, segment.id, rule, ctx)
    count = await MembershipRepository(session, workspace_id).count(segment.id)
    await repository.set_refreshed(segment.id, count, now)
    if moves.entered or moves.left:
        await emit_membership_changes(session, workspace_id, now, segment_ids=[segment.id])
    return moves


async def emit_membership_changes(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    now: datetime,
    *,
    segment_ids: Collection[uuid.UUID] | None = None,
    contact_id: uuid.UUID | None = None,
) -> int:
    """`segment.entered` / `segment.left` for the journal rows this transaction wrote at
    `now` (of these segments, or of this contact), set-wise: one INSERT ... SELECT per type
    from the journal, none at all when no endpoint listens (one subscription query).

    Call it once after the membership writes of a transaction: the journal rows are found
    by their instant, which is this transaction's own `now`."""
    targets = await emit.subscribers_by_type(
        session, workspace_id, [SegmentEntered.TYPE, SegmentLeft.TYPE]
    )
    emitted = 0
    memberships = MembershipRepository(session, workspace_id)
    for event, change in ((SegmentEntered, "entered"), (SegmentLeft, "left")):
        if not targets[event.TYPE]:
            continue
        rows = memberships.journalled_at(
            now, change, segment_ids=segment_ids, contact_id=contact_id
        )
        emitted += await emit.emit_from_query(
            session, workspace_id, event, rows, endpoints=targets[event.TYPE]
        )
    return emitted


def _workspace_refs(segments: Iterable[Segment]) -> dict[uuid.UUID, SegmentRef]:
    """SegmentRefs for every segment of a workspace, as the compiler needs them.
    Unparsable stored rules are logged and left out of evaluation."""
    refs: dict[uuid.UUID, SegmentRef] = {}
    for segment in segments:
        if segment.kind != "dynamic":
            refs[segment.id] = SegmentRef(kind="static", rule=None)
            continue
        try:
            refs[segment.id] = SegmentRef(kind="dynamic", rule=parse_rule(segment.rule))
        except RuleError:
            log.warning("segment_rule_invalid", segment_id=str(segment.id))
            refs[segment.id] = SegmentRef(kind="dynamic", rule=None)
    return refs


# -- the periodic tick -----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    dirty_workspaces: int
    refreshes: int
    snapshots: int


async def sweep(session: AsyncSession, now: datetime) -> SweepResult:
    """Find due work from state and enqueue it; record count snapshots.

    Nothing here depends on the previous tick having run: a worker that was down simply
    finds more rows due on its first tick."""
    finder = SegmentSweep(session)
    dirty = await finder.workspaces_with_dirty_contacts()
    for workspace_id in dirty:
        _enqueue_refresh(session, workspace_id)
    states = await finder.dynamic_segments()
    by_workspace: dict[uuid.UUID, dict[uuid.UUID, Any]] = {}
    for state in states:
        by_workspace.setdefault(state.workspace_id, {})[state.id] = state
    refreshes = 0
    for workspace_id, segments in by_workspace.items():
        refs: dict[uuid.UUID, SegmentRef] = {}
        for segment_id, state in segments.items():
            try:
                refs[segment_id] = SegmentRef(kind="dynamic", rule=parse_rule(state.rule))
            except RuleError:
                continue
        for segment_id, state in segments.items():
            ref = refs.get(segment_id)
            if ref is None or ref.rule is None:
                continue
            due = (
                state.refreshed_at is None
                or state.refreshed_at <= now - FULL_REFRESH_EVERY
                or is_time_relative(ref.rule, refs)
            )
            if due:
                enqueue_refresh(session, workspace_id, segment_id)
                refreshes += 1
    snapshots = await finder.snapshot_counts(now, SNAPSHOT_HEARTBEAT)
    return SweepResult(len(dirty), refreshes, snapshots)


def enqueue_refresh(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> None:
    enqueue(
        session,
        REFRESH_SEGMENT_TASK,
        str(workspace_id),
        str(segment_id),
        job_key=(segment_id,),
    )


def _enqueue_refresh(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """The workspace's drain of dirty contacts, after commit: one job id per workspace, run
    once more when a run is already going (rows committed after its last check)."""
    enqueue(
        session,
        REFRESH_CONTACTS_TASK,
        str(workspace_id),
        job_key=(workspace_id,),
        again_if_taken=True,
    )


async def purge_history(session: AsyncSession, cutoff: datetime, limit: int) -> tuple[int, int]:
    """One batch of the daily purge: journal rows and count snapshots older than `cutoff`
    (`segments.history_retention_days`), up to `limit` of each. Returns (journal rows,
    snapshots) deleted; the caller repeats until a batch comes back short."""
    return await SegmentSweep(session).purge_history(cutoff, limit)
