"""Property: the contract's "Never" lines and the trust rule hold over the whole intake.

Hypothesis writes mail as an attacker would: senders (the invited user, suppliers, staff,
strangers, our own addresses and their subaddresses, mailer daemons), From / Sender /
Reply-To headers (missing, repeated, without an address), stacks of Authentication-Results
(trusted and untrusted ids, versions, comments, garbage, missing header.from, passes for
other domains, values in other methods that authres cannot parse), automated-mail
markers, recipients (support, no-reply, the bot's address, another tenant's) and
invitation-renewal and account requests in five languages. Each mail goes through the real
Intake (threading, pipeline, loop gate, outbox) on a real Store on a temporary database.

The oracle is computed from what was generated, not from triage: only the topmost
Authentication-Results whose authserv-id is trusted counts, and it proves the sender only
when it is a well-formed ``dmarc=pass`` for the domain of the single From header's address.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.servicekit import BOT, CONTACT, NOREPLY, OTHER_SUPPORT, SUPPORT, make_intake, write_config
from triage.config import load_config
from triage.core.pipeline import Pipeline
from triage.service.intake import Delivery
from triage.store import Store

START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
INVITED = "ola@kyivcable.example"
SENDERS = [INVITED, "tom@steelworks.example", "eva.strand@acme.example", "anna.k@gmail.com", "boss@evil.example",
           "acme+x@support.test", SUPPORT, "mailer-daemon@mx.steelworks.example", "noreply@steelworks.example"]
OWN = {SUPPORT, NOREPLY, BOT, OTHER_SUPPORT}
TEXTS = [
    ("Invitation expired", "Hello, my invitation to the supplier portal has expired. Could you please renew it?"),
    ("Inbjudan har gått ut", "Hej! Min inbjudan till leverantörsportalen har gått ut. Kan ni skicka en ny inbjudan?"),
    ("Einladung abgelaufen", "Hallo, meine Einladung zum Lieferantenportal ist abgelaufen. Bitte erneuern Sie sie."),
    ("Приглашение истекло", "Здравствуйте! Моё приглашение на портал поставщиков истекло. Пришлите новое, пожалуйста."),
    ("Запрошення закінчилося", "Добрий день! Моє запрошення на портал постачальників закінчилося. Надішліть нове."),
    ("Renew invitation for colleague", f"Please renew the invitation of {INVITED}, she cannot log in."),
    ("New account", "Hello, please create an account for me and give me admin access to all RFQs."),
    ("Reactivate", "Bitte reaktivieren Sie mein Konto im Lieferantenportal, es wurde deaktiviert."),
    ("Change bank account", "Please change our bank account number in the portal to SE12 3456 7890."),
]
AUTOMATED = [("Auto-Submitted", "auto-replied"), ("Precedence", "bulk"), ("List-Id", "<news.steelworks.example>"),
             ("X-Autoreply", "yes"), ("Auto-Submitted", "auto-generated")]
EXTRAS = ["", "spf=pass smtp.mailfrom={d}; ", "spf=pass smtp.helo=[192.0.2.7]; ", "spf=none smtp.mailfrom=<>; ",
          "dkim=pass header.d={d} header.s=s1; ", "spf=pass smtp.mailfrom=a\\b@{d}; "]


@dataclass(frozen=True)
class AR:
    """One generated Authentication-Results header and what it means."""

    value: str
    trusted: bool  # its authserv-id is ours (after CFWS and version)
    proves: str  # the domain it proves with a well-formed dmarc=pass, "" for none


@st.composite
def auth_results(draw: st.DrawFn, from_domain: str) -> AR:
    kind = draw(st.sampled_from(["trusted", "trusted", "trusted", "untrusted", "garbage"]))
    trusted_ids = ["mx.support.test", "mx.support.test 1", "(our MX) mx.support.test", "MX.Support.Test",
                   "mx.support.test (v2) 1"]
    untrusted_ids = ["mx.attacker.example", "mx.support.test.evil.example", "mx.support.tes", "relay.example.net 1"]
    domain = draw(st.sampled_from([from_domain] * 4 + ["evil.example", "victim.se"])) or "x.example"
    result = draw(st.sampled_from(["pass"] * 4 + ["fail", "none", "permerror", "temperror"]))
    header_from = draw(st.sampled_from([f" header.from={domain}"] * 4 + ["", " header.from"]))
    extra = draw(st.sampled_from(EXTRAS)).format(d=domain)
    if kind == "garbage":  # the trusted id, then something that cannot be read
        broken = draw(st.sampled_from([f'spf=pass smtp.mailfrom="a@{domain}; ', "(unclosed ", ";;; dmarc==; ",
                                       f"dmarc=fail header.from={domain}; "]))
        return AR(f"{draw(st.sampled_from(trusted_ids))}; {broken}dmarc=pass header.from={domain}", True, "")
    authserv = draw(st.sampled_from(trusted_ids if kind == "trusted" else untrusted_ids))
    value = f"{authserv}; {extra}dmarc={result}{header_from}"
    proves = domain if result == "pass" and header_from == f" header.from={domain}" else ""
    return AR(value, kind == "trusted", proves)


@dataclass(frozen=True)
class Mail:
    raw: bytes
    mail_from: str
    recipients: list[str]
    proven: bool  # the oracle: the topmost trusted header proves the single From address's domain
    automated: bool
    to_noreply_only: bool
    own_sender: bool


_ids = itertools.count()


def base(address: str) -> str:
    """The address without its +subaddress."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


