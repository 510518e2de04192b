"""Portal actions and ticket-event webhooks over the real service and real signed HTTP.

``Receiver`` is a local stand-in (http.server on 127.0.0.1, port 0) for the tenant's portal
API and for a ticket-event receiver: it records every call and answers what the test tells
it to (503, 400, a hang). Calls are checked with the receiver example from README.md, the
way a receiver would check them. Mail goes in over SMTP and out to the recording relay.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest

from tests.mailattacks import INVITATION
from tests.servicekit import SUPPORT, Sink, free_port, mail, with_knowledge_base, write_config
from tests.test_crash import start
from tests.test_service_e2e import REPO, health, rows, running, send
from tests.waiting import until
from triage.service import webhooks

SECRET = "portal-test-secret-0123456789"
HOOK_SECRET = "hook-test-secret-9876543210"
OLA = "ola@kyivcable.example"  # invited, in the test directory
IVAN = "ivan@kyivcable.example"  # deactivated (added by the tests that need him)
SCHEMA = json.loads((REPO / "triage" / "data" / "webhook.schema.json").read_text())


def readme_verify():
    """The receiver example of README.md, run as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(import hashlib, hmac, time.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    scope: dict = {}
    exec(code, scope)  # noqa: S102 -- the documented example itself is under test
    return scope["verify"]


class Receiver:
    """Stands in for the tenant's portal (or a webhook receiver): records calls, answers on demand."""

    def __init__(self, port: int = 0):
        self.calls: list[dict] = []
        self.answers: list[int] = []  # consumed one per call; 200 when empty; 0 = hang until released
        self.release = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    code = outer.answers.pop(0) if outer.answers else 200
                    outer.calls.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                        "status": code, "at": time.monotonic()})
                if code == 0:
                    outer.release.wait(30)
                    return
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if code < 300 else b'{"error": "no"}')

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def effective(self) -> list[dict]:
        """Calls the receiver acted on: answered 2xx, once per Idempotency-Key (as a portal dedupes)."""
        seen: dict[str, dict] = {}
        for c in self.calls:
            if 200 <= c["status"] < 300:
                seen.setdefault(c["headers"]["Idempotency-Key"], c)
        return list(seen.values())


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def portal():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv("TEST_PORTAL_SECRET", SECRET)
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)


def configure(folder: Path, sink: Sink | None, portal: Receiver | None, hook_port: int | None = None,
              **options) -> Path:
    write_config(folder, relay_url=sink.url if sink else "", **options)
    users = folder / "tenants" / "acme.users.csv"
    users.write_text(users.read_text() + f"{IVAN},Ivan Petrenko,Kyiv Cable LLC,external_user,deactivated,\n")
    if portal:
        acme = folder / "tenants" / "acme.toml"
        text = acme.read_text().replace("[support_hours]", f'portal_api_url = "http://127.0.0.1:{portal.port}/api"\n'
                                        'portal_api_secret_env = "TEST_PORTAL_SECRET"\n\n[support_hours]')
        acme.write_text(text)
    if hook_port is not None:
        with (folder / "triage.toml").open("a") as f:
            f.write(f'\n[[webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:{hook_port}/hook"\n'
                    'secret_env = "TEST_HOOK_SECRET"\nevents = ["created", "decided", "replied", "held"]\n')
    return folder


def invitation(sender: str = OLA, verified: bool = True) -> bytes:
    domain = sender.rpartition("@")[2]
    headers = {"Authentication-Results": f"mx.support.test; dmarc=pass header.from={domain}"} if verified else {}
    return mail(sender=sender, name="Ola Koval", headers=headers, **INVITATION)


def texts(sink: Sink, to: str) -> list[str]:
    return [m.msg.get_body(("plain",)).get_content() for m in sink.messages if to in m.rcpt_tos]


def check_call(call: dict, verify) -> dict:
    """As the portal would: a fresh, genuine signature, then the body by the documented schema."""
    assert call["path"] == "/api/invitations/renew"
    assert verify(SECRET.encode(), call["headers"], call["body"])
    payload = json.loads(call["body"])
    jsonschema.validate(payload, SCHEMA)
    return payload


