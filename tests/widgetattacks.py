"""Attacks on the help widget's HTTP API, written once and replayed against any running
service: raw requests over loopback, the way an outsider would make them (no browser, no
well-behaved client).

Nothing an outsider sends may answer 500 (or a 503 "send it again" that can never succeed),
grow the database without bound, or stay unanswered: every refusal is a 4xx JSON error.
tests/test_widget_attacks.py runs each against the service in the test's event loop,
tests/test_serve_attacks.py all of them against ``triage serve`` on the eval config.
"""
from __future__ import annotations

import asyncio
import json
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.widget_limits import Streams
from tests.mailattacks import Query
from triage.core.trust import widget_hash

EVIL = "https://evil.example"
ANNA = "anna@steelworks.example"
LOGIN = "I cannot log in to the supplier portal, the password reset link has expired. Can you help?"


@dataclass
class Ctx:
    """A running service with the widget on for ``tenant`` (widget_max_message_size 500)."""

    web: str  # http://host:port
    tenant: str
    other_tenant: str  # another tenant's slug: the demo page must not name it
    secret: str  # the tenant's widget secret (user_hash)
    origin: str  # one of the tenant's widget_origins
    query: Query
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"{self.web}/widget/api/{self.tenant}"

    def body(self, **changes: object) -> dict:
        line = {"text": LOGIN, "email": ANNA, "name": "Anna", "client_id": uuid.uuid4().hex, "token": "",
                "user_hash": widget_hash(self.secret, ANNA)}
        line.update(changes)
        return line

    async def conversation(self) -> str:
        """A well-behaved first line: the token of the conversation it opened."""
        async with self.session.post(f"{self.base}/messages", json=self.body(), headers={"Origin": self.origin}) as r:
            assert r.status == 200, await r.text()
            return (await r.json())["token"]

    async def table_sizes(self) -> dict[str, int]:
        """Rows in every table of the database (full-text shadow tables included)."""
        names = [r["name"] for r in await self.query("SELECT name FROM sqlite_master WHERE type = 'table'", [])]
        sizes = {}
        for name in names:
            [row] = await self.query(f'SELECT count(*) AS n FROM "{name}"', [])
            sizes[name] = row["n"]
        return sizes

    async def raw_post(self, url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        async with self.session.post(url, data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})}) as r:
            assert r.content_type == "application/json", (r.status, await r.text())
            return r.status, await r.json()


# -- 1. the audit trail cannot be flooded -------------------------------------------------------

async def attack_flood_of_refused_requests(c: Ctx) -> None:
    """330 refused requests (foreign page, too long, foreign preflight) add at most one event
    per source, rule and window. First of a replay: it needs the refusal windows unopened."""
    before = await c.table_sizes()
    [last] = await c.query("SELECT coalesce(max(id), 0) AS id FROM events", [])
    url = f"{c.base}/messages"

    async def refused(i: int) -> int:
        if i % 3 == 0:  # a foreign page
            async with c.session.post(url, json=c.body(), headers={"Origin": EVIL}) as r:
                return r.status
        if i % 3 == 1:  # too long for the tenant (500 bytes), well under the hard cap
            async with c.session.post(url, json=c.body(text="x" * 600), headers={"Origin": c.origin}) as r:
                return r.status
        async with c.session.options(url, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}) as r:
            return r.status

    statuses = []
    for start in range(0, 330, 30):
        statuses += await asyncio.gather(*(refused(i) for i in range(start, start + 30)))
    assert set(statuses) <= {403, 413, 429}, set(statuses)
    assert statuses.count(403) >= 200  # each refused as it deserves
    after = await c.table_sizes()
    grown = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    assert set(grown) <= {"events"}, grown
    assert grown.get("events", 0) <= 4, grown  # one summary per source, rule and window
    events = await c.query("SELECT kind, rules, detail FROM events WHERE id > ?", [last["id"]])
    counts = {json.loads(e["rules"])[0]: json.loads(e["detail"]).get("count", 1) for e in events}
    assert set(counts) == {"widget-origin-refused", "widget-too-large"}, events


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


async def attack_malformed_bodies(c: Ctx) -> None:
    before = (await c.table_sizes())["messages"]
    for name, data, says in MALFORMED:
        status, answer = await c.raw_post(f"{c.base}/messages", data)
        assert status == 400 and answer["code"] == "bad-request" and says in answer["detail"], (name, answer)
    assert (await c.table_sizes())["messages"] == before


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


