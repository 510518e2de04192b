"""Outbound mail: composing RFC 5322 replies and relays, and delivering the outbox to a
relay with retries, permanent failures, crash recovery, STARTTLS and credentials."""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import sqlite3
import ssl
from datetime import datetime, timedelta, timezone

import pytest

from tests.servicekit import Sink, free_port, parse, rule_literals
from tests.waiting import until
from triage.service.outbox import RULES, Outbox, Relay, Unencodable, compose, envelope_address, reply_subject
from triage.store import Store, iso

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("subject,expected", [
    ("Cannot log in", "Re: [#1001] Cannot log in"),
    ("Re: [#1001] Cannot log in", "Re: [#1001] Cannot log in"),
    ("SV: Re:  AW: Hello", "Re: [#1001] Hello"),
    ("", "Re: [#1001] Support request"),
    ("[#1001] still broken", "Re: [#1001] still broken"),
])
def test_reply_subject(subject, expected):
    assert reply_subject(subject, 1001) == expected


def test_compose_reply_headers_and_round_trip():
    raw = compose(sender=("Acme Metals AB supplier portal support", "acme@support.test"),
                  to=[("Иван Петров", "ivan@uralsteel.example")], subject="Re: [#1005] СРОЧНО: аукцион",
                  body="Здравствуйте!\n\nМы получили Ваше обращение.\n", message_id="<t1.abc.12345678@support.test>",
                  now=NOW, auto_submitted="auto-replied", in_reply_to="<orig@uralsteel.example>",
                  references=["<older@uralsteel.example>"])
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, as on the wire
    assert all(b < 128 for b in raw)  # 7-bit clean for any relay
    msg = parse(raw)
    assert msg["Subject"] == "Re: [#1005] СРОЧНО: аукцион"
    assert msg["To"].addresses[0].display_name == "Иван Петров"
    assert msg["Message-ID"] == "<t1.abc.12345678@support.test>"
    assert msg["In-Reply-To"] == "<orig@uralsteel.example>"
    assert msg["References"] == "<older@uralsteel.example> <orig@uralsteel.example>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg.get_content() == "Здравствуйте!\n\nМы получили Ваше обращение.\n"
    assert "Reply-To" not in msg


def test_compose_relay_has_reply_to_the_supplier():
    raw = compose(sender=("Acme", "acme@support.test"), to=[("Eva", "eva@acme.example"), ("", "desk@acme.example")],
                  subject="[#1002] Message from a supplier", body="x", message_id="<t2.a.b@support.test>",
                  now=NOW, auto_submitted="auto-generated", reply_to=("Tom Steel", "tom@steelworks.example"))
    msg = parse(raw)
    assert str(msg["Reply-To"]) == "Tom Steel <tom@steelworks.example>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["eva@acme.example", "desk@acme.example"]
    assert msg["Auto-Submitted"] == "auto-generated"


def test_no_header_injection_through_names_or_subjects():
    raw = compose(sender=("Acme", "acme@support.test"), to=[("Tom\r\nBcc: all@evil.example", "tom@x.example")],
                  subject="Hi\r\nBcc: all@evil.example", body="x", message_id="<t1.a.b@support.test>", now=NOW,
                  auto_submitted="auto-replied")
    assert b"\r\nBcc:" not in raw
    assert parse(raw)["Bcc"] is None


def test_relay_url(monkeypatch):
    monkeypatch.setenv("T_USER", "bot")
    monkeypatch.setenv("T_PASS", "secret")
    assert Relay.from_config("", "T_USER", "T_PASS") is None
    assert Relay.from_config("smtp://mx.example", "T_USER", "T_PASS") == Relay("mx.example", 25, False, "bot", "secret")
    assert Relay.from_config("smtps://mx.example", "X", "Y") == Relay("mx.example", 465, True)
    assert Relay.from_config("smtp://mx.example:587", "X", "Y").port == 587
    with pytest.raises(ValueError, match="relay_url"):
        Relay.from_config("http://mx.example", "X", "Y")
    with pytest.raises(ValueError, match="T_USER"):
        Relay.from_config("smtp://bot:secret@mx.example", "T_USER", "T_PASS")


def test_every_rule_id_is_described():
    import triage.service.outbox

    assert all(rule.startswith("outbox-") and text for rule, text in RULES.items())
    assert rule_literals(triage.service.outbox) <= set(RULES)