async def test_verified_renewal_makes_one_signed_call_then_confirms(tmp_path, sink, portal):
    verify = readme_verify()
    async with running(configure(tmp_path, sink, portal), retry_base=0.05) as service:
        assert "ticket #" in await send(service, invitation(OLA), sender=OLA)
        await until(lambda: len(texts(sink, OLA)) == 2)
        payload = check_call(portal.calls[0], verify)
        assert payload["action"] == "renew_invitation" and payload["email"] == OLA and payload["tenant"] == "acme"
        assert "invitation-renew-own-address" in payload["reasons"]
        first, second = texts(sink, OLA)
        assert "carrying out the request" in first and "second message" in first and "has been renewed" not in first
        assert "has been renewed" in second and "check your inbox" in second
        assert len(portal.calls) == 1 and len(portal.effective()) == 1
        events = await rows(service, "SELECT kind, rules FROM events WHERE kind = 'portal-action' ORDER BY id")
        assert [json.loads(e["rules"]) for e in events] == [["portal-renewal-queued"], ["portal-renewal-confirmed"]]
        assert (await health(service))["webhooks"] == {"backlog": 0, "failed": 0, "last_error": ""}


async def test_503_twice_then_200_is_three_calls_with_one_key_and_one_renewal(tmp_path, sink, portal):
    portal.answers = [503, 503, 200]
    async with running(configure(tmp_path, sink, portal), retry_base=0.05) as service:
        await send(service, invitation(OLA), sender=OLA)
        await until(lambda: len(texts(sink, OLA)) == 2)
        assert [c["status"] for c in portal.calls] == [503, 503, 200]
        assert len({c["headers"]["Idempotency-Key"] for c in portal.calls}) == 1
        assert len({c["body"] for c in portal.calls}) == 1  # the same action, re-signed each time
        assert len(portal.effective()) == 1
        assert "has been renewed" in texts(sink, OLA)[1]
        retries = await rows(service, "SELECT count(*) AS n FROM events WHERE kind = 'webhook-retry'")
        assert retries[0]["n"] == 2


async def test_429_waits_for_retry_after(tmp_path, sink, portal):
    assert webhooks.retry_after("7", webhooks.utcnow()) == 7.0
    portal.answers = [429, 200]
    async with running(configure(tmp_path, sink, portal), retry_base=0.05) as service:
        await send(service, invitation(OLA), sender=OLA)
        await until(lambda: len(portal.effective()) == 1)
        first, second = portal.calls
        assert second["at"] - first["at"] >= 0.9  # "Retry-After: 1" beats the 0.05 s backoff
        assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]


async def test_a_400_holds_the_ticket_for_an_agent(tmp_path, sink, portal):
    portal.answers = [400]
    async with running(configure(tmp_path, sink, portal), retry_base=0.05) as service:
        await send(service, invitation(OLA), sender=OLA)
        await until(lambda: len(portal.calls) == 1)
        await until(lambda: service.webhooks.last_error != "")
        held = await rows(service, "SELECT rules, ticket FROM events WHERE kind = 'hold_for_review'")
        assert [json.loads(h["rules"]) for h in held] == [["portal-renewal-failed"]]
        ticket = (await rows(service, "SELECT status FROM tickets WHERE id = ?", [held[0]["ticket"]]))[0]
        assert ticket["status"] == "open"
        status = (await health(service))["webhooks"]
        assert status["failed"] == 1 and "HTTP 400" in status["last_error"] and SECRET not in status["last_error"]
        await until(lambda: len(texts(sink, OLA)) == 1)
        assert len(portal.calls) == 1 and len(texts(sink, OLA)) == 1  # no retry, no "renewed" mail


@pytest.mark.parametrize("sender, verified", [(OLA, False), (IVAN, True)], ids=["unverified", "deactivated"])
async def test_no_call_for_an_unverified_or_deactivated_sender(tmp_path, sink, portal, sender, verified):
    async with running(configure(tmp_path, sink, portal), retry_base=0.05) as service:
        await send(service, invitation(sender, verified), sender=sender)
        await until(lambda: len(texts(sink, sender)) == 1)
        await asyncio.sleep(0.3)  # time for a (wrong) call to be made
        assert await rows(service, "SELECT * FROM webhook_deliveries") == []
        assert portal.calls == []


