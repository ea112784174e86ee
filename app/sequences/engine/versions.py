"""Published versions as the engine reads them, cached per process.

A published version never changes, so a parsed copy can be kept for the life of the worker.
Publishing pins each template to the version it had then (`template_version_id` next to
`template_id`, and inside each variant); those pins are lifted out here so the step models
(which refuse unknown keys) parse the rest.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from app.core.grammar import STORED
from app.segments.rules import parse_rule
from app.segments.rules.nodes import EventNode, PropertyFilter, Rule
from app.sequences.definition import BranchStep, SequenceDefinition, Step, WaitForEventStep

_CACHE_SIZE = 512
PIN = "template_version_id"


@dataclass
class ParsedVersion:
    id: uuid.UUID
    sequence_id: uuid.UUID
    definition: SequenceDefinition
    steps: dict[str, Step]
    # (step key, variant key or None) -> pinned template version id
    pins: dict[tuple[str, str | None], uuid.UUID] = field(default_factory=dict)
    conditions: dict[str, Rule] = field(default_factory=dict)  # branch step -> parsed rule
    filters: dict[str, list[PropertyFilter]] = field(default_factory=dict)  # wait_for_event

    @property
    def exit_event_types(self) -> list[str]:
        """Event types whose arrival ends an enrollment of this version."""
        types: list[str] = []
        for rule in self.definition.settings.exit_rules:
            kind = "email.replied" if rule.on == "replied" else rule.event_type
            if rule.on in ("replied", "converted", "event") and kind and kind not in types:
                types.append(kind)
        return types


_cache: OrderedDict[uuid.UUID, ParsedVersion] = OrderedDict()


def cached(version_id: uuid.UUID) -> ParsedVersion | None:
    return _cache.get(version_id)


def parsed(version_id: uuid.UUID, sequence_id: uuid.UUID, stored: dict[str, Any]) -> ParsedVersion:
    found = _cache.get(version_id)
    if found is not None:
        _cache.move_to_end(version_id)
        return found
    result = parse_version(version_id, sequence_id, stored)
    _cache[version_id] = result
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def parse_version(
    version_id: uuid.UUID, sequence_id: uuid.UUID, stored: dict[str, Any]
) -> ParsedVersion:
    pins: dict[tuple[str, str | None], uuid.UUID] = {}
    steps: list[dict[str, Any]] = []
    for raw in stored.get("steps", []):
        step = dict(raw)
        if step.get(PIN):
            pins[(step["key"], None)] = uuid.UUID(str(step.pop(PIN)))
        step.pop(PIN, None)
        if isinstance(step.get("variants"), list):
            variants = []
            for raw_variant in step["variants"]:
                variant = dict(raw_variant)
                pin = variant.pop(PIN, None)
                if pin:
                    pins[(step["key"], variant["key"])] = uuid.UUID(str(pin))
                variants.append(variant)
            step["variants"] = variants
        steps.append(step)
    definition = SequenceDefinition.model_validate({**stored, "steps": steps}, context=STORED)
    version = ParsedVersion(version_id, sequence_id, definition, definition.by_key(), pins)
    for parsed_step in definition.steps:
        if isinstance(parsed_step, BranchStep) and parsed_step.condition is not None:
            version.conditions[parsed_step.key] = parse_rule(parsed_step.condition)
        elif isinstance(parsed_step, WaitForEventStep):
            version.filters[parsed_step.key] = _filters(parsed_step)
    return version


def _filters(step: WaitForEventStep) -> list[PropertyFilter]:
    if not step.where:
        return []
    node = parse_rule({"event": {"type": step.event_type, "where": step.where}})
    assert isinstance(node, EventNode)
    return list(node.event.where)
