"""Threading: signed Message-IDs, subject tags only for participants, no hijacks."""
from __future__ import annotations

from typing import Any

import pytest

from tests.servicekit import BOT, mail, rule_literals
from triage.core.parse import parse_email
from triage.core.threading import RULES, Signer, find_thread, signing_key
from triage.store import Store

SIGNER = Signer(b"k" * 32, "support.test")


class FakeTickets:
    """Two tickets of tenant acme: #1001 (open, tom is a participant) and #1002 (closed)."""

    def __init__(self) -> None:
        self.rows = {1: {"id": 1, "tenant": "acme", "number": 1001, "status": "open"},
                     2: {"id": 2, "tenant": "acme", "number": 1002, "status": "closed"},
                     3: {"id": 3, "tenant": "zenith", "number": 1001, "status": "open"}}
        self.participants = {(1, "tom@steelworks.example"), (2, "tom@steelworks.example")}

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        return self.rows.get(ticket_id)

    def ticket_by_number(self, tenant: str | None, number: int) -> dict[str, Any] | None:
        return next((r for r in self.rows.values() if r["tenant"] == tenant and r["number"] == number), None)

    def is_participant(self, ticket_id: int, address: str) -> bool:
        return (ticket_id, address) in self.participants


def thread_of(raw: bytes, tenant: str | None = "acme", rcpts: list[str] | None = None):
    return find_thread(parse_email(raw, rcpts), tenant, SIGNER, FakeTickets(), BOT)


def test_signed_ids_verify_and_resist_tampering():
    mid = SIGNER.new_id(42)
    assert mid.startswith("<t42.") and mid.endswith("@support.test>")
    assert SIGNER.verify(mid) == 42
    assert SIGNER.verify(mid.replace("<t42.", "<t43.")) is None  # another ticket, same signature
    assert Signer(b"other key", "support.test").verify(mid) is None
    assert SIGNER.verify("<1234@example.com>") is None
    assert SIGNER.new_id(42) != mid  # a random part in each


def test_reply_to_the_bots_message_joins():
    t = thread_of(mail(subject="Re: Cannot log in", headers={"In-Reply-To": SIGNER.new_id(1)}))
    assert t.ticket["id"] == 1 and t.rules == ["thread-signed-reference"]


def test_signed_reference_in_references_joins_even_without_in_reply_to():
    refs = f"<a@x> {SIGNER.new_id(1)} <b@y>"
    assert thread_of(mail(headers={"References": refs})).ticket["id"] == 1


def test_forged_reference_is_ignored():
    forged = "<t1.0123456789ab.deadbeef@support.test>"
    t = thread_of(mail(subject="Re: hello", headers={"In-Reply-To": forged}))
    assert t.ticket is None and t.rules == ["thread-reference-bad-signature", "thread-new-ticket"]


def test_subject_tag_joins_for_a_participant():
    t = thread_of(mail(subject="Re: [#1001] Cannot log in"))
    assert t.ticket["id"] == 1 and t.rules == ["thread-subject-tag"]


def test_subject_tag_from_a_stranger_does_not_join():
    t = thread_of(mail(sender="mallory@evil.example", subject="Re: [#1001] Cannot log in"))
    assert t.ticket is None and t.rules == ["thread-tag-not-participant", "thread-new-ticket"]


def test_tag_of_another_tenant_does_not_join():
    t = thread_of(mail(subject="[#1001] hello"), tenant="helios")
    assert t.ticket is None and t.rules == ["thread-new-ticket"]


def test_signed_reference_to_another_tenants_ticket_is_ignored():
    t = thread_of(mail(headers={"In-Reply-To": SIGNER.new_id(3)}))
    assert t.ticket is None and "thread-reference-other-tenant" in t.rules


def test_forwarded_mail_from_a_stranger_does_not_hijack():
    raw = mail(sender="colleague@other.example", subject="Fwd: Re: [#1001] Cannot log in",
               headers={"References": SIGNER.new_id(1)})
    t = thread_of(raw)
    assert t.ticket is None
    assert t.rules == ["thread-forward-not-joined", "thread-forward-not-joined", "thread-new-ticket"]


def test_resent_mail_from_a_stranger_does_not_hijack():
    raw = mail(sender="other@other.example", subject="Re: Cannot log in",
               headers={"In-Reply-To": SIGNER.new_id(1), "Resent-From": "other@other.example"})
    assert thread_of(raw).ticket is None


def test_a_new_address_replying_to_the_bot_joins_and_becomes_participant():
    raw = mail(sender="colleague@steelworks.example", subject="Re: Cannot log in",
               headers={"In-Reply-To": SIGNER.new_id(1)})
    t = thread_of(raw)
    assert t.ticket["id"] == 1 and t.add_participant
    assert t.rules == ["thread-signed-reference-new-participant"]


def test_closed_ticket_is_not_reopened():
    t = thread_of(mail(subject="Re: [#1002] old question"))
    assert t.ticket is None and t.rules == ["thread-closed-new-ticket", "thread-new-ticket"]


def test_bounce_to_the_bot_finds_the_ticket_of_the_returned_mail():
    returned = f"From: {BOT}\nTo: tom@steelworks.example\nMessage-ID: {SIGNER.new_id(1)}\nSubject: Re: x\n"
    raw = (b"From: MAILER-DAEMON@mx.example\nTo: " + BOT.encode() + b"\nSubject: Undelivered Mail\n"
           b"Message-ID: <bounce1@mx.example>\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
           b"--B\nContent-Type: text/plain\n\nDelivery failed.\n"
           b"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
           b"Final-Recipient: rfc822; tom@steelworks.example\nAction: failed\nStatus: 5.1.1\n"
           b"--B\nContent-Type: text/rfc822-headers\n\n" + returned.encode() + b"\n--B--\n")
    t = thread_of(raw, tenant=None, rcpts=[BOT])
    assert t.ticket["id"] == 1 and t.rules == ["thread-bounced-message"]


def test_every_rule_id_is_described():
    import triage.core.threading

    assert all(rule.startswith("thread-") and text for rule, text in RULES.items())
    assert rule_literals(triage.core.threading) <= set(RULES)


def test_signing_key_from_environment_else_persisted_in_database(tmp_path, monkeypatch):
    store = Store(tmp_path / "t.db")
    monkeypatch.delenv("TRIAGE_TEST_KEY", raising=False)
    fallback = signing_key("TRIAGE_TEST_KEY", store)
    assert fallback == signing_key("TRIAGE_TEST_KEY", store)  # stable across restarts
    monkeypatch.setenv("TRIAGE_TEST_KEY", "from-the-environment")
    assert signing_key("TRIAGE_TEST_KEY", store) == b"from-the-environment"
    store.close()


@pytest.mark.parametrize("subject", ["Fwd: x", "FW: x", "WG: x", "VB: x", "Пересл: x", "Re: Fwd: x"])
def test_forward_prefixes(subject):
    from triage.core.threading import is_forward

    assert is_forward(parse_email(mail(subject=subject)))
