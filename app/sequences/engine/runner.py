"""One pass of one enrollment: check exit rules, then run steps until one has to wait.

A pass runs inside the claim transaction; everything it writes (messages, timeline rows,
the enrollment's next state, contact updates) commits together or not at all. Steps that
need no time (branch, update_contact, send, webhook, exit) run back to back; `wait`,
`wait_for_event`, a deferral (send window, frequency cap) or the per-pass step budget end
the pass. Every instant comes from `now`, passed in, so the simulator can drive a pass at
any virtual time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id
from app.segments.compiler import CompileContext
from app.segments.membership import note_contacts_changed, referenced_segments
from app.sequences.definition import (
    BranchStep,
    ExitStep,
    SendStep,
    Step,
    UpdateContactStep,
    WaitForEventStep,
    WaitStep,
    WebhookStep,
)
from app.sequences.engine.render import RenderedMessage, render_message
from app.sequences.engine.repository import EngineRepository, StepMessage
from app.sequences.engine.timing import cap_release, contact_zone, next_opening, wait_until
from app.sequences.engine.variants import pick_variant

if TYPE_CHECKING:
    from app.config import Settings
    from app.contacts.models import Contact
    from app.sequences.engine.facts import BatchFacts
    from app.sequences.engine.repository import EngineRepository
    from app.sequences.engine.versions import ParsedVersion
    from app.sequences.models import Enrollment

MAX_STEPS_PER_PASS = 50
STEP_LIMIT_REASON = "step_limit"
# A send step holds its enrollment until its message is settled; settling wakes it at once
# (`wake_settled`). This re-check is only a safety net should a wake-up ever be lost.
SETTLE_RECHECK = timedelta(minutes=10)
SETTLED = ("sent", "delivered", "bounced", "failed", "unknown")


@dataclass
class PassOutput:
    """Rows a batch of passes writes in bulk."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[uuid.UUID, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    campaigns: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # campaign.*


