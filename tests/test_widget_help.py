"""The widget as a help desk over the real HTTP API on loopback: chat-sized answers with
their suggested articles, "This solved it" and "I still need help" (only for the
conversation's own token), anonymous visitors who continue from the same browser without
a token, the interface texts per language, and a demo page that names no tenant."""
from __future__ import annotations

import json
import secrets
import uuid

import pytest

from channels.widget_texts import TEXTS
from tests.servicekit import write_config
from tests.test_widget_api import ANNA, LOGIN, PORTAL, Client, rows, service, session  # noqa: F401 - fixtures
from triage.config import ConfigError, Window, load_config
from triage.service.app import Service


def browser_client(service: Service, session) -> Client:  # noqa: ANN001
    client = Client(service, session)
    client.browser = secrets.token_hex(16)
    return client


async def conversation(client: Client, token: str | None = None) -> tuple[int, dict]:
    async with client.session.get(f"{client.base}/conversation", params={"token": token or client.token}) as r:
        return r.status, await r.json()


async def feedback(client: Client, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with client.session.post(f"{client.base}/feedback", data=data,
                                   headers={"Origin": PORTAL, "Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def test_chat_answer_is_short_with_ticket_number_and_articles_the_letter_goes_to_the_transcript(
        service, session):
    client = Client(service, session)
    status, data, _ = await client.post(text=LOGIN + "\nMore details on a second line.")
    assert status == 200
    _, state = await conversation(client)
    answer = state["messages"][1]
    # the number is the widget header's (state["ticket"]), not repeated in the answer
    assert answer["author"] == "triage" and state["ticket"] == 1001 and "1001" not in answer["text"]
    assert len(answer["text"]) < 400 and "Kind regards" not in answer["text"] and "http" not in answer["text"]
    assert [a["id"] for a in answer["articles"]][0] == "password-reset" and answer["feedback"] == ""
    assert answer["articles"][0]["url"].startswith("https://help.borealis.portal.localhost/")
    [reply] = await rows(service, "SELECT detail FROM events WHERE kind = 'reply'")
    letter = json.loads(reply["detail"])["letter"]
    assert "Kind regards" in letter and "https://help.borealis.portal.localhost/en/password-reset" in letter
    [ticket] = await rows(service, "SELECT subject FROM tickets")
    assert ticket["subject"] == "I cannot log in to the supplier portal, the password…"


async def test_this_solved_it_resolves_the_ticket_only_for_the_conversations_own_token(service, session):
    anna = Client(service, session)
    await anna.post()
    _, state = await conversation(anna)
    line = state["messages"][1]["id"]
    stranger = Client(service, session)
    await stranger.post(email="eve@elsewhere.example", user_hash="")
    # A forged token, another conversation's token, a line or article that was not suggested:
    for token, line_id, article in ((secrets.token_urlsafe(32), line, "password-reset"),
                                    (stranger.token, line, "password-reset"),
                                    (anna.token, line + 1000, "password-reset"),
                                    (anna.token, line, "place-bid")):
        status, data = await feedback(anna, {"token": token, "line": line_id, "article": article, "solved": True})
        assert status in (403, 404), data
    tickets = await rows(service, "SELECT status FROM tickets ORDER BY id")
    assert [t["status"] for t in tickets] == ["new", "new"]
    status, data = await feedback(anna, {"token": anna.token, "line": line, "solved": False})
    assert status == 200 and data == {"status": "new", "recorded": True}
    status, data = await feedback(anna, {"token": anna.token, "line": line, "article": "password-reset",
                                         "solved": True})
    assert status == 200 and data == {"status": "resolved", "recorded": True}
    status, data = await feedback(anna, {"token": anna.token, "line": line, "article": "password-reset",
                                         "solved": True})  # pressed twice: nothing more is recorded
    assert status == 200 and data["recorded"] is False
    [ticket] = await rows(service, "SELECT id, status FROM tickets WHERE number = 1001")
    assert ticket["status"] == "resolved"
    events = await rows(service, "SELECT kind, rules, outcome, detail FROM events WHERE ticket = ? AND kind IN "
                                 "('kb-feedback', 'status') ORDER BY id", [ticket["id"]])
    assert [(e["kind"], json.loads(e["rules"]), e["outcome"]) for e in events] == [
        ("kb-feedback", ["kb-not-solved"], "not-solved"), ("kb-feedback", ["kb-solved"], "solved"),
        ("status", ["kb-solved"], "new -> resolved")]
    assert json.loads(events[2]["detail"]) == {"article": "password-reset"}
    _, state = await conversation(anna)
    assert state["status"] == "resolved" and state["messages"][1]["feedback"] == "solved"
    # Writing again reopens it, as any follow-up does.
    await anna.post(text="Sorry, the new link does not work either.")
    [ticket] = await rows(service, "SELECT status FROM tickets WHERE number = 1001")
    assert ticket["status"] == "open"


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"{}", b'{"token": 5, "line": 1, "solved": true}',
                                 b'{"token": "x", "line": "1", "solved": true}',
                                 b'{"token": "x", "line": true, "solved": true}',
                                 b'{"token": "x", "line": 1, "solved": "yes"}',
                                 b'{"token": "\\ud800", "line": 1, "solved": true}',
                                 b'{"token": "x", "line": 99999999999999999999999, "solved": true}',
                                 b"\xff\xfe{"])