async def test_without_a_portal_api_an_agent_renews_and_the_reply_says_so(tmp_path, sink):
    async with running(configure(tmp_path, sink, None), retry_base=0.05) as service:
        await send(service, invitation(OLA), sender=OLA)
        await until(lambda: len(texts(sink, OLA)) == 1)
        assert "a member of our team will renew it" in texts(sink, OLA)[0]
        assert await rows(service, "SELECT * FROM webhook_deliveries") == []


async def test_a_receiver_down_for_a_while_gets_every_event_in_order(tmp_path, sink):
    port = free_port()  # nothing listens there yet: the receiver is down
    verify = readme_verify()
    async with running(configure(tmp_path, sink, None, hook_port=port), retry_base=0.05) as service:
        for i in range(3):
            await send(service, mail(subject=f"Cannot log in {i}"))
        await until(lambda: len(sink.messages) == 3)
        queued = await rows(service, "SELECT id, event, ticket FROM webhook_deliveries ORDER BY id")
        assert [r["event"] for r in queued] == ["created", "decided", "replied"] * 3
        await until(lambda: service.webhooks.last_error != "")  # it did try, and failed
        receiver = Receiver(port)
        try:
            await until(lambda: len(receiver.calls) == 9, timeout=30)
            got = [json.loads(c["body"]) for c in receiver.calls]
            for call, payload in zip(receiver.calls, got):
                assert verify(HOOK_SECRET.encode(), call["headers"], call["body"])
                jsonschema.validate(payload, SCHEMA)
                assert call["headers"]["Idempotency-Key"] == payload["id"]
            numbers = [p["ticket"]["number"] for p in got]
            assert [p["event"] for p in got] == ["created", "decided", "replied"] * 3
            assert numbers == sorted(numbers) and len({p["id"] for p in got}) == 9
            assert (await health(service))["webhooks"]["backlog"] == 0
        finally:
            receiver.close()


def test_the_readme_receiver_rejects_tampered_and_replayed_calls():
    verify = readme_verify()
    body = b'{"event":"created"}'
    fresh = webhooks.headers(HOOK_SECRET.encode(), "k1", body)
    assert verify(HOOK_SECRET.encode(), fresh, body)
    assert not verify(HOOK_SECRET.encode(), fresh, body.replace(b"created", b"deleted"))  # tampered body
    assert not verify(b"another-secret", fresh, body)
    old = webhooks.headers(HOOK_SECRET.encode(), "k1", body, now=time.time() - 3600)  # captured an hour ago
    assert not verify(HOOK_SECRET.encode(), old, body)
    forged = {**old, "X-Triage-Timestamp": fresh["X-Triage-Timestamp"]}  # old signature, new time
    assert not verify(HOOK_SECRET.encode(), forged, body)


def serve_with_invitation(folder: Path):  # noqa: ANN201 - the subprocess
    """``triage serve`` on ``folder`` with Ola's verified invitation renewal sent to it over SMTP."""
    import smtplib

    from triage.config import load_config

    proc, _ = start(folder)
    port = int(load_config(folder).email["listen"].rpartition(":")[2])
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail(OLA, [SUPPORT], invitation(OLA))
    return proc


def poll(condition, timeout: float = 20) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def kill(proc) -> None:  # noqa: ANN001
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc) -> None:  # noqa: ANN001
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def test_sigkill_between_decision_and_call_calls_once_after_restart(tmp_path):
    """The first call hangs (the portal never acts on it); the service is killed with the row
    in 'sending'; after restart the same key is sent again and acted on once."""
    sink, portal = Sink(), Receiver()
    portal.answers = [0]
    try:
        folder = configure(tmp_path, sink, portal, smtp_port=free_port(), web_port=free_port())
        proc = serve_with_invitation(folder)
        try:
            assert poll(lambda: bool(portal.calls)), "the service never called the portal"
            kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        portal.release.set()
        proc, _ = start(folder)
        try:
            poll(lambda: len(portal.effective()) >= 1)
            time.sleep(0.5)  # time for a (wrong) second call to be made
        finally:
            stop(proc)
        assert len(portal.calls) == 2 and len(portal.effective()) == 1
        assert len({c["headers"]["Idempotency-Key"] for c in portal.calls}) == 1
    finally:
        portal.close()
        sink.close()


