"""Pluggable parts of a privacy request: each domain exports and erases its own data.

An export is `{"sections": {name: data}}`; erasure runs every step and reports what each
removed. Contacts, consent, events and segments register here; later domains (messages,
enrollments) call `register_export_section` / `register_erasure_step` from a module that is
imported at start-up (their router or service), and privacy requests include them with no
change to this package.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.models import Contact


@dataclass(frozen=True)
class ErasureContext:
    workspace_id: uuid.UUID
    contact: Contact  # PII already captured below; the row itself is cleared last
    addresses: dict[str, str]  # channel -> address the contact had before erasure
    identifiers: tuple[str, ...]  # PII strings to hunt for in free text (email, phone, ext. id)
    now: datetime


ExportSection = Callable[[AsyncSession, uuid.UUID, Contact], Awaitable[Any]]
ErasureStep = Callable[[AsyncSession, ErasureContext], Awaitable[dict[str, int]]]

_EXPORT_SECTIONS: dict[str, ExportSection] = {}
_ERASURE_STEPS: dict[str, ErasureStep] = {}


def register_export_section(name: str, section: ExportSection) -> None:
    """Add `sections[name]` to every export; `section` returns JSON-compatible data."""
    _EXPORT_SECTIONS[name] = section


def register_erasure_step(name: str, step: ErasureStep) -> None:
    """Run `step` in every erasure (same transaction); it returns counts of what it removed."""
    _ERASURE_STEPS[name] = step


def export_sections() -> dict[str, ExportSection]:
    return dict(_EXPORT_SECTIONS)


def erasure_steps() -> dict[str, ErasureStep]:
    return dict(_ERASURE_STEPS)