async def attack_wrong_field_types_and_values(c: Ctx) -> None:
    before = (await c.table_sizes())["messages"]
    for name, change, field in FIELDS:
        data = json.dumps(c.body(**change)).encode()  # json.dumps escapes a lone surrogate as \ud800
        status, answer = await c.raw_post(f"{c.base}/messages", data, {"Origin": c.origin})
        assert status == 400 and answer["code"] == "bad-request" and field in answer["detail"], (name, answer)
    assert (await c.table_sizes())["messages"] == before


async def attack_strange_event_position(c: Ctx) -> None:
    token = await c.conversation()
    url = f"{c.base}/events"
    for after in ("²", "٣", "1" * 40, "-1", "1e5", "\u00b9\u00b2"):  # "²".isdigit() is True
        async with c.session.get(url, params={"token": token, "after": after}) as r:
            assert r.status == 400 and "after" in (await r.json())["detail"], after
        async with c.session.get(url, params={"token": token}, headers={"Last-Event-ID": after}) as r:
            assert r.status == 400 and "Last-Event-ID" in (await r.json())["detail"], after


async def attack_strange_tokens_in_the_query(c: Ctx) -> None:
    for path in ("conversation", "events"):
        for token in ("\ud800", "x" * 5_000, "a\r\nb", "%ff%fe"):
            async with c.session.get(f"{c.base}/{path}", params={"token": token}) as r:
                assert r.status in (400, 404), (path, token, r.status)
                assert "error" in await r.json()


async def attack_the_transcript_endpoint(c: Ctx) -> None:
    url = f"{c.base}/transcript"
    for data, says in ((b"[" * 30_000, "JSON"), (b'{"token": ["x"]}', "token"), (b"\xff", "UTF-8"),
                       (b'{"token": "\\ud800"}', "token")):
        status, answer = await c.raw_post(url, data)
        assert status == 400 and says in answer["detail"], (data[:20], answer)


async def attack_chunked_body_past_the_limit(c: Ctx) -> None:
    """No Content-Length: the server cannot know the size in advance, and must not read it whole."""
    async def chunks():  # noqa: ANN202 - an async generator of bytes
        yield b'{"text": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    for path in ("messages", "transcript"):
        async with c.session.post(f"{c.base}/{path}", data=chunks(),
                                  headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413, (path, r.status)
            assert (await r.json())["rule"] == "widget-too-large"


async def attack_slow_body(c: Ctx) -> None:
    """A body that arrives in pieces (a slow client, or one chunk at a time) is read whole:
    the first piece alone once made a valid line a 400 and an oversized one not a 413."""
    async def slowly(data: bytes):  # noqa: ANN202 - an async generator of bytes
        for i in range(0, len(data), 1024):
            yield data[i:i + 1024]
            await asyncio.sleep(0.01)  # the next piece is on its way: the client's pace, not a wait for state

    line = json.dumps(c.body()).encode()
    async with c.session.post(f"{c.base}/messages", data=slowly(line), headers={
            "Content-Type": "application/json", "Origin": c.origin}) as r:
        assert r.status == 200, await r.text()
    oversized = b'{"token": "' + b"x" * 70_000 + b'"}'
    async with c.session.post(f"{c.base}/transcript", data=slowly(oversized),
                              headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413, await r.text()


# -- 3. fuzzed bodies ----------------------------------------------------------------------------

# Text an attacker picks: lone surrogates, control characters, digits of other scripts, anything.
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)  # st.characters() never draws one
ANY_TEXT = st.text(st.one_of(LONE_SURROGATE, st.characters(categories=["Cc"]),
                             st.characters(categories=["Nd", "No"]), st.characters()), min_size=1, max_size=60)
ANY_VALUE = st.one_of(ANY_TEXT, ANY_TEXT, ANY_TEXT, st.integers(), st.floats(), st.none(), st.booleans(),
                      st.lists(ANY_TEXT, max_size=3))
FUZZ_EXAMPLES = 80


def fuzz(url: str, valid: dict) -> list[int]:
    """Hypothesis's bodies posted one by one (in a thread of its own: each example runs its own
    event loop); the statuses, every one of them under 500."""
    statuses: list[int] = []

    def one_field_spoiled() -> st.SearchStrategy[bytes]:
        """A valid line with one field replaced: the bad field must get past the others' checks."""
        return st.sampled_from(sorted(valid)).flatmap(
            lambda name: ANY_VALUE.map(lambda value: json.dumps({**valid, name: value}).encode()))

    async def post(payload: bytes) -> int:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
            async with s.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                assert r.content_type == "application/json"
                return r.status

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(payload=st.one_of(
        st.binary(max_size=300),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
                     max_leaves=20).map(lambda v: json.dumps(v).encode()),
        one_field_spoiled(), one_field_spoiled(),
    ))
    @example(payload=json.dumps({**valid, "text": "help \ud800"}).encode())  # found by hand before: a 500
    def one(payload: bytes) -> None:
        status = asyncio.run(post(payload))
        statuses.append(status)
        assert status < 500, payload

    one()
    return statuses


