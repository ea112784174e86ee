"""Turning a policy into the stages of one review round: who is eligible for each stage
(snapshotted at open time, so later role changes do not move a running review), which gates
apply, and when a stage's rule is met. Pure functions over plain data."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.workspaces.models import Member

BASE_ROLES = frozenset({"owner", "admin", "editor", "viewer"})


@dataclass(frozen=True)
class Facts:
    """What gates look at: the audience size (None when no gate needs it) and the budget."""

    audience_count: int | None
    budget: Decimal | None


def eligible_for(reviewers: dict[str, Any], members: Iterable[Member]) -> list[uuid.UUID]:
    """Members named by id, or holding one of the roles (base role or reviewer role)."""
    roles = set(reviewers.get("roles") or [])
    named = {str(m) for m in reviewers.get("members") or []}
    return [
        member.id
        for member in members
        if str(member.id) in named
        or member.role in roles
        or bool(roles.intersection(member.reviewer_roles or []))
    ]


def required_approvals(rule: Any, eligible_count: int) -> int:
    """How many approvals complete a stage: all of them, any one, or n of m."""
    if rule == "any":
        return 1
    if isinstance(rule, dict) and "n_of_m" in rule:
        return int(rule["n_of_m"])
    return eligible_count


def gate_threshold(when: dict[str, Any]) -> tuple[str, Decimal]:
    """(`audience` | `budget`, threshold) of a validated gate condition."""
    if "audience_count_gt" in when:
        return "audience", Decimal(int(when["audience_count_gt"]))
    return "budget", Decimal(str(when["budget_gt"]))


def gate_applies(when: dict[str, Any], facts: Facts) -> bool:
    kind, threshold = gate_threshold(when)
    value: Decimal | None
    if kind == "audience":
        value = None if facts.audience_count is None else Decimal(facts.audience_count)
    else:
        value = facts.budget
    return value is not None and value > threshold


def needs_audience(gates: Sequence[dict[str, Any]]) -> bool:
    return any("audience_count_gt" in gate.get("when", {}) for gate in gates)


def resolve(
    stages: Sequence[dict[str, Any]],
    gates: Sequence[dict[str, Any]],
    members: Sequence[Member],
    facts: Facts | None,
) -> list[dict[str, Any]]:
    """The round's stages: the policy's stages, then each applying gate's stage, each with
    its eligible member ids. A reviewer decides once per round (one decision per reviewer
    and request), so a member eligible in several stages is eligible in the first only.
    `facts=None` applies every gate (the worst case, for validating a policy)."""
    chosen: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (stage, {"source": "policy"}) for stage in stages
    ]
    for index, gate in enumerate(gates):
        if facts is None or gate_applies(gate["when"], facts):
            chosen.append((gate["stage"], {"source": "gate", "gate": index, "when": gate["when"]}))
    taken: set[uuid.UUID] = set()
    resolved: list[dict[str, Any]] = []
    for stage, origin in chosen:
        eligible = [m for m in eligible_for(stage.get("reviewers", {}), members) if m not in taken]
        taken.update(eligible)
        resolved.append(
            {
                "name": stage["name"],
                "reviewers": stage.get("reviewers", {}),
                "rule": stage.get("rule", "all"),
                "eligible": [str(m) for m in eligible],
                "required": required_approvals(stage.get("rule", "all"), len(eligible)),
                "started_at": None,
                "completed_at": None,
                **origin,
            }
        )
    return resolved


def parse_decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None
