"""Attacks on the help widget's HTTP API, made the way an outsider would make them: raw
requests over loopback to the real running service (no browser, no well-behaved client).

Nothing an outsider sends may answer 500 (or a 503 "send it again" that can never succeed),
grow the database without bound, or stay unanswered: every refusal is a 4xx JSON error."""
from __future__ import annotations

import asyncio
import json
import socket
import uuid

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.test_widget_api import ANNA, LOGIN, PORTAL, SECRET, Client, rows, service, session  # noqa: F401
from triage.core.trust import widget_hash
from triage.service.app import Service

EVIL = "https://evil.example"


async def table_sizes(service: Service) -> dict[str, int]:
    """Rows in every table of the database (full-text shadow tables included)."""
    def count() -> dict[str, int]:
        db = service.store.db
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    return await service.run_db(count)


def base(service: Service) -> str:
    host, port = service.web_address
    return f"http://{host}:{port}/widget/api/acme"


def body(**changes: object) -> dict:
    line = {"text": LOGIN, "email": ANNA, "name": "Anna", "client_id": uuid.uuid4().hex, "token": "",
            "user_hash": widget_hash(SECRET, ANNA)}
    line.update(changes)
    return line


async def raw_post(session: aiohttp.ClientSession, url: str, data: bytes,
                   headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with session.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        return r.status, await r.json()


# -- 1. the audit trail cannot be flooded -------------------------------------------------------

async def test_a_flood_of_refused_requests_writes_a_bounded_number_of_rows(service, session):
    before = await table_sizes(service)
    url = f"{base(service)}/messages"

    async def refused(i: int) -> int:
        if i % 3 == 0:  # a foreign page
            async with session.post(url, json=body(), headers={"Origin": EVIL}) as r:
                return r.status
        if i % 3 == 1:  # too long for the tenant (500 bytes), well under the hard cap
            async with session.post(url, json=body(text="x" * 600), headers={"Origin": PORTAL}) as r:
                return r.status
        async with session.options(url, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}) as r:
            return r.status

    statuses = []
    for start in range(0, 330, 30):
        statuses += await asyncio.gather(*(refused(i) for i in range(start, start + 30)))
    assert set(statuses) <= {403, 413, 429}, set(statuses)
    assert statuses.count(403) >= 200  # each refused as it deserves
    after = await table_sizes(service)
    grown = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    assert set(grown) <= {"events"}, grown
    assert grown.get("events", 0) <= 4, grown  # one summary per source, rule and window
    events = await rows(service, "SELECT kind, rules, detail FROM events")
    counts = {json.loads(e["rules"])[0]: json.loads(e["detail"]).get("count", 1) for e in events}
    assert set(counts) == {"widget-origin-refused", "widget-too-large"}, events


async def test_the_refusal_summary_carries_the_count(service, session):
    url = f"{base(service)}/messages"
    for _ in range(25):
        async with session.post(url, json=body(), headers={"Origin": EVIL}) as r:
            assert r.status == 403
    await service.widget.refusals.flush()  # what a stop or the end of the window does
    [event] = await rows(service, "SELECT rules, detail FROM events")
    detail = json.loads(event["detail"])
    assert json.loads(event["rules"]) == ["widget-origin-refused"]
    assert detail["count"] == 25 and detail["source"] == "127.0.0.1" and detail["origin"] == EVIL


async def test_refusal_windows_end_and_many_sources_share_one_summary():
    """The summariser alone, on a clock the test moves: a new window is a new event, the old
    one gets its final count, and sources past max_sources are counted together."""
    from channels.widget_limits import MANY, Refusals

    events: dict[int, dict] = {}
    now = [0.0]

    async def write(kind: str, rules: list[str], detail: dict) -> int:
        events[len(events) + 1] = {"rules": rules, **detail}
        return len(events)

    async def update(event: int, detail: dict) -> None:
        events[event].update(detail)

    refusals = Refusals(write, update, window=60, max_sources=3, clock=lambda: now[0])
    for _ in range(10):
        await refusals.note("10.0.0.1", "origin-refused", "widget-origin-refused", {})
    now[0] = 61
    await refusals.note("10.0.0.1", "origin-refused", "widget-origin-refused", {})
    assert [e["count"] for e in events.values()] == [10, 1]
    for i in range(50):  # fifty new addresses in one window
        await refusals.note(f"10.0.1.{i}", "origin-refused", "widget-origin-refused", {})
    await refusals.flush()
    assert len(events) == 2 + 2 + 1  # two more sources, then one shared summary
    assert events[5]["source"] == MANY and events[5]["count"] == 48


