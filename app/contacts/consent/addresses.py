"""Suppression keys: a SHA-256 of the channel and the normalised address.

`sha256("<channel>:<normalised address>")` in lowercase hex, e.g. `email:ana@example.com`
or `sms:+14155550123`. The clear address is never stored in `suppressions`, so an entry
outlives the erasure of the contact it came from and still matches a re-import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from app.core.normalize import E164, normalize_email, normalize_phone

MAX_ADDRESS_LENGTH = 320
# Deliberately loose: a suppression must be recordable for any address a provider reports.
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")


def normalize_address(channel: str, address: str) -> str:
    """The canonical form hashed for `channel`; ValueError when it cannot be an address."""
    if channel == "email":
        normalized = normalize_email(address)
        if len(normalized) > MAX_ADDRESS_LENGTH or not _EMAIL_SHAPE.match(normalized):
            raise ValueError("not an email address (expected `local@domain`)")
        return normalized
    if channel == "sms":
        normalized = normalize_phone(address)
        if not E164.match(normalized):
            raise ValueError("not an E.164 phone number (expected `+` and 2-15 digits)")
        return normalized
    raise ValueError(f"unknown channel `{channel}`")


def hash_normalized(channel: str, normalized: str) -> str:
    return hashlib.sha256(f"{channel}:{normalized}".encode()).hexdigest()


def address_hash(channel: str, address: str) -> str:
    """Hash of an address as given (normalised first). Raises ValueError if malformed."""
    return hash_normalized(channel, normalize_address(channel, address))


def lenient_hash(channel: str, address: str) -> str:
    """Hash for lookups at send time: normalise without rejecting odd input.

    A malformed address can never have been suppressed through the API, so its hash simply
    matches nothing."""
    normalized = normalize_email(address) if channel == "email" else normalize_phone(address)
    return hash_normalized(channel, normalized)


def contact_addresses(email: str | None, phone: str | None) -> dict[str, str]:
    """The channel -> address pairs a contact can be reached at (and suppressed on)."""
    addresses: dict[str, str] = {}
    if email:
        addresses["email"] = email
    if phone:
        addresses["sms"] = phone
    return addresses


def hashes_of(channel: str, addresses: Iterable[str]) -> dict[str, str]:
    """address -> hash, lenient (for set-wise send-time checks)."""
    return {address: lenient_hash(channel, address) for address in addresses}
