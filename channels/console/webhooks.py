"""The console's ``/webhooks`` page: delivery status of the signed calls, and Redeliver.

    GET  /webhooks                 each receiver (ticket-event webhooks, tenants' portal APIs):
                                   queued / delivered / failed counts, the last error, recent failures
    POST /webhooks/ID/redeliver    a failed call queued again (CSRF like every form)

Reading is :mod:`triage.desk.deliveries`; the button is :func:`triage.desk.agents.redeliver`,
the same call as ``triage webhooks redeliver ID``, recorded with the agent's address. Both are
scoped to the agent's tenants (another tenant's delivery answers as if it did not exist).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from aiohttp import web

from channels.console.auth import set_cookie
from triage.desk import deliveries
from triage.desk.agents import AgentError, redeliver

if TYPE_CHECKING:
    from triage.config import Config
    from triage.service.host import Host

SAID_COOKIE = "triage_said"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Console(Protocol):
    """What this page needs of the console (``ConsoleChannel``), named here so that the console
    package imports this module and not the other way round."""

    service: Host
    config: Config

    def page(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response: ...

    def _guarded(self, handler: Handler) -> Handler: ...

    def db(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...

    def scope(self, request: web.Request) -> list[str] | None: ...

    def actor(self, request: web.Request) -> str: ...


class WebhooksPage:
    def __init__(self, console: Console):
        self.console = console

    def mount(self, app: web.Application) -> None:
        guarded = self.console._guarded
        app.router.add_get("/webhooks", guarded(self._page))
        app.router.add_post("/webhooks/{id:\\d{1,18}}/redeliver", guarded(self._redeliver))

    async def _page(self, request: web.Request) -> web.Response:
        c = self.console
        receivers = await c.db(deliveries.overview, c.service.store, c.config, c.scope(request))
        said = unquote(request.cookies.get(SAID_COOKIE, "")[:1000])
        response = c.page(request, "webhooks.html", receivers=receivers, said=said)
        if said:
            response.del_cookie(SAID_COOKIE, path="/")
        return response

    async def _redeliver(self, request: web.Request) -> web.Response:
        c = self.console
        try:
            said = await c.db(redeliver, c.service.store, int(request.match_info["id"]), c.actor(request),
                              c.service.clock(), c.scope(request))
        except AgentError as e:
            said = f"not done: {e}"
        c.service.webhooks.wake()
        response = web.Response(status=303, headers={"Location": "/webhooks"})  # a response, so the cookie is sent
        set_cookie(response, request, SAID_COOKIE, quote(said[:300]), max_age=60)
        return response
