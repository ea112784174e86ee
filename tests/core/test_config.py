"""Settings that guard production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_production_refuses_the_development_tracking_secret() -> None:
    with pytest.raises(ValidationError, match="HERALD_CHANNELS__TRACKING_SECRET"):
        Settings(environment="production")
    chosen = Settings.model_validate(
        {"environment": "production", "channels": {"tracking_secret": "s" * 32}}
    )
    assert chosen.channels.tracking_secret.get_secret_value() == "s" * 32
