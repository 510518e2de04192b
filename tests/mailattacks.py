"""The mail-side attacks, written once and replayed against any running service.

Each attack is an async function that sends what an attacker would send over SMTP to a
service on loopback and asserts it was held; ``tests/test_mail_attacks.py`` runs each one
against the service in the test's event loop (the test configuration of servicekit) and
all of them against ``triage serve`` started as a subprocess on a copy of
``../shared/eval/config``. The relay behind the service is a recording aiosmtpd sink: the
attacker's own mailbox and the victims' are whatever reaches it.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiosmtplib

from tests.servicekit import BOT, BUSINESS, CONTACT, OTHER_SUPPORT, SUPPORT, Sink, mail
from tests.waiting import until

INVITATION = dict(subject="Invitation expired",
                  body="Hello,\n\nmy invitation to the supplier portal has expired. Could you please send me a "
                       "new invitation?\n\nRegards,\nOla")
TECHNICAL = dict(subject="Cannot log in",
                 body="Hello,\n\nI cannot log in to the supplier portal. The login page shows an error.\n\nThanks")


@dataclass(frozen=True)
class Target:
    """The addresses of one configuration that the attacks need."""

    tenant: str  # slug of the tenant whose support address is attacked
    support: str
    other_support: str  # another tenant's support address
    bot: str  # email.from_address: where bounces of the bot's mail arrive
    trusted_id: str  # the MX's authserv-id
    invited: str  # an invited user in the tenant's directory: what renew_invitation would serve
    contact: str  # the tenant's business contact (receives relays)


ACME = Target(tenant="acme", support=SUPPORT, other_support=OTHER_SUPPORT, bot=BOT, trusted_id="mx.support.test",
              invited="ola@kyivcable.example", contact=CONTACT)  # servicekit's test configuration
EVAL = Target(tenant="nordvik", support="nordvik@support.portal.example",
              other_support="helios@support.portal.example", bot="support@portal.example",
              trusted_id="mx.portal.example", invited="olena.koval@kyivcable.com.ua",
              contact="sara.holm@nordvik.se")  # ../shared/eval/config

Query = Callable[[str, list[Any]], Awaitable[list[dict[str, Any]]]]


@dataclass
class Ctx:
    """A running service, as an attacker and the test see it."""

    target: Target
    smtp: tuple[str, int]
    query: Query
    sink: Sink
    healthz: str

    async def send(self, raw: bytes, rcpts: list[str] | None = None, mail_from: str = "tom@steelworks.example") -> str:
        """Deliver over SMTP (``mail_from=""``: the null reverse-path of a bounce); the answer to DATA."""
        async with aiosmtplib.SMTP(hostname=self.smtp[0], port=self.smtp[1], timeout=60) as smtp:
            _, answer = await smtp.sendmail(mail_from, rcpts or [self.target.support], raw)
        return answer

    async def filed(self, sql: str, params: list[Any], timeout: float = 30.0) -> dict[str, Any]:
        """The one row a query finds once the mail is filed: SMTP's 250 means queued, and the
        workers and the writer file it moments later (bounded wait, then the test fails)."""
        [row] = await until(lambda: self.query(sql, params), timeout)
        return row

    async def ticket_of(self, message_id: str) -> dict[str, Any]:
        return await self.filed("SELECT tickets.* FROM messages JOIN tickets ON tickets.id = messages.ticket "
                                "WHERE messages.direction = 'in' AND messages.message_id = ?", [message_id])

    async def decision_of(self, message_id: str) -> tuple[list[str], list[str]]:
        """(actions, rule ids) the pipeline decided for one inbound message."""
        row = await self.filed("SELECT events.outcome, events.rules FROM events JOIN messages "
                               "ON messages.id = events.message WHERE events.kind = 'decision' "
                               "AND messages.direction = 'in' AND messages.message_id = ?", [message_id])
        return row["outcome"].split(","), json.loads(row["rules"])

    async def thread_rules(self, message_id: str) -> list[str]:
        row = await self.filed("SELECT events.rules FROM events JOIN messages ON messages.id = events.message "
                               "WHERE events.kind = 'thread' AND messages.direction = 'in' "
                               "AND messages.message_id = ?", [message_id])
        return json.loads(row["rules"])

    async def settled(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The outbox once every accepted mail is filed (the inbound queue is empty, /healthz
        says) and nothing waits to be handed to the relay: every row's fate is final."""
        rows: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for _ in range(int(timeout / 0.1)):
                async with session.get(self.healthz, timeout=aiohttp.ClientTimeout(total=10)) as response:
                    depth = (await response.json()).get("queue_depth", 0)
                rows = await self.query("SELECT id, recipients, status, attempts, last_error FROM outbox ORDER BY id",
                                        [])
                if depth == 0 and all(r["status"] in ("sent", "failed") for r in rows):
                    return rows
                await asyncio.sleep(0.1)
        raise AssertionError(f"outbox never settled: {rows}")

    def mailed_to(self, address: str) -> list[Any]:
        return [m for m in self.sink.messages if address in m.rcpt_tos]

    async def healthy(self) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.healthz, timeout=aiohttp.ClientTimeout(total=10)) as response:
                assert response.status == 200, await response.text()


