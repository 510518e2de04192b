"""A newcomer's first hour, as the README tells it, with real processes: the repository's own
``config/`` (copied, with only the relay and the ports changed, so the test owns its database
and a local aiosmtpd sink plays the relay), ``triage agents add`` with the password from
TRIAGE_AGENT_PASSWORD, ``triage serve``, a supplier's mail over real SMTP, and then in a real
headless Chromium: sign in, open the ticket, reply (it reaches the sink threaded), resolve, close."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servicekit import Sink, mail
from tests.test_console_browser import browser  # noqa: F401 - shared fixture
from tests.test_widget_browser import CHROMIUM
from tests.waiting import until

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium)")

REPO = Path(__file__).resolve().parents[1]
TRIAGE = Path(sys.executable).with_name("triage")  # the command bin/triage runs
AGENT, PASSWORD = "kim@desk.example", "a newcomer's long password"
SUPPLIER = "mikael.berg@nordsteel.se"  # an external admin in config/tenants/borealis.users.csv
SUPPORT = "borealis@support.localhost"


@pytest.fixture
def relay() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


def default_config(folder: Path, relay: Sink) -> Path:
    """config/ as shipped, but for the relay (the sink) and the ports (any free one)."""
    shutil.copytree(REPO / "config", folder)
    toml = folder / "triage.toml"
    text = toml.read_text()
    for old, new in (('relay_url = ""', f'relay_url = "{relay.url}"'),
                     ('listen = "127.0.0.1:8025"', 'listen = "127.0.0.1:0"'),
                     ('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')):
        assert text.count(old) == 1, f"config/triage.toml no longer has {old}"
        text = text.replace(old, new)
    toml.write_text(text)
    return folder


def triage(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRIAGE), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, **env})


def ready(proc: subprocess.Popen[str]) -> list[str]:
    """``triage serve``'s start-up lines, up to "ready"."""
    lines: list[str] = []
    while not lines or lines[-1] != "triage serve: ready\n":
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, "triage serve ended:\n" + "".join(lines)
        lines.append(line)
    return lines


def tickets(database: Path) -> list[dict]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT number, tenant, status, subject FROM tickets ORDER BY id")]


async def test_a_newcomer_adds_an_agent_serves_and_works_a_mail_in_the_browser(tmp_path, relay, browser):
    from playwright.async_api import expect

    config = default_config(tmp_path / "config", relay)
    database = tmp_path / "var" / "triage.db"  # config/'s "../var/triage.db"
    added = triage(config, "agents", "add", AGENT, "--name", "Kim Berg", TRIAGE_AGENT_PASSWORD=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added {AGENT} (Kim Berg), tenants: all"
    assert database.exists()
    listed = triage(config, "agents", "list")
    assert AGENT in listed.stdout and "tenants: all" in listed.stdout

    proc = subprocess.Popen([str(TRIAGE), "--config", str(config), "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        lines = await asyncio.to_thread(ready, proc)
        said = "".join(lines)
        assert f"relay smtp://127.0.0.1:{relay.port}" in said and "tenants borealis" in said
        console_line = next(x for x in lines if x.startswith("triage serve: console"))
        url = console_line.split()[3].rstrip("/")
        assert console_line.strip() == f"triage serve: console {url}/ (1 agent)"
        smtp_port = int(next(x for x in lines if x.startswith("triage serve: smtp")).rpartition(":")[2])

        original = mail(sender=SUPPLIER, to=SUPPORT, name="Mikael Berg", subject="Cannot log in",
                        message_id="<newcomer-1@nordsteel.se>")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail(SUPPLIER, [SUPPORT], original)
        await until(lambda: len(relay.messages) == 1, timeout=30)  # the bot's acknowledgement
        assert relay.messages[0].rcpt_tos == [SUPPLIER]
        assert tickets(database) == [{"number": 1001, "tenant": "borealis", "status": "new",
                                      "subject": "Cannot log in"}]

        page = await browser.new_page()
        page.set_default_timeout(15_000)
        await page.goto(url + "/")
        await page.wait_for_url(re.compile(r"/login$"))
        await page.fill("#email", AGENT)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/tickets$"))
        await page.click(".rows .row a:has-text('Cannot log in')")
        await page.wait_for_url(re.compile(r"/tickets/borealis/1001$"))
        await expect(page.locator(".timeline .msg.in")).to_contain_text("password reset link")
        await expect(page.locator(".ticket-head")).to_contain_text("Borealis Energy AB")

        await page.fill("#reply", "Hello Mikael, I have sent you a new reset link.")
        await page.click("#reply-form button[type=submit]")
        await expect(page.locator(".flash")).to_contain_text("sent to the requester")
        await until(lambda: len(relay.messages) == 2, timeout=30)
        answer = relay.messages[1]
        assert answer.rcpt_tos == [SUPPLIER]
        assert "[#1001]" in answer.msg["Subject"] and answer.msg["In-Reply-To"] == "<newcomer-1@nordsteel.se>"
        assert "<newcomer-1@nordsteel.se>" in answer.msg["References"]
        assert "new reset link" in answer.msg.get_content()

        await page.click("#act-resolve")
        await expect(page.locator(".ticket-head .badge").first).to_have_text("resolved")
        await page.click("#act-close")
        await expect(page.locator(".ticket-head .badge").first).to_have_text("closed")
        assert tickets(database)[0]["status"] == "closed"
    finally:
        proc.terminate()
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0 and "triage serve: stopped" in out, out