# -- delivery ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    s.create_ticket({"tenant": "acme", "number": 1001, "status": "new", "created_at": "t", "updated_at": "t"})
    yield s
    s.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def queue(store: Store, n: int = 1, recipients: tuple[str, ...] = ("tom@steelworks.example",)) -> list[int]:
    ids = []
    for i in range(n):
        mid = f"<t1.{i:012x}.00000000@support.test>"
        raw = compose(sender=("Acme", "acme@support.test"), to=[("", r) for r in recipients], subject=f"Re: {i}",
                      body="hello", message_id=mid, now=NOW, auto_submitted="auto-replied")
        ids.append(store.enqueue({"ticket": 1, "kind": "reply", "mail_from": "support@support.test",
                                  "recipients": json.dumps(list(recipients)), "subject": f"Re: {i}",
                                  "message_id": mid, "raw": raw, "status": "queued", "attempts": 0,
                                  "next_attempt_at": iso(NOW), "created_at": iso(NOW)}))
    return ids


async def direct(fn, *args):  # noqa: ANN001, ANN201 - run store calls inline (one test loop, one thread)
    return fn(*args)


def outbox(store: Store, relay: Relay | None, clock: Clock, **options) -> Outbox:
    return Outbox(store, relay, direct, base_delay=30, clock=clock, **options)


def statuses(store: Store) -> list[tuple[str, int]]:
    return [(r["status"], r["attempts"]) for r in store.db.query("SELECT status, attempts FROM outbox ORDER BY id")]


def event_rules(store: Store) -> list[str]:
    return [json.loads(r["rules"])[0] for r in store.db.query("SELECT rules FROM events ORDER BY id") if r["rules"] != "[]"]


async def test_delivers_each_row_once_over_one_connection(store, sink):
    queue(store, 3)
    box = outbox(store, Relay("127.0.0.1", sink.port, False), Clock())
    assert await box.deliver_due() == 3
    assert await box.deliver_due() == 0
    assert [parse(m.raw)["Subject"] for m in sink.messages] == ["Re: 0", "Re: 1", "Re: 2"]
    assert {m.mail_from for m in sink.messages} == {"support@support.test"}  # bounces come back to the bot
    assert statuses(store) == [("sent", 1)] * 3
    assert event_rules(store) == ["outbox-delivered"] * 3


async def test_temporary_failure_is_retried_with_backoff(store, sink):
    queue(store)
    clock = Clock()
    box = outbox(store, Relay("127.0.0.1", sink.port, False), clock)
    sink.set_codes(data="451 4.3.0 try later")
    await box.deliver_due()
    row = next(store.db.query("SELECT * FROM outbox"))
    assert (row["status"], row["attempts"], row["last_error"]) == ("queued", 1, "451 4.3.0 try later")
    assert row["next_attempt_at"] == iso(NOW + timedelta(seconds=30))
    sink.set_codes()
    assert await box.deliver_due() == 0  # not due yet
    clock.now += timedelta(seconds=31)
    await box.deliver_due()
    assert statuses(store) == [("sent", 2)] and len(sink.messages) == 1
    assert event_rules(store) == ["outbox-retry", "outbox-delivered"]
    assert box.backoff(1) == timedelta(seconds=30) and box.backoff(3) == timedelta(seconds=120)
    assert box.backoff(20) == timedelta(hours=1)


async def test_permanent_failure_is_final_and_recorded(store, sink):
    queue(store)
    sink.set_codes(rcpt="550 5.1.1 no such user")
    box = outbox(store, Relay("127.0.0.1", sink.port, False), Clock())
    await box.deliver_due()
    assert statuses(store) == [("failed", 1)]
    assert event_rules(store) == ["outbox-failed-permanent"]
    assert "550" in box.last_error


async def test_one_refused_mail_does_not_stop_the_others(store, sink):
    queue(store, 1, recipients=("gone@steelworks.example",))
    queue(store, 1)
    sink.recorder.refused.add("gone@steelworks.example")
    await outbox(store, Relay("127.0.0.1", sink.port, False), Clock()).deliver_due()
    assert statuses(store) == [("failed", 1), ("sent", 1)]
    assert [m.rcpt_tos for m in sink.messages] == [["tom@steelworks.example"]]


async def test_partly_refused_recipients_are_recorded(store, sink):
    queue(store, 1, recipients=("tom@steelworks.example", "gone@steelworks.example"))
    sink.recorder.refused.add("gone@steelworks.example")
    await outbox(store, Relay("127.0.0.1", sink.port, False), Clock()).deliver_due()
    assert statuses(store) == [("sent", 1)]
    assert event_rules(store) == ["outbox-delivered", "outbox-recipient-refused"]


async def test_relay_down_is_a_temporary_failure(store):
    queue(store, 2)
    box = outbox(store, Relay("127.0.0.1", free_port(), False), Clock())
    await box.deliver_due()
    assert statuses(store) == [("queued", 1), ("queued", 1)]
    assert "Connect" in box.last_error or "connect" in box.last_error


