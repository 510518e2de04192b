"""Attacks on ``POST /slack/events`` over the real socket: a timestamp that is not a number,
a captured signed request sent again within Slack's five-minute window (a slash command, a
button), bodies that are neither form nor JSON, not UTF-8 or not signed at all. Slack's Web
API is the local stand-in of tests/slackkit.py, as in tests/test_slack.py."""
from __future__ import annotations

import json
import time

from tests import slackkit as sk
from tests.servicekit import mail
from tests.test_slack import FORM, Env, env  # noqa: F401 - the running service with Slack on


async def raw(env: Env, body: bytes, headers: dict[str, str], content_type: str = FORM) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(env.url, data=body, headers={"Content-Type": content_type, **headers},
                                timeout=aiohttp.ClientTimeout(total=15)) as r:
            return r.status, await r.text()


def signed_bytes(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    import hashlib
    import hmac

    ts = timestamp or str(int(time.time()))
    digest = hmac.new(sk.SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def test_a_timestamp_that_is_not_a_number_is_401_not_500(env: Env):
    body = sk.command_body("stats")
    for ts in ("abc", "²", "1e9", "", " 1700000000", "9" * 400, "-1", "0x10", "１７００"):
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64}
        status, text = await raw(env, body.encode(), headers)
        assert status == 401, (ts, status, text)
    assert "no tickets yet" in await env.command("stats")  # the app still answers real requests


async def test_a_replayed_slash_command_runs_once(env: Env):
    await env.send(mail())
    ticket = await env.ticket()
    body = sk.command_body("resolve 1001", response_url=env.api.base_url + "response")
    headers = sk.signed(body)  # captured once, sent twice within the five minutes
    status, _ = await sk.post(env.url, body, FORM, headers)
    assert status == 200
    await sk.until(lambda: env.rows("SELECT * FROM tickets WHERE status = 'resolved'"))
    await env.send(mail(subject="Re: [#1001] Cannot log in", body="It is broken again, please help."))
    await sk.until(lambda: env.rows("SELECT * FROM tickets WHERE status = 'open'"))
    status, _ = await sk.post(env.url, body, FORM, headers)
    assert status == 401
    resolved = await env.rows("SELECT * FROM events WHERE ticket = ? AND rules LIKE '%agent-resolved%'",
                              [ticket["id"]])
    assert len(resolved) == 1 and (await env.ticket())["status"] == "open"


async def test_a_replayed_button_click_runs_once(env: Env):
    await env.send(mail())
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    body = sk.button("escalate", ticket["id"], ts)
    headers = sk.signed(body)
    assert (await sk.post(env.url, body, FORM, headers))[0] == 200
    await sk.until(lambda: env.rows("SELECT * FROM events WHERE kind = 'escalated'"))
    for _ in range(3):
        assert (await sk.post(env.url, body, FORM, headers))[0] == 401
    assert len(await env.rows("SELECT * FROM events WHERE kind = 'escalated'")) == 1


async def test_repeating_an_action_changes_nothing_the_second_time(env: Env):
    """Defence in depth for a replay the cache cannot see (a restart in between): a second,
    freshly signed resolve of a resolved ticket is said back, not recorded again."""
    await env.send(mail())
    assert "status new → resolved" in await env.command("resolve 1001")
    assert "already" in await env.command("resolve 1001")
    assert "assignee - → @bob" in await env.command("assign 1001 @bob")
    assert "already" in await env.command("assign 1001 @bob")
    events = await env.rows("SELECT rules FROM events WHERE kind IN ('status', 'assigned')")
    assert [json.loads(e["rules"]) for e in events] == [["agent-resolved"], ["agent-assigned"]]


async def test_bodies_that_are_not_form_or_json_are_4xx(env: Env):
    cases = [
        (b"\xff\xfe\x00garbage", "text/plain"),
        (b"payload=%7Bnot-json", FORM),
        (b"payload=%5B1%2C2%5D", FORM),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
        (b'{"type": "event_callback", "event": 12}', "application/json"),
        ("text=ö".encode("latin-1"), FORM),
        (b"", FORM),
    ]
    for body, content_type in cases:
        status, text = await raw(env, body, {}, content_type)  # unsigned: refused before parsing
        utf8 = body.decode("utf-8", "replace").encode() == body
        assert status == (401 if utf8 else 400), (body, status, text)
        status, text = await raw(env, body, signed_bytes(body), content_type)  # signed: still no 500
        assert 400 <= status < 500 or (status == 200 and body == b""), (body, status, text)
    assert "no tickets yet" in await env.command("stats")


async def test_strange_ticket_numbers_in_a_command_get_the_usage_not_an_error(env: Env):
    for text in ("²", "resolve ²", "99999999999999999999", "resolve 99999999999999999999", "assign ٣ @bob"):
        answer = await env.command(text)
        assert answer.startswith("usage:"), (text, answer)


async def test_slacks_retry_of_an_agents_message_does_not_mail_the_requester_twice(env: Env):
    """Slack re-sends an event it thinks was lost, freshly signed (X-Slack-Retry-Num): the
    signature cache cannot see it, the event id can."""
    await env.send(mail())
    ticket = await env.ticket()
    thread = await env.thread(ticket["id"])
    baseline = len(await sk.until(lambda: env.sink.messages))  # the acknowledgement
    body = sk.thread_message(thread["ts"], "Hi Tom, the link works again now.")
    now = int(time.time())
    assert (await sk.post(env.url, body, "application/json", sk.signed(body, timestamp=now - 5)))[0] == 200
    retry = {**sk.signed(body, timestamp=now), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await sk.post(env.url, body, "application/json", retry))[0] == 200
    await sk.until(lambda: env.sink.messages[baseline:])
    await sk.until(lambda: env.api.posted("reactions.add"))
    assert len(await env.rows("SELECT * FROM events WHERE kind = 'agent-reply'")) == 1
    assert len(env.sink.messages) == baseline + 1