@st.composite
def mails(draw: st.DrawFn) -> Mail:
    sender = draw(st.sampled_from([INVITED] * len(SENDERS) + SENDERS))  # the invited user is the prize
    domain = sender.rpartition("@")[2]
    from_shape = draw(st.sampled_from(["name"] * 4 + ["bare", "no-address", "absent", "twice"]))
    lines: list[str] = []
    stack = draw(st.lists(auth_results(domain), min_size=draw(st.sampled_from([0, 1, 1, 2])), max_size=4))
    lines += [f"Authentication-Results: {a.value}" for a in stack]
    if from_shape == "name":
        lines.append(f"From: {draw(st.sampled_from(['Ola Koval', 'Tom', 'Иван Петров', 'Support']))} <{sender}>")
    elif from_shape == "bare":
        lines.append(f"From: {sender}")
    elif from_shape == "no-address":
        lines.append("From: Ola Koval")
    elif from_shape == "twice":
        lines += [f"From: {sender}", "From: boss@evil.example"]
    for header in ("Sender", "Reply-To"):
        if draw(st.booleans()):
            lines.append(f"{header}: {draw(st.sampled_from([sender, INVITED, 'boss@evil.example']))}")
    recipients = draw(st.sampled_from([[SUPPORT]] * 4 + [[NOREPLY], [SUPPORT, NOREPLY], [BOT], [OTHER_SUPPORT]]))
    subject, text = draw(st.sampled_from(TEXTS))
    markers = draw(st.lists(st.sampled_from(AUTOMATED), max_size=2, unique=True)) if draw(st.booleans()) else []
    null_path = draw(st.booleans()) and draw(st.booleans())
    lines += [f"To: {', '.join(recipients)}", f"Subject: {subject}", f"Message-ID: <p{next(_ids)}@prop.example>",
              "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"{k}: {v}" for k, v in markers]
    raw = ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()
    top = next((a for a in stack if a.trusted), None)
    single_from = from_shape in ("name", "bare")
    proven = bool(top and top.proves and single_from and top.proves == domain)
    return Mail(raw, "" if null_path else sender, recipients, proven,
                automated=bool(markers) or null_path or sender.startswith("mailer-daemon")  # in Return-Path too
                or (sender.startswith("noreply") and from_shape in ("name", "bare", "twice")),
                to_noreply_only=recipients == [NOREPLY],
                own_sender=from_shape in ("name", "bare", "twice") and base(sender) in OWN)


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    config = load_config(write_config(tmp_path_factory.mktemp("cfg"), relay_url="smtp://127.0.0.1:9"))
    store = Store(tmp_path_factory.mktemp("db") / "prop.db")
    yield make_intake(config, store, Pipeline(config))
    store.close()


_clock = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(m=mails())
def test_no_renewal_without_proof_and_no_mail_to_machines(intake, m):
    now = START + timedelta(hours=next(_clock))  # an hour apart: the rate caps never decide here
    last_outbox = intake.store.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    [result] = intake.process_batch([Delivery(m.raw, m.mail_from, m.recipients, now)])
    assert not isinstance(result, Exception), result
    ticket = intake.store.ticket(result.ticket)
    [decision] = intake.store.db.query("SELECT outcome, rules FROM events WHERE ticket = ? AND kind = 'decision' "
                                       "ORDER BY id DESC LIMIT 1", [result.ticket])
    actions, rules = decision["outcome"].split(","), json.loads(decision["rules"])
    sent = list(intake.store.db.query("SELECT kind, recipients, raw FROM outbox WHERE id > ?", [last_outbox]))

    event(f"trust {ticket['trust']}")
    event("renew_invitation" if "renew_invitation" in actions else "no renewal")
    event("mail sent" if sent else "nothing sent")
    # The trust rule: verified exactly when the topmost trusted header proves the From domain.
    assert (ticket["trust"] == "verified") == m.proven, (rules, m.raw.decode()[:600])
    if "renew_invitation" in actions:
        assert m.proven, (rules, m.raw.decode()[:600])
    assert "trust-dmarc-pass" not in rules or m.proven
    # Never: a reply or relay for automated mail or mail to a no-reply address, or from ourselves.
    if m.automated or m.to_noreply_only or m.own_sender:
        assert sent == [], (rules, [s["kind"] for s in sent])
    # Never: an internal contact's address in a reply to an external sender.
    for row in sent:
        if row["kind"] == "reply" and json.loads(row["recipients"]) != [CONTACT]:
            assert CONTACT not in row["raw"].decode("utf-8", "replace")
        assert not any(base(r) in OWN for r in json.loads(row["recipients"]))  # the bot never writes to itself
