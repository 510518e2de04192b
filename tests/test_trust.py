"""DMARC from trusted Authentication-Results only; widget HMAC; Slack."""
from __future__ import annotations

from tests.conftest import make_email
from triage.parse import parse_chat, parse_email
from triage.trust import assess, widget_hash

TRUSTED = ["mx.support.test"]


def _trust(raw: bytes):
    return assess(parse_email(raw), "", TRUSTED)


def test_dmarc_pass_from_trusted_host_is_verified():
    t = _trust(make_email(dmarc="pass"))
    assert t.verified and t.reason == "trust-dmarc-pass"


def test_dmarc_fail_and_none_are_unverified():
    assert not _trust(make_email(dmarc="fail")).verified
    assert not _trust(make_email(dmarc="none")).verified
    assert not _trust(make_email(dmarc=None)).verified


def test_forged_header_from_untrusted_host_is_ignored():
    t = _trust(make_email(dmarc="pass", authserv="mail.attacker.example"))
    assert not t.verified and t.reason == "trust-no-trusted-authentication-results"


def test_dmarc_pass_for_another_domain_does_not_count():
    raw = make_email(sender="boss@victim.se", dmarc=None,
                     headers={"Authentication-Results": "mx.support.test; dmarc=pass header.from=attacker.example"})
    assert not _trust(raw).verified


def test_topmost_trusted_header_wins_over_a_forged_copy_below():
    raw = make_email(sender="boss@victim.se", dmarc="fail",
                     headers={"Authentication-Results": "mx.support.test; dmarc=pass header.from=victim.se"})
    assert not _trust(raw).verified  # ours (fail) is on top; the sender's forged pass is below


def test_unparseable_authentication_results_is_not_evidence():
    raw = make_email(dmarc=None, headers={"Authentication-Results": ";;; dmarc=="})
    assert not _trust(raw).verified


def test_widget_hmac():
    good = widget_hash("s3cret", "Anna@Example.com")
    line = {"id": "w", "channel": "widget", "tenant": "acme", "from": "anna@example.com", "text": "hi"}
    assert assess(parse_chat({**line, "user_hash": good}), "s3cret", TRUSTED).verified
    assert not assess(parse_chat({**line, "user_hash": good[::-1]}), "s3cret", TRUSTED).verified
    assert not assess(parse_chat({**line, "user_hash": "zz\u00e9"}), "s3cret", TRUSTED).verified
    anonymous = assess(parse_chat(line), "s3cret", TRUSTED)
    assert not anonymous.verified and anonymous.reason == "trust-widget-anonymous"


def test_slack_is_verified():
    line = {"id": "s", "channel": "slack", "tenant": "acme", "from": "a@acme.se", "text": "hi"}
    assert assess(parse_chat(line), "", TRUSTED).verified
