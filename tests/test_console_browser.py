"""The agent console in a real headless Chromium (Debian's, driven by Playwright) against the
real running service: sign in, a mail sent over SMTP appears live in the inbox, the agent
replies (the reply reaches the relay sink threaded), approves a held reply, reclassifies,
resolves and closes; a phone ticket; tenant isolation; CSRF; the login rate limit."""
from __future__ import annotations

import re

import pytest

from tests.servicekit import BUSINESS, CONTACT, mail
from tests.test_console_http import KIM, PASSWORD, ZED, base, console, relay  # noqa: F401 - shared fixtures
from tests.test_service_e2e import rows, send
from tests.test_widget_browser import ARGS, CHROMIUM
from tests.waiting import until
from triage.service.app import Service

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")


@pytest.fixture
async def browser():  # noqa: ANN201 - a Playwright browser
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            await chromium.close()


async def signed_in(browser, service: Service, email: str = KIM):  # noqa: ANN001, ANN201
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    await page.goto(base(service) + "/")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/tickets$"))
    return page


async def test_a_mail_appears_live_and_the_agent_works_it(console, relay, browser):
    from playwright.async_api import expect

    page = await signed_in(browser, console)
    await expect(page.locator(".empty")).to_contain_text("No tickets")
    original = mail(subject="Cannot log in", message_id="<first@steelworks.example>")
    await send(console, original)
    row = page.locator(".rows .row", has_text="Cannot log in")
    await expect(row).to_be_visible()  # no reload: the inbox follows server-sent events
    await until(lambda: len(relay.messages) == 1)  # the bot's acknowledgement
    await page.keyboard.press("j")
    await page.keyboard.press("o")
    await page.wait_for_url(re.compile(r"/tickets/acme/1001$"))
    await expect(page.locator(".timeline .msg.in")).to_contain_text("password reset link")
    await expect(page.locator(".rule", has_text="technical-help").first).to_be_visible()

    await page.keyboard.press("r")
    await page.keyboard.type("Hi Tom, I have sent you a new reset link.")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator(".flash")).to_contain_text("sent to the requester")
    await until(lambda: len(relay.messages) == 2)
    answer = relay.messages[1].msg
    assert "[#1001]" in answer["Subject"]
    assert answer["In-Reply-To"] == "<first@steelworks.example>"
    assert answer["Auto-Submitted"] is None  # a person wrote it
    assert "new reset link" in answer.get_content()
    assert relay.messages[1].rcpt_tos == ["tom@steelworks.example"]

    await page.fill("#note", "Tom called too; same problem.")
    await page.click("#note-form button")
    await expect(page.locator(".timeline .msg.note")).to_contain_text("Tom called too")
    await page.select_option("#label", "technical/howto")
    await page.click("form[action$='/reclassify'] button")
    await expect(page.locator(".flash")).to_contain_text("reclassified")
    [correction] = await rows(console, "SELECT label, agent FROM corrections")
    assert correction == {"label": "technical/howto", "agent": KIM}

    await page.keyboard.press("e")  # resolve
    await expect(page.locator(".ticket-head .badge").first).to_have_text("resolved")
    await page.click("#act-close")
    await expect(page.locator(".ticket-head .badge").first).to_have_text("closed")
    events = await rows(console, "SELECT kind, rules, detail FROM events WHERE ticket = 1 AND detail LIKE ?",
                        [f"%{KIM}%"])
    kinds = [e["kind"] for e in events]
    assert kinds == ["agent-reply", "note", "reclassified", "status", "status"], kinds
    assert len(relay.messages) == 2  # a note is never sent


async def test_an_agent_approves_a_held_reply(console, relay, browser):
    from playwright.async_api import expect

    await send(console, mail(sender=CONTACT, name="Eva Strand", **BUSINESS))  # the tenant's own staff: held
    [ticket] = await rows(console, "SELECT number FROM tickets")
    page = await signed_in(browser, console)
    await page.check("input[name=held]")
    await expect(page.locator(".rows .row")).to_have_count(1)
    await page.goto(base(console) + f"/tickets/acme/{ticket['number']}")
    await expect(page.locator(".badge.held").first).to_be_visible()
    sent_before = len(relay.messages)
    await page.keyboard.press("a")
    await expect(page.locator(".flash")).to_contain_text("approved")
    await until(lambda: len(relay.messages) == sent_before + 1)
    approved = relay.messages[-1]
    assert approved.rcpt_tos == [CONTACT] and f"[#{ticket['number']}]" in approved.msg["Subject"]
    await expect(page.locator(".badge.held")).to_have_count(0)


async def test_a_phone_ticket_is_classified_and_trusted_only_when_verified(console, relay, browser):
    from playwright.async_api import expect

    page = await signed_in(browser, console)
    for verified in (True, False):
        await page.goto(base(console) + "/tickets/new")
        await page.select_option("#tenant", "acme")
        await page.fill("#email", "tom@steelworks.example")
        await page.fill("#subject", "Called about login")
        await page.fill("#text", "Tom cannot log in to the supplier portal; the password reset link has expired.")
        if verified:
            await page.check("#verified")
        await page.click("main button[type=submit]")
        await page.wait_for_url(re.compile(r"/tickets/acme/\d+$"))
        rule = "trust-agent-verified" if verified else "trust-agent-unverified"
        await expect(page.locator(".rule", has_text=rule).first).to_be_visible()
    tickets = await rows(console, "SELECT channel, trust, category FROM tickets ORDER BY id")
    assert tickets == [{"channel": "phone", "trust": "verified", "category": "technical"},
                       {"channel": "phone", "trust": "unverified", "category": "technical"}]


