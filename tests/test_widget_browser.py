"""The widget in a real headless Chromium (Debian's, driven by Playwright): the demo page
served by the running service, a message, the ack with its ticket number, an agent's reply
arriving live, a reload that keeps the conversation, and HTML shown as text."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.servicekit import TroublePipeline
from tests.test_service_e2e import running
from tests.test_widget_api import ANNA, SECRET, service, widget_config  # noqa: F401 - the same running-service fixture
from triage.core.trust import widget_hash
from triage.service.app import Service

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]
XSS = '<img src=x onerror="window.__xss=1">'

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")


@pytest.fixture
async def page(service: Service):  # noqa: ANN201 - a Playwright page
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
        try:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            await browser.close()


def demo_url(service: Service, signed_in: bool = True, **extra: str) -> str:
    host, port = service.web_address
    who = {"email": ANNA, "name": "Anna", "user_hash": widget_hash(SECRET, ANNA)} if signed_in else {}
    return f"http://{host}:{port}/widget/demo?{urlencode({'tenant': 'acme', **who, **extra})}"


async def open_panel(page) -> None:  # noqa: ANN001
    await page.click(".triage-launcher")
    await page.locator(".triage-w").wait_for(state="visible")


async def send(page, text: str) -> None:  # noqa: ANN001
    if await page.locator(".triage-w").is_hidden():
        await open_panel(page)
    await page.fill(".triage-text", text)
    await page.click(".triage-send")


async def test_message_ack_live_agent_reply_and_reload(service, page):
    from playwright.async_api import expect

    await page.goto(demo_url(service))
    await send(page, "I cannot log in to the supplier portal, the password reset link has expired.")
    log = page.locator(".triage-log")
    # the number comes with the post's answer, or on the event stream when a busy machine
    # left the line queued past the service's wait: either way within the page's timeout
    await expect(page.locator(".triage-w header")).to_have_text(re.compile(r"Ticket #1001"), timeout=20_000)
    await expect(log.locator(".triage-out").first).to_contain_text("Thank you for your message")  # the number is the header's
    tickets = await service.run_db(service.store.tickets)
    assert [t["trust"] for t in tickets] == ["verified"]
    await service.add_widget_reply(tickets[0]["id"], "Hi Anna, a new link is on its way.", "Kim")
    await expect(log.locator(".triage-out").last).to_have_text("Support: Hi Anna, a new link is on its way.")
    await page.reload()
    await expect(page.locator(".triage-w header")).to_have_text(re.compile(r"Ticket #1001"))
    await expect(log.locator(".triage-line")).to_have_count(3)
    await expect(log.locator(".triage-in")).to_have_text(re.compile("password reset link"))


async def test_a_line_still_queued_gets_its_ticket_number_live(tmp_path):
    """The worker takes longer than the service waits (a SLOW line, chat_wait 0.5 s): the post
    answers "queued" without a number, and the header shows it once the ticket is filed."""
    from playwright.async_api import async_playwright, expect

    async with running(widget_config(tmp_path / "config"), pipeline=TroublePipeline, chat_wait=0.5) as service:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
            try:
                page = await browser.new_page()
                await page.goto(demo_url(service))
                await send(page, "SLOW: I cannot log in to the supplier portal.")
                header = page.locator(".triage-w header")
                # shown once the post answers "queued" (the worker sleeps 3 s), on a busy machine late
                await expect(page.locator(".triage-in")).to_contain_text("SLOW", timeout=20_000)
                await expect(header).to_have_text(re.compile(r"Ticket #1001"), timeout=20_000)
                await expect(page.locator(".triage-out").first).to_contain_text("Thank you for your message")
            finally:
                await browser.close()


async def test_html_in_a_message_is_shown_as_text_and_never_run(service, page):
    from playwright.async_api import expect

    await page.goto(demo_url(service))
    await send(page, XSS)
    line = page.locator(".triage-in")
    await expect(line).to_have_text(f"You: {XSS}")
    [ticket] = await service.run_db(service.store.tickets)
    await service.add_widget_reply(ticket["id"], '<script>window.__xss=2</script><b>bold?</b>', "Kim")
    await expect(page.locator(".triage-out").last).to_contain_text("<b>bold?</b>")
    await asyncio.sleep(0.3)  # give a broken image's onerror every chance to fire
    assert await page.evaluate("window.__xss") is None
    assert await page.locator(".triage-log img, .triage-log script, .triage-log b").count() == 0


async def test_refusals_are_shown_to_the_visitor(service, page):
    from playwright.async_api import expect

    await page.goto(demo_url(service))
    await send(page, "x" * 600)  # acme's widget_max_message_size is 500 in this configuration
    await expect(page.locator(".triage-error")).to_contain_text("too long: at most 500 bytes")
    await expect(page.locator(".triage-text")).to_have_value("x" * 600)  # kept, to shorten and resend
    assert await service.run_db(service.store.tickets) == []


async def test_a_jwt_in_data_user_token_verifies_the_visitor(service, page):
    """The portal's page passes a short-lived JWT instead of the everlasting hash."""
    import time

    import jwt
    from playwright.async_api import expect

    now = int(time.time())
    user_token = jwt.encode({"sub": ANNA, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")
    host, port = service.web_address
    await page.goto(f"http://{host}:{port}/widget/demo?"
                    + urlencode({"tenant": "acme", "email": ANNA, "user_token": user_token}))
    await send(page, "I cannot log in to the supplier portal, the password reset link has expired.")
    await expect(page.locator(".triage-w header")).to_have_text(re.compile(r"Ticket #1001"))
    [ticket] = await service.run_db(service.store.tickets)
    assert ticket["trust"] == "verified"