def test_sigkill_after_the_decision_before_any_call_reached_the_portal_calls_once_after_restart(tmp_path):
    """The other window: the decision and its call are committed, but the portal refuses
    connections (nothing listens on its port yet), so no request has reached it when the service
    is SIGKILLed. After restart, with the portal up, the queued call is made once, with the key
    committed with the decision. (A refused connection counts as an attempt, so the restarted
    service waits out the first backoff of ``triage serve``, 30 seconds.)"""
    import sqlite3

    sink = Sink()
    port = free_port()
    down = SimpleNamespace(port=port)  # the portal's address in the configuration; nothing listens there
    try:
        folder = configure(tmp_path, sink, down, smtp_port=free_port(), web_port=free_port())
        database = folder / "var" / "triage.db"

        def queued() -> list[tuple]:
            if not database.exists():
                return []
            with sqlite3.connect(database) as db:
                return db.execute("SELECT status, attempts, idempotency_key, last_error FROM webhook_deliveries "
                                  "WHERE kind = 'portal'").fetchall()

        proc = serve_with_invitation(folder)
        try:
            assert poll(lambda: any(r[1] >= 1 for r in queued())), "the service never tried the portal"
            kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        [(status, _, key, error)] = queued()
        assert status == "queued" and "Connect" in error  # committed, refused, waiting for its retry
        portal = Receiver(port)  # the portal comes up
        try:
            proc, _ = start(folder)
            try:
                assert poll(lambda: len(portal.effective()) >= 1, timeout=60), "no call after restart"
                time.sleep(0.5)  # time for a (wrong) second call to be made
            finally:
                stop(proc)
            assert len(portal.calls) == 1 and len(portal.effective()) == 1
            assert portal.calls[0]["headers"]["Idempotency-Key"] == key
            check_call(portal.calls[0], readme_verify())
            assert [r[0] for r in queued()] == ["sent"]
        finally:
            portal.close()
    finally:
        sink.close()


def test_backoff_doubles_and_honours_a_longer_retry_after():
    loop = webhooks.Deliveries(None, None, None, base_delay=30, max_delay=3600)  # type: ignore[arg-type]
    assert [loop.backoff(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert loop.backoff(1, asked=300).total_seconds() == 300
    assert loop.backoff(1, asked=10 ** 6).total_seconds() == 3600  # a receiver cannot park a call for ever
    now = webhooks.utcnow()
    assert webhooks.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0 and webhooks.retry_after("soon", now) is None


@pytest.mark.parametrize("line, error", [
    ('portal_api_url = "https://user:pw-s3cret@portal.example/api"\nportal_api_secret_env = "X"', "credentials"),
    ('portal_api_url = "ftp://portal.example"\nportal_api_secret_env = "X"', "http"),
    ('portal_api_url = "https://portal.example/api"', "portal_api_secret_env"),
])
def test_bad_portal_settings_fail_on_load_without_echoing_secrets(tmp_path, line, error):
    from triage.config import ConfigError, load_config

    configure(tmp_path, None, None)
    acme = tmp_path / "tenants" / "acme.toml"
    acme.write_text(acme.read_text().replace("[support_hours]", line + "\n\n[support_hours]"))
    with pytest.raises(ConfigError, match=error) as e:
        load_config(tmp_path)
    assert "pw-s3cret" not in str(e.value)


@pytest.mark.parametrize("table, error", [
    ('name = "a"\nurl = "http://127.0.0.1:1/h"\nsecret_env = "S"\nevents = ["deleted"]', "events"),
    ('name = "a"\nurl = "https://k:s3cret@h.example/"\nsecret_env = "S"\nevents = ["created"]', "credentials"),
    ('name = "a"\nurl = "http://127.0.0.1:1/h"\nsecret_env = "S"\nevents = ["created"]\ntenants = ["nope"]', "tenants"),
    ('name = "a"\nurl = "http://127.0.0.1:1/h"\nevents = ["created"]', "secret_env"),
    ('name = "a"\nurl = "http://127.0.0.1:1/h"\nsecret_env = "S"\nevents = ["created"]\ncolour = 1', "unknown key"),
])
def test_bad_webhook_tables_fail_on_load(tmp_path, table, error):
    from triage.config import ConfigError, load_config

    configure(tmp_path, None, None)
    with (tmp_path / "triage.toml").open("a") as f:
        f.write(f"\n[[webhooks]]\n{table}\n")
    with pytest.raises(ConfigError, match=error) as e:
        load_config(tmp_path)
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize("lang", ["en", "sv", "de", "ru", "uk"])
def test_renewal_wording_in_every_language(lang):
    from tests.test_render import REPLY_RENDERER, reply_context

    agent = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["renew_invitation"], portal_renews=False))
    portal_reply = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["renew_invitation"], portal_renews=True))
    done = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["renewal_confirmed"]))
    assert len({agent, portal_reply, done}) == 3
    if lang == "en":
        assert "a member of our team will renew it" in agent and "has been renewed" in done


