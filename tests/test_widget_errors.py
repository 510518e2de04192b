"""The widget API's refusals read in the visitor's language, over real HTTP against the
running service, and keep a code that never changes whatever the language."""
from __future__ import annotations

import uuid

import aiohttp

from channels.widget_texts import TEXTS, accepted, language
from tests.test_widget_api import ANNA, LOGIN, PORTAL, SECRET, rows, service, session  # noqa: F401 - fixtures
from triage.core.trust import widget_hash
from triage.service.app import Service


def api(service: Service, tenant: str = "acme") -> str:
    host, port = service.web_address
    return f"http://{host}:{port}/widget/api/{tenant}"


def line(text: str = LOGIN, email: str = ANNA) -> dict:
    return {"text": text, "email": email, "name": "Anna", "client_id": uuid.uuid4().hex,
            "user_hash": widget_hash(SECRET, email)}


async def post(session: aiohttp.ClientSession, service: Service, body: dict, *, lang: str | None = None,
               accept: str | None = None) -> tuple[int, dict, dict]:
    params = {"lang": lang} if lang is not None else {}
    headers = {"Origin": PORTAL, **({"Accept-Language": accept} if accept else {})}
    async with session.post(f"{api(service)}/messages", json=body, params=params, headers=headers) as r:
        return r.status, await r.json(), dict(r.headers)


async def test_a_message_too_long_is_refused_in_swedish_and_in_english_with_one_code(service, session):
    status, sv, _ = await post(session, service, line("x" * 501), lang="sv-SE")
    assert status == 413 and sv["code"] == "too-large" and sv["rule"] == "widget-too-large"
    assert sv["error"] == "Meddelandet är för långt: högst 500 byte (ungefär 250 tecken)."
    status, en, _ = await post(session, service, line("x" * 501))  # no hint, no Accept-Language: the tenant's
    assert status == 413 and en["code"] == "too-large"
    assert en["error"].startswith("The message is too long: at most 500 bytes")
    assert await rows(service, "SELECT id FROM messages") == []


async def test_rate_limited_in_german_from_accept_language(service, session):
    for i in range(4):
        status, data, _ = await post(session, service, line(f"{LOGIN} ({i})"))
        assert status == 200, data
    status, data, headers = await post(session, service, line("noch eine"), accept="fr-CH, de-DE;q=0.8, en;q=0.5")
    wait = int(headers["Retry-After"])
    assert status == 429 and data["code"] == "rate-limited" and data["rule"] == "widget-rate-limited"
    assert data["error"] == f"Zu viele Nachrichten in kurzer Zeit: Bitte warten Sie {wait} s und senden Sie erneut."


async def test_a_missing_address_and_an_empty_message_in_russian(service, session):
    status, data, _ = await post(session, service, line(email=""), lang="ru")
    assert (status, data["code"]) == (400, "email-needed")
    assert data["error"] == "Укажите адрес электронной почты, чтобы поддержка могла ответить."
    status, data, _ = await post(session, service, line(text="   "), lang="ru")
    assert (status, data["code"], data["error"]) == (400, "empty-message", "Сообщение пустое.")


async def test_unknown_tenant_and_unknown_conversation_in_ukrainian(service, session):
    async with session.get(f"{api(service, 'nope')}/status", headers={"Accept-Language": "uk-UA,uk;q=0.9"}) as r:
        data = await r.json()
    assert r.status == 404 and data["code"] == "unknown-tenant" and data["error"].startswith("Віджет допомоги")
    async with session.get(f"{api(service)}/conversation", params={"token": "gone", "lang": "uk"}) as r:
        data = await r.json()
    assert r.status == 404 and data["code"] == "unknown-conversation" and data["error"].startswith("Цю розмову")


async def test_a_malformed_request_gets_the_visitors_sentence_and_the_developers_detail(service, session):
    status, data, _ = await post(session, service, {**line(), "name": {"first": "A"}}, lang="de")
    assert status == 400 and data["code"] == "bad-request"
    assert data["error"].startswith("Das Hilfe-Widget hat etwas gesendet") and "name must be a string" in data["detail"]


async def test_the_status_texts_carry_no_server_errors(service, session):
    async with session.get(f"{api(service)}/status", params={"lang": "sv"}) as r:
        status = await r.json()
    assert status["lang"] == "sv" and "errors" not in status["texts"] and status["texts"]["failed"]


def test_the_hint_comes_first_then_accept_language_by_weight_then_the_tenants():
    assert accepted("de;q=0.5, sv-SE, en;q=0.9, *;q=0.1, ru;q=0") == ["sv", "en", "de"]
    assert accepted("sv;q=oops, de") == ["de"]
    assert language("uk", "de, sv", "sv") == "uk"
    assert language("xx", "fr, de;q=0.8", "sv") == "de"
    assert language("", "fr", "sv") == "sv"
    assert language("", "", "") == "en"


def test_every_error_has_a_sentence_in_every_language_with_the_same_placeholders():
    import string

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    for lang, texts in TEXTS.items():
        for code, sentence in TEXTS["en"]["errors"].items():
            assert fields(texts["errors"][code]) == fields(sentence), (lang, code)


def test_every_error_code_is_documented():
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text("utf-8")
    assert [code for code in TEXTS["en"]["errors"] if f"`{code}`" not in readme] == []
