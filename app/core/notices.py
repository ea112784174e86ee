"""Notices: how a lower domain tells higher ones that something happened, without importing
them (the domain graph is one-way; DESIGN.md section 2).

The lower domain declares a `Notice` with the signature its subscribers receive and
`publish`es it inside the caller's transaction; higher domains `subscribe` once per process
(`app/wiring.py`). Subscribers run in subscription order, in the same session, so what they
write commits or rolls back with the change that caused it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Notice(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[P, Awaitable[object]]] = []

    def subscribe(self, subscriber: Callable[P, Awaitable[object]]) -> None:
        """Idempotent: wiring twice (an API and a worker in one test process) subscribes once."""
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    async def publish(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for subscriber in self._subscribers:
            await subscriber(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Notice({self.name!r}, {len(self._subscribers)} subscribers)"
