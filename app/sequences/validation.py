"""The graph and reference rules of a sequence definition, all reported at once.

Shapes are checked by pydantic when a draft is saved (`definition.py`); a draft may still be
wrong as a graph or name templates and segments that do not exist (yet). `validate` lists
every such problem as a `FieldError` pointing into the sequence body (`/definition/...`);
publishing refuses a definition with any. Pointers use the draft's step indices, which
`normalised()` keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.egress import DestinationRefused, DestinationUnresolved, GuardPolicy, check_url
from app.core.errors import FieldError, pointer_for
from app.segments.rules import RuleError, parse_rule
from app.segments.rules.parser import Parser
from app.sequences.definition import (
    BranchStep,
    SendStep,
    SequenceDefinition,
    Step,
    WaitForEventStep,
    WaitStep,
    WebhookStep,
)
from app.sequences.repository import ReferenceLookup

STEPS = "/definition/steps"
ZERO = timedelta(0)
# Fields naming another step, in the order errors are reported (JSON names: `else`).
TARGET_FIELDS = ("next", "on_event", "on_timeout", "then", "else")


def _error(pointer: str, message: str, code: str) -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)


def parse_definition(data: Any) -> SequenceDefinition | list[FieldError]:
    """A stored draft as a definition, or its shape errors (a draft saved by older rules)."""
    try:
        return SequenceDefinition.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            _, pointer = pointer_for(("body", *error["loc"]))
            errors.append(_error("/definition" + pointer, error["msg"], error["type"]))
        return errors


async def validate(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    definition: SequenceDefinition,
    destinations: GuardPolicy,
) -> list[FieldError]:
    """Every graph, reference and destination problem of `definition`; empty when it can be
    published."""
    errors = [*_duplicate_keys(definition), *_unknown_targets(definition)]
    errors += _unreachable(definition)
    errors += _cycles_without_wait(definition)
    errors += _filters_and_conditions(definition)
    lookup = ReferenceLookup(session, workspace_id)
    errors += await _templates(lookup, definition)
    errors += await _segments(lookup, definition)
    errors += await refused_destinations(definition, destinations)
    return errors


async def refused_destinations(
    definition: SequenceDefinition, destinations: GuardPolicy
) -> list[FieldError]:
    """Webhook steps whose URL the SSRF guard refuses (docs/ssrf.md), checked when a draft is
    saved and when it is published, as well as at every call. A name that does not resolve
    (yet) passes here: it is no address to refuse, and the send-time guard checks whatever it
    resolves to then."""
    errors: list[FieldError] = []
    verdicts: dict[str, str | None] = {}
    for index, step in enumerate(definition.steps):
        if not isinstance(step, WebhookStep):
            continue
        if step.url not in verdicts:
            verdicts[step.url] = await _refusal(step.url, destinations)
        if (reason := verdicts[step.url]) is not None:
            errors.append(
                _error(
                    f"{STEPS}/{index}/url",
                    f"Webhook step {step.key!r} cannot call this URL: {reason}.",
                    "url_refused",
                )
            )
    return errors


async def _refusal(url: str, destinations: GuardPolicy) -> str | None:
    try:
        await check_url(url, destinations)
    except DestinationUnresolved:
        return None
    except DestinationRefused as refused:
        return str(refused)
    return None


# -- graph -----------------------------------------------------------------------------------


def _targets(step: Step) -> list[tuple[str, str]]:
    """(JSON field, key) of each step this one names explicitly."""
    named: list[tuple[str, str]] = []
    for field in TARGET_FIELDS:
        value = getattr(step, "else_" if field == "else" else field, None)
        if isinstance(value, str):
            named.append((field, value))
    return named


def _first_index(definition: SequenceDefinition) -> dict[str, int]:
    """Each key's first step (later duplicates are reported and otherwise ignored)."""
    first: dict[str, int] = {}
    for index, step in enumerate(definition.steps):
        first.setdefault(step.key, index)
    return first


