"""What one source may cost the service, beyond the per-message rate limit: audit events for
its refusals and open event streams. Both are in memory, like the rate limiter: one process
serves the widget, and a restart forgetting them is harmless.

Refusals are decisions and belong in the audit trail, but an attacker can send them as fast
as the network allows. So the first refusal of each source and rule in a window is written
at once (an operator sees it without delay), the next ones are only counted, and the count
is written into that same event when the window ends (or the service stops): one row per
source, rule and window, however many requests. Past ``max_sources`` sources in one window
(addresses are cheap in IPv6) all further ones share a single summary, so the number of
rows a window can add is fixed, whatever the attacker has.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

WriteEvent = Callable[[str, list[str], dict[str, Any]], Awaitable[int]]  # kind, rules, detail -> event id
UpdateEvent = Callable[[int, dict[str, Any]], Awaitable[None]]
MANY = "*"  # the source of the shared summary once a window has seen max_sources sources


@dataclass
class _Window:
    started: float
    detail: dict[str, Any]
    count: int = 1
    event: int = 0  # the event written for the window's first refusal (0 while it is being written)
    written: int = 1  # the count that event holds


@dataclass
class Refusals:
    write: WriteEvent
    update: UpdateEvent
    window: float = 600.0
    max_sources: int = 100
    clock: Callable[[], float] = time.monotonic
    _windows: dict[tuple[str, str], _Window] = field(default_factory=dict)

    async def note(self, source: str, kind: str, rule: str, detail: dict[str, Any]) -> None:
        """One refused request: written when it opens a window, counted otherwise."""
        now = self.clock()
        await self._close(lambda w: now - w.started >= self.window)
        key = (source, rule)
        if key not in self._windows and sum(1 for s, r in self._windows if r == rule) >= self.max_sources:
            key = (MANY, rule)
        current = self._windows.get(key)
        if current is not None:
            current.count += 1
            return
        current = self._windows[key] = _Window(now, {**detail, "source": key[0], "window_seconds": self.window})
        try:
            current.event = await self.write(kind, [rule], {**current.detail, "count": 1})
        except BaseException:  # not written: the next refusal opens the window again
            del self._windows[key]
            raise

    async def flush(self) -> None:
        """Write every window's count now (at shutdown: nothing counted is lost)."""
        await self._close(lambda w: True)

    async def _close(self, ended: Callable[[_Window], bool]) -> None:
        for key, window in list(self._windows.items()):
            if not ended(window) or window.event == 0:
                continue
            del self._windows[key]
            if window.count > window.written:
                window.written = window.count
                await self.update(window.event, {**window.detail, "count": window.count})


@dataclass
class Streams:
    """Open server-sent-event streams per source: each one holds a socket and a poll loop."""

    per_source: int = 4
    total: int = 500
    _open: dict[str, int] = field(default_factory=dict)

    def open(self, source: str) -> int:
        return self._open.get(source, 0)

    def acquire(self, source: str) -> bool:
        if self.open(source) >= self.per_source or sum(self._open.values()) >= self.total:
            return False
        self._open[source] = self.open(source) + 1
        return True

    def release(self, source: str) -> None:
        left = self.open(source) - 1
        if left > 0:
            self._open[source] = left
        else:
            self._open.pop(source, None)