async def test_a_refusal_is_answered_even_when_its_event_cannot_be_written(service, session, monkeypatch):
    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(service.store, "add_event", broken)
    async with session.post(f"{base(service)}/messages", json=body(), headers={"Origin": EVIL}) as r:
        assert r.status == 403 and (await r.json())["rule"] == "widget-origin-refused"
    assert "disk full" in service.last_error
    monkeypatch.undo()
    async with session.post(f"{base(service)}/messages", json=body(), headers={"Origin": EVIL}) as r:
        assert r.status == 403
    assert len(await rows(service, "SELECT id FROM events")) == 1  # the window opened again


# -- 2. malformed requests are 4xx JSON errors naming the problem -------------------------------

MALFORMED = [
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, "JSON"),  # under the 64 KiB cap: read and parsed
    ("deep object", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "JSON"),
    ("a list", b"[1, 2]", "JSON object"),
    ("a number", b"12", "JSON object"),
    ("not UTF-8", b'{"text": "\xff\xfe hello", "email": "a@b.example"}', "UTF-8"),
    ("latin-1", '{"text": "hej då", "email": "a@b.example"}'.encode("latin-1"), "UTF-8"),
    ("huge number", b'{"text": ' + b"9" * 5000 + b"}", "JSON"),
    ("huge float", b'{"text": 1e999999}', "text"),
    ("empty", b"", "JSON"),
    ("NaN", b'{"text": NaN}', "JSON"),
]


async def test_malformed_bodies_get_a_400_naming_the_problem(service, session):
    for name, data, says in MALFORMED:  # one service for all: starting one costs seconds
        status, answer = await raw_post(session, f"{base(service)}/messages", data)
        assert status == 400 and answer["code"] == "bad-request" and says in answer["detail"], (name, answer)
    assert (await table_sizes(service))["messages"] == 0


FIELDS = [
    ("text is a list", {"text": ["hello"]}, "text"),
    ("email is a number", {"email": 12}, "email"),
    ("name is an object", {"name": {"first": "A"}}, "name"),
    ("token is null", {"token": None}, "token"),
    ("client_id is true", {"client_id": True}, "client_id"),
    ("user_hash is a float", {"user_hash": 1.5}, "user_hash"),
    ("lone surrogate in text", {"text": "help \ud800 me"}, "text"),
    ("lone surrogate in email", {"email": "anna\udfff@steelworks.example"}, "email"),
    ("lone surrogate in name", {"name": "An\ud83dna"}, "name"),
    ("CRLF in name", {"name": "Anna\r\nBcc: victim@evil.example"}, "name"),
    ("CRLF in email", {"email": "anna@steelworks.example\r\nBcc: victim@evil.example"}, "email"),
    ("NUL in text", {"text": "hello\x00world"}, "text"),
    ("long token", {"token": "t" * 5000}, "token"),
    ("token with spaces", {"token": "a b c"}, "token"),
    ("long name", {"name": "n" * 5000}, "name"),
]


async def test_wrong_field_types_and_values_get_a_400_naming_the_field(service, session):
    for name, change, field in FIELDS:
        data = json.dumps(body(**change)).encode()  # json.dumps escapes a lone surrogate as \ud800
        status, answer = await raw_post(session, f"{base(service)}/messages", data, {"Origin": PORTAL})
        assert status == 400 and answer["code"] == "bad-request" and field in answer["detail"], (name, answer)
    assert (await table_sizes(service))["messages"] == 0


async def test_a_strange_event_position_is_a_400_not_a_crash(service, session):
    client = Client(service, session)
    await client.post()
    url = f"{base(service)}/events"
    for after in ("²", "٣", "1" * 40, "-1", "1e5", "\u00b9\u00b2"):  # "²".isdigit() is True
        async with session.get(url, params={"token": client.token, "after": after}) as r:
            assert r.status == 400 and "after" in (await r.json())["detail"], after
        async with session.get(url, params={"token": client.token}, headers={"Last-Event-ID": after}) as r:
            assert r.status == 400 and "Last-Event-ID" in (await r.json())["detail"], after


async def test_strange_tokens_in_the_query_are_4xx(service, session):
    for path in ("conversation", "events"):
        for token in ("\ud800", "x" * 5_000, "a\r\nb", "%ff%fe"):
            async with session.get(f"{base(service)}/{path}", params={"token": token}) as r:
                assert r.status in (400, 404), (path, token, r.status)
                assert "error" in await r.json()


async def test_the_transcript_endpoint_is_checked_the_same_way(service, session):
    url = f"{base(service)}/transcript"
    for data, says in ((b"[" * 30_000, "JSON"), (b'{"token": ["x"]}', "token"), (b"\xff", "UTF-8"),
                       (b'{"token": "\\ud800"}', "token")):
        status, answer = await raw_post(session, url, data)
        assert status == 400 and says in answer["detail"], (data[:20], answer)


