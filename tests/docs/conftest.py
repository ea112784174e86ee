"""The docs tests' local peers: the real aiosmtpd server standing for the mail catcher."""

from tests.fixtures.channels import smtp_sink

__all__ = ["smtp_sink"]
