"""The widget's HTTP API against the real service on loopback (port 0): identity, origins,
size and rate limits, conversations that continue, agents' replies live, transcripts."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest

from tests.servicekit import parse, with_knowledge_base, write_config
from tests.waiting import until
from triage.config import ConfigError, load_config
from triage.core.trust import widget_hash
from triage.service.app import Service

SECRET = "acme-widget-secret"
PORTAL = "https://portal.acme.example"
ANNA = "anna@steelworks.example"
LOGIN = "I cannot log in to the supplier portal, the password reset link has expired. Can you help?"
WIDGET_KEYS = f"""widget_secret = "{SECRET}"
widget_origins = ["{PORTAL}"]
widget_max_message_size = 500
widget_rate_limits = ["4/60"]
"""


def widget_config(folder: Path) -> Path:
    """The service test configuration with the widget set up for acme (top-level keys first),
    with the example tenant's help centre as its knowledge base, so answers come with
    suggested articles."""
    with_knowledge_base(write_config(folder))
    acme = folder / "tenants" / "acme.toml"
    acme.write_text(WIDGET_KEYS + acme.read_text())
    return folder


class Client:
    """A widget as the API sees it: one aiohttp session against the running service."""

    def __init__(self, service: Service, session: aiohttp.ClientSession, tenant: str = "acme"):
        host, port = service.web_address
        self.base = f"http://{host}:{port}/widget/api/{tenant}"
        self.session = session
        self.token = ""
        self.browser = ""  # the browser's random key, as widget.js sends it ("" sends none)

    async def post(self, text: str = LOGIN, email: str = ANNA, user_hash: str | None = None,
                   origin: str | None = PORTAL, client_id: str | None = None) -> tuple[int, dict, dict]:
        body = {"text": text, "email": email, "name": "Anna", "client_id": client_id or uuid.uuid4().hex,
                "token": self.token, "user_hash": widget_hash(SECRET, email) if user_hash is None else user_hash,
                "browser": self.browser}
        headers = {"Origin": origin} if origin else {}
        async with self.session.post(f"{self.base}/messages", json=body, headers=headers) as response:
            data = await response.json()
            if response.status == 200:
                self.token = data["token"]
            return response.status, data, dict(response.headers)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    service = Service(load_config(widget_config(tmp_path / "config")), out=lambda line: None)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def rows(service: Service, sql: str, params: list | None = None) -> list[dict]:
    return await service.run_db(lambda: list(service.store.db.query(sql, params or [])))


async def test_verified_visitor_gets_ack_in_the_widget_not_by_mail(service, session):
    client = Client(service, session)
    status, data, headers = await client.post()
    assert status == 200, data
    assert data["verified"] is True and data["ticket"] == 1001
    assert headers["Access-Control-Allow-Origin"] == PORTAL
    [ticket] = await rows(service, "SELECT * FROM tickets")
    assert (ticket["channel"], ticket["trust"], ticket["requester_address"]) == ("widget", "verified", ANNA)
    out = await rows(service, "SELECT * FROM messages WHERE direction = 'out'")
    assert [(m["channel"], m["sender"]) for m in out] == [("widget", "triage")]
    assert "Thank you for your message" in out[0]["text"] and "1001" not in out[0]["text"]  # the header shows it
    assert await rows(service, "SELECT * FROM outbox WHERE kind = 'reply'") == []
    [decision] = await rows(service, "SELECT rules FROM events WHERE kind = 'decision'")
    assert "trust-widget-hmac" in json.loads(decision["rules"])


async def test_bad_hash_and_no_hash_give_unverified_tickets(service, session):
    for user_hash, rule in (("0" * 64, "trust-widget-bad-hash"), ("", "trust-widget-anonymous")):
        client = Client(service, session)
        status, data, _ = await client.post(user_hash=user_hash)
        assert status == 200 and data["verified"] is False
        [ticket] = await rows(service, "SELECT * FROM tickets WHERE number = ?", [data["ticket"]])
        assert ticket["trust"] == "unverified"
        events = await rows(service, "SELECT rules FROM events WHERE ticket = ? AND kind = 'decision'",
                            [ticket["id"]])
        assert rule in json.loads(events[0]["rules"])


async def test_wrong_origin_refused_with_clear_error_and_nothing_stored(service, session):
    client = Client(service, session)
    status, data, headers = await client.post(origin="https://evil.example")
    assert status == 403 and data["rule"] == "widget-origin-refused"
    assert "evil.example" in data["error"] and "may not use" in data["error"]
    assert "Access-Control-Allow-Origin" not in headers
    async with session.options(f"{client.base}/messages", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}) as response:
        assert response.status == 403
    async with session.options(f"{client.base}/messages", headers={
            "Origin": PORTAL, "Access-Control-Request-Method": "POST"}) as response:
        assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == PORTAL
    assert await rows(service, "SELECT id FROM tickets") == []
    assert await rows(service, "SELECT id FROM events WHERE rules LIKE '%widget-origin-refused%'") != []


async def test_oversized_message_refused_and_not_stored(service, session):
    client = Client(service, session)
    status, data, _ = await client.post(text="x" * 501)
    assert status == 413 and data["rule"] == "widget-too-large" and "at most 500 bytes" in data["error"]
    status, data, _ = await client.post(text="y" * 100_000)  # past the hard cap: refused before reading it all
    assert status == 413 and data["rule"] == "widget-too-large"
    assert await rows(service, "SELECT id FROM messages") == []
    assert await rows(service, "SELECT id FROM tickets") == []
    status, _, _ = await client.post(text="ö" * 250)  # 500 bytes exactly: accepted
    assert status == 200


async def test_too_frequent_messages_refused_with_retry_after(service, session):
    client = Client(service, session)
    for i in range(4):
        status, data, _ = await client.post(text=f"{LOGIN} (attempt {i})")
        assert status == 200, data
    status, data, headers = await client.post(text="one more")
    assert status == 429 and data["rule"] == "widget-rate-limited"
    assert 1 <= int(headers["Retry-After"]) <= 60 and "please wait" in data["error"]
    stored = await rows(service, "SELECT text FROM messages WHERE direction = 'in'")
    assert len(stored) == 4 and "one more" not in [m["text"] for m in stored]


async def test_conversation_joins_one_ticket_and_a_retry_is_stored_once(service, session):
    client = Client(service, session)
    _, first, _ = await client.post()
    line_id = uuid.uuid4().hex
    _, second, _ = await client.post(text="Also, the page shows error 500 after login.", client_id=line_id)
    _, again, _ = await client.post(text="Also, the page shows error 500 after login.", client_id=line_id)
    assert first["ticket"] == second["ticket"] == again["ticket"] and again["duplicate"] is True
    assert first["token"] == second["token"]
    assert len(await rows(service, "SELECT id FROM tickets")) == 1
    assert len(await rows(service, "SELECT id FROM messages WHERE direction = 'in'")) == 2
    thread = await rows(service, "SELECT rules FROM events WHERE kind = 'thread' ORDER BY id")
    assert [json.loads(r["rules"]) for r in thread] == [["thread-new-ticket"], ["thread-widget-conversation"]]
    # A reload: the history comes back by token; another tenant's API does not know the token.
    async with session.get(f"{client.base}/conversation", params={"token": client.token}) as response:
        history = await response.json()
    assert history["ticket"] == first["ticket"] and history["verified"] is True
    assert [m["direction"] for m in history["messages"]][:2] == ["in", "out"]
    other = client.base.replace("/acme", "/zenith")
    async with session.get(f"{other}/conversation", params={"token": client.token}) as response:
        assert response.status == 404


async def test_agent_reply_arrives_live_over_server_sent_events(service, session):
    client = Client(service, session)
    await client.post()
    [ticket] = await rows(service, "SELECT id FROM tickets")
    lines: list[dict] = []

    async def listen() -> None:
        async with session.get(f"{client.base}/events", params={"token": client.token}) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async for raw in response.content:
                if raw.startswith(b"data: "):
                    lines.append(json.loads(raw[6:]))
                    if lines[-1]["author"] == "agent":
                        return

    task = asyncio.create_task(listen())
    await until(lambda: len(lines) >= 2, 5)
    assert [line["direction"] for line in lines] == ["in", "out"]
    await service.add_widget_reply(ticket["id"], "Hi Anna, try the new link I just sent.", "Kim (agent)")
    await asyncio.wait_for(task, 5)
    assert lines[-1]["text"] == "Hi Anna, try the new link I just sent." and lines[-1]["author"] == "agent"


async def test_outside_hours_says_when_back_and_mails_transcript_only_when_verified(tmp_path, session):
    saturday = datetime(2025, 11, 22, 12, 0, tzinfo=timezone.utc)  # zenith: mon-fri 09-17 UTC
    folder = widget_config(tmp_path / "config")
    zenith = folder / "tenants" / "zenith.toml"
    zenith.write_text('widget_secret = "zz"\n' + zenith.read_text())
    service = Service(load_config(folder), out=lambda line: None, clock=lambda: saturday)
    await service.start()
    try:
        client = Client(service, session, "zenith")
        async with session.get(f"{client.base}/status") as response:
            status = await response.json()
        assert status["open"] is False and status["back"] == "Mon 24 Nov 09:00"
        await client.post(origin=None, user_hash="bad")
        async with session.post(f"{client.base}/transcript", json={"token": client.token}) as response:
            assert response.status == 403
            assert (await response.json())["rule"] == "widget-transcript-unverified"
        verified = Client(service, session, "zenith")
        await verified.post(origin=None, user_hash=widget_hash("zz", ANNA))
        async with session.post(f"{client.base}/transcript", json={"token": verified.token}) as response:
            assert response.status == 200, await response.text()
        [mail] = await rows(service, "SELECT * FROM outbox WHERE kind = 'transcript'")
        assert json.loads(mail["recipients"]) == [ANNA]
        body = parse(mail["raw"]).get_content()
        assert LOGIN in body and "ticket [#1002]" in body
    finally:
        await service.stop()


def test_bad_widget_rate_limit_is_a_config_error(tmp_path):
    folder = write_config(tmp_path / "config")
    acme = folder / "tenants" / "acme.toml"
    acme.write_text('widget_rate_limits = ["5 per minute"]\n' + acme.read_text())
    with pytest.raises(ConfigError, match="widget_rate_limits"):
        load_config(folder)
