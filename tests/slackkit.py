"""A local stand-in for Slack's Web API, and correctly signed requests from "Slack".

Only Slack can answer Slack's Web API, so tests point ``slack_sdk``'s client
(``base_url``) at :class:`FakeSlackApi`: an aiohttp server on 127.0.0.1, port 0, that
records every call (method and arguments) and answers canned JSON such as
``{"ok": true, "ts": "..."}`` — the way slack-bolt's own tests fake Slack at the HTTP level.
Inbound requests are signed as Slack signs them (v0: HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the signing secret).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from tests.waiting import until

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
BOT_USER = "UBOT"
AGENT = "UAGENT1"
CHANNEL = "CACME"
FORM = "application/x-www-form-urlencoded"  # how Slack posts commands and interactions


@dataclass
class Call:
    method: str
    args: dict[str, Any]


class FakeSlackApi:
    """Records Web API calls; ``chat.postMessage`` answers a fresh ``ts`` each time."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail = False  # answer 500, as Slack does in an outage
        self.refuse: dict[str, str] = {}  # channel -> error Slack answers (say "not_in_channel"), recorded
        self._ts = 1_700_000_000

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def posted(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(parse_qsl(await request.text()))
        for key in ("blocks", "attachments"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        if self.fail:
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        self.calls.append(Call(method, args))
        if args.get("channel") in self.refuse:
            return web.json_response({"ok": False, "error": self.refuse[args["channel"]]})
        body: dict[str, Any] = {"ok": True}
        if method == "auth.test":
            body.update(user_id=BOT_USER, bot_id="BBOT", team_id="T1", team="Test", user="triage")
        elif method in ("chat.postMessage", "chat.update"):
            if method == "chat.postMessage":
                self._ts += 1
            body.update(channel=args.get("channel"), ts=args.get("ts") or f"{self._ts}.000100")
        return web.json_response(body)


def signed(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post(url: str, body: str, content_type: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST a body as Slack would, signed unless ``headers`` says otherwise."""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body.encode(), timeout=aiohttp.ClientTimeout(total=15),
                                headers={"Content-Type": content_type,
                                         **(signed(body) if headers is None else headers)}) as r:
            return r.status, await r.text()


def event_body(event: dict[str, Any]) -> str:
    return json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                       "event_id": f"Ev{time.time_ns()}", "event_time": int(time.time()),
                       "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
                       "event": event})


def thread_message(ts: str, text: str, user: str = AGENT, **extra: Any) -> str:
    return event_body({"type": "message", "channel": CHANNEL, "user": user, "text": text,
                       "ts": f"{time.time():.6f}", "thread_ts": ts, **extra})


def trigger_id() -> str:
    """Unique per request, as Slack's are (so two clicks are two different signed requests)."""
    return f"{time.time_ns()}.{next(_TRIGGERS)}"


_TRIGGERS = itertools.count(1)


def action_body(action: dict[str, Any], ticket: int, message_ts: str, channel: str = CHANNEL) -> str:
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": AGENT, "team_id": "T1"},
               "api_app_id": "A1", "token": "x", "trigger_id": trigger_id(), "channel": {"id": channel},
               "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
               "message": {"ts": message_ts, "type": "message"},
               "actions": [{"block_id": f"ticket:{ticket}", "action_ts": str(time.time()), **action}]}
    return urlencode({"payload": json.dumps(payload)})


def button(name: str, ticket: int, ts: str) -> str:
    return action_body({"type": "button", "action_id": name, "value": str(ticket)}, ticket, ts)


def send_article(ticket: int, article: str, ts: str, channel: str = CHANNEL) -> str:
    """A click on a help article's Send button of the card (value ``ticket:article``)."""
    return action_body({"type": "button", "action_id": "send_article", "value": f"{ticket}:{article}"},
                       ticket, ts, channel)


def reject_article(ticket: int, article: str, ts: str, channel: str = CHANNEL) -> str:
    """A click on an offered article's "Not the answer" button of the card (value ``ticket:article``)."""
    return action_body({"type": "button", "action_id": "reject_article", "value": f"{ticket}:{article}"},
                       ticket, ts, channel)


def select(label: str, ticket: int, ts: str) -> str:
    return action_body({"type": "static_select", "action_id": "reclassify",
                        "selected_option": {"value": label, "text": {"type": "plain_text", "text": label}}},
                       ticket, ts)


def command_body(text: str, channel: str = CHANNEL, response_url: str = "http://127.0.0.1:9/unused") -> str:
    """A ``/triage`` command; point ``response_url`` at ``FakeSlackApi.base_url + "response"``
    to record the answer as the method ``response``."""
    return urlencode({"token": "x", "team_id": "T1", "channel_id": channel, "user_id": AGENT,
                      "user_name": "agent", "command": "/triage", "text": text,
                      "response_url": response_url, "trigger_id": trigger_id(), "api_app_id": "A1"})


async def slash_command(url: str, api: FakeSlackApi, text: str) -> str:
    """``/triage TEXT`` posted to ``url``: acknowledged at once (the bare 200, inside Slack's
    three seconds), then answered through the response_url, which ``api`` records."""
    before = len(api.posted("response"))
    status, body = await post(url, command_body(text, response_url=api.base_url + "response"), FORM)
    assert status == 200 and body == ""
    answers = await until(lambda: api.posted("response")[before:])
    assert answers[0]["response_type"] == "ephemeral"
    return answers[0]["text"]
