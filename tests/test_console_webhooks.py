"""The console's Webhooks page in a real headless Chromium against the running service, with a
local stand-in receiver (tests/test_webhooks.py's ``Receiver``) that fails on demand: counts,
the last error and the failed call per receiver; Redeliver sends the same Idempotency-Key again
and is an event with the agent's address; an agent of another tenant sees none of it and
cannot redeliver it."""
from __future__ import annotations

import json
import re

import pytest

from tests.servicekit import mail
from tests.test_console_browser import browser, signed_in  # noqa: F401 - shared fixture
from tests.test_console_http import KIM, ZED, base, console_service, relay  # noqa: F401 - shared fixtures
from tests.test_service_e2e import rows, send
from tests.test_webhooks import HOOK_SECRET, SECRET, Receiver, configure, readme_verify
from tests.test_widget_browser import CHROMIUM
from tests.test_widget_ui import shots
from tests.waiting import until

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")


@pytest.fixture
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.close()


async def test_an_agent_sees_a_failed_call_and_redelivers_it(tmp_path, relay, receiver, browser, monkeypatch):
    from playwright.async_api import expect

    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("TEST_PORTAL_SECRET", SECRET)
    receiver.answers = [400]  # the first call is refused for good; the others are answered 200
    folder = configure(tmp_path / "config", relay, receiver, hook_port=receiver.port)
    async with console_service(folder) as service:
        await send(service, mail(subject="Cannot log in"))
        await until(lambda: len(receiver.calls) == 3)  # created (400), decided, replied
        [failed] = await rows(service, "SELECT id, idempotency_key FROM webhook_deliveries WHERE status = 'failed'")

        page = await signed_in(browser, service)
        await page.click("nav a:has-text('Webhooks')")
        await page.wait_for_url(re.compile(r"/webhooks$"))
        crm = page.locator("[data-receiver=crm]")
        await expect(crm.locator(".count-failed")).to_have_text("1")
        await expect(crm.locator(".count-delivered")).to_have_text("2")
        await expect(crm.locator(".last-error")).to_contain_text("HTTP 400")
        await expect(crm.locator(f"#delivery-{failed['id']}")).to_contain_text("created")
        await expect(page.locator("[data-receiver='portal:acme'] .count-failed")).to_have_text("0")
        assert HOOK_SECRET not in await page.content()
        await page.screenshot(path=str(shots(tmp_path) / "console-webhooks.png"), full_page=True)

        await crm.locator(f"#delivery-{failed['id']} button").click()
        await expect(page.locator(".flash")).to_contain_text("queued again")
        await until(lambda: len(receiver.calls) == 4)
        again = receiver.calls[3]
        assert again["headers"]["Idempotency-Key"] == failed["idempotency_key"] and again["status"] == 200
        assert readme_verify()(HOOK_SECRET.encode(), again["headers"], again["body"])
        assert json.loads(again["body"])["event"] == "created"
        await until(lambda: service.store.db.execute(
            "SELECT status FROM webhook_deliveries WHERE id = ?", [failed["id"]]).fetchone()[0] == "sent")
        await page.reload()
        await expect(crm.locator(".count-failed")).to_have_text("0")
        await expect(crm.locator(".count-delivered")).to_have_text("3")
        [event] = await rows(service, "SELECT rules, detail FROM events WHERE kind = 'webhook-redelivered'")
        assert json.loads(event["rules"]) == ["agent-redelivered"]
        assert json.loads(event["detail"]) == {"agent": KIM, "delivery": failed["id"]}


async def test_an_agent_of_another_tenant_sees_no_deliveries_and_cannot_redeliver(tmp_path, relay, receiver,
                                                                                    browser, monkeypatch):
    from playwright.async_api import expect

    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("TEST_PORTAL_SECRET", SECRET)
    receiver.answers = [400]
    folder = configure(tmp_path / "config", relay, receiver, hook_port=receiver.port)
    async with console_service(folder) as service:
        await send(service, mail(subject="Cannot log in"))  # an acme ticket
        await until(lambda: len(receiver.calls) == 3)
        [failed] = await rows(service, "SELECT id FROM webhook_deliveries WHERE status = 'failed'")
        page = await signed_in(browser, service, ZED)  # zenith only
        await page.goto(base(service) + "/webhooks")
        crm = page.locator("[data-receiver=crm]")  # it serves every tenant, zenith too
        await expect(crm.locator(".count-failed")).to_have_text("0")
        await expect(crm.locator(".count-delivered")).to_have_text("0")
        await expect(crm.locator(".last-error")).to_have_count(0)
        await expect(page.locator("[data-receiver='portal:acme']")).to_have_count(0)
        assert "HTTP 400" not in await page.content()
        said = await page.evaluate("""async (id) => {
            const csrf = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch(`/webhooks/${id}/redeliver`, {method: 'POST', headers: {'X-CSRF-Token': csrf}});
            return [r.url, await r.text()];  // the redirect followed: the page with the flash
        }""", failed["id"])
        assert said[0].endswith("/webhooks") and f"not done: no delivery {failed['id']}" in said[1]
        [row] = await rows(service, "SELECT status FROM webhook_deliveries WHERE id = ?", [failed["id"]])
        assert row["status"] == "failed" and len(receiver.calls) == 3
        without = await page.evaluate("""async (id) => (await fetch(`/webhooks/${id}/redeliver`,
            {method: 'POST'})).status""", failed["id"])
        assert without == 403  # no CSRF token
