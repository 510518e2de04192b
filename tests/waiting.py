"""Waiting for what a running service does next, bounded: the one poll loop the tests share."""
from __future__ import annotations

import asyncio
from typing import Any

INTERVAL = 0.05  # seconds between two looks


async def until(check: Any, timeout: float = 15.0, *, blocking: bool = False) -> Any:
    """Poll ``check`` until it returns something truthy, and return that, within ``timeout``
    seconds. A coroutine it returns is awaited; ``blocking`` runs it in a thread (a check that
    talks to Dovecot or opens the database itself must not stall the service's event loop)."""
    for _ in range(max(1, int(timeout / INTERVAL))):
        value = await asyncio.to_thread(check) if blocking else check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(INTERVAL)
    raise AssertionError(f"timed out waiting for {check}")