def test_operator_commands_list_test_and_redeliver(tmp_path, capsys):
    from triage.cli import main
    from triage.store import Store

    receiver = Receiver()
    try:
        receiver.answers = [200]
        configure(tmp_path, None, None, hook_port=receiver.port)
        assert main(["--config", str(tmp_path), "webhooks", "test", "crm"]) == 0
        assert "HTTP 200" in capsys.readouterr().out
        ping = json.loads(receiver.calls[0]["body"])
        jsonschema.validate(ping, SCHEMA)
        assert ping["event"] == "ping" and readme_verify()(HOOK_SECRET.encode(), receiver.calls[0]["headers"],
                                                            receiver.calls[0]["body"])
        store = Store(tmp_path / "var" / "triage.db")
        store.db["webhook_deliveries"].insert({"receiver": "crm", "kind": "event", "event": "created",
                                               "url": "http://127.0.0.1:1/h", "body": "{}", "idempotency_key": "k",
                                               "status": "failed", "attempts": 20, "next_attempt_at": "",
                                               "last_error": "HTTP 400", "response": "", "created_at": ""})
        store.close()
        assert main(["--config", str(tmp_path), "webhooks", "list"]) == 0
        out = capsys.readouterr().out
        assert "crm" in out and "failed 1" in out and HOOK_SECRET not in out
        assert main(["--config", str(tmp_path), "webhooks", "redeliver", "1"]) == 0
        assert main(["--config", str(tmp_path), "webhooks", "redeliver", "1"]) == 1  # no longer failed
        assert main(["--config", str(tmp_path), "webhooks", "list"]) == 0
        assert "queued 1" in capsys.readouterr().out
        assert main(["--config", str(tmp_path), "webhooks", "test", "nobody"]) == 2
    finally:
        receiver.close()


async def test_agents_actions_are_ticket_events(tmp_path, sink):
    receiver = Receiver()
    try:
        folder = with_knowledge_base(configure(tmp_path, sink, None, hook_port=receiver.port))
        toml = folder / "triage.toml"
        toml.write_text(toml.read_text().replace('events = ["created", "decided", "replied", "held"]',
                                                 'events = ["escalated", "resolved", "note", "assigned", "replied"]'))
        async with running(folder, retry_base=0.05) as service:
            await send(service, mail())
            ticket = (await rows(service, "SELECT id FROM tickets"))[0]["id"]
            agents = service.agents  # with the whole pipeline: the help articles are the tenant's
            now = webhooks.utcnow()
            for act in (lambda: agents.escalate(ticket, "anna", now), lambda: agents.assign(ticket, "bo", "anna", now),
                        lambda: agents.reply(ticket, "note: checked the logs", "anna", now),
                        lambda: agents.send_article(ticket, "password-reset", "anna", now),
                        lambda: agents.resolve(ticket, "anna", now)):
                await service.run_db(act)
            service.webhooks.wake()
            await until(lambda: len(receiver.calls) == 6)
            got = [json.loads(c["body"]) for c in receiver.calls]
            # the acknowledgement, then the agent's actions: a help article sent is an answer
            assert [p["event"] for p in got] == ["replied", "escalated", "assigned", "note", "replied", "resolved"]
            assert got[0]["data"] == {} and all(p["data"] == {"agent": "anna"} for p in got[1:])
            for payload in got:
                jsonschema.validate(payload, SCHEMA)
    finally:
        receiver.close()


