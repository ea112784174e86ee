"""One normalisation of contact addresses, shared by contacts, events and suppressions."""

from __future__ import annotations

import re

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def normalize_email(address: str) -> str:
    """Trim and lowercase. Lookups, uniqueness and suppression hashes all use this form."""
    return address.strip().lower()


def normalize_phone(number: str) -> str:
    """Drop spaces, dashes, dots and parentheses; the result must then match E.164."""
    return re.sub(r"[\s\-().]", "", number)