async def test_an_agent_of_another_tenant_gets_404(console, relay, browser):
    await send(console, mail(subject="Acme only"))
    page = await signed_in(browser, console, ZED)
    response = await page.goto(base(console) + "/tickets/acme/1001")
    assert response.status == 404
    await page.goto(base(console) + "/tickets")
    assert "Acme only" not in await page.content()


async def test_a_form_posted_without_its_csrf_token_gets_403(console, relay, browser):
    page = await signed_in(browser, console)
    await page.goto(base(console) + "/tickets/new")
    await page.evaluate("document.querySelector('main input[name=csrf]').remove()")
    await page.fill("#email", "tom@steelworks.example")
    await page.fill("#text", "Please help")
    async with page.expect_response(lambda r: r.url.endswith("/tickets/new") and r.request.method == "POST") as info:
        await page.click("main button[type=submit]")
    assert (await info.value).status == 403
    assert await rows(console, "SELECT id FROM tickets") == []


async def test_ten_wrong_passwords_in_a_row_are_rate_limited(console, relay, browser):
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    statuses = []
    for n in range(10):
        await page.goto(base(console) + "/login")
        await page.fill("#email", KIM)
        await page.fill("#password", f"wrong password {n}")
        async with page.expect_response(lambda r: r.request.method == "POST") as info:
            await page.click("button[type=submit]")
        statuses.append((await info.value).status)
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert "Too many sign-in attempts" in await page.content()


async def test_an_agent_escalates_assigns_resolves_and_reopens(console, relay, browser):
    from playwright.async_api import expect

    await send(console, mail(subject="Cannot log in"))
    page = await signed_in(browser, console)
    await page.goto(base(console) + "/tickets/acme/1001")
    await expect(page.locator(".ticket-head .badge.urgent")).to_have_count(0)
    await page.click("#act-escalate")
    await expect(page.locator(".flash")).to_contain_text("priority normal → urgent")
    await expect(page.locator(".ticket-head .badge.urgent")).to_be_visible()
    await expect(page.locator("#act-escalate")).to_have_count(0)  # nothing left to escalate
    await page.select_option("#assignee", KIM)
    await page.click("form[action$='/assign'] button")
    await expect(page.locator(".flash")).to_contain_text(f"assignee - → {KIM}")
    await expect(page.locator(".ticket-head")).to_contain_text(f"assigned to {KIM}")
    await expect(page.locator("#act-reopen")).to_have_count(0)  # an open ticket has no Reopen
    await page.click("#act-resolve")
    await expect(page.locator(".ticket-head .badge").first).to_have_text("resolved")
    await page.click("#act-reopen")
    await expect(page.locator(".flash")).to_contain_text("status resolved → open")
    await expect(page.locator(".ticket-head .badge").first).to_have_text("open")
    await expect(page.locator("#act-resolve")).to_be_visible()
    [ticket] = await rows(console, "SELECT status, priority, assignee FROM tickets")
    assert ticket == {"status": "open", "priority": "urgent", "assignee": KIM}
    events = await rows(console, "SELECT kind, rules FROM events WHERE ticket = 1 AND detail LIKE ? ORDER BY id",
                        [f"%{KIM}%"])
    assert [(e["kind"], e["rules"]) for e in events] == [
        ("escalated", '["agent-escalated"]'), ("assigned", '["agent-assigned"]'), ("status", '["agent-resolved"]'),
        ("status", '["agent-reopened"]')]
    await expect(page.locator(".audit li", has_text="agent-reopened")).to_contain_text(KIM)


async def test_signing_out_ends_the_session_and_its_cookie_is_refused_afterwards(console, relay, browser):
    from playwright.async_api import expect

    page = await signed_in(browser, console)
    [session] = [c for c in await page.context.cookies() if c["name"] == "triage_session"]
    await page.click("header.top form[action='/logout'] button")
    await page.wait_for_url(re.compile(r"/login$"))
    assert [c for c in await page.context.cookies() if c["name"] == "triage_session"] == []
    await page.context.add_cookies([session])  # a copy of the old cookie, as a stolen one would be
    await page.goto(base(console) + "/tickets")
    await page.wait_for_url(re.compile(r"/login\?next="))
    await expect(page.locator("#password")).to_be_visible()
    again = await signed_in(browser, console)  # signing in again opens a new session
    await expect(again.locator(".me .who")).to_have_text("Kim Berg")


async def test_no_page_asks_for_anything_that_is_missing_and_the_icon_is_served(console, relay, browser):
    """Every request a page makes answers 2xx/3xx, and the icon every page links (which a
    browser with a tab bar fetches; headless Chromium does not) is served: no 404 in the
    browser's console or the service's log for a missing favicon or asset."""
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    answers: list[tuple[int, str]] = []
    page.on("response", lambda r: answers.append((r.status, r.url)))
    await page.goto(base(console) + "/login")
    await page.fill("#email", KIM)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/tickets$"))
    for path in ("/tickets/new", "/reports", "/webhooks"):
        await page.goto(base(console) + path)
        icon = await page.evaluate("""async () => {
            const r = await fetch(document.querySelector("link[rel=icon]").href);
            return [r.status, r.headers.get("content-type"), (await r.text()).slice(0, 4)];
        }""")
        assert icon == [200, "image/svg+xml", "<svg"], path
    assert [(status, url) for status, url in answers if status >= 400] == []
