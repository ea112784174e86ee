"""In-process cache of serialized stats and time-series responses, exact by construction.

An entry is served again only while its *signature* is unchanged. The signature is read from
the database on every request (one cheap statement, before the figures would be): the
campaign row's version stamp, the count and newest transaction id (`xmin`) of the
campaign's rollup rows (the fold and a recount rewrite them: a new `xmin`), the count and
newest id of its unfolded deltas (every change of a message, enrollment or fact appends
one, ids only grow), and the workspace's queued event ids. Folding moves deltas into rollups
without changing their sum, so any two moments with the same signature serve the same
figures; what the cache saves is the summing, the per-bucket Python building and the JSON
encoding, which dominate a read (docs/metrics.md, benchmark). Entries also expire after
`TTL_SECONDS`, and the cache holds at most `MAX_ENTRIES` (oldest dropped first): a bound on
memory held for idle campaigns, not a correctness device (the signature is exact).

Misses are computed once per (key, signature) and process: requests that miss while the
figures are being computed wait for that computation instead of starting their own (at 200
reads/s of a campaign that changes every second, without this every request arriving during
a 25 ms hour-series build computed it again, and the stampede stalled the process).
 Per API process; nothing to invalidate across processes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

TTL_SECONDS = 60.0
MAX_ENTRIES = 512
MAX_PENDING = 1000  # a longer queue (a catch-up) is not worth keying on: no caching then


@dataclass(frozen=True)
class _Entry:
    signature: Hashable
    value: object
    expires: float


class ResponseCache:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._flights: dict[tuple[Hashable, Hashable], asyncio.Future[object]] = {}
        self.hits = 0
        self.shared = 0  # misses answered by another request's computation

    def get(self, key: Hashable, signature: Hashable) -> object | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.signature != signature or entry.expires < time.monotonic():
            del self._entries[key]
            return None
        self.hits += 1
        return entry.value

    def put(self, key: Hashable, signature: Hashable, value: object) -> None:
        self._entries[key] = _Entry(signature, value, time.monotonic() + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def get_or_compute(
        self, key: Hashable, signature: Hashable, compute: Callable[[], Awaitable[T]]
    ) -> T:
        """The cached value, else the value one computation of it produces: concurrent
        misses of the same key and signature share that computation. If it fails (or its
        request is cancelled), each waiter computes its own."""
        found = self.get(key, signature)
        if found is not None:
            return found  # type: ignore[return-value]
        flight = self._flights.get((key, signature))
        if flight is not None:
            await asyncio.wait({flight})
            if not flight.cancelled():
                self.shared += 1
                return flight.result()  # type: ignore[return-value]
            return await compute()
        flight = asyncio.get_running_loop().create_future()
        self._flights[(key, signature)] = flight
        try:
            value = await compute()
        except BaseException:
            flight.cancel()
            raise
        finally:
            self._flights.pop((key, signature), None)
        self.put(key, signature, value)
        flight.set_result(value)
        return value

    def clear(self) -> None:
        self._entries.clear()


responses = ResponseCache()
