"""Live fan-out of a session's audit events to its watchers (console timeline, participant pages).

Each subscriber gets a bounded queue; a subscriber that falls behind loses its oldest events and is told
so (`dropped`), and re-reads the trail from the store by seq. Publishing never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class EventBus:
    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    def publish(self, session_id: str, event: dict[str, Any]) -> None:
        for sub in self._subs.get(session_id, ()):
            sub.put(event)

    @contextlib.contextmanager
    def subscribe(self, session_id: str) -> Iterator[Subscription]:
        sub = Subscription(self.maxsize)
        self._subs[session_id].add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(session_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[session_id]
