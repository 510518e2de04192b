"""The agents' Slack app: Bolt listeners that turn clicks, thread messages and ``/triage``
into calls on :class:`triage.desk.agents.Agents`. Nothing else.

Bolt does the transport work: ignoring the bot's own messages, acknowledging within Slack's
three seconds. In front of it, :meth:`SlackChannel.handle` refuses what Bolt would answer
with a 500 or run twice: a timestamp that is not a number or a bad or stale signature (401,
before the body is parsed), a signed request seen before within Slack's five-minute window
(401: a captured request cannot be replayed), an event Slack already delivered (its retry is
acknowledged and ignored), and a body that is not UTF-8 form or JSON (400). The same app serves HTTP
(``POST /slack/events`` on the service's aiohttp server) and, with ``SLACK_APP_TOKEN``,
Socket Mode. Every listener acknowledges, runs the action in the database thread, then
says the outcome in the ticket's thread (``/triage``: through its response_url) and
refreshes the card. Any failure is said back to the agent, never only logged.
"""
from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from triage.config import Config
from triage.desk import slack_blocks
from triage.desk.agents import AgentError, Agents
from triage.service.outbox import RunDb

log = logging.getLogger(__name__)
_USER = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>|@?(\S+)")
_MARKUP = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_NUMBER = re.compile(r"#?([0-9]{1,18})")  # ASCII digits that fit SQLite's INTEGER ("²".isdigit() is True)
RULES = {
    "slack-bad-signature": "a request to /slack/events without a valid, recent Slack signature (or with a timestamp that is not a number): 401",
    "slack-request-replayed": "a signed request already received within Slack's five-minute window: 401, nothing runs twice",
    "slack-bad-request": "a signed request whose body is not UTF-8 form or JSON Bolt can read: 400",
}
REPLAY_WINDOW = 5 * 60 + 60  # Slack's five minutes for a timestamp, and a minute of clock difference
USAGE = ("`/triage 1042` · `/triage search TEXT` · `/triage stats` · `/triage resolve 1042` · "
         "`/triage assign 1042 @agent`")


def plain_text(mrkdwn: str) -> str:
    """What an agent typed in Slack, as the requester should read it: Slack's ``<…>`` markup
    resolved (``<url|label>`` → ``label (url)``, ``<url>`` → ``url``, ``<mailto:a|b>`` → ``b``,
    ``<@U123>`` → ``@U123``, ``<#C1|general>`` → ``#general``, ``<!here>`` → ``@here``) and
    ``&amp;``, ``&lt;``, ``&gt;`` unescaped (after the markup, so ``&lt;b&gt;`` stays text)."""
    def one(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            return "@" + (label or target[1:]).lstrip("@")
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):  # <!here>, <!subteam^S1|@team>, <!date^…|fallback>
            return label or "@" + target[1:].partition("^")[0]
        if target.startswith("mailto:"):
            return label or target[len("mailto:"):]
        return f"{label} ({target})" if label and label != target else target

    text = _MARKUP.sub(one, mrkdwn)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class Seen:
    """Keys (request signatures, event ids) seen in the last ``window`` seconds, oldest first.
    Only requests with a valid signature get here, so only Slack can fill it; ``limit`` bounds
    it anyway. In memory: a restart forgets it, and the agents' actions are idempotent for that
    case (a second resolve of a resolved ticket changes nothing; a thread message's reply is
    named by the message, so ``Agents.reply`` does not send it twice)."""

    def __init__(self, window: float = REPLAY_WINDOW, limit: int = 100_000, clock: Callable[[], float] = time.time):
        self.window, self.limit, self.clock = window, limit, clock
        self._keys: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str) -> bool:
        now = self.clock()
        while self._keys and (len(self._keys) >= self.limit or next(iter(self._keys.values())) < now - self.window):
            self._keys.popitem(last=False)
        if key in self._keys:
            return False
        self._keys[key] = now
        return True


def _refused(status: int, rule: str, message: str) -> web.Response:
    return web.json_response({"error": message, "rule": rule}, status=status)


