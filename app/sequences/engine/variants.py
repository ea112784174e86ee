"""A/B(/n) assignment: which variant of a `send` step a contact gets."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from app.sequences.definition import Variant


def pick_variant(
    variants: Sequence[Variant], contact_id: uuid.UUID, step_key: str, salt: str = ""
) -> Variant:
    """Deterministic weighted choice: `sha256(f"{salt}:{step_key}:{contact_id}")` mapped to
    `[0, total weight)`; the same contact always gets the same variant of a step (re-runs,
    other workers and the dry run agree, with no stored state), and weights are respected in
    aggregate. The whole 256-bit digest is reduced modulo the total, so the bias is nil.
    """
    if not variants:
        raise ValueError("a send step with variants has at least two")
    digest = hashlib.sha256(f"{salt}:{step_key}:{contact_id}".encode()).digest()
    point = int.from_bytes(digest, "big") % sum(variant.weight for variant in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("point is below the total weight")  # pragma: no cover
