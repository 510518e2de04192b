"""Loop protection: the last gate before the bot writes to anyone.

Two robots answering each other fill mailboxes within minutes, and replying to a bounce
or to a forged sender turns the bot into a spam cannon. The policy already suppresses
replies to automated mail; this module checks again, right before a mail is queued, with
facts only the store has: how many automatic mails an address got recently and whether
it hard-bounced. Every refusal returns a rule id that the service records as an event.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Protocol

from triage.config import Config, Window, parse_limits
from triage.core.domains import base_address
from triage.store import iso

RULES = {
    "loop-automated-mail": "never answer automated mail (auto-replies, bounces, bulk)",
    "loop-system-sender": "no-reply, mailer-daemon and postmaster senders get no automatic mail",
    "loop-own-address": "the bot never writes to its own addresses (subaddresses such as support+x@ included)",
    "loop-hard-bounce-quiet": "an address that hard-bounced gets no automatic mail for email.bounce_quiet_hours",
    "loop-rate-limit": "too many automatic replies to this mailbox (subaddresses counted together) in one of the "
                       "email.reply_limits windows",
    "loop-followup-acknowledged": "a follow-up on an open ticket gets no second acknowledgement",
    "loop-hard-bounce-recorded": "a permanent bounce of the bot's mail stops automatic mail to that address",
    "loop-relay-rate-limit": "more messages relayed for this requester's mailbox (email.relay_limits) or to this "
                             "tenant's contacts (email.tenant_relay_limits) than a window allows: neither the "
                             "relay nor the automatic reply that would announce it goes; the ticket waits for "
                             "an agent",
}

_SYSTEM = re.compile(r"^(?:mailer-daemon|mail-daemon|mailerdaemon|postmaster|bounces?|"
                     r"no[-_.]?reply|do[-_.]?not[-_.]?reply)(?:[-+._].*)?$", re.I)
# Reply actions that only say "we got it": a follow-up needs none of them again.
ACK_ONLY = {"acknowledge", "hold_for_review", "notify_agents"}


def acknowledged_before(actions: list[str], follow_up: bool) -> bool:
    """A follow-up on a ticket whose decision would only acknowledge it again: one ack per
    ticket is enough (two helpdesks acknowledging each other would never stop)."""
    return follow_up and set(actions) <= ACK_ONLY


class History(Protocol):
    """What the checks need from the store."""

    def sent_since(self, address: str, since: str) -> int: ...
    def suppressed_until(self, address: str, now: str) -> str | None: ...
    def relayed_since(self, since: str, requester: str | None = None, tenant: str | None = None) -> int: ...


def is_system_address(address: str) -> bool:
    return bool(_SYSTEM.match(address.partition("@")[0]))


class Gate:
    """Decides whether one automatic mail to one address may be queued."""

    def __init__(self, own_addresses: set[str], limits: list[Window], bounce_quiet_hours: int,
                 relay_limits: list[Window] | None = None, tenant_relay_limits: list[Window] | None = None):
        self.own = {a.lower() for a in own_addresses}
        self.limits = limits
        self.quiet = timedelta(hours=bounce_quiet_hours)
        self.relay_limits = relay_limits or []
        self.tenant_relay_limits = tenant_relay_limits or []

    @classmethod
    def from_config(cls, config: Config) -> Gate:
        email = config.email
        return cls(config.own_addresses, parse_limits(email["reply_limits"]), email["bounce_quiet_hours"],
                   parse_limits(email["relay_limits"]), parse_limits(email["tenant_relay_limits"]))

    def _address_rule(self, address: str, history: History, now: datetime) -> str | None:
        address = address.lower()
        if base_address(address) in self.own:
            return "loop-own-address"
        if is_system_address(address):
            return "loop-system-sender"
        if history.suppressed_until(address, iso(now)):
            return "loop-hard-bounce-quiet"
        return None

    def check_reply(self, address: str, automated: bool, history: History, now: datetime,
                    followup_ack_only: bool = False) -> str | None:
        """The rule id that forbids an automatic reply to ``address``, or None to send it."""
        if automated:
            return "loop-automated-mail"
        rule = self._address_rule(address, history, now)
        if rule:
            return rule
        if followup_ack_only:
            return "loop-followup-acknowledged"
        for window in self.limits:
            # per mailbox: tom+1@, tom+2@ … are one mailbox, and must not each get a full allowance
            if history.sent_since(base_address(address), iso(now - timedelta(seconds=window.seconds))) >= window.count:
                return "loop-rate-limit"
        return None

    def check_relay(self, address: str, history: History, now: datetime) -> str | None:
        """Never to ourselves or a dead address (a contact, or whoever asked for a transcript)."""
        return self._address_rule(address, history, now)

    def check_relay_rate(self, requester: str, tenant: str, history: History, now: datetime) -> str | None:
        """The rule id that forbids relaying one more message for ``requester`` to ``tenant``'s
        contacts: anyone may write a business question, so without a cap a stranger's script
        (or two robots answering each other through a supplier's address) would fill the
        company's inboxes; a per-tenant cap holds when the sender addresses vary."""
        for windows, key in ((self.relay_limits, {"requester": base_address(requester.lower())}),
                             (self.tenant_relay_limits, {"tenant": tenant})):
            for window in windows:
                if history.relayed_since(iso(now - timedelta(seconds=window.seconds)), **key) >= window.count:
                    return "loop-relay-rate-limit"
        return None

    @property
    def longest_window(self) -> timedelta:
        windows = self.limits + self.relay_limits + self.tenant_relay_limits
        return timedelta(seconds=max((w.seconds for w in windows), default=0))

    def bounce_until(self, now: datetime) -> str:
        return iso(now + self.quiet)