class SlackChannel:
    def __init__(self, config: Config, agents: Agents, run_db: RunDb, client: AsyncWebClient,
                 signing_secret: str, clock: Callable[[], datetime], wake: Callable[[], None]):
        self.config = config
        self.agents = agents
        self.run_db = run_db
        self.client = client
        self.clock = clock
        self.wake = wake  # the outbox: an agent's mail is queued
        self.app = AsyncApp(client=client, signing_secret=signing_secret)
        self.verifier = SignatureVerifier(signing_secret)
        self.seen = Seen()
        for name in ("approve", "escalate", "close", "reclassify", "send_article", "reject_article"):
            self.app.action(name)(self._action)
        self.app.event("message")(self._message)
        self.app.command("/triage")(self._command)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: events, interactivity and slash commands share one URL."""
        try:
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:  # Slack sends UTF-8 only; nothing was parsed or run
            return _refused(400, "slack-bad-request", "the body is not UTF-8")
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
                and self.verifier.is_valid(body, timestamp, signature)):
            return _refused(401, "slack-bad-signature", "invalid or stale Slack request signature")
        if not self.seen.first_time(signature):
            return _refused(401, "slack-request-replayed", "this signed request was already received")
        try:
            bolt_request = await to_bolt_request(request)
            if not isinstance(bolt_request.body, dict) or not isinstance(bolt_request.body.get("event", {}), dict):
                raise TypeError("not a JSON object with an event object")
            event_id = bolt_request.body.get("event_id")
        except (ValueError, AttributeError, TypeError) as e:  # not JSON, or JSON of another shape
            return _refused(400, "slack-bad-request", f"the body is not a Slack request: {type(e).__name__}")
        if isinstance(event_id, str) and not self.seen.first_time(f"event:{event_id}"):
            return web.Response(status=200)  # Slack's retry of an event already handled: acknowledged, not rerun
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    def _thread_ticket(self, channel: str, ts: str) -> int | None:
        row = self.agents.store.db.execute("SELECT ticket FROM slack_threads WHERE channel = ? AND ts = ?",
                                           [channel, ts]).fetchone()
        return row[0] if row else None

    def tenants_of(self, channel: str) -> list[str]:
        return [t.slug for t in self.config.tenants.values() if t.slack_channel == channel]

    # -- listeners ----------------------------------------------------------------------------

    async def _action(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        agent = f"slack:{body['user']['id']}"
        name = action["action_id"]
        value = action.get("value") or ""
        if name in ("send_article", "reject_article"):  # "ticket:article"
            value, _, article = value.partition(":")
        ticket_id = int(value or action["block_id"].split(":")[1])
        now = self.clock()
        try:
            if name == "reclassify":
                said = await self.run_db(self.agents.reclassify, ticket_id, action["selected_option"]["value"],
                                         agent, now)
            elif name in ("send_article", "reject_article"):
                said = await self.run_db(getattr(self.agents, name), ticket_id, article, agent, now,
                                         self.tenants_of(body["channel"]["id"]))
            else:
                said = await self.run_db(getattr(self.agents, name), ticket_id, agent, now)
        except AgentError as e:
            said = f"not done: {e}"
        except Exception as e:  # the agent must not think it worked
            log.exception("slack action %s on ticket %s failed", name, ticket_id)
            said = f"not done: {type(e).__name__}: {e}"
        self.wake()
        channel, ts = body["channel"]["id"], body["message"]["ts"]
        await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=f"<@{body['user']['id']}> {said}")
        text, blocks = slack_blocks.ticket_message(await self.run_db(self.agents.card, ticket_id, now))
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def _message(self, event: dict[str, Any]) -> None:
        """A person's message in a ticket's thread: to the requester, or a ``note:``."""
        thread = event.get("thread_ts")
        if (not thread or thread == event.get("ts") or event.get("subtype") or event.get("bot_id")
                or not event.get("user") or not event.get("text")):
            return
        ticket_id = await self.run_db(self._thread_ticket, event["channel"], thread)
        if ticket_id is None:
            return
        try:
            # the message's own channel and timestamp name it: Slack's retry of the event after a
            # restart (when ``seen`` is empty) is not sent to the requester a second time
            said = await self.run_db(self.agents.reply, ticket_id, plain_text(event["text"]),
                                     f"slack:{event['user']}", self.clock(), f"slack:{event['channel']}:{event['ts']}")
        except Exception as e:  # the agent must know their answer did not go out
            if not isinstance(e, AgentError):
                log.exception("slack reply on ticket %s failed", ticket_id)
            error = e if isinstance(e, AgentError) else f"{type(e).__name__}: {e}"
            await self.client.chat_postMessage(channel=event["channel"], thread_ts=thread,
                                               text=f"<@{event['user']}> not sent: {error}")
            return
        self.wake()
        await self.client.reactions_add(channel=event["channel"], timestamp=event["ts"],
                                        name="lock" if said.startswith("note") else "outbox_tray")

    async def _command(self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        await ack()  # within Slack's three seconds; the answer follows through response_url
        words = (command.get("text") or "").split()
        agent = f"slack:{command['user_id']}"
        tenants = self.tenants_of(command.get("channel_id", ""))
        now = self.clock()
        try:
            text = await self._run_command(words, agent, tenants, now)
        except AgentError as e:
            text = f"not done: {e}"
        except Exception as e:
            log.exception("/triage %s failed", " ".join(words))
            text = f"not done: {type(e).__name__}: {e}"
        self.wake()
        await respond(text=text, response_type="ephemeral")

    async def _run_command(self, words: list[str], agent: str, tenants: list[str], now: datetime) -> str:
        head = words[0].lower() if words else ""
        number = _NUMBER.fullmatch(words[1]) if len(words) >= 2 else None
        if _NUMBER.fullmatch(head) and len(words) == 1:
            ticket = await self.run_db(self.agents.find, int(head.lstrip("#")), tenants)
            return slack_blocks.summary(await self.run_db(self.agents.card, ticket["id"], now))
        if head == "search" and len(words) > 1:
            query = " ".join(words[1:])
            return slack_blocks.search_results(query, await self.run_db(self.agents.search, query))
        if head == "stats":
            return slack_blocks.stats(await self.run_db(self.agents.stats))
        if head in ("resolve", "assign") and number:
            ticket = await self.run_db(self.agents.find, int(number.group(1)), tenants)
            if head == "resolve":
                said = await self.run_db(self.agents.resolve, ticket["id"], agent, now)
            elif len(words) == 3:
                match = _USER.fullmatch(words[2])
                assignee = f"<@{match.group(1)}>" if match and match.group(1) else words[2]
                said = await self.run_db(self.agents.assign, ticket["id"], assignee, agent, now)
            else:
                return f"usage: {USAGE}"
            return f"[#{ticket['number']}] {said}"
        return f"usage: {USAGE}"