class Pass:
    def __init__(
        self,
        *,
        session: AsyncSession,
        repo: EngineRepository,
        settings: Settings,
        enrollment: Enrollment,
        version: ParsedVersion,
        facts: BatchFacts,
        output: PassOutput,
        now: datetime,
    ) -> None:
        self.session = session
        self.repo = repo
        self.settings = settings
        self.enrollment = enrollment
        self.version = version
        self.facts = facts
        self.output = output
        self.now = now
        self.due_at = enrollment.next_action_at or now
        # When the steps run from here start their clocks: `now`, or the acceptance time of
        # the message a settled send step waited for (waits count from delivery).
        self.base = now
        self.contact: Contact | None = facts.contacts.get(enrollment.contact_id)
        self.config = version.definition.settings
        timezone = self.contact.timezone if self.contact else None
        self.zone = contact_zone(timezone, self.config.default_timezone)

    # -- driver ------------------------------------------------------------------------------

    async def run(self) -> None:
        reason = self.exit_reason()
        if reason is not None:
            self.finish("exited", reason)
            return
        for _ in range(MAX_STEPS_PER_PASS):
            key = self.enrollment.step_key
            step = self.version.steps.get(key) if key else None
            if step is None:
                self.finish("completed", None)
                return
            if not await self.execute(step):
                return
        # More steps in one pass than any sane definition needs without waiting: a loop
        # through instant steps. It would never end; the enrollment does, with a reason.
        self.finish("exited", STEP_LIMIT_REASON)

    async def execute(self, step: Step) -> bool:
        """Run one step; True to go on with the next in this pass."""
        if isinstance(step, SendStep):
            return await self.send(step)
        if isinstance(step, WaitStep):
            return self.wait(step)
        if isinstance(step, WaitForEventStep):
            return await self.wait_for_event(step)
        if isinstance(step, BranchStep):
            return await self.branch(step)
        if isinstance(step, WebhookStep):
            return await self.webhook(step)
        if isinstance(step, UpdateContactStep):
            return await self.update_contact(step)
        assert isinstance(step, ExitStep)
        self.record(step, "exited", {"reason": step.reason or "exit_step"})
        self.finish("exited", step.reason or "exit_step", record=False)
        return False

    # -- exits -------------------------------------------------------------------------------

    def exit_reason(self) -> str | None:
        contact = self.contact
        if contact is None or contact.erased_at is not None:
            return "contact_erased"
        started = self.enrollment.started_at
        for rule in self.config.exit_rules:
            if rule.on == "unsubscribed" and self.facts.any_opt_out(contact.id):
                return "unsubscribed"
            if rule.on == "left_segment" and contact.id in self.facts.non_members.get(
                rule.segment_id or contact.id, set()
            ):
                return "left_segment"
            if rule.on in ("replied", "converted", "event"):
                kind = "email.replied" if rule.on == "replied" else rule.event_type
                seen = self.facts.latest_events.get((contact.id, kind or ""))
                if seen is not None and seen >= started and seen <= self.now:
                    return rule.on if rule.on != "event" else f"event:{kind}"
        return None

    # -- steps -------------------------------------------------------------------------------

    async def send(self, step: SendStep) -> bool:
        assert self.contact is not None
        created = self.facts.step_messages.get(self.enrollment.id)
        if created is not None and (created.step_key, created.visit) == (
            step.key,
            self.enrollment.step_visit,
        ):
            return self.settle(step, created)
        blocked = self.facts.send_block(self.contact, step.channel)
        if blocked is not None:
            self.record(step, "skipped", {"reason": blocked})
            return self.goto(step.next)
        window = self.config.send_window
        if window is not None:
            opening = next_opening(self.now, window, self.zone)
            if opening > self.now:
                return self.defer(step, opening, "send_window")
        for cap in self.config.frequency_caps:
            if cap.channel != step.channel:
                continue
            release = cap_release(self.facts.sends[(self.contact.id, cap.channel)], cap, self.now)
            if release is None:
                continue
            if cap.action == "defer":
                return self.defer(step, release, "frequency_cap")
            self.record(step, "skipped", {"reason": "frequency_cap"})
            return self.goto(step.next)
        variant = None
        if step.variants:
            campaign_id = self.enrollment.campaign_id
            winner = self.facts.winners.get((campaign_id, step.key)) if campaign_id else None
            variant = pick_variant(step.variants, self.contact.id, step.key, winner=winner).key
        pinned = self.version.pins.get((step.key, variant))
        message_id = new_id()
        template = self.output.templates.get(pinned) if pinned else None
        rendered = await render_message(
            self.settings, message_id, self.contact, template, self.campaign()
        )
        recipient = self.facts.address(self.contact, step.channel)
        self.add_message(
            step,
            message_id=message_id,
            channel=step.channel,
            recipient=recipient,
            rendered=rendered,
            template_version_id=pinned,
            variant=variant,
        )
        self.facts.sends[(self.contact.id, step.channel)].append(self.now)
        detail = {"channel": step.channel, "variant": variant, "status": rendered.status}
        self.record(step, "sent" if rendered.error is None else "failed", detail, message_id)
        if rendered.error is not None:
            if self.config.on_send_failure == "fail":
                self.finish("failed", "render_error")
                return False
            return self.goto(step.next)
        return self.hold()

    def hold(self) -> bool:
        """Stay on the send step until its message is settled (delivery wakes us)."""
        self.enrollment.next_action_at = self.now + SETTLE_RECHECK
        return False

    def settle(self, step: SendStep, message: StepMessage) -> bool:
        """The send step's message again: still pending, hold on; sent, go on with the
        clock started at its acceptance (`sent_at`); failed, per `on_send_failure`; unknown
        (the server may have it), go on from the moment that became known."""
        if message.status not in SETTLED:
            return self.hold()
        if message.status == "failed":
            self.record(step, "send_failed", {})
            if self.config.on_send_failure == "fail":
                self.finish("failed", "send_failed")
                return False
            self.base = min(message.updated_at, self.now)
        elif message.status == "unknown":
            self.record(step, "send_unknown", {})
            self.base = min(message.updated_at, self.now)
        else:
            self.base = min(message.sent_at or self.now, self.now)
        return self.goto(step.next)

    async def webhook(self, step: WebhookStep) -> bool:
        assert self.contact is not None
        message_id = new_id()
        pinned = self.version.pins.get((step.key, None))
        template = self.output.templates.get(pinned) if pinned else None
        if pinned is None:  # no template: the standard payload
            rendered = RenderedMessage({"payload": self.default_payload(step)})
        else:
            rendered = await render_message(
                self.settings, message_id, self.contact, template, self.campaign()
            )
        self.add_message(
            step,
            message_id=message_id,
            channel="webhook",
            recipient=step.url,
            rendered=rendered,
            template_version_id=pinned,
            variant=None,
        )
        self.record(step, "called", {"url": step.url, "status": rendered.status}, message_id)
        return self.goto(step.next)

    def campaign(self) -> dict[str, Any] | None:
        """`campaign.*` of the enrollment's campaign (none for a sequence run on its own)."""
        campaign_id = self.enrollment.campaign_id
        return self.output.campaigns.get(campaign_id) if campaign_id else None

    def default_payload(self, step: WebhookStep) -> dict[str, Any]:
        assert self.contact is not None
        return {
            "type": "sequence.webhook_step",
            "sequence_id": str(self.version.sequence_id),
            "enrollment_id": str(self.enrollment.id),
            "step": step.key,
            "contact": {
                "id": str(self.contact.id),
                "external_id": self.contact.external_id,
                "email": self.contact.email,
                "attributes": self.contact.attributes,
            },
            "timestamp": self.now.isoformat(),
        }

    def wait(self, step: WaitStep) -> bool:
        assert self.contact is not None
        start = self.enrollment.step_entered_at
        until = wait_until(step, start, self.zone, self.contact.attributes or {})
        if until is None:
            self.record(step, "skipped", {"reason": "attribute_missing"})
            return self.goto(step.next)
        self.record(step, "waiting", {"until": until.isoformat()})
        if step.next is None:  # a trailing wait: complete once it is over
            self.enrollment.step_key = None
        else:
            self.goto(step.next)
        self.enrollment.next_action_at = until
        return False  # a wait always ends the pass, even when already over (`PT0S`)

    async def wait_for_event(self, step: WaitForEventStep) -> bool:
        enrollment = self.enrollment
        deadline = enrollment.step_entered_at + step.timeout
        if enrollment.wait_event_type is None:  # entering the step
            enrollment.state = "waiting"
            enrollment.wait_event_type = step.event_type
            enrollment.next_action_at = deadline
            self.record(step, "waiting", {"event_type": step.event_type, "until": deadline})
            if enrollment.step_entered_at >= self.now:
                return False
            # Entered in the past (the send before it was accepted then): an awaited event
            # may already have happened, or the timeout be over.
        assert self.contact is not None
        # Entered at a send's acceptance: a reply may predate the recorded `sent_at` (the
        # server had the email a moment before the worker saw its answer), never the
        # handover. The timeout still runs from `sent_at`.
        since = await self.repo.offered_before(enrollment.id, enrollment.step_entered_at)
        happened = await self.repo.event_since(
            self.contact.id,
            step.event_type,
            self.version.filters.get(step.key, []),
            since,
            min(self.now, deadline),
        )
        if happened is not None:
            self.record(step, "event", {"occurred_at": happened.isoformat()})
            return self.goto(step.on_event)
        if self.now >= deadline:
            self.record(step, "timeout", {})
            return self.goto(step.on_timeout)
        enrollment.next_action_at = deadline  # woken by an event that does not match
        return False

    async def branch(self, step: BranchStep) -> bool:
        assert self.contact is not None
        if step.segment_id is not None:
            holds = await self.repo.is_member(step.segment_id, self.contact.id)
        else:
            rule = self.version.conditions[step.key]
            refs = await referenced_segments(self.session, self.repo.workspace_id, rule)
            ctx = CompileContext(self.repo.workspace_id, self.now, refs)
            holds = await self.repo.matches(self.contact.id, rule, ctx)
        self.record(step, "branched", {"result": "then" if holds else "else"})
        return self.goto(step.then if holds else step.else_)

    async def update_contact(self, step: UpdateContactStep) -> bool:
        assert self.contact is not None
        merged = await self.repo.merge_attributes(self.contact.id, step.attributes)
        if merged is not None:
            self.contact.attributes = merged
            await note_contacts_changed(self.session, self.repo.workspace_id, [self.contact.id])
        self.record(step, "updated", {"attributes": sorted(step.attributes)})
        return self.goto(step.next)

    # -- state -------------------------------------------------------------------------------

    def goto(self, key: str | None) -> bool:
        if key is None:
            enter_step(self.enrollment, None, self.base)
            self.finish("completed", None)
            return False
        enter_step(self.enrollment, key, self.base)
        return True

    def defer(self, step: Step, until: datetime, reason: str) -> bool:
        self.enrollment.next_action_at = until
        self.record(step, "deferred", {"reason": reason, "until": until.isoformat()})
        return False

    def finish(self, state: str, reason: str | None, *, record: bool = True) -> None:
        enrollment = self.enrollment
        if record:
            self.record(None, state, {"reason": reason} if reason else {})
        enrollment.state = state
        enrollment.exit_reason = reason
        enrollment.finished_at = self.now
        enrollment.next_action_at = None
        enrollment.wait_event_type = None

    def record(
        self,
        step: Step | None,
        outcome: str,
        detail: dict[str, Any],
        message_id: uuid.UUID | None = None,
    ) -> None:
        self.output.steps.append(
            {
                "id": new_id(),
                "workspace_id": self.repo.workspace_id,
                "enrollment_id": self.enrollment.id,
                "step_key": step.key if step else None,
                "step_type": step.type if step else None,
                "visit": self.enrollment.step_visit if step else 0,
                "outcome": outcome,
                "detail": _jsonable(detail),
                "due_at": self.due_at,
                "occurred_at": self.now,
                "message_id": message_id,
            }
        )
        self.due_at = self.now  # later steps of this pass were due when reached

    def add_message(
        self,
        step: Step,
        *,
        message_id: uuid.UUID,
        channel: str,
        recipient: str | None,
        rendered: RenderedMessage,
        template_version_id: uuid.UUID | None,
        variant: str | None,
    ) -> None:
        failed = rendered.error is not None
        self.output.messages.append(
            {
                "id": message_id,
                "workspace_id": self.repo.workspace_id,
                "enrollment_id": self.enrollment.id,
                "contact_id": self.enrollment.contact_id,
                "sequence_id": self.version.sequence_id,
                "campaign_id": self.enrollment.campaign_id,
                "step_key": step.key,
                "visit": self.enrollment.step_visit,
                "channel": channel,
                "template_version_id": template_version_id,
                "variant": variant,
                "recipient": recipient,
                "content": rendered.content,
                "status": "failed" if failed else "queued",
                "error": rendered.error,
                "next_attempt_at": None if failed else self.now,
                "failed_at": self.now if failed else None,
                "due_at": self.due_at,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )


def enter_step(enrollment: Enrollment, key: str | None, now: datetime) -> None:
    """Make `key` the step due now (a new visit of it); `None` leaves no step (the caller
    finishes the enrollment)."""
    enrollment.state = "active"
    enrollment.wait_event_type = None
    enrollment.next_action_at = now
    enrollment.step_entered_at = now
    if key is None:
        return
    visits = dict(enrollment.visits or {})
    visits[key] = visits.get(key, 0) + 1
    enrollment.visits = visits
    enrollment.step_key = key
    enrollment.step_visit = visits[key]


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in detail.items()
        if value is not None
    }
