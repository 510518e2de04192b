"""Agents in Slack, end to end: the real service on loopback with SLACK_* set, signed Slack
requests posted to /slack/events, a recording SMTP sink as the relay.

Outgoing Slack calls go to :class:`tests.slackkit.FakeSlackApi`, a local stand-in for
Slack's Web API (only Slack can answer the real one); the tests assert the Block Kit
payloads it recorded, and the effects in SQLite and in the mail the sink received."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiosmtplib
import pytest

from tests import slackkit as sk
from tests.servicekit import OTHER_SUPPORT, SUPPORT, Sink, TroublePipeline, drained, mail, write_config
from triage.config import SupportHours, load_config
from triage.service.app import Service
from triage.core.hours import first_response_due
from triage.store import Store, utcnow

TOM = "tom@steelworks.example"
HELD = dict(subject="Hello", body="Hi, please call me back.")
URGENT = dict(subject="Auction", body="The auction closes in 10 minutes and I cannot place my bid! Urgent, please help now.")


@dataclass
class Env:
    service: Service
    api: sk.FakeSlackApi
    sink: Sink
    shift: list[timedelta]

    @property
    def url(self) -> str:
        host, port = self.service.web_address
        return f"http://{host}:{port}/slack/events"

    async def send(self, raw: bytes, sender: str = TOM, to: str = SUPPORT) -> None:
        host, port = self.service.smtp_address
        await aiosmtplib.send(raw, sender=sender, recipients=[to], hostname=host, port=port, timeout=30)
        await drained(self.service)  # 250 means queued: wait until the writer filed it

    async def rows(self, sql: str, params: list | None = None) -> list[dict]:
        return await self.service.run_db(lambda: list(self.service.store.db.query(sql, params or [])))

    async def command(self, text: str) -> str:
        """``/triage TEXT``: acknowledged at once, answered through the response_url."""
        return await sk.slash_command(self.url, self.api, text)

    async def card(self, number: int) -> dict:
        """The chat.postMessage that posted ticket [#number]."""
        return await sk.until(lambda: next((c for c in self.api.posted() if not c.get("thread_ts")
                                            and f"[#{number}]" in c["text"]), None))

    async def thread(self, ticket: int) -> dict:
        return (await sk.until(lambda: self.rows("SELECT * FROM slack_threads WHERE ticket = ?", [ticket])))[0]

    async def ticket(self, number: int = 1001) -> dict:
        return (await self.rows("SELECT * FROM tickets WHERE tenant = 'acme' AND number = ?", [number]))[0]


ZENITH_CHANNEL = "CZENITH"


def with_channel(folder: Path) -> Path:
    """servicekit's configuration, with acme's agents in Slack channel CACME, zenith's in CZENITH."""
    for slug, channel in (("acme", sk.CHANNEL), ("zenith", ZENITH_CHANNEL)):
        tenant = folder / "tenants" / f"{slug}.toml"
        tenant.write_text(f'slack_channel = "{channel}"\n' + tenant.read_text())
    return folder


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    async with slack_service(monkeypatch, lambda relay: with_channel(write_config(tmp_path / "cfg", relay_url=relay))) as e:
        yield e


@asynccontextmanager
async def slack_service(monkeypatch: pytest.MonkeyPatch, configure: Callable[[str], Path]) -> AsyncIterator[Env]:
    """The service with Slack on against the stand-in Web API and a relay sink; ``configure``
    writes the configuration folder for the sink's relay URL."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", sk.BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", sk.SIGNING_SECRET)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    api = sk.FakeSlackApi()
    await api.start()
    sink = Sink()
    shift = [timedelta(0)]
    config = load_config(configure(sink.url))
    config.slack["api_url"] = api.base_url
    service = Service(config, out=lambda line: None, retry_base=0.1,
                      slack_interval=0.2, clock=lambda: utcnow() + shift[0], pipeline=TroublePipeline,
                      intake_retry=0.1)
    await service.start()
    try:
        yield Env(service, api, sink, shift)
    finally:
        await service.stop()
        sink.close()
        await api.close()


def fields(blocks: list[dict]) -> str:
    out = []
    for block in blocks:
        out += [block.get("text", {}).get("text", "")] + [f["text"] for f in block.get("fields", [])]
    return "\n".join(out)


def actions_of(blocks: list[dict]) -> dict[str, dict]:
    block = next(b for b in blocks if b["type"] == "actions")
    return {e["action_id"]: e for e in block["elements"]}


# -- posting ------------------------------------------------------------------------------------

async def test_new_ticket_is_posted_with_its_card_and_follow_ups_go_to_its_thread(env: Env):
    first = "<first.1@steelworks.example>"
    await env.send(mail(message_id=first))
    card = await env.card(1001)
    assert card["channel"] == sk.CHANNEL and "<!here>" not in card["text"]
    text = fields(card["blocks"])
    for expected in ("Acme Metals AB", TOM, "external_admin", "Steelworks Ltd", "not verified",
                     "`technical/access` (100%)", "`technical-help`", "`acknowledge`", "*Drafted reply*",
                     "[#1001]", "cannot log in"):
        assert expected in text, expected
    buttons = actions_of(card["blocks"])
    assert set(buttons) == {"reclassify", "escalate", "close"}  # nothing held: no Approve
    assert buttons["reclassify"]["initial_option"]["value"] == "technical/access"
    ticket = await env.ticket()
    thread = await env.thread(ticket["id"])
    assert thread["channel"] == sk.CHANNEL
    events = await env.rows("SELECT rules FROM events WHERE ticket = ? AND kind = 'slack'", [ticket["id"]])
    assert json.loads(events[0]["rules"]) == ["slack-posted"]

    await env.send(mail(subject="Re: [#1001] Cannot log in", body="It still fails <!channel> today.",
                        headers={"In-Reply-To": first}))
    follow = await sk.until(lambda: [c for c in env.api.posted() if c.get("thread_ts") == thread["ts"]])
    assert "It still fails &lt;!channel&gt; today." in follow[0]["text"]  # requester text is escaped
    assert len([c for c in env.api.posted() if not c.get("thread_ts")]) == 1  # no second card


async def test_urgent_ticket_mentions_here(env: Env):
    await env.send(mail(**URGENT))
    card = await env.card(1001)
    assert card["text"].startswith("<!here>")
    assert "<!here>" in card["blocks"][0]["text"]["text"]


async def test_quarantined_mail_alerts_the_agents_once(env: Env):
    await env.send(mail(subject="POISON"))  # the worker's pipeline raises on it, three times
    [alert] = await sk.until(lambda: [p for p in env.api.posted() if "quarantine" in p.get("text", "")])
    assert alert["channel"] == sk.CHANNEL and "classifier exploded" in alert["text"] and TOM in alert["text"]
    env.service.notifier.wake()
    await asyncio.sleep(0.5)
    assert len([p for p in env.api.posted() if "quarantine" in p.get("text", "")]) == 1


async def test_posting_survives_a_slack_outage(env: Env):
    env.api.fail = True
    await env.send(mail())
    ticket = await env.ticket()
    await sk.until(lambda: env.service.notifier.last_error)
    assert await env.rows("SELECT * FROM slack_threads") == []
    env.api.fail = False
    env.service.notifier.wake()
    await env.thread(ticket["id"])
    assert len(env.api.posted()) == 1


async def test_a_ticket_slack_refuses_does_not_block_the_others_nor_retry_hot(env: Env):
    env.api.refuse[ZENITH_CHANNEL] = "not_in_channel"  # the bot was never invited to zenith's channel
    await env.send(mail(to=OTHER_SUPPORT), to=OTHER_SUPPORT)
    zenith = (await sk.until(lambda: env.rows("SELECT id FROM tickets WHERE tenant = 'zenith'")))[0]["id"]
    failed = await sk.until(lambda: env.rows("SELECT rules, outcome FROM events WHERE kind = 'slack-error'"))
    assert json.loads(failed[0]["rules"]) == ["slack-post-failed"] and "not_in_channel" in failed[0]["outcome"]
    assert "not_in_channel" in env.service.notifier.last_error

    await env.send(mail())  # a later ticket of another tenant still reaches its channel
    ticket = await env.ticket()
    assert ticket["id"] > zenith
    await env.thread(ticket["id"])
    for _ in range(10):
        env.service.notifier.wake()
        await asyncio.sleep(0.02)
    tries = [c for c in env.api.posted() if c["channel"] == ZENITH_CHANNEL]
    assert 1 <= len(tries) <= 3  # paused between tries, not retried on every pass
    assert len(await env.rows("SELECT * FROM events WHERE kind = 'slack-error'")) == 1

    del env.api.refuse[ZENITH_CHANNEL]  # invited: the paused ticket goes out on a later pass
    await env.thread(zenith)


async def test_an_unexpected_error_does_not_end_the_notifier(env: Env, monkeypatch: pytest.MonkeyPatch):
    notifier = env.service.notifier
    real = notifier._follow_ups
    calls = []

    def broken(skip: list[int]) -> list[dict]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(skip)

    monkeypatch.setattr(notifier, "_follow_ups", broken)
    notifier.wake()
    await sk.until(lambda: "RuntimeError: boom" in notifier.last_error)
    await env.send(mail())
    await env.thread((await env.ticket())["id"])  # the task lived on


# -- signatures ---------------------------------------------------------------------------------

async def test_bad_or_stale_signature_is_refused(env: Env):
    body = sk.command_body("stats")
    status, _ = await sk.post(env.url, body, sk.FORM, sk.signed(body, secret="wrong"))
    assert status == 401
    status, _ = await sk.post(env.url, body, sk.FORM, sk.signed(body, timestamp=int(utcnow().timestamp()) - 600))
    assert status == 401
    status, _ = await sk.post(env.url, body, sk.FORM, {})
    assert status == 401
    assert "no tickets yet" in await env.command("stats")


async def test_slack_is_off_without_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", sk.SIGNING_SECRET)
    service = Service(load_config(with_channel(write_config(tmp_path))), out=lambda line: None)
    await service.start()
    try:
        host, port = service.web_address
        body = sk.command_body("stats")
        status, _ = await sk.post(f"http://{host}:{port}/slack/events", body, sk.FORM)
        assert status == 404 and service.notifier is None
    finally:
        await service.stop()


# -- the thread ---------------------------------------------------------------------------------

async def test_agent_reply_in_thread_reaches_the_requester_as_threaded_mail_and_a_note_does_not(env: Env):
    first = "<login.42@steelworks.example>"
    await env.send(mail(message_id=first))
    ticket = await env.ticket()
    thread = await env.thread(ticket["id"])
    acks = await sk.until(lambda: env.sink.messages)  # the bot's acknowledgement
    baseline = len(acks)

    status, _ = await sk.post(env.url, sk.thread_message(thread["ts"], "note: called him, he is on it"), "application/json")
    assert status == 200
    await sk.until(lambda: env.rows("SELECT * FROM events WHERE kind = 'note'"))
    status, _ = await sk.post(env.url, sk.thread_message(thread["ts"], "bot echo", user=sk.BOT_USER, bot_id="BBOT"),
                              "application/json")
    status, _ = await sk.post(env.url, sk.thread_message(thread["ts"], "Hi Tom, the link works again now."),
                              "application/json")
    assert status == 200
    mails = await sk.until(lambda: env.sink.messages[baseline:])
    await sk.until(lambda: env.api.posted("reactions.add")[1:])
    assert len(env.sink.messages) == baseline + 1  # the note and the bot's own message sent nothing
    msg = mails[0].msg
    assert mails[0].rcpt_tos == [TOM]
    assert msg["In-Reply-To"] == first and "[#1001]" in msg["Subject"]
    assert msg["Auto-Submitted"] is None and msg["X-Auto-Response-Suppress"] is None
    assert msg["Message-ID"].startswith(f"<t{ticket['id']}.")
    assert "the link works again now" in msg.get_content()
    events = await env.rows("SELECT kind, rules, detail FROM events WHERE ticket = ? AND kind IN ('note', 'agent-reply')",
                            [ticket["id"]])
    assert [(e["kind"], json.loads(e["rules"])) for e in events] == [("note", ["agent-note"]),
                                                                       ("agent-reply", ["agent-reply"])]
    assert json.loads(events[0]["detail"])["agent"] == f"slack:{sk.AGENT}"
    assert (await env.ticket())["status"] == "pending"


# -- buttons ------------------------------------------------------------------------------------

async def test_reclassify_recomputes_and_stores_a_correction_then_approve_sends_the_draft(env: Env):
    await env.send(mail(**HELD))
    card = await env.card(1001)
    assert "approve" in actions_of(card["blocks"])  # held for review
    ticket = await env.ticket()
    assert ticket["intent"] == "unknown"
    baseline = len(await sk.until(lambda: env.sink.messages))

    ts = (await env.thread(ticket["id"]))["ts"]
    status, _ = await sk.post(env.url, sk.select("technical/access", ticket["id"], ts), sk.FORM)
    assert status == 200
    rows = await sk.until(lambda: env.rows("SELECT * FROM corrections"))
    assert rows[0]["label"] == "technical/access" and rows[0]["agent"] == f"slack:{sk.AGENT}"
    assert "call me back" in rows[0]["text"]
    updated = await sk.until(lambda: env.api.posted("chat.update"))
    assert actions_of(updated[0]["blocks"])["reclassify"]["initial_option"]["value"] == "technical/access"
    assert "`technical-help`" in fields(updated[0]["blocks"])
    ticket = await env.ticket()
    assert (ticket["category"], ticket["intent"]) == ("technical", "access")
    event = (await env.rows("SELECT rules, outcome FROM events WHERE kind = 'reclassified'"))[0]
    assert json.loads(event["rules"])[0] == "agent-reclassified" and "technical-help" in event["rules"]
    assert "approve" not in actions_of(updated[0]["blocks"])  # the decision in force holds nothing

    await sk.post(env.url, sk.button("approve", ticket["id"], ts), sk.FORM)  # a stale card's button
    said = await sk.until(lambda: [c for c in env.api.posted() if "holds nothing" in c["text"]])
    assert said[0]["thread_ts"] == ts
    assert len(env.sink.messages) == baseline

    await sk.post(env.url, sk.select("other/unknown", ticket["id"], ts), sk.FORM)  # held again
    updated = await sk.until(lambda: env.api.posted("chat.update")[2:])
    assert "approve" in actions_of(updated[-1]["blocks"])
    await sk.post(env.url, sk.button("approve", ticket["id"], ts), sk.FORM)
    mails = await sk.until(lambda: env.sink.messages[baseline:])
    assert mails[0].rcpt_tos == [TOM] and "[#1001]" in mails[0].msg["Subject"]
    assert "A member of our support team will look" not in mails[0].msg.get_content()
    await sk.until(lambda: env.rows("SELECT * FROM events WHERE kind = 'approved'"))
    await sk.post(env.url, sk.button("approve", ticket["id"], ts), sk.FORM)  # once only
    await sk.until(lambda: len([c for c in env.api.posted() if "holds nothing" in c["text"]]) == 2)
    assert len(env.sink.messages) == baseline + 1


async def test_escalate_and_close_buttons(env: Env):
    await env.send(mail())
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    await sk.post(env.url, sk.button("escalate", ticket["id"], ts), sk.FORM)
    await sk.until(lambda: env.rows("SELECT * FROM tickets WHERE priority = 'urgent'"))
    await sk.post(env.url, sk.button("close", ticket["id"], ts), sk.FORM)
    await sk.until(lambda: env.rows("SELECT * FROM tickets WHERE status = 'closed'"))
    rules = [json.loads(r["rules"]) for r in await env.rows(
        "SELECT rules FROM events WHERE kind IN ('escalated', 'status') AND ticket = ?", [ticket["id"]])]
    assert rules == [["agent-escalated"], ["agent-closed"]]


# -- /triage ------------------------------------------------------------------------------------

async def test_slash_commands(env: Env):
    await env.send(mail())
    await env.send(mail(**HELD))
    await sk.until(lambda: len(env.api.posted()) >= 2)

    run = env.command

    assert "[#1001]" in await run("1001") and "technical/access" in await run("1001")
    assert "[#1002]" in await run("search call back")
    assert "not done: search: a phrase is missing its closing quote" in await run('search "call back')
    assert "new 2" in await run("stats")
    assert "status new → resolved" in await run("resolve 1001")
    assert "assignee - → @bob" in await run("assign 1002 @bob")
    assert "<@U42>" in await run("assign 1001 <@U42|carol>")
    assert "no ticket #999" in await run("999")
    assert "usage" in await run("frobnicate")
    rows = {r["number"]: r for r in await env.rows("SELECT number, status, assignee FROM tickets")}
    assert rows[1001]["status"] == "resolved" and rows[1002]["assignee"] == "@bob"


# -- reminders and training ----------------------------------------------------------------------

async def test_unanswered_ticket_gets_one_reminder_after_its_due_time(env: Env):
    await env.send(mail())
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    env.shift[0] = timedelta(hours=5)  # acme is staffed around the clock: due after 4 hours
    env.service.notifier.wake()
    reminders = await sk.until(lambda: [c for c in env.api.posted() if "first response was due" in c["text"]])
    assert reminders[0]["thread_ts"] == ts and reminders[0]["text"].startswith("<!here>")
    env.service.notifier.wake()
    await sk.until(lambda: env.rows("SELECT * FROM slack_threads WHERE reminded_at IS NOT NULL"))
    await env.send(mail(subject="Another", body="And one more login problem: my password is rejected."))
    await sk.until(lambda: len([c for c in env.api.posted() if not c.get("thread_ts")]) == 2)
    assert len([c for c in env.api.posted() if "first response was due" in c["text"] and c["thread_ts"] == ts]) == 1


def test_first_response_due_counts_only_support_hours():
    from datetime import time

    office = SupportHours((0, 1, 2, 3, 4), time(8), time(17))
    friday_4pm = datetime(2024, 5, 31, 16, 0, tzinfo=timezone.utc)
    assert first_response_due(office, "UTC", friday_4pm, 4) == datetime(2024, 6, 3, 11, 0, tzinfo=timezone.utc)
    saturday = datetime(2024, 6, 1, 10, 0, tzinfo=timezone.utc)
    assert first_response_due(office, "UTC", saturday, 4) == datetime(2024, 6, 3, 12, 0, tzinfo=timezone.utc)


def test_train_reads_the_agents_corrections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from triage import cli
    from triage.desk import train

    folder = write_config(tmp_path)
    store = Store(load_config(folder).database)
    tid = store.create_ticket({"tenant": "acme", "number": 1001, "status": "new", "channel": "email",
                               "created_at": "2024-01-01", "updated_at": "2024-01-01"})
    for label in ("other/unknown", "technical/access"):  # the latest correction of a ticket counts
        store.db["corrections"].insert({"ticket": tid, "label": label, "agent": "slack:U1", "subject": "Hej",
                                        "text": "jag kommer inte in", "channel": "email", "language": "sv", "created_at": "x"})
    store.close()
    seen = {}

    def fake_train(languages, corrections=None, **kw):  # noqa: ANN001, ANN003 - the real one takes minutes
        seen["corrections"] = corrections
        return {"examples": 0}

    monkeypatch.setattr(train, "train", fake_train)
    assert cli.main(["--config", str(folder), "train"]) == 0
    assert seen["corrections"] == [train.Example("technical/access", "Hej", "jag kommer inte in", "email", "sv")]


async def test_thread_reply_on_a_widget_ticket_is_shown_in_the_widget(env: Env):
    def widget_ticket() -> int:
        store = env.service.store
        with store.transaction():
            tid = store.create_ticket({"tenant": "acme", "number": 1500, "status": "new", "priority": "normal",
                                       "category": "technical", "intent": "access", "channel": "widget",
                                       "subject": "", "requester_address": TOM, "created_at": "2024-01-01T00:00:00+00:00",
                                       "updated_at": "2024-01-01T00:00:00+00:00"})
            shown = store.add_message({"ticket": tid, "direction": "in", "message_id": "<w1@widget>",
                                       "channel": "widget", "sender": TOM, "recipients": "[]", "subject": "",
                                       "text": "I cannot log in", "created_at": "2024-01-01T00:00:00+00:00"})
            store.db["slack_threads"].insert({"ticket": tid, "channel": sk.CHANNEL, "ts": "1.5", "posted_at": "x",
                                              "last_message": shown})  # already shown in the thread
        return tid

    tid = await env.service.run_db(widget_ticket)
    await sk.post(env.url, sk.thread_message("1.5", "Try <https://acme.portal.test/reset|the reset link> "
                                                    "&amp; tell <@U42> &lt;3"), "application/json")
    rows = await sk.until(lambda: env.rows("SELECT * FROM messages WHERE ticket = ? AND direction = 'out'", [tid]))
    assert rows[0]["channel"] == "widget"
    assert rows[0]["text"] == "Try the reset link (https://acme.portal.test/reset) & tell @U42 <3"  # no Slack markup
    assert rows[0]["sender"] == f"slack:{sk.AGENT}"
    assert len(env.sink.messages) == 0  # no mail for a widget ticket


async def test_a_thread_reply_that_slack_retries_after_a_restart_goes_out_once(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch):
    """Slack retries an event it got no answer for, signed anew; a restarted service has forgotten
    the event ids it saw. The message's own channel and timestamp name the reply, so the retry
    is acknowledged and the requester still gets one answer."""
    def configure(relay: str) -> Path:
        return with_channel(write_config(tmp_path / "cfg", relay_url=relay))  # the same database each time

    text = "Hi Tom, the link works again now."
    async with slack_service(monkeypatch, configure) as env:
        await env.send(mail())
        ticket = await env.ticket()
        event = sk.thread_message((await env.thread(ticket["id"]))["ts"], text)
        status, _ = await sk.post(env.url, event, "application/json")
        assert status == 200
        await sk.until(lambda: env.api.posted("reactions.add"))
    async with slack_service(monkeypatch, configure) as env:
        retry = {**sk.signed(event), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        status, _ = await sk.post(env.url, event, "application/json", headers=retry)
        assert status == 200
        await sk.until(lambda: env.api.posted("reactions.add"))  # handled: the agent sees it as sent
        replies = await env.rows("SELECT kind FROM events WHERE ticket = ? AND kind = 'agent-reply'", [ticket["id"]])
        sent = await env.rows("SELECT id FROM messages WHERE direction = 'out' AND text LIKE ?", [f"%{text}%"])
        assert len(replies) == 1 and len(sent) == 1
        # a new message in the thread is a new reply
        await sk.post(env.url, sk.thread_message(json.loads(event)["event"]["thread_ts"], "And one more thing."),
                      "application/json")
        await sk.until(lambda: env.rows("SELECT id FROM messages WHERE text LIKE '%one more thing%'"))
        assert not [m for m in env.sink.messages if text in m.msg.get_content()]


async def test_unexpected_failures_are_said_back_to_the_agent(env: Env, monkeypatch: pytest.MonkeyPatch):
    await env.send(mail())
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    agents = env.service.slack.agents

    def broken(*args: object) -> str:
        raise RuntimeError("database is locked")

    for name in ("reply", "escalate", "stats"):
        monkeypatch.setattr(agents, name, broken)
    await sk.post(env.url, sk.thread_message(ts, "Hi Tom, try again now."), "application/json")
    said = await sk.until(lambda: [c for c in env.api.posted() if "not sent" in c["text"]])
    assert said[0]["thread_ts"] == ts and "database is locked" in said[0]["text"]
    await sk.post(env.url, sk.button("escalate", ticket["id"], ts), sk.FORM)
    said = await sk.until(lambda: [c for c in env.api.posted() if "not done" in c["text"]])
    assert said[0]["thread_ts"] == ts and "database is locked" in said[0]["text"]
    assert "not done: RuntimeError: database is locked" in await env.command("stats")
    assert env.sink.messages[1:] == [] and env.api.posted("reactions.add") == []


@pytest.mark.parametrize("mrkdwn, plain", [
    ("a &amp; b &lt;c&gt;", "a & b <c>"),
    ("see <https://x.example/a?b=1&amp;c=2|the docs>", "see the docs (https://x.example/a?b=1&c=2)"),
    ("<https://x.example/>", "https://x.example/"),
    ("mail <mailto:eva@acme.example|eva@acme.example>", "mail eva@acme.example"),
    ("hi <@U123>, <@U9|bob>", "hi @U123, @bob"),
    ("<#C1|general> <!here>", "#general @here"),
    ("&amp;lt;b&amp;gt;", "&lt;b&gt;"),  # what the agent typed literally stays literal
])
def test_plain_text_resolves_slack_markup(mrkdwn: str, plain: str):
    from channels.slack import plain_text

    assert plain_text(mrkdwn) == plain
