"""The agents' web console on ``web.listen``: sign-in, inbox, ticket pages, phone tickets, reports.

Server-rendered Jinja2 pages with htmx (vendored in ``static/``) for the live inbox; every
page works without JavaScript. Like the Slack app, this is an adapter: every action on a
ticket is a call on :class:`triage.desk.agents.Agents` in the database thread, so Slack, the
console and the CLI share one module and one audit trail. An agent sees only the tenants
they are assigned (other tickets answer 404, as if they did not exist).

    GET  /                          → /tickets (or /login)
    GET  /login, POST /login        the form (email, password); 401 on a wrong password, 429 when rate-limited
    POST /logout
    GET  /tickets                   the inbox (filters and search in the query string)
    GET  /tickets/events            server-sent events: the inbox changed
    GET  /tickets/new, POST         a ticket taken by phone or in person
    GET  /tickets/T/N               one ticket; POST /tickets/T/N/ACTION does ACTION
    GET  /reports, /reports/NAME.csv
    GET  /webhooks, POST /webhooks/ID/redeliver   delivery status of the signed calls (webhooks.py)
    GET  /favicon.ico               the console's icon (SVG), which browsers ask for on every page
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import jinja2
from aiohttp import web

from channels.console import inbox
from channels.console.webhooks import WebhooksPage
from channels.console.auth import (KEY_SETTING, LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Signer, console_key,
                                   set_cookie)
from channels.client_address import client_address
from channels.widget import RateLimiter
from triage.config import Window
from triage.core.classify import HUMAN_LABELS
from triage.core.parse import parse_email
from triage.desk.accounts import Accounts, Agent
from triage.desk.agents import AgentError, Agents

if TYPE_CHECKING:
    from triage.service.host import Host

HERE = Path(__file__).resolve().parent
ICON = (HERE / "static" / "icon.svg").read_bytes()
LOGIN_LIMITS = {"address": [Window(8, 900)], "source": [Window(30, 900)]}
MAX_FORM = 256 * 1024  # bytes of a posted form
MAX_TEXT = 100_000  # characters of a reply or note
ACTIONS = ("reply", "note", "approve", "reclassify", "escalate", "assign", "resolve", "close", "reopen",
           "send_article", "reject_article")
ONCE_ACTIONS = ("reply", "note", "send_article")  # what reaches a requester, or the trail, once per form
AGENT = web.RequestKey("agent", Agent)
SID = web.RequestKey("sid", str)
FORM = web.RequestKey("form", dict)
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleChannel:
    def __init__(self, service: Host):
        self.service = service
        self.config = service.config
        self.tenants = sorted(service.config.tenants)
        self.accounts = Accounts(service.store, self.tenants)
        self.limiter = RateLimiter()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.env.filters["when"] = lambda at: (at or "")[:16].replace("T", " ")
        self.env.filters["size"] = _size
        self.signer: Signer | None = None

    @property
    def agents(self) -> Agents:
        """The service's one module of agents' actions, shared with Slack."""
        return self.service.agents

    def mount(self, app: web.Application) -> None:
        app.on_startup.append(self._startup)
        r = app.router
        r.add_get("/", self._root)
        r.add_get("/login", self._login_form)
        r.add_post("/login", self._login)
        r.add_post("/logout", self._guarded(self._logout))
        r.add_get("/tickets", self._guarded(self._inbox))
        r.add_get("/tickets/events", self._guarded(self._events))
        r.add_get("/tickets/new", self._guarded(self._new_form))
        r.add_post("/tickets/new", self._guarded(self._new))
        r.add_get("/tickets/{tenant}/{number:\\d{1,9}}", self._guarded(self._ticket))
        r.add_post("/tickets/{tenant}/{number:\\d{1,9}}/{action}", self._guarded(self._act))
        r.add_get("/reports", self._guarded(self._reports))
        r.add_get("/reports/{name}.csv", self._guarded(self._report_csv))
        WebhooksPage(self).mount(app)
        r.add_static("/console/static/", HERE / "static", append_version=True)
        r.add_get("/favicon.ico", self._icon)

    async def _icon(self, request: web.Request) -> web.Response:
        """Browsers ask every origin for /favicon.ico, whatever the page links: an icon rather
        than a 404 in every log and every browser console (the widget's demo page included)."""
        return web.Response(body=ICON, content_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})

    async def _startup(self, app: web.Application) -> None:
        key = await self.service.run_db(self.service.store.random_key, KEY_SETTING)
        self.signer = Signer(console_key(key))

    # -- plumbing -----------------------------------------------------------------------

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.service.run_db(fn, *args)

    def page(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        agent = request.get(AGENT)
        sid = request.get(SID, "")
        assert self.signer is not None
        csrf = self.signer.csrf("session" if agent else "login", sid)
        text = self.env.get_template(template).render(agent=agent, csrf=csrf, path=request.path, **values)
        return web.Response(text=text, status=status, content_type="text/html",
                            headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})

    def _guarded(self, handler: Handler) -> Handler:
        """Sign-in for every console route, CSRF for every POST."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            assert self.signer is not None
            session = self.signer.session(request.cookies.get(SESSION_COOKIE, ""))
            agent = await self.db(self.accounts.session_agent, session.email, session.sid) if session else None
            if agent is None or session is None or agent.fingerprint != session.fingerprint:
                if request.method == "GET" and request.path != "/tickets/events":
                    raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs[:500]}))
                return web.Response(status=401, text="sign in first")
            request[AGENT] = agent
            request[SID] = session.sid
            if request.method == "POST":
                form = await self._form(request)
                token = request.headers.get("X-CSRF-Token") or str(form.get("csrf", ""))
                if not self.signer.csrf_ok("session", session.sid, token):
                    return web.Response(status=403, text="the form's security token is missing or stale: "
                                                         "reload the page and try again")
            return await handler(request)
        return guarded

    async def _form(self, request: web.Request) -> dict[str, str]:
        """The posted form, read once and bounded (a JSON 413 would not help a browser)."""
        if FORM not in request:
            if (request.content_length or 0) > MAX_FORM:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM, actual_size=request.content_length or 0)
            try:
                data = await request.post()
            except ValueError:
                data = {}  # type: ignore[assignment]
            request[FORM] = {k: v for k, v in data.items() if isinstance(v, str)}
        return request[FORM]

    def visible(self, request: web.Request) -> list[str]:
        return request[AGENT].visible(self.tenants)

    def scope(self, request: web.Request) -> list[str] | None:
        """The agent's tenants for a query that also has rows of no tenant: None for an agent of
        every tenant (those rows included), else the tenants they may see."""
        agent: Agent = request[AGENT]
        return None if agent.tenants is None else self.visible(request)

    def actor(self, request: web.Request) -> str:
        """Who acts, for the audit trail: the signed-in agent's address."""
        return request[AGENT].email

    # -- sign-in ----------------------------------------------------------------------------

    async def _root(self, request: web.Request) -> web.Response:
        assert self.signer is not None
        signed_in = self.signer.session(request.cookies.get(SESSION_COOKIE, "")) is not None
        raise web.HTTPFound("/tickets" if signed_in else "/login")

    def _login_page(self, request: web.Request, status: int = 200, error: str = "", email: str = "",
                    headers: dict[str, str] | None = None) -> web.Response:
        sid = request.cookies.get(LOGIN_COOKIE, "")
        fresh = not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", sid)
        if fresh:
            sid = secrets.token_urlsafe(24)
        request[SID] = sid
        nxt = request.query.get("next", "") or (request.get(FORM) or {}).get("next", "")
        response = self.page(request, "login.html", status, error=error, email=email,
                             next=nxt if _local(nxt) else "")
        response.headers.update(headers or {})
        if fresh:
            set_cookie(response, request, LOGIN_COOKIE, sid, max_age=3600, samesite="Strict")
        return response

    async def _login_form(self, request: web.Request) -> web.Response:
        return self._login_page(request)

    async def _login(self, request: web.Request) -> web.Response:
        assert self.signer is not None
        form = await self._form(request)
        email = form.get("email", "").strip().lower()[:254]
        if not self.signer.csrf_ok("login", request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf", "")):
            return self._login_page(request, 403, "The form had expired: please sign in again.", email)
        keys = [f"address:{email}"]
        wait = max(self.limiter.retry_after(keys, LOGIN_LIMITS["address"]),
                   self.limiter.retry_after([f"source:{client_address(request, self.config.trusted_proxies)}"],
                                           LOGIN_LIMITS["source"]))
        if wait:
            return self._login_page(request, 429, f"Too many sign-in attempts: please wait {wait // 60 + 1} "
                                    "minutes and try again.", email, headers={"Retry-After": str(wait)})
        agent = await self.db(self.accounts.verify, email, form.get("password", ""))
        if agent is None:
            return self._login_page(request, 401, "Wrong email address or password.", email)
        response = _redirect(form.get("next") if _local(form.get("next", "")) else "/tickets")
        set_cookie(response, request, SESSION_COOKIE, self.signer.session_cookie(agent.email, agent.fingerprint),
                   max_age=SESSION_SECONDS)
        response.del_cookie(LOGIN_COOKIE, path="/")
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        """Ends the session on the server too: a copy of the cookie is refused from now on."""
        assert self.signer is not None
        session = self.signer.session(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:  # _guarded has checked it
            await self.db(self.accounts.end_session, session.sid, session.expires, self.service.clock())
        response = _redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # -- inbox --------------------------------------------------------------------------------

    async def _inbox(self, request: web.Request) -> web.Response:
        tenants = self.visible(request)
        query = inbox.Query.parse(request.query, tenants)
        now = self.service.clock()
        result = await self.db(inbox.search, self.service.store, self.config, query, tenants, now)
        if request.headers.get("HX-Request") and request.query.get("partial"):
            return self.page(request, "_rows.html", result=result, query=query, now=now)
        menus = await self.db(inbox.choices, self.service.store, tenants)
        agents = await self.db(self.accounts.list)
        return self.page(request, "inbox.html", result=result, query=query, tenants=tenants, **menus,
                         statuses=inbox.STATUSES, priorities=inbox.PRIORITIES, channels=inbox.CHANNELS,
                         agents=agents, now=now,
                         live=("/tickets?" + urlencode({**query.values, "partial": "1"})))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """One event each time a ticket of the agent's tenants is created or changes."""
        tenants = self.visible(request)
        hub = self.service.hub
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        seen = await self.db(inbox.version, self.service.store, tenants)
        quiet = time.monotonic()
        try:
            await response.write(b"retry: 3000\n\n")
            while not hub.closed:
                await hub.wait(1.0)
                now = await self.db(inbox.version, self.service.store, tenants)
                if now != seen:
                    seen = now
                    await response.write(f"event: tickets\ndata: {json.dumps(now)}\n\n".encode())
                    quiet = time.monotonic()
                elif time.monotonic() - quiet > 15:
                    await response.write(b": keep-alive\n\n")
                    quiet = time.monotonic()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # -- one ticket -----------------------------------------------------------------------------

    async def _find(self, request: web.Request) -> dict[str, Any]:
        tenant = request.match_info["tenant"]
        if not request[AGENT].may_see(tenant):
            raise web.HTTPNotFound(text="no such ticket")
        ticket = await self.db(self.service.store.ticket_by_number, tenant, int(request.match_info["number"]))
        if ticket is None:
            raise web.HTTPNotFound(text="no such ticket")
        return ticket

    async def _ticket(self, request: web.Request) -> web.Response:
        ticket = await self._find(request)
        now = self.service.clock()
        view = await self.db(self._view, ticket["id"], now)
        agents = [a for a in await self.db(self.accounts.list) if a.may_see(ticket["tenant"])]
        said = unquote(request.cookies.get("triage_said", "")[:1000])
        response = self.page(request, "ticket.html", ticket=ticket, labels=HUMAN_LABELS, agents=agents,
                             said=said, base=f"/tickets/{ticket['tenant']}/{ticket['number']}",
                             once=secrets.token_urlsafe(16), **view)
        if said:
            response.del_cookie("triage_said", path="/")
        return response

    def _view(self, ticket_id: int, now: Any) -> dict[str, Any]:
        """The ticket page's data, in the database thread: timeline, decision, audit trail."""
        store = self.service.store
        try:
            card = self.agents.card(ticket_id, now)
            card_error = ""
        except Exception as e:  # a ticket without a readable first message still shows its history
            card, card_error = None, f"{type(e).__name__}: {e}"
        rows = list(store.db.query(
            "SELECT m.id, m.direction, m.channel, m.sender, m.recipients, m.subject, m.text, m.created_at, m.raw, "
            "o.kind AS kind, o.status AS delivery FROM messages m LEFT JOIN outbox o ON o.message_id = m.message_id "
            "WHERE m.ticket = ? ORDER BY m.id", [ticket_id]))
        events = store.events(ticket_id)
        timeline = []
        for m in rows:
            attachments = parse_email(m["raw"]).attachments if m["raw"] else []
            kind = m["kind"] or ("widget" if m["channel"] == "widget" else m["direction"])
            timeline.append({"type": "relay" if kind == "relay" else ("in" if m["direction"] == "in" else "out"),
                             "kind": kind, "channel": m["channel"], "sender": m["sender"],
                             "to": ", ".join(json.loads(m["recipients"] or "[]")), "subject": m["subject"],
                             "text": m["text"] or "", "at": m["created_at"], "attachments": attachments,
                             "delivery": m["delivery"] or ""})
        trail = []
        evidence: list[str] = []
        for e in events:
            detail = json.loads(e["detail"] or "{}")
            if e["kind"] == "note":
                timeline.append({"type": "note", "kind": "note", "channel": "internal",
                                 "sender": detail.get("agent", ""), "text": detail.get("text", ""), "at": e["created_at"],
                                 "attachments": []})
            if e["kind"] in ("decision", "reclassified") and detail.get("evidence"):
                evidence = detail["evidence"]
            trail.append({"at": e["created_at"], "kind": e["kind"], "rules": json.loads(e["rules"] or "[]"),
                          "outcome": e["outcome"] or "", "agent": detail.get("agent") or detail.get("author", "")})
        timeline.sort(key=lambda item: item["at"])
        return {"card": card, "card_error": card_error, "timeline": timeline, "trail": trail,
                "evidence": evidence}

    async def _act(self, request: web.Request) -> web.Response:
        ticket = await self._find(request)
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound(text="no such action")
        form = await self._form(request)
        agent = request[AGENT].email
        now = self.service.clock()
        text = form.get("text", "")[:MAX_TEXT]
        a = self.agents
        calls: dict[str, tuple[Callable[..., str], tuple[Any, ...]]] = {
            "reply": (a.reply, (text,)), "note": (a.note, (text,)), "approve": (a.approve, ()),
            "reclassify": (a.reclassify, (form.get("label", ""),)), "escalate": (a.escalate, ()),
            "assign": (a.assign, (form.get("assignee", "")[:254],)), "resolve": (a.resolve, ()),
            "close": (a.close, ()), "reopen": (a.reopen, ()),
            "send_article": (a.send_article, (form.get("article", "")[:200],)),
            "reject_article": (a.reject_article, (form.get("article", "")[:200],)),
        }
        fn, args = calls[action]
        if action == "reply" and text.strip().lower().startswith("note:"):
            fn = a.note  # the console has its own note box; a reply that starts with note: is still a reply
        # the page's token names what its forms send: a double click or a resent form does it once
        once = ({"once": f"console:{action}:{form['once'][:64]}:{form.get('article', '')}"}
                if action in ONCE_ACTIONS and form.get("once") else {})
        if action == "assign" and args[0] and not await self._assignable(args[0], ticket["tenant"]):
            said = "not done: that agent cannot see this tenant"
        else:
            try:
                said = await self.db(partial(fn, ticket["id"], *args, agent, now, **once))
            except AgentError as e:
                said = f"not done: {e}"
        self.service.outbox.wake()
        self.service.hub.notify()
        response = _redirect(f"/tickets/{ticket['tenant']}/{ticket['number']}")
        set_cookie(response, request, "triage_said", quote(said[:300]), max_age=60)
        return response

    async def _assignable(self, email: str, tenant: str) -> bool:
        agent = await self.db(self.accounts.get, email)
        return agent is not None and agent.may_see(tenant)

    # -- phone and walk-in tickets ----------------------------------------------------------------

    async def _new_form(self, request: web.Request) -> web.Response:
        return self.page(request, "new.html", tenants=self.visible(request), form={}, error="")

    async def _new(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        tenants = self.visible(request)
        tenant = form.get("tenant", "")
        error = ""
        if tenant not in tenants:
            error = "choose one of your tenants"
        else:
            try:
                ticket = await self.db(self.agents.create, tenant, form.get("email", "")[:254],
                                       form.get("subject", "")[:300], form.get("text", "")[:MAX_TEXT],
                                       form.get("verified") == "1", request[AGENT].email, self.service.clock())
            except AgentError as e:
                error = str(e)
            else:
                self.service.outbox.wake()
                self.service.hub.notify()
                raise web.HTTPSeeOther(f"/tickets/{ticket['tenant']}/{ticket['number']}")
        return self.page(request, "new.html", 400, tenants=tenants, form=form, error=error)

    # -- reports ------------------------------------------------------------------------------------

    def _report_args(self, request: web.Request) -> tuple[list[str] | None, str | None, str | None]:
        """The report's tenants (None: every tenant, for an agent of all tenants) and dates;
        raises 404 for a tenant the agent may not see (never an empty list that could mean "all")."""
        agent: Agent = request[AGENT]
        tenant = request.query.get("tenant", "")
        tenants = self.scope(request)
        if tenant:
            if not (agent.may_see(tenant) and tenant in self.tenants):
                raise web.HTTPNotFound(text="no such tenant")
            tenants = [tenant]
        if tenants == []:
            raise web.HTTPNotFound(text="you have no tenants")
        dates = []
        for name in ("since", "until"):
            value = request.query.get(name, "")
            if value and not (_DATE.match(value) and _valid_date(value)):
                raise ReportError(f"{name} must be a date as YYYY-MM-DD")
            dates.append(value or None)
        return tenants, dates[0], dates[1]

    async def _build_report(self, request: web.Request) -> Any:
        try:
            from triage.desk import reports
        except ImportError:
            raise ReportError("Reports are not part of this installation (the triage.desk.reports module is missing).",
                              404) from None
        tenants, since, until = self._report_args(request)
        try:  # the configuration gives each tenant's support hours and the due time, as `triage report`'s
            return await self.db(reports.build, self.service.store, tenants, since, until, self.config)
        except reports.ReportError as e:  # "since is after until": said on the page, not a 500
            raise ReportError(str(e)) from None

    async def _reports(self, request: web.Request) -> web.Response:
        query = {k: request.query[k] for k in ("tenant", "since", "until") if request.query.get(k)}
        try:
            report, error, status = await self._build_report(request), "", 200
        except ReportError as e:
            report, error, status = None, str(e), e.status
        return self.page(request, "reports.html", status, report=report, error=error, tenants=self.visible(request),
                         query=query, qs=urlencode(query))

    async def _report_csv(self, request: web.Request) -> web.Response:
        try:
            report = await self._build_report(request)
        except ReportError as e:
            return web.Response(status=e.status, text=str(e))
        chart = next((c for c in report.charts if c.name == request.match_info["name"]), None)
        if chart is None:
            raise web.HTTPNotFound(text="no such chart")
        return web.Response(text=chart.csv(), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{chart.name}.csv"'})


class ReportError(ValueError):
    """A report that cannot be shown: the message and the HTTP status say why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _redirect(location: str) -> web.Response:
    """303 See Other as a plain response, so the cookies set on it are sent."""
    return web.Response(status=303, headers={"Location": location})


def _local(target: str) -> bool:
    """Only paths on this site are followed after sign-in (no open redirect)."""
    return target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) < 500


def _size(octets: int) -> str:
    """An attachment's size as a person reads it: a 19-byte file is not "0.0 KiB"."""
    if octets < 1024:
        return f"{octets} bytes"
    if octets < 1024 * 1024:
        return f"{octets / 1024:.1f} KiB"
    return f"{octets / 1024 / 1024:.1f} MiB"


def _valid_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
