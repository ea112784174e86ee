"""The secrets `webhook` steps are signed with (docs/channels.md, "Webhook steps: signing").

Each sequence owns a Standard Webhooks secret, and sequences sit above channels in the domain
graph: they register how the secrets are read here (app/wiring.py), and delivery asks at claim
time, in the claim's transaction, so a rotation takes effect for every message not yet handed
to its provider (the old secret stops signing at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection

from sqlalchemy.ext.asyncio import AsyncSession

# (session, sequence ids) -> sequence id -> its secret, in clear. Across workspaces: the ids
# come from messages the delivery claimed, never from a request.
SigningSecretSource = Callable[
    [AsyncSession, Collection[uuid.UUID]], Awaitable[dict[uuid.UUID, str]]
]
_source: SigningSecretSource | None = None


def register_signing_secret_source(source: SigningSecretSource) -> None:
    global _source  # noqa: PLW0603 - one registration per process
    _source = source


async def signing_secrets(
    session: AsyncSession, sequence_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Each sequence's current secret (one query; none when no webhook message is claimed)."""
    if not sequence_ids:
        return {}
    if _source is None:
        raise RuntimeError(
            "No signing secret source registered (app/wiring.py registers sequences')."
        )
    return await _source(session, list(set(sequence_ids)))