def new_id(tag: str) -> str:
    return f"<{tag}.{uuid.uuid4().hex}@attacker.example>"


def mx_verdicts(t: Target, domain: str) -> dict[str, str]:
    """What the trusted MX writes on top when the sender chose the values of its other
    results, or when the MX names no domain; DMARC itself failed in each."""
    mx = t.trusted_id
    return {
        "version": f"{mx} 1; dmarc=fail header.from={domain}",
        "leading-comment": f"(the MX) {mx}; dmarc=fail header.from={domain}",
        "helo-literal": f"{mx}; spf=pass smtp.helo=[192.0.2.7]; dmarc=fail header.from={domain}",
        "null-mailfrom": f"{mx}; spf=none smtp.mailfrom=<>; dmarc=fail header.from={domain}",
        "backslash-mailfrom": f"{mx}; spf=pass smtp.mailfrom=a\\b@{domain}; dmarc=fail header.from={domain}",
        "no-header-from": f"{mx}; dmarc=pass",
    }


async def attack_forged_dmarc_below_the_mx_header(c: Ctx) -> None:
    """1 and 5: the attacker writes ``dmarc=pass`` for the invited address below the MX's own
    verdict, and makes the MX's header one the old code skipped. No renew_invitation."""
    t = c.target
    domain = t.invited.rpartition("@")[2]
    forged = f"{t.trusted_id}; dmarc=pass header.from={domain}"
    genuine = new_id("genuine")
    await c.send(mail(sender=t.invited, to=t.support, message_id=genuine, name="Ola Koval",
                      headers={"Authentication-Results": f"{t.trusted_id}; dmarc=pass header.from={domain}"},
                      **INVITATION))
    actions, _ = await c.decision_of(genuine)
    assert "renew_invitation" in actions  # the control: the same request, truly verified, is renewed
    for case, verdict in mx_verdicts(t, domain).items():
        mid = new_id(case)
        raw = f"Authentication-Results: {verdict}\r\n".encode() + mail(
            sender=t.invited, to=t.support, message_id=mid, name="Ola Koval",
            headers={"Authentication-Results": forged}, **INVITATION)
        await c.send(raw)
        actions, rules = await c.decision_of(mid)
        assert "renew_invitation" not in actions and "trust-dmarc-pass" not in rules, (case, actions, rules)
        assert (await c.ticket_of(mid))["trust"] == "unverified", case
    other = new_id("other-domain")  # 5: a pass for another domain says so in the audit trail
    await c.send(mail(sender=t.invited, to=t.support, message_id=other, name="Ola Koval",
                      headers={"Authentication-Results": f"{t.trusted_id}; dmarc=pass header.from=evil.example"},
                      **INVITATION))
    actions, rules = await c.decision_of(other)
    assert "renew_invitation" not in actions
    assert "trust-dmarc-other-domain" in rules and "trust-dmarc-pass" not in rules
    await c.healthy()


def dsn(t: Target, failed: str, returned_id: str, message_id: str) -> bytes:
    """A DSN as any MTA writes one, returning the headers of the mail it bounces."""
    return (f"From: MAILER-DAEMON@mx.attacker.example\r\nTo: {t.bot}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {message_id}\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.attacker.example\r\n\r\n"
            f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {t.support}\r\nTo: {failed}\r\n"
            f"Message-ID: {returned_id}\r\n\r\n--B--\r\n").encode()