def _duplicate_keys(definition: SequenceDefinition) -> Iterator[FieldError]:
    first = _first_index(definition)
    for index, step in enumerate(definition.steps):
        if first[step.key] != index:
            yield _error(
                f"{STEPS}/{index}/key",
                f"The key `{step.key}` is already used by step {first[step.key]}.",
                "duplicate_key",
            )
        if isinstance(step, SendStep) and step.variants:
            seen: set[str] = set()
            for position, variant in enumerate(step.variants):
                if variant.key in seen:
                    yield _error(
                        f"{STEPS}/{index}/variants/{position}/key",
                        f"The variant key `{variant.key}` is already used in this step.",
                        "duplicate_key",
                    )
                seen.add(variant.key)


def _unknown_targets(definition: SequenceDefinition) -> Iterator[FieldError]:
    keys = _first_index(definition)
    if definition.entry is not None and definition.entry not in keys:
        yield _error(
            "/definition/entry", f"No step has the key `{definition.entry}`.", "unknown_step"
        )
    for index, step in enumerate(definition.steps):
        for field, target in _targets(step):
            if target not in keys:
                yield _error(
                    f"{STEPS}/{index}/{field}", f"No step has the key `{target}`.", "unknown_step"
                )


def _graph(definition: SequenceDefinition) -> dict[int, list[int]]:
    """Step index -> indices it leads to: named targets (a key's first step) plus the implicit
    `next` of `normalised()` (the following step). By index, so a duplicated key (reported
    on its own) adds no noise of its own."""
    first = _first_index(definition)
    graph: dict[int, list[int]] = {}
    for index, step in enumerate(definition.steps):
        targets = [first[key] for _, key in _targets(step) if key in first]
        implicit = hasattr(step, "next") and step.next is None
        if implicit and index + 1 < len(definition.steps):
            targets.append(index + 1)
        graph[index] = targets
    return graph


def _unreachable(definition: SequenceDefinition) -> Iterator[FieldError]:
    first = _first_index(definition)
    entry = definition.entry_key()
    if entry not in first:
        return  # reported as an unknown `entry`; everything would be noise
    graph = _graph(definition)
    reached = {first[entry]}
    pending = [first[entry]]
    while pending:
        for target in graph[pending.pop()]:
            if target not in reached:
                reached.add(target)
                pending.append(target)
    for index, step in enumerate(definition.steps):
        if index not in reached:
            yield _error(
                f"{STEPS}/{index}",
                f"The step `{step.key}` cannot be reached from the entry step `{entry}`.",
                "unreachable",
            )


def _pauses(step: Step) -> bool:
    """Whether the step always lets time pass: a `wait_for_event` (positive timeout) or a
    `wait` for a positive `duration`. `until_window` inside the window and `until_attribute`
    in the past go on at once, so they do not break a loop; nor does a zero wait a draft may
    hold from before durations had to be positive."""
    if isinstance(step, WaitForEventStep):
        return step.timeout > ZERO
    return isinstance(step, WaitStep) and step.duration is not None and step.duration > ZERO


def _cycles_without_wait(definition: SequenceDefinition) -> Iterator[FieldError]:
    """A loop through no pausing step would run (and send) forever without pausing."""
    steps = definition.steps
    first = _first_index(definition)
    graph = {
        index: [target for target in targets if not _pauses(steps[target])]
        for index, targets in _graph(definition).items()
        if not _pauses(steps[index])
    }
    for component in _strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        members = set(component)
        # The last listed member closes the loop through a field it names explicitly (its
        # implicit `next`, the following step, cannot be a member).
        last = max(members)
        fields = [field for field, key in _targets(steps[last]) if first.get(key) in members]
        pointer = f"{STEPS}/{last}/{fields[0]}" if fields else f"{STEPS}/{last}"
        loop = " -> ".join(steps[index].key for index in sorted(members))
        yield _error(
            pointer,
            f"The steps {loop} form a loop with no `wait_for_event` step and no `wait` for a "
            "`duration`: it would repeat without pausing.",
            "cycle_without_wait",
        )