async def test_this_solved_it_in_the_widget_is_a_resolved_event(tmp_path):
    """The visitor's "This solved it" resolves the ticket without an agent: receivers hear of it."""
    import aiohttp

    from tests.test_widget_api import Client, widget_config
    from tests.test_widget_help import conversation, feedback

    receiver = Receiver()
    try:
        folder = widget_config(tmp_path / "config")
        with (folder / "triage.toml").open("a") as f:
            f.write(f'\n[[webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:{receiver.port}/hook"\n'
                    'secret_env = "TEST_HOOK_SECRET"\nevents = ["resolved"]\n')
        async with running(folder, retry_base=0.05) as service:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                client = Client(service, session)
                await client.post()
                _, state = await conversation(client)
                answer = state["messages"][1]
                status, data = await feedback(client, {"token": client.token, "line": answer["id"],
                                                       "article": answer["articles"][0]["id"], "solved": True})
                assert status == 200 and data["status"] == "resolved"
            service.webhooks.wake()
            await until(lambda: len(receiver.calls) == 1)
            [payload] = [json.loads(c["body"]) for c in receiver.calls]
            jsonschema.validate(payload, SCHEMA)
            assert (payload["event"], payload["ticket"]["status"], payload["data"]) == (
                "resolved", "resolved", {"rule": "kb-solved"})
    finally:
        receiver.close()


async def test_relayed_escalated_and_agents_reopen_approve_reclassify_reach_a_tenant_filtered_receiver(tmp_path, sink):
    """The intake's relay and the policy's escalation, then an agent's close, reopen, approve and
    reclassify, each a signed event; the zenith ticket never reaches a receiver of acme only."""
    from tests.servicekit import BUSINESS, CONTACT, OTHER_SUPPORT
    from tests.test_slack import URGENT

    receiver = Receiver()
    verify = readme_verify()
    try:
        folder = configure(tmp_path, sink, None, hook_port=receiver.port)
        toml = folder / "triage.toml"
        toml.write_text(toml.read_text().replace(
            'events = ["created", "decided", "replied", "held"]',
            'events = ["relayed", "escalated", "closed", "reopened", "approved", "reclassified"]\n'
            'tenants = ["acme"]'))
        async with running(folder, retry_base=0.05) as service:
            await send(service, mail(to=OTHER_SUPPORT, **URGENT), [OTHER_SUPPORT])  # zenith: filtered out
            await send(service, mail(**BUSINESS))  # relayed to the tenant
            await send(service, mail(**URGENT))  # the policy escalates it
            await send(service, mail(sender=CONTACT, name="Eva Strand", **BUSINESS), sender=CONTACT)  # held
            mine = await rows(service, "SELECT id, number FROM tickets WHERE tenant = 'acme' ORDER BY id")
            acme = [r["number"] for r in mine]
            relayed, urgent, held = (r["id"] for r in mine)
            agents = service.agents  # with the whole pipeline: approve and reclassify recompute the decision
            now = webhooks.utcnow()
            for act in (lambda: agents.close(urgent, "anna", now), lambda: agents.reopen(urgent, "anna", now),
                        lambda: agents.approve(held, "anna", now),
                        lambda: agents.reclassify(relayed, "technical/howto", "anna", now)):
                await service.run_db(act)
            service.webhooks.wake()
            await until(lambda: len(receiver.calls) >= 6)
            await asyncio.sleep(0.3)  # time for a (wrong) zenith call to be made
            got = [json.loads(c["body"]) for c in receiver.calls]
            for call, payload in zip(receiver.calls, got):
                assert verify(HOOK_SECRET.encode(), call["headers"], call["body"])
                jsonschema.validate(payload, SCHEMA)
            assert [(p["event"], p["ticket"]["number"]) for p in got] == [
                ("relayed", acme[0]), ("escalated", acme[1]), ("closed", acme[1]), ("reopened", acme[1]),
                ("approved", acme[2]), ("reclassified", acme[0])]
            assert {p["tenant"] for p in got} == {"acme"}
            assert "escalate" in got[1]["data"]["actions"] and got[1]["data"]["reasons"]
            assert got[3]["data"] == {"agent": "anna"}
            assert got[5]["data"] == {"agent": "anna", "from": "business/question", "to": "technical/howto"}
    finally:
        receiver.close()
