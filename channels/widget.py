"""The help widget's HTTP side: the script, a demo page and a small JSON + SSE API.

A thin adapter (like ``channels/smtp.py``): it checks what a browser sent — origin, size,
rate, shape — turns a line into a :class:`triage.service.chat.ChatLine` and hands it to the
service's one chat entry point, which answers only after the line is committed. Refusals
happen before anything is stored, so a refused message is never half-stored; each refusal
is a JSON error ``{"error", "code"[, "rule", "detail"]}``: ``error`` is the sentence the widget
shows as it is, in the visitor's language (``channels/widget_texts.py``), ``code`` the stable
name a client branches on, ``rule`` the rule id when a policy rule refused. What a request
must look like is checked in one place, ``channels/widget_input.py``; what one source may
cost (refusals in the audit trail, open event streams) is bounded in
``channels/widget_limits.py``.

Routes (the tenant is in the path so a CORS preflight, which has no body, knows it):

    GET  /widget.js                                the script, no build step
    GET  /widget/demo?tenant=T[&email=&user_hash=&user_token=&lang=] a page embedding it
    GET  /widget/api/T/status[?lang=]              support hours, the tenant's name and colour, the texts
    POST /widget/api/T/messages                    a line {text, email, name, user_hash, user_token, client_id,
                                                   token, browser}
    GET  /widget/api/T/conversation?token=         the conversation after a reload
    GET  /widget/api/T/events?token=&after=        server-sent events: each new line, live
    POST /widget/api/T/transcript                  {token}: the transcript by email (verified only)
    POST /widget/api/T/feedback                    {token, line, article, solved}: the suggested articles helped?

The widget's own texts (buttons, labels, notices) and its error sentences are data, one JSON
file per language in ``static/i18n/``, chosen by the visitor's language (every call may carry
``?lang=``; else Accept-Language), else the tenant's, else English.
"""
from __future__ import annotations

import html
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from channels import widget_input as check
from channels.client_address import client_address
from channels import widget_texts as texts
from channels.widget_input import BadRequest, malformed
from channels.widget_limits import Refusals, Streams
from triage.config import Tenant, Window
from triage.core import hours
from triage.core.render import format_hours, format_moment
from triage.service.chat import BROWSER_KEY, ChatLine
from triage.service.logs import event
from triage.store import iso

if TYPE_CHECKING:
    from triage.service.host import Host

RULES = {
    "widget-origin-refused": "the page's origin is not in the tenant's widget_origins: refused with 403",
    "widget-too-large": "the message is larger than widget_max_message_size: refused with 413",
    "widget-rate-limited": "too many messages from one conversation or IP address: refused with 429 and Retry-After",
    "widget-transcript-unverified": "an unverified visitor cannot have the transcript mailed (it could go to a stranger)",
    "widget-streams-limited": "too many open event streams from one IP address: refused with 429 and Retry-After",
}

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
TENANT = web.RequestKey("tenant", Tenant)
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # conversation tokens are URL-safe base64
KEEPALIVE = 15.0  # seconds between SSE comments, so proxies keep the stream open
POLL = 2.0  # seconds: replies stored by other processes or threads show up within this


class RateLimiter:
    """Sliding windows per key (a conversation, an IP address), in memory: one process serves
    the widget, and a restart forgetting recent counts is harmless."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, keys: list[str], windows: list[Window]) -> int:
        """Seconds until every key is under every window; 0 means allowed (and counted now)."""
        now = self.clock()
        longest = max((w.seconds for w in windows), default=0)
        wait = 0.0
        for key in keys:
            stamps = self._seen.setdefault(key, deque())
            while stamps and stamps[0] <= now - longest:
                stamps.popleft()
            for window in windows:
                recent = [t for t in stamps if t > now - window.seconds]
                if len(recent) >= window.count:
                    wait = max(wait, recent[-window.count] + window.seconds - now)
        if wait > 0:
            return max(1, int(wait + 0.999))
        for key in keys:
            self._seen[key].append(now)
        if len(self._seen) > 10_000:  # forget idle keys so a scan of many addresses cannot grow memory
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - longest}
        return 0


def _error(request: web.Request, status: int, code: str, *, rule: str = "", detail: str = "",
           headers: dict[str, str] | None = None, **values: Any) -> web.Response:
    """An error answer: the visitor's sentence for ``code`` in their language, the code itself."""
    tenant = request.get(TENANT)
    lang = texts.request_language(request, tenant.language if tenant else "")
    body = {"error": texts.error(lang, code, **values), "code": code,
            **({"rule": rule} if rule else {}), **({"detail": detail} if detail else {})}
    return web.json_response(body, status=status, headers=headers)