async def attack_fuzzed_bodies(c: Ctx) -> None:
    """Never a 5xx, and the database grows with what was accepted, not with what was sent."""
    before = await c.table_sizes()
    statuses = await asyncio.to_thread(fuzz, f"{c.base}/messages", c.body(client_id="fuzz-client-0001"))
    after = await c.table_sizes()
    accepted = statuses.count(200)
    grown = {name: after[name] - before.get(name, 0) for name in ("messages", "events")}
    assert grown["messages"] <= 2 * accepted and grown["events"] <= 12 * accepted + 10, (grown, accepted)


# -- 4. the event stream, the demo page, the request line ---------------------------------------

async def attack_unbounded_event_streams(c: Ctx) -> None:
    """One source cannot hold more than Streams.per_source event streams open."""
    url = f"{c.base}/events?token={await c.conversation()}"
    held: list[aiohttp.ClientResponse] = []
    try:
        statuses = []
        for _ in range(12):
            r = await c.session.get(url)
            statuses.append(r.status)
            if r.status == 200:
                held.append(r)
            else:
                assert (await r.json())["rule"] == "widget-streams-limited"
                r.release()
        assert statuses.count(200) == Streams.per_source
        assert 429 in statuses
    finally:
        for r in held:
            r.close()
    for _ in range(100):  # closed streams free their places (the server sees the close moments later)
        async with c.session.get(url) as r:
            if r.status == 200:
                return
            assert r.status == 429
        await asyncio.sleep(0.05)
    raise AssertionError("closed event streams never freed their places")


async def attack_demo_page_markup(c: Ctx) -> None:
    """The demo page neither lists the tenants nor reflects markup."""
    async with c.session.get(f"{c.web}/widget/demo", params={"tenant": "<script>x</script>"}) as r:
        text = await r.text()
        assert r.status == 404 and c.tenant not in text and c.other_tenant not in text and "<script>" not in text
    async with c.session.get(f"{c.web}/widget/demo",
                             params={"tenant": c.tenant, "email": '"><script>alert(1)</script>',
                                     "name": "{{tenant}}", "user_token": '"onload="x'}) as r:
        page = await r.text()
        assert r.status == 200 and "<script>alert(1)" not in page and 'onload="x' not in page
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


async def attack_header_with_crlf(c: Ctx) -> None:
    """A header with a bare CR does not split the response: a raw socket, since aiohttp's
    client refuses to send such a header at all."""
    web = urlsplit(c.web)

    def send(request: bytes) -> bytes:
        with socket.create_connection((web.hostname, web.port), timeout=5) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    status = f"GET /widget/api/{c.tenant}/status HTTP/1.1\r\nHost: x\r\n".encode()
    for request in (status + b"Origin: https://a.example\rSet-Cookie: x=1\r\nConnection: close\r\n\r\n",
                    status + b"X-A\r\nB: 1\r\nConnection: close\r\n\r\n"):
        raw = await asyncio.to_thread(send, request)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert raw.split(b"\r\n", 1)[0].split(b" ")[1] == b"400" and b"Set-Cookie" not in head, raw[:300]


ATTACKS = [attack_flood_of_refused_requests, attack_malformed_bodies, attack_wrong_field_types_and_values,
           attack_strange_event_position, attack_strange_tokens_in_the_query, attack_the_transcript_endpoint,
           attack_chunked_body_past_the_limit, attack_slow_body, attack_unbounded_event_streams, attack_demo_page_markup,
           attack_header_with_crlf, attack_fuzzed_bodies]
"""In replay order: the flood first (it needs unopened refusal windows), the fuzz last (its
accepted lines use up the per-address rate limit the others' well-behaved lines need)."""