async def test_gives_up_after_the_last_attempt(store):
    queue(store)
    clock = Clock()
    box = outbox(store, Relay("127.0.0.1", free_port(), False), clock, max_attempts=3)
    for _ in range(3):
        await box.deliver_due()
        clock.now += timedelta(hours=2)
    assert statuses(store) == [("failed", 3)]
    assert event_rules(store) == ["outbox-retry", "outbox-retry", "outbox-gave-up"]


async def test_rows_left_sending_by_a_crash_are_sent_once_with_the_same_message_id(store, sink):
    [first] = queue(store)
    store.claim_due(iso(NOW), 10)  # the crashed process had claimed it
    box = outbox(store, Relay("127.0.0.1", sink.port, False), Clock())
    stop = asyncio.Event()
    task = asyncio.create_task(box.run(stop))
    await until(lambda: sink.messages, 5)
    stop.set()
    box.wake()
    await asyncio.wait_for(task, 5)
    assert [parse(m.raw)["Message-ID"] for m in sink.messages] == ["<t1.000000000000.00000000@support.test>"]
    assert statuses(store) == [("sent", 1)]
    assert event_rules(store) == ["outbox-recovered", "outbox-delivered"]


async def test_a_database_error_while_idle_does_not_end_delivery(store, sink, monkeypatch):
    box = outbox(store, Relay("127.0.0.1", sink.port, False), Clock())
    real, failed = store.next_due, []

    def locked() -> str | None:
        if not failed:
            failed.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real()

    monkeypatch.setattr(store, "next_due", locked)
    stop = asyncio.Event()
    task = asyncio.create_task(box.run(stop))
    for _ in range(100):
        if failed:
            break
        await asyncio.sleep(0.01)
    assert "database is locked" in box.last_error
    queue(store)
    box.wake()
    for _ in range(100):
        if sink.messages or task.done():
            break
        await asyncio.sleep(0.05)
    stop.set()
    box.wake()
    await asyncio.wait_for(task, 5)
    assert len(sink.messages) == 1 and statuses(store) == [("sent", 1)]