async def test_malformed_feedback_is_a_clear_error_never_a_500(service, session, raw):
    client = Client(service, session)
    status, data = await feedback(client, None, raw=raw)
    assert status in (400, 404) and data["error"]
    assert await rows(service, "SELECT id FROM events WHERE kind = 'kb-feedback'") == []


async def test_token_less_lines_from_one_browser_continue_one_conversation(service, session):
    service.config.tenants["acme"].widget_rate_limits = [Window(50, 60)]
    anna = browser_client(service, session)
    tokens = set()
    for i in range(5):  # the token is never kept: a lost answer, a second tab, storage refused
        anna.token = ""
        status, data, _ = await anna.post(text=f"{LOGIN} (try {i})", user_hash="")
        assert status == 200 and data["ticket"] == 1001, data
        tokens.add(data["token"])
    assert len(tokens) == 1 and len(await rows(service, "SELECT id FROM tickets")) == 1
    # A retry of a first line (the answer was lost) is stored once, like any retry.
    again = browser_client(service, session)
    line_id = uuid.uuid4().hex
    _, first, _ = await again.post(email="olle@steelworks.example", user_hash="", client_id=line_id)
    again.token = ""
    _, retry, _ = await again.post(email="olle@steelworks.example", user_hash="", client_id=line_id)
    assert retry["duplicate"] is True and retry["ticket"] == first["ticket"]
    # Someone else typing Anna's address in another browser gets a conversation of their own.
    impostor = browser_client(service, session)
    status, theirs, _ = await impostor.post(text="Show me the history", user_hash="")
    assert status == 200 and theirs["ticket"] != 1001 and theirs["token"] not in tokens
    _, state = await conversation(impostor)
    assert all("try" not in m["text"] for m in state["messages"])
    # The same browser as another address (a colleague at the same desk) is another conversation too.
    anna.token = ""
    _, colleague, _ = await anna.post(email="bo@steelworks.example", user_hash="")
    assert colleague["ticket"] not in (1001, theirs["ticket"])


async def test_a_malformed_browser_key_is_refused_and_nothing_stored(service, session):
    client = Client(service, session)
    for key in ("short", "x" * 65, "<script>alert(1)</script>abcdefghijklmnopq"):
        client.browser = key
        status, data, _ = await client.post()
        assert status == 400 and "browser" in data["detail"]
    assert await rows(service, "SELECT id FROM tickets") == []


async def test_status_gives_texts_in_the_visitors_language_else_the_tenants(service, session):
    client = Client(service, session)
    for asked, lang, send in (("sv-SE", "sv", "Skicka"), ("de", "de", "Senden"), ("uk-UA", "uk", "Надіслати"),
                              ("ru", "ru", "Отправить"), ("xx", "en", "Send"), ("", "en", "Send")):
        async with session.get(f"{client.base}/status", params={"lang": asked}) as response:
            status = await response.json()
        assert (status["lang"], status["texts"]["send"]) == (lang, send)
        assert status["name"] == "Acme Metals AB" and status["color"] == "#1f3a5f"
    assert "kl." in status["hours"] if status["lang"] == "sv" else "(" in status["hours"]


def test_every_language_has_every_interface_text():
    assert sorted(TEXTS) == ["de", "en", "ru", "sv", "uk"]
    for lang, texts in TEXTS.items():
        assert texts.keys() == TEXTS["en"].keys(), lang
        assert texts["errors"].keys() == TEXTS["en"]["errors"].keys(), lang
        words = [v for k, v in texts.items() if k != "errors"] + list(texts["errors"].values())
        assert all(isinstance(v, str) and v.strip() for v in words), lang
        assert "{timezone}" in texts["closed"] and "{back}" in texts["closed"] and "{number}" in texts["ticket"]


async def test_demo_page_for_an_unknown_tenant_names_no_tenant(service, session):
    host, port = service.web_address
    async with session.get(f"http://{host}:{port}/widget/demo", params={"tenant": "nope"}) as response:
        body = await response.text()
        assert response.status == 404
    assert "acme" not in body.lower() and "zenith" not in body.lower() and "known" not in body
    async with session.get(f"http://{host}:{port}/widget/demo", params={"tenant": "acme"}) as response:
        page = await response.text()
    assert response.status == 200 and 'name="viewport"' in page


@pytest.mark.parametrize("colour", ["red", "#12345", "#1234567", "#ggg", "#fff;background:url(x)", ""])
def test_widget_color_must_be_a_hex_colour(tmp_path, colour):
    folder = write_config(tmp_path / "config")
    acme = folder / "tenants" / "acme.toml"
    acme.write_text(f"widget_color = {json.dumps(colour)}\n" + acme.read_text())
    with pytest.raises(ConfigError, match="widget_color"):
        load_config(folder)


def test_widget_color_is_read(tmp_path):
    folder = write_config(tmp_path / "config")
    acme = folder / "tenants" / "acme.toml"
    acme.write_text('widget_color = "#0B5E55"\n' + acme.read_text())
    assert load_config(folder).tenants["acme"].widget_color == "#0b5e55"
