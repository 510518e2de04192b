"""Help articles for agents: the Slack card and the console's ticket page show a ticket's
articles (those offered to the requester, else the knowledge base's best matches, labelled as
not offered), and one click sends one to the requester through ``Agents.send_article``.

All against the real service on loopback with the example help centre as acme's knowledge
base: signed Slack requests to /slack/events (the stand-in Web API records the calls), the
console in real headless Chromium and over HTTP, and the mail the relay sink receives."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests import slackkit as sk
from tests.servicekit import Sink, mail, with_knowledge_base, write_config
from tests.test_console_browser import browser, signed_in  # noqa: F401 - the Chromium fixture
from tests.test_console_http import ZED, Browser, base, console_service, csrf_of, relay  # noqa: F401
from tests.test_service_e2e import outbox_settled, rows, send
from tests.test_slack import ZENITH_CHANNEL, Env, actions_of, fields, slack_service, with_channel
from tests.test_widget_browser import CHROMIUM
from tests.waiting import until
from triage.service.app import Service

HOWTO = dict(subject="Upload certificate",
             body="Hello, how do I upload our ISO 9001 certificate to the company profile? I cannot find the "
                  "button.\n\nRegards, Tom")
# A business question (redirected to the company's contacts: no article for the sender) with a
# technical part an article answers: the agent sees that article, labelled as not offered.
MIXED = dict(subject="Question about RFQ 2024-117",
             body="Hello,\n\nWhich payment terms apply in RFQ 2024-117? And the portal rejects our ISO 9001 "
                  "certificate upload in the company profile, the file is a PDF.\n\nRegards,\nTom")
ARTICLE_URL = "https://help.borealis.portal.localhost/"


def article_mails(sink: Sink) -> list:
    """Mails the sink received that carry a help article sent by an agent (not the acknowledgement)."""
    return [m for m in sink.messages if "This help article answers your question" in m.msg.get_content()]


# -- Slack ----------------------------------------------------------------------------------------

@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    def configure(relay_url: str) -> Path:
        return with_knowledge_base(with_channel(write_config(tmp_path / "cfg", relay_url=relay_url)))
    async with slack_service(monkeypatch, configure) as e:
        yield e


def send_buttons(blocks: list[dict]) -> dict[str, dict]:
    """The card's Send buttons by article id."""
    buttons = [b["accessory"] for b in blocks if b.get("accessory", {}).get("action_id") == "send_article"]
    return {b["value"].partition(":")[2]: b for b in buttons}


async def test_the_card_offers_the_article_and_its_button_sends_it(env: Env):
    await env.send(mail(**HOWTO))
    card = await env.card(1001)
    assert "(offered to the requester)" in fields(card["blocks"])
    buttons = send_buttons(card["blocks"])
    assert list(buttons)[0] == "company-documents"
    assert "send_article" not in actions_of(card["blocks"])  # one button per article, beside its link
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    await sk.until(lambda: env.sink.messages)  # the acknowledgement

    status, _ = await sk.post(env.url, sk.send_article(ticket["id"], "company-documents", ts), sk.FORM)
    assert status == 200
    [sent] = await sk.until(lambda: article_mails(env.sink))
    assert sent.rcpt_tos == ["tom@steelworks.example"] and "[#1001]" in sent.msg["Subject"]
    body = sent.msg.get_content()
    assert "Uploading certificates and documents to the company profile" in body
    assert f"{ARTICLE_URL}en/company-documents" in body
    said = await sk.until(lambda: [c for c in env.api.posted() if c.get("thread_ts") == ts and "sent" in c["text"]])
    assert "to the requester" in said[0]["text"]
    [event] = await env.rows("SELECT rules, detail FROM events WHERE kind = 'article-sent'")
    assert json.loads(event["rules"]) == ["agent-article-sent"]
    assert json.loads(event["detail"])["article"] == "company-documents"
    assert (await env.ticket())["status"] == "pending"


