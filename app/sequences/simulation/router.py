"""The dry run over HTTP: `POST /v1/sequences/{id}/simulate`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request

from app.core.auth import Principal
from app.core.deps import Caller, Session
from app.core.openapi import COMMON_ERRORS, problem_responses
from app.core.state import app_state
from app.sequences.simulation import service
from app.sequences.simulation.schemas import SimulationOut, SimulationRequest

router = APIRouter(prefix="/v1", tags=["Sequences"])
# Simulating changes nothing, so reading sequences is enough.
Reader = Annotated[Principal, Caller("sequences", "read")]


@router.post(
    "/sequences/{sequence_id}/simulate",
    summary="Dry-run a sequence",
    description=(
        "What the engine would do for one contact: an existing one (`contact_id`) or a "
        "hypothetical one (`contact`: email, phone, timezone, locale, attributes), on the "
        "latest published version (or `version`, or the current draft with `draft: true`), "
        "starting at `start_at` (default now), with a script of `events` the contact does "
        "(`at` an instant or `after` a duration from the start), up to `horizon` (default "
        "`P90D`, at most `P366D`). Answers the timeline (each step's outcome, with a preview "
        "of the message a send would create, and the scripted events) and the final state. "
        "Nothing is stored, queued or sent: the real engine runs inside a transaction "
        "savepoint that is rolled back. 404 for an unknown sequence; 422 when it has no "
        "published version, the contact does not exist, or the script is invalid."
    ),
    response_model=SimulationOut,
    responses=problem_responses(*COMMON_ERRORS, 404, 422),
)
async def simulate_sequence(
    sequence_id: uuid.UUID,
    body: SimulationRequest,
    request: Request,
    session: Session,
    principal: Reader,
) -> SimulationOut:
    settings = app_state(request).settings
    return await service.simulate(session, settings, principal.workspace_id, sequence_id, body)
