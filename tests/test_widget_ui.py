"""The widget a portal embeds, in a real headless Chromium: launcher and open state across
reloads, an anonymous visitor's history after a reload, a short answer with the ticket
number and suggested articles ("This solved it" resolves the ticket in the database),
Swedish texts for a Swedish browser, a German refusal for a German one, a full-screen panel on a phone, Esc and keyboard-only
sending. Screenshots go to $TRIAGE_SCREENSHOTS when set (else the test's own folder)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.test_widget_api import service  # noqa: F401 - the running-service fixture
from tests.test_widget_browser import ARGS, CHROMIUM, demo_url, open_panel, send
from triage.service.app import Service

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")
LOGIN = "I cannot log in to the supplier portal, the password reset link has expired."


@pytest.fixture
async def browser():  # noqa: ANN201 - a Playwright browser
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser, **options):  # noqa: ANN001, ANN201
    context = await browser.new_context(**{"locale": "en-GB", "viewport": {"width": 1280, "height": 800}, **options})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    return page


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TRIAGE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_launcher_opens_and_closes_and_the_state_survives_a_reload(service, browser, tmp_path):
    from playwright.async_api import expect

    page = await new_page(browser)
    await page.goto(demo_url(service))
    panel, launcher = page.locator(".triage-w"), page.locator(".triage-launcher")
    await expect(launcher).to_be_visible()
    await expect(panel).to_be_hidden()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await page.screenshot(path=str(shots(tmp_path) / "desktop-closed.png"))
    await launcher.click()
    await expect(panel).to_be_visible()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    await expect(page.locator(".triage-text")).to_be_focused()
    await page.reload()
    await expect(panel).to_be_visible()
    await page.click(".triage-close")
    await expect(panel).to_be_hidden()
    await expect(launcher).to_be_focused()
    await page.reload()
    await expect(launcher).to_be_visible()
    await expect(panel).to_be_hidden()


async def test_anonymous_history_survives_a_reload(service, browser):
    from playwright.async_api import expect

    page = await new_page(browser)
    await page.goto(demo_url(service, signed_in=False))
    await open_panel(page)
    await expect(page.locator(".triage-email")).to_be_visible()
    await page.fill(".triage-email", "olle@steelworks.example")
    await send(page, LOGIN)
    await expect(page.locator(".triage-out")).to_have_count(1)
    await page.reload()
    await expect(page.locator(".triage-line")).to_have_count(2)
    await expect(page.locator(".triage-in")).to_contain_text("password reset link")
    await expect(page.locator(".triage-email")).to_have_value("olle@steelworks.example")
    await send(page, "It still does not work.")
    await expect(page.locator(".triage-in")).to_have_count(2)
    tickets = await service.run_db(service.store.tickets)
    assert len(tickets) == 1 and tickets[0]["trust"] == "unverified"


async def test_short_answer_with_ticket_and_suggestions_and_this_solved_it_resolves(service, browser, tmp_path):
    from playwright.async_api import expect

    page = await new_page(browser)
    await page.goto(demo_url(service))
    await send(page, LOGIN)
    answer = page.locator(".triage-out").first
    await expect(page.locator(".triage-ticket")).to_have_text("Ticket #1001")
    text = await answer.inner_text()
    assert len(text) < 400 and "Kind regards" not in text
    assert "1001" not in text  # the header shows the number once
    suggestion = page.locator(".triage-articles a")
    await expect(suggestion).to_have_text(re.compile("resetting your password"))
    assert await suggestion.get_attribute("href") == "https://help.borealis.portal.localhost/en/password-reset"
    await page.screenshot(path=str(shots(tmp_path) / "desktop-open-suggestions.png"))
    await page.click(".triage-solved")
    await expect(page.locator(".triage-done")).to_contain_text("solved")
    await expect(page.locator(".triage-articles button")).to_have_count(0)
    [ticket] = await service.run_db(service.store.tickets)
    assert ticket["status"] == "resolved"
    events = await service.run_db(service.store.events, ticket["id"])
    assert any(e["kind"] == "status" and "kb-solved" in e["rules"] for e in events)
    await page.reload()  # the answer is remembered: no buttons again
    await expect(page.locator(".triage-done")).to_be_visible()


async def test_texts_are_swedish_for_a_swedish_visitor(service, browser):
    from playwright.async_api import expect

    page = await new_page(browser, locale="sv-SE")
    await page.goto(demo_url(service))
    await expect(page.locator(".triage-launcher")).to_contain_text("Hjälp")
    await open_panel(page)
    await expect(page.locator(".triage-send")).to_have_text("Skicka")
    await expect(page.locator(".triage-status")).to_contain_text("Supporttider")
    await expect(page.locator(".triage-text")).to_have_attribute("placeholder", "Hur kan vi hjälpa dig?")
    await send(page, "Jag kan inte logga in, länken för att återställa lösenordet har gått ut.")
    await expect(page.locator(".triage-not-solved")).to_have_text("Jag behöver fortfarande hjälp")
    await page.click(".triage-not-solved")
    await expect(page.locator(".triage-done")).to_contain_text("öppet")
    [ticket] = await service.run_db(service.store.tickets)
    assert ticket["status"] != "resolved"


async def test_a_refusal_reads_in_the_visitors_language(service, browser):
    """widget.js names its language on every call, so the service's sentence is German too."""
    from playwright.async_api import expect

    page = await new_page(browser, locale="de-DE")
    await page.goto(demo_url(service))
    await send(page, "x" * 501)  # the test tenant allows 500 bytes
    await expect(page.locator(".triage-error")).to_have_text(
        "Die Nachricht ist zu lang: bitte höchstens 500 Byte (etwa 250 Zeichen).")
    await expect(page.locator(".triage-text")).to_have_value("x" * 501)  # kept, to shorten and resend
    assert await service.run_db(service.store.tickets) == []


async def test_phone_shows_the_panel_full_screen(service, browser, tmp_path):
    from playwright.async_api import expect

    page = await new_page(browser, viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    await page.goto(demo_url(service))
    await page.screenshot(path=str(shots(tmp_path) / "mobile-closed.png"))
    await open_panel(page)
    box = await page.locator(".triage-w").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 375, "height": 667}
    await expect(page.locator(".triage-launcher")).to_be_hidden()
    await send(page, LOGIN)
    await expect(page.locator(".triage-articles")).to_be_visible()
    await page.screenshot(path=str(shots(tmp_path) / "mobile-open-suggestions.png"))
    await page.keyboard.press("Escape")
    await expect(page.locator(".triage-w")).to_be_hidden()


async def test_keyboard_only_sending_and_esc(service, browser):
    from playwright.async_api import expect

    page = await new_page(browser)
    await page.goto(demo_url(service))
    await expect(page.locator(".triage-launcher")).to_be_visible()
    for _ in range(10):  # Tab through the page until the launcher has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('triage-launcher')"):
            break
    await page.keyboard.press("Enter")
    await expect(page.locator(".triage-text")).to_be_focused()
    await page.keyboard.type("First line")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("second line of the same message")
    await expect(page.locator(".triage-text")).to_have_value("First line\nsecond line of the same message")
    await page.keyboard.press("Enter")
    await expect(page.locator(".triage-in")).to_have_text("You: First line\nsecond line of the same message")
    await page.keyboard.press("Escape")
    await expect(page.locator(".triage-w")).to_be_hidden()
    await expect(page.locator(".triage-launcher")).to_be_focused()
