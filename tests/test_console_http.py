"""The agent console over real HTTP against the running service (loopback, port 0): sign-in,
cookie flags, CSRF, tenant isolation, rate limits, and no 500 for anything a client sends."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from yarl import URL

from tests.servicekit import Sink, mail, write_config
from tests.test_service_e2e import rows, send
from tests.waiting import until
from triage.config import load_config
from triage.desk.accounts import Accounts
from triage.service.app import Service
from triage.store import utcnow

PASSWORD = "correct horse battery staple"
SWEDISH = ("Hej,\n\nJag kan inte logga in på leverantörsportalen. Länken för att återställa lösenordet har "
           "gått ut.\nKan ni hjälpa mig?\n\nMed vänliga hälsningar,\nTom")
WIDGET_LINE = {"text": "I cannot log in to the supplier portal, the reset link expired.", "name": "Anna",
               "email": "anna@steelworks.example", "client_id": "abcdefgh1234", "token": "", "user_hash": ""}
KIM = "kim@desk.example"  # every tenant
ZED = "zed@desk.example"  # zenith only


@pytest.fixture
def relay() -> AsyncIterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


@pytest.fixture
async def console(tmp_path: Path, relay: Sink) -> AsyncIterator[Service]:
    """The service with a relay sink and two agents: Kim (all tenants) and Zed (zenith only)."""
    async with console_service(write_config(tmp_path / "config", relay_url=relay.url)) as service:
        yield service


@asynccontextmanager
async def console_service(folder: Path) -> AsyncIterator[Service]:
    """The service of the configuration in ``folder``, with the agents Kim and Zed."""
    service = Service(load_config(folder), out=lambda line: None, retry_base=0.2)
    await service.start()

    def agents() -> None:
        accounts = Accounts(service.store, sorted(service.config.tenants))
        accounts.add(KIM, "Kim Berg", PASSWORD, None, utcnow())
        accounts.add(ZED, "Zed Ode", PASSWORD, ["zenith"], utcnow())
    await service.run_db(agents)
    try:
        yield service
    finally:
        await service.stop()


def base(service: Service) -> str:
    host, port = service.web_address
    return f"http://{host}:{port}"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


class Browser:
    """An HTTP client that keeps cookies like a browser (also for 127.0.0.1)."""

    def __init__(self, service: Service, session: aiohttp.ClientSession):
        self.base = base(service)
        self.session = session
        self.csrf = ""

    async def get(self, path: str, **kw) -> tuple[int, str, aiohttp.ClientResponse]:  # noqa: ANN003
        async with self.session.get(self.base + path, allow_redirects=False, **kw) as r:
            return r.status, await r.text(), r

    async def post(self, path: str, data: dict, **kw) -> tuple[int, str, aiohttp.ClientResponse]:  # noqa: ANN003
        async with self.session.post(self.base + path, data=data, allow_redirects=False, **kw) as r:
            return r.status, await r.text(), r

    async def login(self, email: str = KIM, password: str = PASSWORD) -> tuple[int, str, aiohttp.ClientResponse]:
        _, page, _ = await self.get("/login")
        status, text, response = await self.post("/login", {"email": email, "password": password,
                                                            "csrf": csrf_of(page)})
        if status == 303:
            _, inbox, _ = await self.get("/tickets")
            self.csrf = csrf_of(inbox)
        return status, text, response


@pytest.fixture
async def client(console: Service) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Browser(console, session)


async def test_root_and_pages_need_sign_in(console, client):
    status, _, response = await client.get("/")
    assert (status, response.headers["Location"]) == (302, "/login")
    for path in ("/tickets", "/tickets/acme/1001", "/tickets/new", "/reports"):
        status, _, response = await client.get(path)
        assert status == 303 and response.headers["Location"].startswith("/login?next=")
    status, _, _ = await client.post("/tickets/new", {"tenant": "acme"})
    assert status == 401


async def test_login_form_wrong_password_and_session_cookie_flags(console, client):
    status, page, _ = await client.get("/login")
    assert status == 200 and 'name="email"' in page and 'name="password"' in page
    status, page, _ = await client.login(password="not the password")
    assert status == 401 and 'name="password"' in page and "Wrong email address or password" in page
    status, _, response = await client.login()
    assert status == 303 and response.headers["Location"] == "/tickets"
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("triage_session="))
    assert "HttpOnly" in cookie and re.search(r"SameSite=(Lax|Strict)", cookie) and "Path=/" in cookie
    status, _, response = await client.get("/")
    assert (status, response.headers["Location"]) == (302, "/tickets")


async def test_a_forged_or_tampered_session_cookie_is_refused(console, client):
    await client.login()
    jar = client.session.cookie_jar
    value = next(c.value for c in jar if c.key == "triage_session")
    data, _, mac = value.partition(".")
    forged = data[:-2] + ("AA" if data[-2:] != "AA" else "BB") + "." + mac
    jar.clear()
    jar.update_cookies({"triage_session": forged}, URL(client.base))
    status, _, _ = await client.get("/tickets")
    assert status == 303  # back to the sign-in page


async def test_a_new_password_ends_open_sessions(console, client):
    await client.login()
    assert (await client.get("/tickets"))[0] == 200
    await console.run_db(Accounts(console.store, ["acme", "zenith"]).set_password, KIM, "another long password")
    assert (await client.get("/tickets"))[0] == 303


async def test_signing_out_ends_that_session_only(console, client):
    await client.login()
    old = next(c.value for c in client.session.cookie_jar if c.key == "triage_session")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other_session:
        other = Browser(console, other_session)  # the same agent on another machine
        await other.login()
        status, _, response = await client.post("/logout", {"csrf": client.csrf})
        assert (status, response.headers["Location"]) == (303, "/login")
        client.session.cookie_jar.update_cookies({"triage_session": old}, URL(client.base))
        status, _, response = await client.get("/tickets")
        assert status == 303 and response.headers["Location"].startswith("/login?next=")
        status, _, _ = await client.post("/tickets/new", {"csrf": client.csrf, "tenant": "acme"})
        assert status == 401
        assert (await other.get("/tickets"))[0] == 200
    [ended] = await rows(console, "SELECT expires_at FROM console_signouts")
    assert ended["expires_at"] > utcnow().isoformat()


async def test_posts_without_or_with_a_wrong_csrf_token_are_refused(console, client):
    await client.login()
    for data in ({"tenant": "acme", "email": "a@b.example", "text": "help"},
                 {"tenant": "acme", "email": "a@b.example", "text": "help", "csrf": "x" * 43}):
        status, text, _ = await client.post("/tickets/new", data)
        assert status == 403 and "security token" in text
    assert await rows(console, "SELECT * FROM tickets") == []
    status, _, _ = await client.post("/logout", {})
    assert status == 403
    status, _, response = await client.post("/login", {"email": KIM, "password": PASSWORD})
    assert status == 403 and "triage_session" not in response.cookies


async def test_an_agent_sees_only_their_tenants(console, client):
    await send(console, mail(subject="Acme login problem"))
    await client.login(ZED)
    status, _, _ = await client.get("/tickets/acme/1001")
    assert status == 404
    status, _, _ = await client.post("/tickets/acme/1001/resolve", {"csrf": client.csrf})
    assert status == 404
    status, page, _ = await client.get("/tickets?tenant=acme")
    assert status == 200 and "Acme login problem" not in page
    status, page, _ = await client.get("/tickets?q=login")
    assert "Acme login problem" not in page
    [ticket] = await rows(console, "SELECT status FROM tickets")
    assert ticket["status"] == "new"


async def test_ten_wrong_passwords_are_rate_limited(console, client):
    statuses = [(await client.login(password=f"wrong {n}"))[0] for n in range(10)]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    status, _, response = await client.login()  # even the right password waits now
    assert status == 429 and int(response.headers["Retry-After"]) > 0


async def test_malformed_input_never_gives_a_500(console, client):
    await send(console, mail())
    await client.login()
    for path in ('/tickets?q="unclosed', "/tickets?q=NOT", "/tickets?q=a%20OR", "/tickets?q=((((((((((a",
                 "/tickets?q=*", "/tickets?q=" + "x" * 5000, "/tickets?status=bogus&priority=%00&sort=drop",
                 "/tickets?q=-", "/tickets?q=subject:x", "/tickets/acme/99999999", "/tickets/nope/1001",
                 "/reports?since=2026-13-45", "/reports?since=yesterday", "/reports/nope.csv",
                 "/tickets/acme/1001?x=%ff"):
        status, text, _ = await client.get(path)
        assert status < 500, (path, status, text[:300])
    status, text, _ = await client.get('/tickets?q="unclosed')
    assert "closing quote" in text
    for action, data in (("nope", {}), ("reclassify", {"label": "no/such"}), ("assign", {"assignee": "x" * 9000}),
                         ("reply", {"text": ""}), ("note", {"text": "   "}), ("approve", {})):
        status, _, _ = await client.post(f"/tickets/acme/1001/{action}", {"csrf": client.csrf, **data})
        assert status in (303, 404), (action, status)
    status, _, _ = await client.post("/tickets/new", {"csrf": client.csrf, "tenant": "acme", "email": "no address",
                                                      "text": "x"})
    assert status == 400
    async with client.session.post(client.base + "/tickets/new", data=b"\xff\xfe" * 10,
                                   headers={"Content-Type": "multipart/form-data; boundary=zz"}) as r:
        assert r.status < 500


async def test_inbox_filters_held_overdue_and_search(console, client):
    from tests.servicekit import BUSINESS, CONTACT, OTHER_SUPPORT

    await send(console, mail(subject="Cannot log in"))
    await send(console, mail(sender=CONTACT, name="Eva Strand", **BUSINESS))  # held for review
    await send(console, mail(subject="Zenith portal down", to=OTHER_SUPPORT,
                             body="Hello,\n\nThe portal shows error 500 on every page.\n\nTom"), [OTHER_SUPPORT])
    await send(console, mail(subject="Inloggning", body=SWEDISH))
    # #1001 of acme was filed five hours ago: past acme's 4 working hours (support all day)
    await console.run_db(lambda: console.store.db.execute(
        "UPDATE tickets SET created_at = datetime('now', '-5 hours') || '+00:00' WHERE number = 1001 "
        "AND tenant = 'acme'"))
    await client.login()

    async def subjects(query: str) -> list[str]:
        status, page, _ = await client.get("/tickets?" + query)
        assert status == 200
        return re.findall(r'<span class="subject">([^<]*)</span>', page)

    everything = ["Inloggning", "Zenith portal down", "Question about RFQ 2024-117", "Cannot log in"]
    assert await subjects("") == everything  # newest first
    assert await subjects("tenant=zenith") == ["Zenith portal down"]
    assert await subjects("held=1") == ["Question about RFQ 2024-117"]
    assert await subjects("overdue=1") == ["Cannot log in"]
    assert await subjects("label=business/question") == ["Question about RFQ 2024-117"]
    assert await subjects("status=closed") == []
    assert await subjects("q=%22reset+link%22") == ["Cannot log in"]
    assert await subjects("q=volumes+OR+expired") == ["Question about RFQ 2024-117", "Cannot log in"]
    assert await subjects("channel=widget") == []
    assert await subjects("language=sv") == ["Inloggning"]
    assert await subjects("language=en") == everything[1:]
    assert await subjects("priority=urgent") == []
    assert await subjects("sort=urgent") == everything  # nothing urgent: newest first
    for action, data in (("escalate", {}), ("assign", {"assignee": KIM})):  # the oldest ticket
        status, _, _ = await client.post(f"/tickets/acme/1001/{action}", {"csrf": client.csrf, **data})
        assert status == 303
    assert await subjects("priority=urgent") == ["Cannot log in"]
    assert await subjects("priority=normal") == everything[:3]
    assert await subjects("sort=urgent") == ["Cannot log in", *everything[:3]]  # most urgent first, then newest
    assert await subjects(f"assignee={KIM}") == ["Cannot log in"]
    assert await subjects("assignee=none&sort=urgent") == everything[:3]
    assert await subjects("assignee=nobody@desk.example") == []
    status, page, _ = await client.post("/tickets/acme/1001/reply", {"csrf": client.csrf, "text": "On it."})
    assert await subjects("overdue=1") == []  # answered


async def test_a_reply_or_note_posted_twice_from_one_page_is_done_once(console, client):
    """A double click sends the form twice at once, and a browser may resend it: both carry the
    page's token, so the requester gets one mail and the trail one note. The next page is a new
    act, and its reply goes out."""
    await send(console, mail(subject="Cannot log in"))
    await client.login()

    async def page() -> tuple[str, str]:
        _, html, _ = await client.get("/tickets/acme/1001")
        once = re.search(r'name="once" value="([^"]+)"', html)
        assert once, "the ticket page's forms carry no token"
        return csrf_of(html), once.group(1)

    csrf, once = await page()
    reply = {"csrf": csrf, "once": once, "text": "Hi Tom, the link works again."}
    note = {"csrf": csrf, "once": once, "text": "Told him about the reset link."}
    answers = await asyncio.gather(*(client.post("/tickets/acme/1001/reply", reply) for _ in range(2)),
                                   *(client.post("/tickets/acme/1001/note", note) for _ in range(2)))
    assert [status for status, _, _ in answers] == [303] * 4
    said = [unquote(r.cookies["triage_said"].value) for _, _, r in answers]
    assert sorted(said[:2]) == ["already sent to the requester (the same reply arrived twice)",
                                "sent to the requester (email to tom@steelworks.example)"]
    assert sorted(said[2:]) == ["note already kept (the same note arrived twice)", "note kept internal"]
    status, _, _ = await client.post("/tickets/acme/1001/reply", reply)  # the browser resends the form
    assert status == 303

    async def trail() -> list[str]:
        return [e["kind"] for e in await rows(console, "SELECT kind FROM events WHERE kind IN ('agent-reply', 'note')")]

    assert sorted(await trail()) == ["agent-reply", "note"]
    outgoing = "SELECT text FROM messages WHERE direction = 'out' AND text LIKE '%link works again%'"
    assert len(await rows(console, outgoing)) == 1

    csrf, later = await page()
    assert later != once
    status, _, _ = await client.post("/tickets/acme/1001/reply", {**reply, "csrf": csrf, "once": later})
    assert status == 303 and sorted(await trail()) == ["agent-reply", "agent-reply", "note"]
    assert len(await rows(console, outgoing)) == 2


async def test_a_reply_to_a_widget_ticket_goes_into_the_conversation(console, client):
    async with client.session.post(client.base + "/widget/api/acme/messages", json=WIDGET_LINE) as r:
        assert r.status == 200
        token = (await r.json())["token"]
    # the line is filed by the writer; on a busy machine the answer may come before the ticket
    await until(lambda: rows(console, "SELECT id FROM tickets"))
    await client.login()
    status, _, _ = await client.post("/tickets/acme/1001/reply", {"csrf": client.csrf, "text": "Hi Anna, done."})
    assert status == 303
    async with client.session.get(client.base + "/widget/api/acme/conversation", params={"token": token}) as r:
        lines = (await r.json())["messages"]
    assert lines[-1]["text"] == "Hi Anna, done." and lines[-1]["author"] == "agent"