async def test_a_chunked_body_past_the_limit_is_refused_without_being_read_whole(service, session):
    async def chunks():  # no Content-Length: the server cannot know the size in advance
        yield b'{"text": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    for path in ("messages", "transcript"):
        async with session.post(f"{base(service)}/{path}", data=chunks(),
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413, (path, r.status)
            assert (await r.json())["rule"] == "widget-too-large"


# Text an attacker picks: lone surrogates, control characters, digits of other scripts, anything.
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)  # st.characters() never draws one
ANY_TEXT = st.text(st.one_of(LONE_SURROGATE, st.characters(categories=["Cc"]),
                             st.characters(categories=["Nd", "No"]), st.characters()), min_size=1, max_size=60)
ANY_VALUE = st.one_of(ANY_TEXT, ANY_TEXT, ANY_TEXT, st.integers(), st.floats(), st.none(), st.booleans(),
                      st.lists(ANY_TEXT, max_size=3))


VALID = body(client_id="fuzz-client-0001")


def one_field_spoiled() -> st.SearchStrategy[bytes]:
    """A valid line with one field replaced: the bad field must get past the others' checks."""
    return st.sampled_from(sorted(VALID)).flatmap(
        lambda name: ANY_VALUE.map(lambda value: json.dumps({**VALID, name: value}).encode()))


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
                 lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    one_field_spoiled(), one_field_spoiled(),
))
@example(payload=json.dumps({**VALID, "text": "help \ud800"}).encode())  # found by hand before: a 500
def test_fuzzed_bodies_never_get_a_5xx_and_never_grow_the_database_unbounded(widget_target, payload):
    url, loop, counter = widget_target

    async def one() -> int:
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                assert r.content_type == "application/json"
                return r.status

    status = loop.run_until_complete(one())
    counter.append(status)
    assert status < 500, payload


@pytest.fixture(scope="module")
def widget_target(tmp_path_factory):  # noqa: ANN201
    """One running service for all fuzz examples (hypothesis calls the test many times)."""
    from tests.test_widget_api import widget_config
    from triage.config import load_config

    loop = asyncio.new_event_loop()
    svc = Service(load_config(widget_config(tmp_path_factory.mktemp("fuzz") / "config")), out=lambda line: None)
    loop.run_until_complete(svc.start())
    statuses: list[int] = []
    try:
        yield f"{base(svc)}/messages", loop, statuses
        sizes = loop.run_until_complete(table_sizes(svc))
        accepted = statuses.count(200)
        assert sizes["messages"] <= 2 * accepted and sizes["events"] <= 12 * accepted + 10, (sizes, accepted)
    finally:
        loop.run_until_complete(svc.stop())
        loop.close()


# -- 6. the event stream, the demo page -------------------------------------------------------

async def test_one_source_cannot_hold_unbounded_event_streams_open(service, session):
    client = Client(service, session)
    await client.post()
    url = f"{base(service)}/events?token={client.token}"
    held: list[aiohttp.ClientResponse] = []
    try:
        statuses = []
        for _ in range(12):
            r = await session.get(url)
            statuses.append(r.status)
            if r.status == 200:
                held.append(r)
            else:
                assert (await r.json())["rule"] == "widget-streams-limited"
                r.release()
        assert statuses.count(200) == service.widget.streams.per_source
        assert 429 in statuses
    finally:
        for r in held:
            r.close()
    for _ in range(100):  # closed streams free their places
        if service.widget.streams.open("127.0.0.1") == 0:
            break
        await asyncio.sleep(0.05)
    async with session.get(url) as r:
        assert r.status == 200


async def test_the_demo_page_does_not_list_the_tenants_nor_reflect_markup(service, session):
    host, port = service.web_address
    async with session.get(f"http://{host}:{port}/widget/demo", params={"tenant": "<script>x</script>"}) as r:
        text = await r.text()
        assert r.status == 404 and "acme" not in text and "zenith" not in text and "<script>" not in text
    async with session.get(f"http://{host}:{port}/widget/demo",
                           params={"tenant": "acme", "email": '"><script>alert(1)</script>',
                                   "name": "{{tenant}}", "user_token": '"onload="x'}) as r:
        page = await r.text()
        assert r.status == 200 and "<script>alert(1)" not in page and 'onload="x' not in page
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


async def test_a_header_with_crlf_does_not_split_the_response(service):
    """A raw socket, since aiohttp's client refuses to send such a header at all."""
    host, port = service.web_address

    def send(request: bytes) -> bytes:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    loop = asyncio.get_running_loop()
    for request in (b"GET /widget/api/acme/status HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\rSet-Cookie: x=1"
                    b"\r\nConnection: close\r\n\r\n",
                    b"GET /widget/api/acme/status HTTP/1.1\r\nHost: x\r\nX-A\r\nB: 1\r\nConnection: close\r\n\r\n"):
        raw = await loop.run_in_executor(None, send, request)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert raw.split(b"\r\n", 1)[0].split(b" ")[1] == b"400" and b"Set-Cookie" not in head, raw[:300]
