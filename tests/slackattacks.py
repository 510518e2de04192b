"""Attacks on ``POST /slack/events``, written once and replayed against any running service:
a timestamp that is not a number, a captured signed request sent again within Slack's
five-minute window (a slash command, a button), bodies that are neither form nor JSON, not
UTF-8 or not signed at all. Slack's Web API is the local stand-in of tests/slackkit.py
(requests are signed with ``slackkit.SIGNING_SECRET``, the tenant's channel is
``slackkit.CHANNEL``). tests/test_slack_attacks.py runs each against the service in the
test's event loop, tests/test_serve_attacks.py all of them against ``triage serve``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests import mailattacks
from tests import slackkit as sk
from tests.servicekit import mail

TOM = "tom@steelworks.example"


@dataclass
class Ctx:
    """A running service with Slack on, its mail side (tickets come by SMTP), the stand-in API."""

    mail: mailattacks.Ctx
    web: str  # http://host:port
    api: sk.FakeSlackApi

    @property
    def url(self) -> str:
        return f"{self.web}/slack/events"

    async def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return await self.mail.query(sql, params or [])

    async def ticket(self, subject: str = "Cannot log in", body: str = "I cannot log in to the portal.") -> dict:
        """A new ticket from Tom by mail, once filed (and answered: the outbox settled)."""
        mid = f"<slack.{uuid.uuid4().hex}@steelworks.example>"
        await self.mail.send(mail(sender=TOM, to=self.mail.target.support, message_id=mid, subject=subject,
                                  body=body), mail_from=TOM)
        ticket = await self.mail.ticket_of(mid)
        await self.mail.settled()
        return ticket

    async def status(self, ticket: int) -> str:
        [row] = await self.rows("SELECT status FROM tickets WHERE id = ?", [ticket])
        return row["status"]

    async def command(self, text: str) -> str:
        """``/triage TEXT``: acknowledged at once, answered through the response_url."""
        return await sk.slash_command(self.url, self.api, text)

    async def thread(self, ticket: int) -> dict:
        return (await sk.until(lambda: self.rows("SELECT * FROM slack_threads WHERE ticket = ?", [ticket])))[0]

    async def answers(self) -> None:
        """The app still answers a real request."""
        assert not (await self.command("stats")).startswith("usage:")


async def raw(url: str, body: bytes, headers: dict[str, str], content_type: str = sk.FORM) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers={"Content-Type": content_type, **headers},
                                timeout=aiohttp.ClientTimeout(total=15)) as r:
            return r.status, await r.text()


def signed_bytes(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(sk.SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def attack_timestamp_not_a_number(c: Ctx) -> None:
    """401, not 500."""
    body = sk.command_body("stats")
    for ts in ("abc", "²", "1e9", "", " 1700000000", "9" * 400, "-1", "0x10", "１７００"):
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64}
        status, text = await raw(c.url, body.encode(), headers)
        assert status == 401, (ts, status, text)
    await c.answers()


async def attack_replayed_slash_command(c: Ctx) -> None:
    """A captured ``/triage resolve N`` sent again after the ticket reopened runs once."""
    ticket = await c.ticket()
    body = sk.command_body(f"resolve {ticket['number']}", response_url=c.api.base_url + "response")
    headers = sk.signed(body)  # captured once, sent twice within the five minutes
    assert (await sk.post(c.url, body, sk.FORM, headers))[0] == 200
    await sk.until(lambda: c.rows("SELECT id FROM tickets WHERE id = ? AND status = 'resolved'", [ticket["id"]]))
    await c.mail.send(mail(sender=TOM, to=c.mail.target.support, subject=f"Re: [#{ticket['number']}] Cannot log in",
                           body="It is broken again, please help."), mail_from=TOM)
    await sk.until(lambda: c.rows("SELECT id FROM tickets WHERE id = ? AND status = 'open'", [ticket["id"]]))
    assert (await sk.post(c.url, body, sk.FORM, headers))[0] == 401
    resolved = await c.rows("SELECT * FROM events WHERE ticket = ? AND rules LIKE '%agent-resolved%'", [ticket["id"]])
    assert len(resolved) == 1 and await c.status(ticket["id"]) == "open"


async def attack_replayed_button_click(c: Ctx) -> None:
    ticket = await c.ticket()
    body = sk.button("escalate", ticket["id"], (await c.thread(ticket["id"]))["ts"])
    headers = sk.signed(body)
    escalated = "SELECT * FROM events WHERE ticket = ? AND kind = 'escalated'"
    assert (await sk.post(c.url, body, sk.FORM, headers))[0] == 200
    await sk.until(lambda: c.rows(escalated, [ticket["id"]]))
    for _ in range(3):
        assert (await sk.post(c.url, body, sk.FORM, headers))[0] == 401
    assert len(await c.rows(escalated, [ticket["id"]])) == 1


async def attack_repeated_action(c: Ctx) -> None:
    """Defence in depth for a replay the cache cannot see (a restart in between): a second,
    freshly signed resolve of a resolved ticket is said back, not recorded again."""
    n = (ticket := await c.ticket())["number"]
    assert "→ resolved" in await c.command(f"resolve {n}")
    assert "already" in await c.command(f"resolve {n}")
    assert "assignee - → @bob" in await c.command(f"assign {n} @bob")
    assert "already" in await c.command(f"assign {n} @bob")
    events = await c.rows("SELECT rules FROM events WHERE ticket = ? AND kind IN ('status', 'assigned') ORDER BY id",
                          [ticket["id"]])
    assert [json.loads(e["rules"]) for e in events] == [["agent-resolved"], ["agent-assigned"]]


async def attack_bodies_not_form_or_json(c: Ctx) -> None:
    cases = [
        (b"\xff\xfe\x00garbage", "text/plain"),
        (b"payload=%7Bnot-json", sk.FORM),
        (b"payload=%5B1%2C2%5D", sk.FORM),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
        (b'{"type": "event_callback", "event": 12}', "application/json"),
        ("text=ö".encode("latin-1"), sk.FORM),
        (b"", sk.FORM),
    ]
    for body, content_type in cases:
        status, text = await raw(c.url, body, {}, content_type)  # unsigned: refused before parsing
        utf8 = body.decode("utf-8", "replace").encode() == body
        assert status == (401 if utf8 else 400), (body, status, text)
        status, text = await raw(c.url, body, signed_bytes(body), content_type)  # signed: still no 500
        assert 400 <= status < 500 or (status == 200 and body == b""), (body, status, text)
    await c.answers()


async def attack_strange_ticket_numbers(c: Ctx) -> None:
    """They get the usage, not an error."""
    for text in ("²", "resolve ²", "99999999999999999999", "resolve 99999999999999999999", "assign ٣ @bob"):
        answer = await c.command(text)
        assert answer.startswith("usage:"), (text, answer)


async def attack_slacks_retry_of_an_agents_message(c: Ctx) -> None:
    """Slack re-sends an event it thinks was lost, freshly signed (X-Slack-Retry-Num): the
    signature cache cannot see it, the event id can. The requester is mailed once."""
    ticket = await c.ticket()
    thread = await c.thread(ticket["id"])
    baseline, reactions = len(c.mail.sink.messages), len(c.api.posted("reactions.add"))
    body = sk.thread_message(thread["ts"], "Hi Tom, the link works again now.")
    now = int(time.time())
    assert (await sk.post(c.url, body, "application/json", sk.signed(body, timestamp=now - 5)))[0] == 200
    retry = {**sk.signed(body, timestamp=now), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await sk.post(c.url, body, "application/json", retry))[0] == 200
    await sk.until(lambda: c.api.posted("reactions.add")[reactions:])
    await c.mail.settled()
    assert len(await c.rows("SELECT * FROM events WHERE ticket = ? AND kind = 'agent-reply'", [ticket["id"]])) == 1
    assert len(c.mail.sink.messages) == baseline + 1


ATTACKS = [attack_timestamp_not_a_number, attack_replayed_slash_command, attack_replayed_button_click,
           attack_repeated_action, attack_bodies_not_form_or_json, attack_strange_ticket_numbers,
           attack_slacks_retry_of_an_agents_message]
