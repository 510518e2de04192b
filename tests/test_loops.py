"""Loop protection: the gate's rules, and what the intake does with them (rate caps, hard
bounces, auto-replies, another helpdesk answering our acknowledgements)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.servicekit import BOT, SUPPORT, mail, make_intake, rule_literals, write_config
from triage.config import Contact, Window, load_config, parse_limits
from triage.core.pipeline import Pipeline
from triage.service.intake import Delivery
from triage.service.loops import RULES, Gate, is_system_address
from triage.store import Store

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
TOM = "tom@steelworks.example"


class History:
    def __init__(self, sent: list[datetime] | None = None, bounced_until: str | None = None):
        self.sent = sent or []
        self.bounced_until = bounced_until

    def sent_since(self, address: str, since: str) -> int:
        return sum(1 for at in self.sent if at.isoformat() >= since)

    def suppressed_until(self, address: str, now: str) -> str | None:
        return self.bounced_until if self.bounced_until and self.bounced_until > now else None


GATE = Gate({SUPPORT, BOT}, [Window(2, 600), Window(3, 3600)], 72)


def test_parse_limits():
    assert parse_limits(["10/600", " 25 / 3600 "]) == [Window(10, 600), Window(25, 3600)]
    for bad in ("10", "ten/600", "10/0", "10/-5"):
        with pytest.raises(ValueError, match="reply_limits"):
            parse_limits([bad])


@pytest.mark.parametrize("address,system", [
    ("mailer-daemon@mx.example", True), ("MAILER-DAEMON@mx.example", True), ("postmaster@x.example", True),
    ("noreply@x.example", True), ("no-reply@x.example", True), ("no_reply@x.example", True),
    ("donotreply@x.example", True), ("noreply-billing@x.example", True), ("bounces+123@x.example", True),
    ("noah@x.example", False), ("tom@steelworks.example", False), ("replies@x.example", False),
])
def test_system_senders(address, system):
    assert is_system_address(address) is system


def test_gate_rules_in_order():
    quiet = History()
    assert GATE.check_reply(TOM, False, quiet, NOW) is None
    assert GATE.check_reply(TOM, True, quiet, NOW) == "loop-automated-mail"
    assert GATE.check_reply(SUPPORT.upper(), False, quiet, NOW) == "loop-own-address"
    assert GATE.check_reply("postmaster@x.example", False, quiet, NOW) == "loop-system-sender"
    bounced = History(bounced_until=(NOW + timedelta(hours=1)).isoformat())
    assert GATE.check_reply(TOM, False, bounced, NOW) == "loop-hard-bounce-quiet"
    assert GATE.check_reply(TOM, False, bounced, NOW + timedelta(hours=2)) is None
    assert GATE.check_reply(TOM, False, quiet, NOW, followup_ack_only=True) == "loop-followup-acknowledged"


def test_rate_limit_windows():
    recent = History([NOW - timedelta(seconds=30), NOW - timedelta(seconds=60)])
    assert GATE.check_reply(TOM, False, recent, NOW) == "loop-rate-limit"  # 2 in 10 minutes
    spread = History([NOW - timedelta(minutes=50), NOW - timedelta(minutes=40), NOW - timedelta(minutes=5)])
    assert GATE.check_reply(TOM, False, spread, NOW) == "loop-rate-limit"  # 3 in an hour
    old = History([NOW - timedelta(hours=2)] * 5)
    assert GATE.check_reply(TOM, False, old, NOW) is None


def test_relays_are_not_rate_capped_but_never_go_to_dead_or_own_addresses():
    busy = History([NOW] * 50)
    assert GATE.check_relay("buyer@acme.example", busy, NOW) is None
    assert GATE.check_relay(SUPPORT, busy, NOW) == "loop-own-address"
    dead = History(bounced_until=(NOW + timedelta(hours=1)).isoformat())
    assert GATE.check_relay("buyer@acme.example", dead, NOW) == "loop-hard-bounce-quiet"


def test_every_rule_id_is_described():
    import triage.core.threading
    import triage.service.intake
    import triage.service.loops
    import triage.service.outbox

    assert all(rule.startswith("loop-") and text for rule, text in RULES.items())
    assert rule_literals(triage.service.loops) <= set(RULES)
    known = set(RULES) | set(triage.service.intake.RULES) | set(triage.service.outbox.RULES) | set(triage.core.threading.RULES)
    assert rule_literals(triage.service.intake) <= known


# -- through the intake -------------------------------------------------------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    config = load_config(write_config(tmp_path_factory.mktemp("cfg"), relay_url="smtp://127.0.0.1:9",
                                      limits='["3/600"]'))
    return config, Pipeline(config)


@pytest.fixture
def intake(setup, tmp_path):
    config, pipeline = setup
    store = Store(tmp_path / "t.db")
    yield make_intake(config, store, pipeline)
    store.close()


def deliver(intake, raw: bytes, at: datetime = NOW, rcpts: list[str] | None = None, mail_from: str = TOM):
    [result] = intake.process_batch([Delivery(raw, mail_from, rcpts or [SUPPORT], at)])
    assert not isinstance(result, Exception), result
    return result


def replies(intake) -> list[dict]:
    return list(intake.store.db.query("SELECT * FROM outbox WHERE kind = 'reply' ORDER BY id"))


def suppressed(intake) -> list[str]:
    rows = intake.store.db.query("SELECT rules FROM events WHERE kind = 'reply-suppressed' ORDER BY id")
    return [json.loads(r["rules"])[0] for r in rows]


def test_replies_per_recipient_are_capped(intake):
    for i in range(5):
        deliver(intake, mail(subject=f"Cannot log in ({i})"), NOW + timedelta(seconds=i))
    assert len(replies(intake)) == 3
    assert suppressed(intake) == ["loop-rate-limit", "loop-rate-limit"]
    deliver(intake, mail(subject="Cannot log in (later)"), NOW + timedelta(minutes=11))
    assert len(replies(intake)) == 4  # the window has passed


def dsn(failed: str, status: str = "5.1.1", returned_id: str = "") -> bytes:
    """A DSN; ``returned_id`` is the Message-ID of the returned mail in its headers part."""
    returned = (f"--B\nContent-Type: text/rfc822-headers\n\nFrom: {SUPPORT}\nTo: {failed}\n"
                f"Message-ID: {returned_id}\n\n") if returned_id else ""
    return (f"From: MAILER-DAEMON@mx.steelworks.example\nTo: {BOT}\nSubject: Undelivered Mail Returned to Sender\n"
            f"Message-ID: <dsn.{len(returned_id)}.{status}@mx.steelworks.example>\nAuto-Submitted: auto-replied\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
            "--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
            "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.steelworks.example\n\n"
            f"Final-Recipient: rfc822; {failed}\nAction: failed\nStatus: {status}\n{returned}--B--\n").encode()


def test_hard_bounce_silences_the_address_for_the_quiet_hours(intake):
    deliver(intake, mail(subject="Hello"))
    [ack] = replies(intake)
    deliver(intake, dsn(TOM, returned_id=ack["message_id"]), rcpts=[BOT], mail_from="")
    row = next(intake.store.db.query("SELECT * FROM suppressions"))
    assert row["address"] == TOM and row["expires_at"].startswith("2026-11-26T10:00")
    assert len(replies(intake)) == 1  # and the bounce itself gets no answer
    deliver(intake, mail(subject="Cannot log in"), NOW + timedelta(hours=1))
    assert len(replies(intake)) == 1 and suppressed(intake) == ["loop-hard-bounce-quiet"]
    deliver(intake, mail(subject="Cannot log in again"), NOW + timedelta(hours=73))
    assert len(replies(intake)) == 2


def test_a_forged_bounce_silences_nobody(intake):
    """A DSN that returns no Message-ID the bot signed could be written by anyone."""
    deliver(intake, dsn(TOM), rcpts=[BOT], mail_from="")
    deliver(intake, dsn(TOM, returned_id="<t1.abc.deadbeef@support.test>"), rcpts=[BOT], mail_from="")
    assert list(intake.store.db.query("SELECT * FROM suppressions")) == []


def test_a_forged_bounce_quoting_a_real_ack_cannot_silence_a_bystander(intake):
    """The attacker got an ack once, so holds a Message-ID the bot signed; the DSN they
    forge names a supplier the ack never went to."""
    deliver(intake, mail(subject="Hello"))
    [ack] = replies(intake)
    bystander = "anna@supplier.example"
    deliver(intake, dsn(bystander, returned_id=ack["message_id"]), rcpts=[BOT], mail_from="")
    assert list(intake.store.db.query("SELECT * FROM suppressions")) == []
    rules = [json.loads(r["rules"]) for r in intake.store.db.query("SELECT rules FROM events WHERE kind = 'suppression'")]
    assert rules == [["intake-bounce-not-a-recipient"]]
    deliver(intake, mail(sender=bystander, subject="Cannot log in", name="Anna"), NOW + timedelta(minutes=1),
            mail_from=bystander)
    assert [json.loads(r["recipients"]) for r in replies(intake)][-1] == [bystander]


def test_a_bounce_sent_elsewhere_suppresses_nothing(intake):
    deliver(intake, dsn(TOM), rcpts=[SUPPORT], mail_from="")
    assert list(intake.store.db.query("SELECT * FROM suppressions")) == []


def test_auto_reply_to_our_ack_gets_nothing_and_does_not_reopen(intake):
    first = deliver(intake, mail())
    ack = replies(intake)[0]["message_id"]
    intake.store.update_ticket(first.ticket, {"status": "resolved"})
    ooo = mail(subject="Automatic reply: Re: [#1001] Cannot log in", body="I am out of the office until Monday.",
               headers={"In-Reply-To": ack, "Auto-Submitted": "auto-replied"})
    again = deliver(intake, ooo, NOW + timedelta(minutes=1))
    assert again.ticket == first.ticket
    assert intake.store.ticket(first.ticket)["status"] == "resolved"
    assert len(replies(intake)) == 1  # the policy suppressed it before the gate was asked
    last = list(intake.store.db.query("SELECT outcome FROM events WHERE kind = 'decision' ORDER BY id"))[-1]
    assert last["outcome"] == "suppress"


def test_another_helpdesk_answering_our_ack_gets_one_reply_only(intake):
    """A robot that does not mark its mail as automatic: the follow-up rule breaks the loop."""
    first = deliver(intake, mail(sender="helpdesk@steelworks.example", subject="Cannot log in"),
                    mail_from="helpdesk@steelworks.example")
    for i in range(4):
        last = replies(intake)[-1]
        echo = mail(sender="helpdesk@steelworks.example", subject=f"Re: {last['subject']}",
                    body="Thank you, we have received your request and will answer soon. I cannot log in.",
                    headers={"In-Reply-To": last["message_id"]})
        assert deliver(intake, echo, NOW + timedelta(seconds=i + 1)).ticket == first.ticket
    assert len(replies(intake)) == 1
    assert set(suppressed(intake)) == {"loop-followup-acknowledged"}


def test_mail_from_our_own_addresses_gets_nothing(intake):
    deliver(intake, mail(sender=SUPPORT, subject="Cannot log in"), mail_from=SUPPORT)
    assert replies(intake) == []


def test_each_contact_gets_a_relay_of_its_own(intake, monkeypatch):
    """With several contacts in one To:, a contact's reply-all would show the supplier
    (Reply-To) the others' names and addresses."""
    tenant = next(t for t in intake.config.tenants.values() if SUPPORT in t.support_addresses)
    monkeypatch.setattr(tenant, "contacts", [*tenant.contacts, Contact("Second Buyer", "second@acme.example",
                                                                      ("business", "account"))])
    deliver(intake, mail(subject="RFQ-88 volumes", body="Hello, is the annual volume of 5,000 pcs in RFQ-88 "
                         "binding, and what are the payment terms of the contract?\n\nTom"))
    relays = list(intake.store.db.query("SELECT recipients FROM outbox WHERE kind = 'relay'"))
    assert sorted(json.loads(r["recipients"])[0] for r in relays) == sorted(c.email for c in tenant.contacts)
    assert all(len(json.loads(r["recipients"])) == 1 for r in relays)


