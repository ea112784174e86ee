"""Approval policies: create, read, update, delete, with validation that every stage can be
satisfied by the workspace's members as they are now (submission re-checks at open time)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.approvals.models import ApprovalPolicy
from app.approvals.repository import MemberLookup, PolicyRepository
from app.approvals.resolution import resolve
from app.approvals.schemas import Gate, PolicyCreate, PolicyUpdate, Stage
from app.audit.service import Actor, diff, record
from app.core.errors import FieldError, Unprocessable
from app.core.ids import new_id
from app.core.pagination import PageParams, PageResult
from app.core.usage import UsageOut, find_usage, refuse_if_used

_AUDITED = ("name", "is_default", "stages", "gates")


def _stage_json(stage: Stage) -> dict[str, Any]:
    return stage.model_dump(mode="json")


def _gate_json(gate: Gate) -> dict[str, Any]:
    return gate.model_dump(mode="json", exclude_none=True)


def _error(pointer: str, message: str, code: str) -> FieldError:
    return FieldError(pointer=pointer, location="body", message=message, code=code)


def _stage_pointers(stages: list[Stage], gates: list[Gate]) -> list[tuple[str, Stage]]:
    """Each stage with its pointer, in resolution order (policy stages, then gates)."""
    return [(f"/stages/{i}", s) for i, s in enumerate(stages)] + [
        (f"/gates/{i}/stage", g.stage) for i, g in enumerate(gates)
    ]


async def _validate(
    session: AsyncSession, workspace_id: uuid.UUID, stages: list[Stage], gates: list[Gate]
) -> None:
    lookup = MemberLookup(session, workspace_id)
    members = await lookup.all()
    known = {m.id for m in members}
    errors: list[FieldError] = []
    pointed = _stage_pointers(stages, gates)
    for pointer, stage in pointed:
        errors += [
            _error(f"{pointer}/reviewers/members/{j}", f"No member with id {m}.", "not_found")
            for j, m in enumerate(stage.reviewers.members)
            if m not in known
        ]
    # Worst case: every gate applies (fewer earlier stages only frees reviewers later on).
    resolved = resolve(
        [_stage_json(s) for s in stages],
        [_gate_json(g) for g in gates],
        members,
        facts=None,
    )
    for (pointer, _), snapshot in zip(pointed, resolved, strict=True):
        eligible = len(snapshot["eligible"])
        if eligible == 0:
            message = "No current member is eligible (a member reviews in one stage per round)."
            errors.append(_error(f"{pointer}/reviewers", message, "no_reviewers"))
        elif snapshot["required"] > eligible:
            message = f"Needs {snapshot['required']} approvals but {eligible} members are eligible."
            errors.append(_error(f"{pointer}/rule/n_of_m", message, "too_few_reviewers"))
    if errors:
        raise Unprocessable("The approval policy cannot be satisfied.", errors=errors)


def _snapshot(policy: ApprovalPolicy) -> dict[str, Any]:
    return {key: getattr(policy, key) for key in _AUDITED}


async def create_policy(
    session: AsyncSession, workspace_id: uuid.UUID, data: PolicyCreate, actor: Actor
) -> ApprovalPolicy:
    await _validate(session, workspace_id, data.stages, data.gates)
    policies = PolicyRepository(session, workspace_id)
    if data.is_default:
        await policies.clear_default(keep=None)
    policy = policies.add(
        ApprovalPolicy(
            id=new_id(),
            name=data.name,
            is_default=data.is_default,
            stages=[_stage_json(s) for s in data.stages],
            gates=[_gate_json(g) for g in data.gates],
            version=1,
        )
    )
    await session.flush()
    await record(
        session,
        workspace_id,
        actor,
        "approval_policy.created",
        entity_type="approval_policy",
        entity_id=policy.id,
        changes=diff({}, _snapshot(policy)),
    )
    return policy


async def get_policy(
    session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID
) -> ApprovalPolicy:
    return await PolicyRepository(session, workspace_id).get_or_404(policy_id)


async def list_policies(
    session: AsyncSession, workspace_id: uuid.UUID, params: PageParams
) -> PageResult[ApprovalPolicy]:
    return await PolicyRepository(session, workspace_id).page(params)


async def update_policy(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    policy_id: uuid.UUID,
    data: PolicyUpdate,
    actor: Actor,
) -> ApprovalPolicy:
    """Changes apply to rounds opened afterwards; open rounds keep their snapshot."""
    policies = PolicyRepository(session, workspace_id)
    policy = await policies.locked_or_404(policy_id)
    before = _snapshot(policy)
    stages = data.stages if data.stages is not None else [Stage(**s) for s in policy.stages]
    gates = data.gates if data.gates is not None else [Gate(**g) for g in policy.gates or []]
    if data.stages is not None or data.gates is not None:
        await _validate(session, workspace_id, stages, gates)
        policy.stages = [_stage_json(s) for s in stages]
        policy.gates = [_gate_json(g) for g in gates]
    if data.name is not None:
        policy.name = data.name
    if data.is_default is True:
        await policies.clear_default(keep=policy.id)
    if data.is_default is not None:
        policy.is_default = data.is_default
    changes = diff(before, _snapshot(policy))
    if changes:
        policy.version += 1
        await session.flush()
        await record(
            session,
            workspace_id,
            actor,
            "approval_policy.updated",
            entity_type="approval_policy",
            entity_id=policy.id,
            changes=changes,
        )
    return policy


async def usage(session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID) -> UsageOut:
    await get_policy(session, workspace_id, policy_id)
    return await find_usage(session, workspace_id, "approval_policy", policy_id)


async def delete_policy(
    session: AsyncSession, workspace_id: uuid.UUID, policy_id: uuid.UUID, actor: Actor
) -> None:
    """Refused (409 `in-use`) while an unfinished campaign is reviewed under it; finished
    campaigns forget it (the foreign key sets theirs to null); open rounds keep their
    snapshot."""
    policies = PolicyRepository(session, workspace_id)
    policy = await policies.locked_or_404(policy_id)
    await refuse_if_used(session, workspace_id, "approval_policy", policy_id)
    before = _snapshot(policy)
    await session.delete(policy)
    await session.flush()
    await record(
        session,
        workspace_id,
        actor,
        "approval_policy.deleted",
        entity_type="approval_policy",
        entity_id=policy_id,
        changes=diff(before, {}),
    )
