"""DMARC from trusted Authentication-Results only; widget HMAC; Slack."""
from __future__ import annotations

import pytest

from tests.conftest import make_email
from triage.core.parse import parse_chat, parse_email
from triage.core.trust import RULES, assess, widget_hash

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


# -- the attacks: the MX's own header on top, the attacker's forged pass below ------------

FORGED = "mx.support.test; dmarc=pass header.from=victim.se"
# What the trusted MX writes when the sender chose the values in its other results.
MX_HEADERS = {
    "version": "mx.support.test 1; dmarc=fail header.from=victim.se",
    "leading-comment": "(our MX) mx.support.test; dmarc=fail header.from=victim.se",
    "helo-literal": "mx.support.test; spf=pass smtp.helo=[192.0.2.7]; dmarc=fail header.from=victim.se",
    "null-mailfrom": "mx.support.test; spf=none smtp.mailfrom=<>; dmarc=fail header.from=victim.se",
    "backslash-mailfrom": "mx.support.test; spf=pass smtp.mailfrom=a\\b@victim.se; dmarc=fail header.from=victim.se",
    "open-quote": 'mx.support.test; spf=pass smtp.mailfrom="a@victim.se; dmarc=fail header.from=victim.se',
    "no-header-from": "mx.support.test; dmarc=pass",
    "no-dmarc": "mx.support.test; spf=pass smtp.mailfrom=victim.se",
    "unparseable-dmarc": "mx.support.test; dmarc=pass header.from=victim.se policy.ip=[192.0.2.7]",
    "two-dmarc": "mx.support.test; dmarc=fail header.from=victim.se; dmarc=pass header.from=victim.se",
}


def with_mx_header(mx_header: str, raw: bytes) -> bytes:
    """The receiving MX prepends its verdict above everything the message arrived with."""
    return f"Authentication-Results: {mx_header}\r\n".encode() + raw


@pytest.mark.parametrize("case", sorted(MX_HEADERS))
def test_the_attackers_header_below_the_mx_header_never_decides(case):
    raw = with_mx_header(MX_HEADERS[case], make_email(sender="boss@victim.se", dmarc=None,
                                                      headers={"Authentication-Results": FORGED}))
    t = _trust(raw)
    assert not t.verified, (case, t)
    assert t.reason in RULES


@pytest.mark.parametrize("mx_header,rule", [
    ("mx.support.test 1; dmarc=pass header.from=victim.se", "trust-dmarc-pass"),
    ("(our MX) mx.support.test (v) ; dmarc=pass (p=reject) header.from=victim.se", "trust-dmarc-pass"),
    ("MX.Support.Test; spf=pass smtp.helo=[192.0.2.7]; dmarc=pass header.from=victim.se", "trust-dmarc-pass"),
    ("mx.support.test; spf=none smtp.mailfrom=<>; dmarc=pass header.from=victim.se", "trust-dmarc-pass"),
    ('mx.support.test; spf=pass smtp.mailfrom="a;b"@victim.se; dmarc=pass header.from=victim.se', "trust-dmarc-pass"),
    ("mx.support.test; dmarc=pass", "trust-dmarc-no-header-from"),
    ("mx.support.test; dmarc=pass header.from", "trust-dmarc-no-header-from"),
    ("mx.support.test; dmarc=pass header.from=victim.se policy.ip=[192.0.2.7]",
     "trust-authentication-results-unparseable"),
    ('mx.support.test; spf=pass smtp.mailfrom="a@victim.se; dmarc=pass header.from=victim.se',
     "trust-authentication-results-unparseable"),
    ("mx.support.test; dmarc=fail header.from=victim.se; dmarc=pass header.from=victim.se",
     "trust-dmarc-multiple-results"),
    ("mx.support.test; spf=pass smtp.mailfrom=victim.se", "trust-no-dmarc-result"),
    ("mx.support.test; dmarc=pass header.from=evil.example", "trust-dmarc-other-domain"),
    ("mx.support.test; dmarc=permerror header.from=victim.se", "trust-dmarc-permerror"),
    ("mx.support.test; dmarc=policy header.from=victim.se", "trust-dmarc-other-result"),
    ("mx.support.test.evil.example; dmarc=pass header.from=victim.se", "trust-no-trusted-authentication-results"),
])
def test_the_topmost_trusted_header_alone_decides(mx_header, rule):
    t = _trust(with_mx_header(mx_header, make_email(sender="boss@victim.se", dmarc=None)))
    assert t.reason == rule and t.verified == (rule == "trust-dmarc-pass")


def test_later_hops_above_the_mx_header_are_ignored():
    raw = with_mx_header("relay.example.net; dmarc=fail header.from=victim.se",
                         with_mx_header("mx.support.test; dmarc=pass header.from=victim.se",
                                        make_email(sender="boss@victim.se", dmarc=None)))
    assert _trust(raw).reason == "trust-dmarc-pass"


def test_a_pass_for_another_domain_says_so():
    """The audit trail must say what was decided: not trust-dmarc-pass on an unverified ticket."""
    raw = make_email(sender="boss@victim.se", dmarc=None,
                     headers={"Authentication-Results": "mx.support.test; dmarc=pass header.from=evil.example"})
    t = _trust(raw)
    assert not t.verified and t.reason == "trust-dmarc-other-domain"


def test_a_deeply_nested_comment_costs_no_recursion():
    raw = with_mx_header("mx.support.test; spf=pass smtp.helo=" + "(" * 50_000 + "; dmarc=pass header.from=victim.se",
                         make_email(sender="boss@victim.se", dmarc=None, headers={"Authentication-Results": FORGED}))
    assert not _trust(raw).verified


def test_every_trust_rule_is_described():
    import ast
    import inspect

    import triage.core.trust

    literals = {n.value for n in ast.walk(ast.parse(inspect.getsource(triage.core.trust)))
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("trust-")
                and n.value != "trust-dmarc-"}
    assert literals <= set(RULES) and all(RULES.values())


@pytest.mark.parametrize("head", [
    "From: Boss\r\nReply-To: boss@victim.se\r\n",  # no address in From: the sender comes from Reply-To
    "From: boss@victim.se\r\nFrom: mallory@evil.example\r\n",  # two From headers
    "Sender: boss@victim.se\r\n",  # no From at all
])
def test_dmarc_vouches_only_for_the_single_from_header(head):
    raw = (f"Authentication-Results: mx.support.test; dmarc=pass header.from=victim.se\r\n{head}"
           "To: acme@support.test\r\nSubject: x\r\n\r\nhello\r\n").encode()
    t = _trust(raw)
    assert not t.verified and t.reason == "trust-sender-not-from-header"