async def test_without_relay_the_loop_does_nothing(store):
    queue(store)
    await asyncio.wait_for(outbox(store, None, Clock()).run(asyncio.Event()), 1)
    assert statuses(store) == [("queued", 0)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_credentials_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("T_USER", "bot")
    monkeypatch.setenv("T_PASS", "s3cret")
    sink = Sink(login=("bot", "s3cret"))
    try:
        queue(store)
        relay = Relay.from_config(f"smtp://127.0.0.1:{sink.port}", "T_USER", "T_PASS")
        await outbox(store, relay, Clock()).deliver_due()
        assert sink.logins == ["bot"] and len(sink.messages) == 1
    finally:
        sink.close()


def _certificate(folder) -> tuple[str, str]:  # noqa: ANN001
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


async def test_starttls_when_the_relay_offers_it(store, tmp_path, monkeypatch):
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client trusts the test certificate, and only it
    monkeypatch.setenv("T_USER", "bot")
    monkeypatch.setenv("T_PASS", "s3cret")
    sink = Sink(login=("bot", "s3cret"), tls_context=context)  # refuses MAIL and AUTH before STARTTLS
    try:
        queue(store)
        relay = Relay.from_config(f"smtp://127.0.0.1:{sink.port}", "T_USER", "T_PASS")
        box = outbox(store, relay, Clock())
        await box.deliver_due()
        assert len(sink.messages) == 1 and sink.logins == ["bot"], box.last_error
    finally:
        sink.close()


# -- headers within RFC 5322 limits, addresses the relay can take ---------------------------

LONG_ASCII = "Tom " + "Steel " * 2500  # a 15 KB display name, legally folded by its sender
LONG_CYRILLIC = "Иван " + "Петров " * 2000


def display_name(raw: bytes, header: str) -> str:
    """The display name as RFC 2047 reads it (adjacent encoded-words joined without the
    folding between them; the stdlib's new parser keeps that space)."""
    from email import message_from_bytes
    from email.header import decode_header, make_header
    from email.utils import getaddresses

    [(name, _)] = getaddresses([message_from_bytes(raw)[header]])
    return str(make_header(decode_header(name)))


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.mark.parametrize("name", [LONG_ASCII, LONG_CYRILLIC, "Smith, John (Sales) \"JS\"", "Åsa Öberg"])
def test_every_header_line_is_folded_to_78_columns(name):
    raw = compose(sender=("Acme Metals AB supplier portal support", "acme@support.test"), to=[(name, "tom@x.example")],
                  subject=name, body="x", message_id="<t1.abc.12345678@support.test>", now=NOW,
                  auto_submitted="auto-generated", in_reply_to="<" + "a" * 2000 + "@x.example>",
                  references=[f"<ref{i}@x.example>" for i in range(100)], reply_to=(name, "tom@x.example"))
    assert max(len(line) for line in header_lines(raw)) <= 78
    msg = parse(raw)
    shown = display_name(raw, "To")
    assert len(shown) <= 64 and name.split()[0] in shown and msg["To"].addresses[0].addr_spec == "tom@x.example"
    assert display_name(raw, "Reply-To") == shown
    assert (shown == name) == (len(name) <= 64) and (len(name) <= 64 or shown.endswith("…"))
    assert len(msg["Subject"]) <= 200
    assert msg["In-Reply-To"] is None and len(msg["References"].split()) == 20


def test_idn_domains_are_written_in_idna_and_bad_addresses_refused():
    raw = compose(sender=("Acme", "acme@support.test"), to=[("Jürgen", "jurgen@bücher.example")], subject="x",
                  body="x", message_id="<t1.a.b@support.test>", now=NOW, auto_submitted="auto-replied")
    assert parse(raw)["To"].addresses[0].addr_spec == "jurgen@xn--bcher-kva.example"
    assert envelope_address("Tom@Steelworks.Example.") == "Tom@steelworks.example"
    for bad in ("tom smith@x.example", "tom@", "@x.example", "a@b@x.example", "tom@x_y..example", "tom@-x.example",
                "to\"m@x.example", "tom@[192.0.2.1]", "a" * 65 + "@x.example", "tom@" + "x" * 64 + ".example",
                "tom@xn--zz.example\u200b", "tom..x@x.example"):
        with pytest.raises(Unencodable):
            envelope_address(bad)


async def test_a_long_display_name_passes_a_relay_that_enforces_998_octets(store, sink):
    """aiosmtpd answers 500 Line too long, as real relays do: before folding, both the
    reply and the relay for such a sender failed."""
    mid = "<t1.000000000001.00000000@support.test>"
    raw = compose(sender=("Acme", "acme@support.test"), to=[(LONG_CYRILLIC, "ivan@x.example")], subject=LONG_ASCII,
                  body="hello", message_id=mid, now=NOW, auto_submitted="auto-replied",
                  reply_to=(LONG_ASCII, "tom@x.example"))
    store.enqueue({"ticket": 1, "kind": "relay", "mail_from": "support@support.test",
                   "recipients": json.dumps(["ivan@x.example"]), "subject": "s", "message_id": mid, "raw": raw,
                   "status": "queued", "attempts": 0, "next_attempt_at": iso(NOW), "created_at": iso(NOW)})
    await outbox(store, Relay("127.0.0.1", sink.port, False), Clock()).deliver_due()
    assert statuses(store) == [("sent", 1)] and len(sink.messages) == 1


def legacy_row(store: Store, recipient: str) -> None:
    """A row as an older version queued it: the recipient exactly as the sender wrote it."""
    store.enqueue({"ticket": 1, "kind": "reply", "mail_from": "support@support.test",
                   "recipients": json.dumps([recipient]), "subject": "s", "message_id": f"<{recipient!r}>",
                   "raw": b"Subject: s\r\n\r\nhello\r\n", "status": "queued", "attempts": 0,
                   "next_attempt_at": iso(NOW), "created_at": iso(NOW)})


async def test_an_unsendable_row_fails_for_good_and_holds_back_no_other(store, sink):
    legacy_row(store, "jurgen@bücher.example")
    legacy_row(store, "tom smith@steelworks.example")
    queue(store, 1)
    box = outbox(store, Relay("127.0.0.1", sink.port, False), Clock())
    await box.deliver_due()
    assert statuses(store) == [("failed", 1), ("failed", 1), ("sent", 1)]
    assert [m.rcpt_tos for m in sink.messages] == [["tom@steelworks.example"]]
    assert event_rules(store)[0] == "outbox-unencodable-address"
    assert await box.deliver_due() == 0  # nothing left queued to climb


@pytest.mark.parametrize("smtputf8", [False, True])
async def test_a_non_ascii_local_part_goes_out_only_where_the_relay_offers_smtputf8(store, smtputf8):
    relay = Sink(smtputf8=smtputf8)
    try:
        queue(store, 1, recipients=(envelope_address("jörg@bücher.example"),))
        await outbox(store, Relay("127.0.0.1", relay.port, False), Clock()).deliver_due()
        if smtputf8:
            assert statuses(store) == [("sent", 1)]
            assert relay.messages[0].rcpt_tos == ["jörg@xn--bcher-kva.example"]
        else:
            assert statuses(store) == [("failed", 1)] and relay.messages == []
            assert event_rules(store) == ["outbox-unencodable-address"]
    finally:
        relay.close()