class WidgetChannel:
    """The widget's routes on the service's aiohttp application."""

    def __init__(self, service: Host):
        self.service = service
        self.config = service.config
        self.limiter = RateLimiter()
        self.refusals = Refusals(self._write_refusal, self._update_refusal)
        self.streams = Streams()

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/widget.js", self._script)
        app.router.add_get("/widget/demo", self._demo)
        api = web.Application(middlewares=[self._guard])
        api.router.add_get("/{tenant}/status", self._status)
        api.router.add_post("/{tenant}/messages", self._post)
        api.router.add_get("/{tenant}/conversation", self._conversation)
        api.router.add_get("/{tenant}/events", self._events)
        api.router.add_post("/{tenant}/transcript", self._transcript)
        api.router.add_post("/{tenant}/feedback", self._feedback)
        api.router.add_route("OPTIONS", "/{tenant}/{tail:.*}", self._preflight)
        app.add_subapp("/widget/api/", api)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        await self.refusals.flush()

    # -- guard: tenant and origin for every API call -------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        tenant = self.config.tenants.get(request.match_info.get("tenant", ""))
        if tenant is None:
            return _error(request, 404, "unknown-tenant")
        origin = request.headers.get("Origin")
        if origin is not None and not self._allowed(request, tenant, origin):
            await self._refused(request, "origin-refused", "widget-origin-refused", {"origin": origin[:200]})
            return _error(request, 403, "origin-refused", rule="widget-origin-refused", origin=origin[:200],
                          tenant=tenant.name)
        request[TENANT] = tenant
        try:
            response = await handler(request)
        except BadRequest as e:
            response = _error(request, e.status, e.code, rule=e.rule, detail=e.detail, **e.values)
        if origin is not None and not response.prepared:
            response.headers.update(self._cors(origin))
        return response

    @staticmethod
    def _allowed(request: web.Request, tenant: Tenant, origin: str) -> bool:
        """The service's own pages (the demo), and the origins the tenant lists."""
        origin = origin.rstrip("/").lower()
        own = f"{request.scheme}://{request.host}".lower()
        return origin == own or origin in {o.rstrip("/").lower() for o in tenant.widget_origins}

    @staticmethod
    def _cors(origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Methods": "GET, POST", "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600"}

    async def _preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _refused(self, request: web.Request, kind: str, rule: str, detail: dict[str, Any]) -> None:
        """Refusals are decisions too: in the audit trail without the refused text, summarised
        per source and window (see channels/widget_limits.py) so a flood cannot fill it."""
        try:
            await self.refusals.note(client_address(request, self.config.trusted_proxies), kind, rule, detail)
        except Exception as e:  # the refusal is still answered; the failure shows in /healthz
            self.service.last_error = f"widget audit: {type(e).__name__}: {e}"

    async def _write_refusal(self, kind: str, rules: list[str], detail: dict[str, Any]) -> int:
        """The first refusal of a source in its window: one audit event and one log line (the
        rest of the window only counts, so a flood fills neither)."""
        event(log, logging.INFO, "widget request refused", rule=",".join(rules), kind=kind,
              source=detail.get("source"), tenant=detail.get("tenant"))
        store = self.service.store
        at = iso(self.service.clock())

        def write() -> int:
            with store.transaction():
                return store.add_event(None, kind, rules, "refused", at, detail=detail)
        return await self.service.run_db(write)

    async def _update_refusal(self, event: int, detail: dict[str, Any]) -> None:
        await self.service.run_db(self.service.store.set_event_detail, event, detail)

    # -- the script and the demo ----------------------------------------------------------

    async def _script(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "widget.js", headers={"Content-Type": "text/javascript; charset=utf-8",
                                                               "Cache-Control": "no-cache"})

    async def _demo(self, request: web.Request) -> web.Response:
        """A page that embeds the widget as a portal would. It never computes a user_hash
        itself (that would let anyone claim any address): pass one computed elsewhere."""
        slug = request.query.get("tenant", "")
        tenant = self.config.tenants.get(slug)
        if tenant is None:  # naming the known tenants would tell any visitor who our clients are
            return web.Response(status=404, text="Not found\n")
        values = {"tenant": slug, "name": tenant.name, "email": request.query.get("email", ""),
                  "user_hash": request.query.get("user_hash", ""), "user_token": request.query.get("user_token", ""),
                  "visitor": request.query.get("name", ""), "lang": request.query.get("lang", "")}
        template = (STATIC / "demo.html").read_text(encoding="utf-8")
        page = re.sub(r"\{\{(\w+)\}\}", lambda m: html.escape(values[m.group(1)], quote=True), template)
        return web.Response(text=page, content_type="text/html", headers={
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"})

    # -- the API ----------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        tenant: Tenant = request[TENANT]
        lang = texts.request_language(request, tenant.language)
        return web.json_response({**self.support_status(tenant, self.service.clock(), lang),
                                  "name": tenant.name, "color": tenant.widget_color, "lang": lang,
                                  "texts": texts.interface(lang)})

    @staticmethod
    def support_status(tenant: Tenant, now: datetime, lang: str = "") -> dict[str, Any]:
        """Open now, or when support is back, in the visitor's language (else the tenant's) and
        the tenant's time zone."""
        lang = lang or tenant.language
        back = hours.next_open(tenant.hours, tenant.timezone, now)
        return {"open": hours.is_open(tenant.hours, tenant.timezone, now),
                "back": format_moment(back, lang), "back_at": back.isoformat(), "timezone": tenant.timezone,
                "hours": format_hours(tenant.hours.days, tenant.hours.start, tenant.hours.end, lang,
                                      tenant.timezone)}

    async def _post(self, request: web.Request) -> web.Response:
        tenant: Tenant = request[TENANT]
        limit = tenant.widget_max_message_size
        too_large = BadRequest(413, "too-large", rule="widget-too-large", limit=limit, chars=limit // 2)
        line = self._line(tenant, await check.read_json(request, too_large))
        size = len(line.text.encode())
        if size > limit:
            await self._refused(request, "message-refused", "widget-too-large", {"size": size})
            raise too_large
        keys = [f"ip:{client_address(request, self.config.trusted_proxies)}"] + (
            [f"conversation:{line.token}"] if line.token else [])
        wait = self.limiter.retry_after(keys, tenant.widget_rate_limits)
        if wait:
            return _error(request, 429, "rate-limited", rule="widget-rate-limited",
                          headers={"Retry-After": str(wait)}, wait=wait)
        try:
            posted = await self.service.deliver_chat(line)
        except Exception as e:  # nothing was stored (one transaction): the widget keeps the text to resend
            self.service.last_error = f"widget: {type(e).__name__}: {e}"
            return _error(request, 503, "not-saved")
        return web.json_response({"token": posted.token, "ticket": posted.number, "verified": posted.verified,
                                  "duplicate": posted.duplicate, "queued": posted.queued})

    @staticmethod
    def _line(tenant: Tenant, data: dict[str, Any]) -> ChatLine:
        """A posted line, every field checked (channels/widget_input.py) or BadRequest."""
        text = check.string(data, "text", check.MAX_BODY, lines=True)
        if not text.strip():
            raise BadRequest(400, "empty-message", "the message is empty")
        browser = check.string(data, "browser", 64)
        if browser and not BROWSER_KEY.match(browser):
            raise malformed("browser must be 22 to 64 letters, digits, '-' or '_'")
        return ChatLine(tenant.slug, check.email(check.string(data, "email", 254)),
                        check.string(data, "name", check.MAX_NAME).strip(),
                        check.string(data, "user_hash", check.MAX_HASH).strip(), text,
                        check.client_id(check.string(data, "client_id", 64)),
                        check.token(check.string(data, "token", 100)),
                        check.string(data, "user_token", check.MAX_USER_TOKEN).strip(), browser)

    async def _conversation(self, request: web.Request) -> web.Response:
        state = await self._state(request, 0)
        if state is None:
            return _error(request, 404, "unknown-conversation")
        return web.json_response({**state, "support": self.support_status(request[TENANT], self.service.clock())})

    async def _state(self, request: web.Request, after: int) -> dict[str, Any] | None:
        token = check.token(check.checked(request.query.get("token", ""), "token", 100))
        state = await self.service.conversation_state(token, after)
        if state is None or state["tenant"] != request[TENANT].slug:
            return None
        return state

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Every line after ``after`` (or Last-Event-ID on a reconnect), then each new one live."""
        after = check.event_position(request)
        state = await self._state(request, after)
        if state is None:
            return _error(request, 404, "unknown-conversation")
        source = client_address(request, self.config.trusted_proxies)
        if not self.streams.acquire(source):
            return _error(request, 429, "too-many-streams", rule="widget-streams-limited",
                          headers={"Retry-After": str(int(KEEPALIVE))})
        try:
            return await self._stream(request, state, after)
        finally:
            self.streams.release(source)

    async def _stream(self, request: web.Request, state: dict[str, Any], after: int) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **(self._cors(origin) if origin else {})})
        await response.prepare(request)
        quiet = 0.0
        try:
            while not self.service.hub.closed and request.transport is not None and not request.transport.is_closing():
                for line in state["messages"]:  # with the ticket's number: a queued first line has none yet
                    data = json.dumps({**line, "ticket": state["ticket"]})
                    await response.write(f"id: {line['id']}\ndata: {data}\n\n".encode())
                    after = line["id"]
                    quiet = 0.0
                if quiet >= KEEPALIVE:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                started = time.monotonic()
                await self.service.hub.wait(POLL)
                quiet += time.monotonic() - started
                state = await self._state(request, after)
                if state is None:
                    break
        except ConnectionResetError:
            pass  # the visitor closed the page
        return response

    async def _transcript(self, request: web.Request) -> web.Response:
        data = await check.read_json(request, BadRequest(
            413, "bad-request", "the request is too large: it needs only the conversation's token", "widget-too-large"))
        token = check.token(check.string(data, "token", 100))
        state = await self.service.conversation_state(token)
        if state is None or state["tenant"] != request[TENANT].slug or state["ticket"] is None:
            return _error(request, 404, "unknown-conversation")
        try:
            refused = await self.service.mail_transcript(token)
        except PermissionError as e:
            await self._refused(request, "transcript-refused", "widget-transcript-unverified", {})
            return _error(request, 403, "transcript-unverified", rule="widget-transcript-unverified", detail=str(e))
        if refused:
            return _error(request, 409, "mail-refused", rule=refused)
        return web.json_response({"queued": True, "to": state["email"]})

    async def _feedback(self, request: web.Request) -> web.Response:
        """"This solved it" (with the article) or "I still need help" for one line's suggestions;
        only the conversation's own token can say either."""
        try:
            data = await request.json()
            token, line, article, solved = data["token"], data["line"], data.get("article", ""), data["solved"]
            assert isinstance(token, str) and isinstance(article, str) and isinstance(solved, bool)
            assert isinstance(line, int) and not isinstance(line, bool) and 0 < line < 2 ** 62
        except (ValueError, AttributeError, KeyError, TypeError, AssertionError):
            raise malformed("the request must be a JSON object with token, line (a number), article and solved "
                            "(true or false)") from None
        state = await self._state_of(request, token) if TOKEN.match(token) else None
        if state is None:
            return _error(request, 404, "unknown-conversation")
        try:
            result = await self.service.article_feedback(token, line, article[:200], solved)
        except LookupError as e:  # the conversation is there (checked above): the line or the article is not
            return _error(request, 404, "unknown-article", detail=str(e))
        return web.json_response(result)

    async def _state_of(self, request: web.Request, token: str) -> dict[str, Any] | None:
        """The conversation of a token, if it belongs to this tenant."""
        state = await self.service.run_db(self.service.conversations.state, token, 2 ** 62)
        return state if state is not None and state["tenant"] == request[TENANT].slug else None
