"""Notification tests' peers: a real aiosmtpd server (the configured provider) and webhook
receivers."""

from tests.fixtures.channels import smtp_sink
from tests.fixtures.receivers import receivers

__all__ = ["receivers", "smtp_sink"]