async def test_a_business_question_shows_matches_to_agents_labelled_as_not_offered(env: Env):
    await env.send(mail(**MIXED))
    card = await env.card(1001)
    text = fields(card["blocks"])
    assert "not offered to the requester: `kb-not-for-category`" in text
    assert list(send_buttons(card["blocks"]))[0] == "company-documents"  # an agent may still send it
    assert ARTICLE_URL not in "\n".join(m.msg.get_content() for m in env.sink.messages)


async def test_slack_refuses_another_tenants_ticket_and_an_unknown_article(env: Env):
    await env.send(mail(**HOWTO))
    ticket = await env.ticket()
    ts = (await env.thread(ticket["id"]))["ts"]
    baseline = len(await sk.until(lambda: env.sink.messages))
    status, _ = await sk.post(env.url, sk.send_article(ticket["id"], "company-documents", ts, ZENITH_CHANNEL), sk.FORM)
    assert status == 200
    await sk.until(lambda: [c for c in env.api.posted() if "do not serve" in c["text"]])
    status, _ = await sk.post(env.url, sk.send_article(ticket["id"], "no-such-article", ts), sk.FORM)
    assert status == 200
    said = await sk.until(lambda: [c for c in env.api.posted() if "no article 'no-such-article'" in c["text"]])
    assert said[0]["text"].split("> ", 1)[1].startswith("not done")
    assert len(env.sink.messages) == baseline
    assert await env.rows("SELECT * FROM events WHERE kind = 'article-sent'") == []


# -- the console ------------------------------------------------------------------------------------

@pytest.fixture
async def kb_console(tmp_path: Path, relay: Sink) -> AsyncIterator[Service]:  # noqa: F811
    async with console_service(with_knowledge_base(write_config(tmp_path / "config", relay_url=relay.url))) as s:
        yield s


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")
async def test_the_console_shows_the_article_and_one_click_mails_it(kb_console, relay, browser):  # noqa: F811
    from playwright.async_api import expect

    await send(kb_console, mail(**HOWTO))
    await until(lambda: len(relay.messages) == 1)  # the acknowledgement
    page = await signed_in(browser, kb_console)
    await page.goto(base(kb_console) + "/tickets/acme/1001")
    articles = page.locator(".card.articles")
    await expect(articles).to_contain_text("Offered to the requester")
    link = articles.locator("a").first
    assert (await link.get_attribute("href")).startswith(ARTICLE_URL)
    await articles.locator("button[data-article=company-documents]").click()
    await expect(page.locator(".flash")).to_contain_text("to the requester")
    await until(lambda: article_mails(relay))
    [sent] = article_mails(relay)
    assert sent.rcpt_tos == ["tom@steelworks.example"]
    assert await link.get_attribute("href") in sent.msg.get_content()
    await expect(page.locator(".audit")).to_contain_text("agent-article-sent")


@pytest.fixture
async def kb_client(kb_console: Service) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(kb_console, session)


async def test_the_console_refuses_other_tenants_unknown_articles_and_missing_csrf(kb_console, relay, kb_client):
    await send(kb_console, mail(**MIXED))
    sent = await outbox_settled(kb_console)  # the redirect to the supplier and the relay to the company
    await until(lambda: len(relay.messages) == len(sent))
    baseline = len(relay.messages)
    await kb_client.login()
    status, html, _ = await kb_client.get("/tickets/acme/1001")
    assert status == 200 and "not offered to the requester" in html and "kb-not-for-category" in html
    status, _, _ = await kb_client.post("/tickets/acme/1001/send_article", {"csrf": csrf_of(html), "article": "nope"})
    assert status == 303
    _, html, _ = await kb_client.get("/tickets/acme/1001")
    assert "not done: no article &#39;nope&#39; in Acme Metals AB" in html
    status, _, _ = await kb_client.post("/tickets/acme/1001/send_article", {"article": "rfq-attachments"})
    assert status == 403

    other = Browser(kb_console, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
    try:
        await other.login(ZED)
        status, _, _ = await other.post("/tickets/acme/1001/send_article",
                                        {"csrf": other.csrf, "article": "rfq-attachments"})
        assert status == 404  # another tenant's ticket does not exist for Zed
    finally:
        await other.session.close()
    assert len(relay.messages) == baseline
    assert await rows(kb_console, "SELECT * FROM events WHERE kind = 'article-sent'") == []
