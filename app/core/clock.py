"""The one clock. Everything that needs "now" asks it, so tests can freeze and move time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._frozen_at: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        base = self._frozen_at if self._frozen_at is not None else datetime.now(UTC)
        return base + self._offset

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop time at `at` (default: the current instant)."""
        self._frozen_at = (at or datetime.now(UTC)).astimezone(UTC)
        self._offset = timedelta(0)
        return self._frozen_at

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward (frozen or not)."""
        self._offset += delta
        return self.now()

    def reset(self) -> None:
        self._frozen_at = None
        self._offset = timedelta(0)


clock = Clock()


def utcnow() -> datetime:
    return clock.now()
