"""The inbound tests' fixture: both providers configured on the running app (the signing and
sending helpers are in tests/inbound/helpers.py)."""

from __future__ import annotations

import pytest

from app.config import InboundSettings
from app.core.state import AppState
from tests.inbound.helpers import GENERIC, GENERIC_SECRET, STANDARD, STANDARD_SECRET


@pytest.fixture
def providers(state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure both providers on the running test app for this test only."""
    inbound = InboundSettings.model_validate(
        {
            "providers": {
                STANDARD: {"scheme": "standard_webhooks", "secret": STANDARD_SECRET},
                GENERIC: {
                    "scheme": "hmac_sha256",
                    "secret": GENERIC_SECRET,
                    "tolerance_seconds": 120,
                },
            }
        }
    )
    monkeypatch.setattr(state.settings, "inbound", inbound)
