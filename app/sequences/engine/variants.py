"""A/B(/n) assignment: which variant of a `send` step a contact gets.

Until an experiment's winner is declared with `apply_to_remaining`, the choice is the
deterministic weighted hash below; from the declaration on, every contact reaching the step
gets the winner. Declarations are read once per engine batch (`declared_winners`), and only
for batches holding a campaign enrollment whose version has a step with variants (known per
version, cached), so sequences without experiments pay nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.sequences.definition import SendStep, Variant
from app.sequences.engine.versions import ParsedVersion
from app.sequences.models import Enrollment

# version id -> whether it has a send step with variants (published versions never change)
_has_variants: dict[uuid.UUID, bool] = {}
_CACHE_SIZE = 4096


def pick_variant(
    variants: Sequence[Variant],
    contact_id: uuid.UUID,
    step_key: str,
    salt: str = "",
    *,
    winner: str | None = None,
) -> Variant:
    """Deterministic weighted choice: `sha256(f"{salt}:{step_key}:{contact_id}")` mapped to
    `[0, total weight)`; the same contact always gets the same variant of a step (re-runs,
    other workers and the dry run agree, with no stored state), and weights are respected in
    aggregate. The whole 256-bit digest is reduced modulo the total, so the bias is nil.
    A declared `winner` (a key of `variants`) overrides the choice.
    """
    if not variants:
        raise ValueError("a send step with variants has at least two")
    if winner is not None:
        for variant in variants:
            if variant.key == winner:
                return variant
    digest = hashlib.sha256(f"{salt}:{step_key}:{contact_id}".encode()).digest()
    point = int.from_bytes(digest, "big") % sum(variant.weight for variant in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("point is below the total weight")  # pragma: no cover


def has_variants(version: ParsedVersion) -> bool:
    found = _has_variants.get(version.id)
    if found is None:
        found = any(
            isinstance(step, SendStep) and bool(step.variants) for step in version.steps.values()
        )
        if len(_has_variants) >= _CACHE_SIZE:
            _has_variants.clear()
        _has_variants[version.id] = found
    return found


async def declared_winners(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    enrollments: Iterable[Enrollment],
    versions: Mapping[uuid.UUID, ParsedVersion],
) -> dict[tuple[uuid.UUID, str], str]:
    """(campaign, step) -> declared winner routing the remaining contacts, for a batch: one
    indexed query when some enrollment's version has variants, none otherwise."""
    campaign_ids = {
        enrollment.campaign_id
        for enrollment in enrollments
        if enrollment.campaign_id is not None
        and enrollment.sequence_version_id in versions
        and has_variants(versions[enrollment.sequence_version_id])
    }
    if not campaign_ids:
        return {}
    if _winner_source is None:
        raise RuntimeError("No winner source registered (app/wiring.py registers experiments').")
    return await _winner_source(session, workspace_id, campaign_ids)


# Experiments (above the engine) declare winners; the engine asks through this source,
# registered by app/wiring.py, instead of importing them.
WinnerSource = Callable[
    [AsyncSession, uuid.UUID, set[uuid.UUID]], Awaitable[dict[tuple[uuid.UUID, str], str]]
]
_winner_source: WinnerSource | None = None


def register_winner_source(source: WinnerSource) -> None:
    """`source(session, workspace_id, campaign_ids)` -> (campaign, step) -> winning variant."""
    global _winner_source  # noqa: PLW0603 - one registration per process
    _winner_source = source