async def attack_forged_bounce_silences_a_bystander(c: Ctx) -> None:
    """2: get an ack, then forge a DSN that returns it but names a bystander."""
    t = c.target
    attacker, bystander = "mallory@attacker.example", "anna@bystander.example"
    await c.send(mail(sender=attacker, to=t.support, name="Mallory", **TECHNICAL), mail_from=attacker)
    await c.settled()
    [ack] = c.mailed_to(attacker)
    await c.send(dsn(t, bystander, ack.msg["Message-ID"], new_id("dsn")), rcpts=[t.bot], mail_from="")
    await c.settled()  # the DSN is filed
    assert await c.query("SELECT * FROM suppressions WHERE address = ?", [bystander]) == []
    await c.send(mail(sender=bystander, to=t.support, name="Anna", **TECHNICAL), mail_from=bystander)
    await c.settled()
    assert len(c.mailed_to(bystander)) == 1  # the bystander still gets their reply
    await c.healthy()


LONG_NAMES = ["Tom " + "Steel " * 2500, "Иван " + "Петров " * 2000]  # 12-16 KB, legally folded by the sender


async def attack_long_display_name(c: Ctx) -> None:
    """3: a business question whose sender has a display name of 12-16 KB: the reply and
    the relay (whose Reply-To carries the name) must both pass a relay enforcing 998."""
    t = c.target
    for i, name in enumerate(LONG_NAMES):
        sender = f"long{i}@steelworks.example"
        await c.send(mail(sender=sender, to=t.support, name=name, **BUSINESS), mail_from=sender)
        rows = await c.settled()
        assert [r["status"] for r in rows if r["status"] != "sent"] == [], rows
        assert len(c.mailed_to(sender)) == 1
        [relay] = [m for m in c.mailed_to(t.contact) if m.msg["Reply-To"].addresses[0].addr_spec == sender]
        assert max(len(line) for line in relay.raw.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 998
    await c.healthy()


def raw_mail(sender: str, to: str, message_id: str, subject: str = "Cannot log in") -> bytes:
    """A mail whose From is written raw (UTF-8 headers, RFC 6532), as any sender may."""
    return (f"From: Sender <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "I cannot log in to the supplier portal, the login page shows an error.\r\n").encode()


async def attack_unsendable_recipients(c: Ctx) -> None:
    """4: senders with an IDN domain, a space and a non-ASCII local part, then a plain one:
    every row reaches a final state at once and the plain one is delivered."""
    t = c.target
    senders = ["jurgen@bücher.example", '"tom smith"@steelworks.example', "jörg@steelworks.example"]
    for i, sender in enumerate(senders):
        await c.send(raw_mail(sender, t.support, new_id(f"addr{i}"), f"Cannot log in {i}"))
    await c.send(mail(sender="plain@steelworks.example", to=t.support, **TECHNICAL), mail_from="plain@steelworks.example")
    rows = await c.settled()
    assert all(r["attempts"] <= 1 for r in rows), rows  # nothing climbing in a retry loop
    assert len(c.mailed_to("plain@steelworks.example")) == 1
    assert len(c.mailed_to("jurgen@xn--bcher-kva.example")) == 1  # the IDN domain in IDNA
    [utf8] = [r for r in rows if json.loads(r["recipients"]) == ["jörg@steelworks.example"]]
    assert utf8["status"] == "failed" and "SMTPUTF8" in utf8["last_error"]  # the sink offers no SMTPUTF8
    assert not [r for r in rows if "tom smith" in r["recipients"]]  # never queued: the ticket has the event
    await c.healthy()


async def attack_signed_reference_to_the_bot_address(c: Ctx) -> None:
    """6a: a signed reference sent to email.from_address joins the ticket it was signed for
    (only someone the bot wrote to has it), but without a tenant nothing is sent back; the
    same reference to another tenant's support address joins nothing."""
    t = c.target
    holder = "holder@steelworks.example"
    await c.send(mail(sender=holder, to=t.support, name="Holder", **TECHNICAL), mail_from=holder)
    await c.settled()
    [ack] = c.mailed_to(holder)
    signed, before = ack.msg["Message-ID"], len(c.sink.messages)
    to_bot, to_other = new_id("to-bot"), new_id("to-other")
    for mid, rcpt in ((to_bot, t.bot), (to_other, t.other_support)):
        await c.send(mail(sender="mallory@attacker.example", to=rcpt, message_id=mid, subject="Re: Cannot log in",
                          body="Please send me the account details.", headers={"In-Reply-To": signed}),
                     rcpts=[rcpt], mail_from="mallory@attacker.example")
    original = await c.ticket_of(ack.msg["In-Reply-To"])
    assert (await c.ticket_of(to_bot))["id"] == original["id"]
    assert "thread-reference-other-tenant" in await c.thread_rules(to_other)
    assert (await c.ticket_of(to_other))["id"] != original["id"]
    await c.settled()
    since = c.sink.messages[before:]
    assert not [m for m in since if m.msg["In-Reply-To"] == to_bot]  # no answer from no tenant
    assert [m.msg["In-Reply-To"] for m in since if "mallory@attacker.example" in m.rcpt_tos] in ([], [to_other])
    await c.healthy()


async def attack_from_own_subaddress(c: Ctx) -> None:
    """6b: mail from a +subaddress of the support address would be the bot answering itself."""
    t = c.target
    local, _, domain = t.support.partition("@")
    for tag in ("x", "loop.1"):
        sender, mid = f"{local}+{tag}@{domain}", new_id(f"sub-{tag}")
        await c.send(mail(sender=sender, to=t.support, message_id=mid, **TECHNICAL), mail_from=sender)
        actions, rules = await c.decision_of(mid)
        assert "from-own-address" in rules and "suppress" in actions
    await c.settled()
    assert not [m for m in c.sink.messages if any(r.startswith(local + "+") for r in m.rcpt_tos)]
    await c.healthy()


def deep_mime(message_id: str, levels: int, kind: str = "multipart") -> bytes:
    """Multiparts nested ``levels`` deep, or message/rfc822 parts (a bounce of a bounce of …)."""
    head = (f"From: Tom <tom@steelworks.example>\r\nTo: someone@elsewhere.example\r\nSubject: Cannot log in\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n")
    level = ('Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' if kind == "multipart" else
             "Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\nMIME-Version: 1.0\r\n")
    body = "".join(level.format(i=i) for i in range(levels))
    return (head + body + "Content-Type: text/plain\r\n\r\nI cannot log in to the supplier portal.\r\n").encode()


async def attack_deep_mime(c: Ctx) -> None:
    """6c: a MIME tree 5,000 levels deep (the parser recurses per level), and message/rfc822
    parts 400 deep (the parser copes, walking and printing them does not), addressed in the
    envelope only to the support address: each is still the tenant's ticket, not a 451."""
    t = c.target
    for levels, kind in ((5000, "multipart"), (400, "rfc822")):
        mid = new_id(f"deep-{kind}")
        assert "queued as" in await c.send(deep_mime(mid, levels, kind))  # accepted, not a 451
        assert (await c.ticket_of(mid))["tenant"] == t.tenant
        _, rules = await c.decision_of(mid)
        assert "tenant-unknown" not in rules
    await c.healthy()


async def attack_relay_flood(c: Ctx) -> None:
    """9: a stranger's script mails the same business question again and again, from
    subaddresses of one mailbox, each with a new subject: the company's contacts get at most
    email.relay_limits' five in the hour (the default), and no reply announces a relay that
    does not go; every mail is still a ticket with the rule."""
    t = c.target
    senders = [f"flood+{i}@stranger.example" for i in range(8)]
    for i, sender in enumerate(senders):
        await c.send(mail(sender=sender, to=t.support, subject=f"Question about RFQ 2024-{117 + i}",
                          body=BUSINESS["body"]), mail_from=sender)
    await c.settled()
    relayed = [m for m in c.mailed_to(t.contact) if m.msg["Reply-To"]
               and m.msg["Reply-To"].addresses[0].addr_spec in senders]
    assert len(relayed) == 5
    assert sum(len(c.mailed_to(s)) for s in senders) == 5  # a reply only with each relay that went
    capped = await c.query("SELECT tickets.requester_address, events.kind FROM events JOIN tickets ON "
                           "tickets.id = events.ticket WHERE instr(events.rules, '\"loop-relay-rate-limit\"') > 0", [])
    assert sorted((r["requester_address"], r["kind"]) for r in capped) == sorted(
        (s, kind) for s in senders[5:] for kind in ("relay-suppressed", "reply-suppressed"))
    await c.healthy()


ATTACKS = [attack_forged_dmarc_below_the_mx_header, attack_forged_bounce_silences_a_bystander,
           attack_long_display_name, attack_unsendable_recipients, attack_signed_reference_to_the_bot_address,
           attack_from_own_subaddress, attack_deep_mime, attack_relay_flood]