def _strongly_connected(graph: dict[int, list[int]]) -> list[list[int]]:
    """Tarjan's algorithm (at most 100 steps: recursion depth is bounded)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []

    def visit(node: int) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[int] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


# -- rules and settings ----------------------------------------------------------------------


def _filters_and_conditions(definition: SequenceDefinition) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, step in enumerate(definition.steps):
        if isinstance(step, WaitForEventStep):
            parser = Parser()
            for position, item in enumerate(step.where):
                parser.property_filter(item, f"{STEPS}/{index}/where/{position}")
            errors += parser.errors
        elif isinstance(step, BranchStep) and step.condition is not None:
            try:
                parse_rule(step.condition)
            except RuleError as exc:
                at = f"{STEPS}/{index}/condition"
                errors += [_error(at + e.pointer, e.message, e.code) for e in exc.errors]
    return errors


# -- references ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateUse:
    pointer: str  # of the `template_id` field
    template_id: uuid.UUID
    channel: str  # the template channel this use needs


def template_uses(definition: SequenceDefinition) -> list[TemplateUse]:
    uses: list[TemplateUse] = []
    for index, step in enumerate(definition.steps):
        at = f"{STEPS}/{index}"
        if isinstance(step, SendStep):
            if step.template_id is not None:
                uses.append(TemplateUse(f"{at}/template_id", step.template_id, step.channel))
            for position, variant in enumerate(step.variants or []):
                pointer = f"{at}/variants/{position}/template_id"
                uses.append(TemplateUse(pointer, variant.template_id, step.channel))
        elif isinstance(step, WebhookStep) and step.template_id is not None:
            uses.append(TemplateUse(f"{at}/template_id", step.template_id, "webhook"))
    return uses


async def _templates(lookup: ReferenceLookup, definition: SequenceDefinition) -> list[FieldError]:
    uses = template_uses(definition)
    found = await lookup.templates_by_id({use.template_id for use in uses})
    errors: list[FieldError] = []
    for use in uses:
        if use.template_id not in found:
            message = f"No template with id {use.template_id} in this workspace."
            errors.append(_error(use.pointer, message, "unknown_template"))
            continue
        template, version_id = found[use.template_id]
        if template.channel != use.channel:
            message = (
                f"The template is a `{template.channel}` template; this step needs a "
                f"`{use.channel}` template."
            )
            errors.append(_error(use.pointer, message, "template_channel"))
        if version_id is None:
            message = "The template has no published version; publish it first."
            errors.append(_error(use.pointer, message, "template_unpublished"))
    return errors


def _segment_uses(definition: SequenceDefinition) -> Iterator[tuple[str, uuid.UUID]]:
    for index, step in enumerate(definition.steps):
        if isinstance(step, BranchStep):
            if step.segment_id is not None:
                yield f"{STEPS}/{index}/segment_id", step.segment_id
            if step.condition is not None:
                yield from _rule_segments(step.condition, f"{STEPS}/{index}/condition")
    for position, rule in enumerate(definition.settings.exit_rules):
        if rule.segment_id is not None:
            yield f"/definition/settings/exit_rules/{position}/segment_id", rule.segment_id


def _rule_segments(node: object, at: str) -> Iterator[tuple[str, uuid.UUID]]:
    """`{"segment": {"id": ...}}` leaves of a rule, with their pointers (invalid parts are
    reported by the parser and skipped here)."""
    if not isinstance(node, dict) or len(node) != 1:
        return
    kind, body = next(iter(node.items()))
    if kind in ("all", "any") and isinstance(body, list):
        for position, child in enumerate(body):
            yield from _rule_segments(child, f"{at}/{kind}/{position}")
    elif kind == "not":
        yield from _rule_segments(body, f"{at}/not")
    elif kind == "segment" and isinstance(body, dict):
        try:
            yield f"{at}/segment/id", uuid.UUID(str(body.get("id")))
        except ValueError:
            return


async def _segments(lookup: ReferenceLookup, definition: SequenceDefinition) -> list[FieldError]:
    uses = list(_segment_uses(definition))
    existing = await lookup.existing_segments({segment_id for _, segment_id in uses})
    return [
        _error(pointer, f"No segment with id {segment_id} in this workspace.", "unknown_segment")
        for pointer, segment_id in uses
        if segment_id not in existing
    ]
