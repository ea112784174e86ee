"""The sequence definition language: steps (a graph by key) and sequence settings.

Shapes only: the graph rules (unique keys, targets exist, reachability, no cycle without a
wait, templates exist and match the channel) live in `validation.py`. A published version
stores the definition normalised (`normalised()`): every non-branching step names its `next`
explicitly, so the engine never has to know list order.
"""

from __future__ import annotations

import uuid
from datetime import time, timedelta
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.grammar import Duration, DurationRule, Timezone

StepKey = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$",
        description="Unique within the sequence: letters, digits, `_` and `-` (up to 64)",
        examples=["welcome"],
    ),
]
# Waits, timeouts and cap periods are positive (`app.core.grammar`): a zero wait would let a
# loop run without pausing. Only an attribute offset may be zero or negative.
SignedDuration = Annotated[timedelta, DurationRule(signed=True, examples=("-P7D", "P1D"))]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SendChannel = Literal["email", "sms"]
MAX_STEPS = 100


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TimeWindow(_Shape):
    """A local window, in the contact's timezone (or the sequence's default)."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1, max_length=7)
    start: time = Field(description="Local start time, `HH:MM`", examples=["09:00"])
    end: time = Field(description="Local end time (exclusive), `HH:MM`", examples=["11:00"])

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        # Offsets first: a naive and an aware time cannot be compared (that was a 500).
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("times are local wall-clock times, without an offset")
        if self.end <= self.start:
            raise ValueError("`end` must be after `start` (windows do not span midnight)")
        return self


class Variant(_Shape):
    key: StepKey
    template_id: uuid.UUID
    weight: int = Field(1, ge=1, le=10_000, description="Relative share of contacts")


class _Step(_Shape):
    key: StepKey
    name: str | None = Field(None, max_length=200)


class SendStep(_Step):
    type: Literal["send"]
    channel: SendChannel
    template_id: uuid.UUID | None = Field(None, description="One template, or `variants`")
    variants: list[Variant] | None = Field(
        None, min_length=2, max_length=10, description="A/B(/n) variants with weights"
    )
    next: StepKey | None = None

    @model_validator(mode="after")
    def _one_content(self) -> SendStep:
        if (self.template_id is None) == (self.variants is None):
            raise ValueError("give exactly one of `template_id` or `variants`")
        return self


class AttributeTime(_Shape):
    """Until a date attribute plus an offset, optionally at a local time of day."""

    attribute: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$",
        description="Path inside `attributes` holding an ISO date or instant",
        examples=["renewal_date"],
    )
    offset: SignedDuration = timedelta(0)
    at: time | None = Field(None, description="Local time of day on the resulting date")


class WaitStep(_Step):
    type: Literal["wait"]
    duration: Duration | None = None
    until_window: TimeWindow | None = None
    until_attribute: AttributeTime | None = None
    next: StepKey | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> WaitStep:
        modes = [self.duration, self.until_window, self.until_attribute]
        if sum(mode is not None for mode in modes) != 1:
            raise ValueError("give exactly one of `duration`, `until_window`, `until_attribute`")
        return self


class WaitForEventStep(_Step):
    type: Literal["wait_for_event"]
    event_type: str = Field(min_length=1, max_length=200, examples=["email.replied"])
    where: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=20,
        description="Property filters, as in the segment rule language's event `where`",
    )
    timeout: Duration
    on_event: StepKey
    on_timeout: StepKey


class BranchStep(_Step):
    type: Literal["branch"]
    condition: dict[str, Any] | None = Field(
        None, description="A rule in the segment rule language, evaluated for the contact"
    )
    segment_id: uuid.UUID | None = Field(None, description="Or: membership of this segment")
    then: StepKey = Field(description="Next step when the condition holds")
    else_: StepKey = Field(alias="else", description="Next step otherwise")

    @model_validator(mode="after")
    def _one_test(self) -> BranchStep:
        if (self.condition is None) == (self.segment_id is None):
            raise ValueError("give exactly one of `condition` or `segment_id`")
        return self


class WebhookStep(_Step):
    type: Literal["webhook"]
    url: str = Field(max_length=2048, pattern=r"^https?://", examples=["https://crm.test/hook"])
    template_id: uuid.UUID | None = Field(
        None, description="A `webhook` template for the payload (default: a standard payload)"
    )
    next: StepKey | None = None


class UpdateContactStep(_Step):
    type: Literal["update_contact"]
    attributes: dict[str, Any] = Field(
        min_length=1, description="Merged into the contact's attributes; `null` removes a key"
    )
    next: StepKey | None = None


class ExitStep(_Step):
    type: Literal["exit"]
    reason: str | None = Field(None, max_length=64)


Step: TypeAlias = Annotated[
    SendStep
    | WaitStep
    | WaitForEventStep
    | BranchStep
    | WebhookStep
    | UpdateContactStep
    | ExitStep,
    Field(discriminator="type"),
]
WAITING_TYPES = ("wait", "wait_for_event")


class ExitRule(_Shape):
    on: Literal["replied", "unsubscribed", "converted", "left_segment", "event"]
    event_type: str | None = Field(
        None, max_length=200, description="Goal event (`converted`) or custom event (`event`)"
    )
    segment_id: uuid.UUID | None = Field(None, description="For `left_segment`")

    @model_validator(mode="after")
    def _needs(self) -> ExitRule:
        if self.on in ("converted", "event") and not self.event_type:
            raise ValueError(f"`{self.on}` needs `event_type`")
        if self.on == "left_segment" and self.segment_id is None:
            raise ValueError("`left_segment` needs `segment_id`")
        return self


class FrequencyCap(_Shape):
    channel: SendChannel
    max: int = Field(ge=1, le=1000, description="At most this many messages ...")
    period: Duration = Field(description="... in this rolling period, all sequences")
    action: Literal["defer", "skip"] = "defer"


class SequenceSettings(_Shape):
    exit_rules: list[ExitRule] = Field(default_factory=list, max_length=20)
    send_window: TimeWindow | None = Field(
        None, description="Sends outside it are deferred to its next opening, never dropped"
    )
    frequency_caps: list[FrequencyCap] = Field(default_factory=list, max_length=4)
    default_timezone: Timezone = Field("UTC", description="For contacts without a timezone")
    on_send_failure: Literal["continue", "fail"] = Field(
        "continue", description="After a permanent send failure: go on, or fail the enrollment"
    )


class SequenceDefinition(_Shape):
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    entry: StepKey | None = Field(None, description="First step (default: the first listed)")
    settings: SequenceSettings = Field(default_factory=SequenceSettings)

    def entry_key(self) -> str:
        return self.entry or self.steps[0].key

    def by_key(self) -> dict[str, Step]:
        return {step.key: step for step in self.steps}

    def normalised(self) -> SequenceDefinition:
        """Every linear step names its `next` (implicitly: the one listed after it)."""
        steps: list[Step] = []
        for index, step in enumerate(self.steps):
            following = self.steps[index + 1].key if index + 1 < len(self.steps) else None
            linear = hasattr(step, "next") and step.next is None and following is not None
            steps.append(step.model_copy(update={"next": following}) if linear else step)
        return self.model_copy(update={"steps": steps, "entry": self.entry_key()})


def successors(step: Step) -> list[str]:
    """Keys this step can lead to (after `normalised()`)."""
    if isinstance(step, WaitForEventStep):
        return [step.on_event, step.on_timeout]
    if isinstance(step, BranchStep):
        return [step.then, step.else_]
    if isinstance(step, ExitStep):
        return []
    return [step.next] if step.next else []


def dump(definition: SequenceDefinition) -> dict[str, Any]:
    """JSON for storage and responses (durations as ISO 8601, `else` by its alias)."""
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)
