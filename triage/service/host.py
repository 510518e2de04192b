"""What a channel may ask of the running service.

The channels (widget, console) are adapters the service mounts on its web server; they
reach the desk only through this interface, so they depend on the service's contract and
never on the service module itself (which imports them to mount them).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: none of these modules imports a channel
    from triage.config import Config
    from triage.desk.agents import Agents
    from triage.service.chat import ChatLine, Conversations, Posted
    from triage.service.outbox import Outbox
    from triage.service.webhooks import Deliveries
    from triage.store import Store


class Hub:
    """Wakes every open event stream (widget conversations, the console's inbox) when
    something is stored in this process, instead of each stream polling the database."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass

    def close(self) -> None:
        """Open streams end, so that the web server does not wait for them on shutdown."""
        self.closed = True
        self.notify()


class Host(Protocol):
    """The service as its channels see it (``triage.service.app.Service`` is the one implementation)."""

    config: Config
    store: Store
    outbox: Outbox
    webhooks: Deliveries  # the console's Redeliver wakes it
    conversations: Conversations
    hub: Hub
    clock: Callable[[], datetime]
    last_error: str

    @property
    def agents(self) -> Agents: ...

    def run_db(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...

    async def deliver_chat(self, line: ChatLine) -> Posted: ...

    async def conversation_state(self, token: str, after: int = 0) -> dict[str, Any] | None: ...

    async def mail_transcript(self, token: str) -> str | None: ...

    async def article_feedback(self, token: str, line: int, article: str, solved: bool) -> dict[str, Any]: ...
