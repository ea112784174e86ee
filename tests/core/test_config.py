"""Settings that guard production."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from app.config import Settings


def test_production_refuses_the_development_tracking_secret() -> None:
    with pytest.raises(ValidationError, match="HERALD_CHANNELS__TRACKING_SECRET"):
        Settings(environment="production")
    chosen = Settings.model_validate(
        {"environment": "production", "channels": {"tracking_secret": "s" * 32}}
    )
    assert chosen.channels.tracking_secret.get_secret_value() == "s" * 32


def test_production_refuses_smtp_without_certificate_verification() -> None:
    secret = "s" * 32
    with pytest.raises(ValidationError, match="HERALD_CHANNELS__SMTP__VERIFY_CERTIFICATE"):
        Settings.model_validate(
            {
                "environment": "production",
                "channels": {"tracking_secret": secret, "smtp": {"verify_certificate": False}},
            }
        )
    development = Settings.model_validate({"channels": {"smtp": {"verify_certificate": False}}})
    assert development.channels.smtp.verify_certificate is False


def test_smtp_ca_file_must_be_a_loadable_pem_bundle(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValidationError, match=r"missing\.pem"):
        Settings.model_validate({"channels": {"smtp": {"ca_file": str(missing)}}})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match=r"garbage\.pem"):
        Settings.model_validate({"channels": {"smtp": {"ca_file": str(garbage)}}})
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    chosen = Settings.model_validate({"channels": {"smtp": {"ca_file": str(bundle)}}})
    assert chosen.channels.smtp.ca_file == str(bundle)