@pytest.mark.parametrize("sender", ['"tom smith"@steelworks.example', "tom smith@steelworks.example",
                                    "tom@[192.0.2.1]", "tom@bad_host.example"])
def test_an_address_that_cannot_be_written_suppresses_the_reply_not_the_ticket(intake, sender):
    raw = (f"From: Tom <{sender}>\r\nTo: {SUPPORT}\r\nSubject: Cannot log in\r\n"
           "Message-ID: <bad.1@steelworks.example>\r\n\r\nI cannot log in, the password is refused.\r\n").encode()
    result = deliver(intake, raw, mail_from="tom@steelworks.example")
    assert result.number is not None and replies(intake) == []
    assert suppressed(intake) == ["outbox-unencodable-address"]


def test_idn_and_non_ascii_addresses_are_queued_encoded(intake):
    """The domain goes out in IDNA; a non-ASCII local part is queued as it is and sent
    only through a relay that offers SMTPUTF8 (tests/test_outbox.py)."""
    for i, sender in enumerate(("tom@bücher.example", "jörg@steelworks.example")):
        raw = (f"From: Tom <{sender}>\r\nTo: {SUPPORT}\r\nSubject: Cannot log in {i}\r\n"
               f"Message-ID: <idn.{i}@steelworks.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               "I cannot log in, the password is refused.\r\n").encode()
        deliver(intake, raw, NOW + timedelta(seconds=i))
    assert [json.loads(r["recipients"]) for r in replies(intake)] == [["tom@xn--bcher-kva.example"],
                                                                      ["jörg@steelworks.example"]]


def test_a_subaddress_of_an_own_address_is_an_own_address(intake):
    """acme+x@ reaches acme@: answering it would be the bot writing to itself."""
    for i, sender in enumerate(("acme+x@support.test", "ACME+loop.1@Support.Test", "support+bounce@support.test")):
        deliver(intake, mail(sender=sender, subject=f"Cannot log in {i}"), NOW + timedelta(seconds=i), mail_from=sender)
    assert replies(intake) == []
    decisions = [json.loads(r["rules"]) for r in intake.store.db.query("SELECT rules FROM events WHERE kind = 'decision'")]
    assert all("from-own-address" in rules for rules in decisions)
    assert intake.gate.check_relay("acme+x@support.test", intake.store, NOW) == "loop-own-address"


def test_subaddresses_share_one_rate_limit(intake):
    """A forger cycling tom+1@, tom+2@ … must not turn the bot into a cannon aimed at tom's mailbox."""
    for i in range(5):
        sender = f"tom+{i}@steelworks.example"
        deliver(intake, mail(sender=sender, subject=f"Cannot log in ({i})"), NOW + timedelta(seconds=i),
                mail_from=sender)
    assert len(replies(intake)) == 3 and suppressed(intake) == ["loop-rate-limit", "loop-rate-limit"]


def test_relays_are_capped_per_mailbox_and_per_tenant(tmp_path):
    """Subaddresses are one mailbox; another requester still gets through until the tenant's
    own cap; a window that has passed counts nothing, and pruning forgets it."""
    store = Store(tmp_path / "t.db")
    gate = Gate(set(), [], 72, [Window(2, 3600)], [Window(3, 3600)])
    earlier = (NOW - timedelta(minutes=10)).isoformat()
    store.log_relay("tom@steelworks.example", "acme", 1, earlier)  # intake logs the mailbox (base_address)
    assert gate.check_relay_rate("tom@steelworks.example", "acme", store, NOW) is None
    store.log_relay("tom@steelworks.example", "acme", 2, earlier)
    assert gate.check_relay_rate("Tom+b@Steelworks.example", "acme", store, NOW) == "loop-relay-rate-limit"
    assert gate.check_relay_rate("ann@steelworks.example", "acme", store, NOW) is None
    store.log_relay("ann@steelworks.example", "acme", 3, earlier)
    assert gate.check_relay_rate("eve@elsewhere.example", "acme", store, NOW) == "loop-relay-rate-limit"
    assert gate.check_relay_rate("eve@elsewhere.example", "zenith", store, NOW) is None
    later = NOW + timedelta(hours=2)
    assert gate.check_relay_rate("tom@steelworks.example", "acme", store, later) is None
    assert gate.longest_window == timedelta(hours=1)
    store.prune_sent_log((later - gate.longest_window).isoformat())
    assert store.relayed_since("2000-01-01", tenant="acme") == 0
    store.close()


def test_a_malformed_relay_limit_is_a_configuration_error(tmp_path):
    from triage.config import ConfigError

    folder = write_config(tmp_path / "cfg")
    path = folder / "triage.toml"
    path.write_text(path.read_text().replace("bounce_quiet_hours = 72", 'bounce_quiet_hours = 72\nrelay_limits = ["5"]'))
    with pytest.raises(ConfigError, match=r"email\.relay_limits.*'5' is not COUNT/SECONDS"):
        load_config(folder)


def test_approve_refuses_a_draft_that_announces_a_capped_relay(tmp_path):
    """A decision that relays and holds for review, whose relay the cap stopped: the drafted
    reply says the message was passed on, so an agent's Approve must not send it."""
    from triage.desk.agents import AgentError, Agents

    config = load_config(write_config(tmp_path / "cfg"))
    store = Store(config.database)
    pipeline = Pipeline(config)
    agents = Agents(config, store, pipeline, make_intake(config, store, pipeline, hold_local=True))
    at = NOW.isoformat()
    ticket = store.create_ticket({"tenant": "acme", "number": 1001, "status": "new", "priority": "normal",
                                  "category": "account", "intent": "invitation", "requester": "external",
                                  "trust": "verified", "language": "en", "channel": "email", "subject": "s",
                                  "requester_address": TOM, "created_at": at, "updated_at": at})
    store.add_event(ticket, "decision", ["account-invitation-relayed"],
                    "relay_to_company,hold_for_review,notify_agents", at)
    store.add_event(ticket, "relay-suppressed", ["loop-relay-rate-limit"], "not sent", at)
    with pytest.raises(AgentError, match="relay was capped"):
        agents.approve(ticket, "kim", NOW)
    store.close()
