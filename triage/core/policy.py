"""The support policy as rules with ids: one readable table, first match wins.

Deciding is kept apart from doing (as in Mailman's rules and chains): a rule only says
which actions a message gets; ``triage/service/app.py`` and the outbox carry them out. Every
rule id that fired is stored in the ticket's reasons and shown to agents, so the table
below is also the documentation of why the bot did what it did.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from triage.config import Config
from triage.core.automated import Automation
from triage.core.classify import UNKNOWN, URGENT, Classification
from triage.core.domains import domain_of, is_public, similar
from triage.core.identify import Identity
from triage.core.message import Message
from triage.core.trust import Trust

ACTIONS = ("acknowledge", "redirect_business", "relay_to_company", "renew_invitation",
           "guide_self_service", "request_verified_channel", "decline", "escalate",
           "hold_for_review", "suppress", "notify_agents")
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")

# Cost-aware decisions: the confidence (calibrated, ``triage train``) an action needs when the
# classifier's reading of the words chose it. Relaying to the company, declining, suppressing
# and account actions are expensive when wrong; acknowledging and holding for an agent are
# cheap. Below its margin a rule's decision becomes acknowledge + hold_for_review with the
# rule id ``low-confidence-<what>``. Checked in this order: the first action that misses
# its margin names the fallback.
MARGINS: dict[str, tuple[str, float]] = {  # action -> (what, confidence needed)
    "suppress": ("suppress", 0.85),
    "renew_invitation": ("account", 0.80),
    "guide_self_service": ("account", 0.60),
    "decline": ("decline", 0.70),
    "relay_to_company": ("relay", 0.70),
    "redirect_business": ("relay", 0.70),
}
CHEAP_FALLBACK = ("acknowledge", "hold_for_review", "notify_agents")
# Mail that may be automatic is held without an acknowledgement: a reply to a machine loops.
FALLBACKS = {"low-confidence-suppress": ("hold_for_review", "notify_agents")}


@dataclass
class Context:
    """Everything the rules may look at. Built once per message by the pipeline."""

    msg: Message
    who: Identity
    trust: Trust
    automation: Automation
    cls: Classification
    config: Config

    @property
    def label(self) -> str:
        return self.cls.label

    @property
    def named_addresses(self) -> list[str]:
        """Addresses written in the new text other than the sender's: the people a request is for."""
        found = [a.lower().rstrip(".") for a in _ADDRESS.findall(self.msg.new_text or self.msg.text)]
        return [a for a in dict.fromkeys(found) if a != self.msg.sender and not self.config.is_own_address(a)]

    @property
    def registered(self) -> bool:
        """Verified, and from an address the tenant knows (its directory or its domains)."""
        return self.trust.verified and (self.who.user is not None or self.who.requester == "internal")

    def signal(self, name: str) -> bool:
        return name in self.cls.signals


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    applies: Callable[[Context], bool]
    actions: tuple[str, ...]
    guide: str = ""  # which self-service explanation the reply gives
    decline: str = ""  # which refusal the reply gives
    worded: bool = True  # decided by the classifier's reading of the words: MARGINS apply


@dataclass
class Decision:
    actions: list[str]
    reasons: list[str] = field(default_factory=list)
    guide: str = ""
    decline: str = ""
    relay_topic: str = ""

    @property
    def suppressed(self) -> bool:
        return "suppress" in self.actions


def _only_noreply(c: Context) -> bool:
    rcpts = [r for r in c.msg.recipients if c.config.tenant_for_address(r)] or c.msg.recipients
    return c.msg.channel == "email" and bool(rcpts) and all(c.config.is_noreply(r) for r in rcpts)


def _is(label: str) -> Callable[[Context], bool]:
    return lambda c: c.label == label


def _category(name: str) -> Callable[[Context], bool]:
    return lambda c: c.cls.category == name


def _invited_self(c: Context) -> bool:
    user = c.who.user
    return (user is not None and user.status == "invited" and c.trust.verified
            and not c.signal("on_behalf") and all(a == user.email for a in c.named_addresses))


def _admin_may_add(c: Context) -> bool:
    user = c.who.user
    return (c.who.tenant is not None and c.who.tenant.external_admins_can_add_users and user is not None
            and user.role == "external_admin" and user.status == "active")


def _named_public(c: Context) -> bool:
    named = c.named_addresses
    if named:
        return any(is_public(domain_of(a)) for a in named)
    return c.who.public_provider


def _named_same_domain(c: Context) -> bool:
    """Exactly the sender's domain: what the portal itself lets an admin add."""
    return all(domain_of(a) == c.msg.domain for a in c.named_addresses)


def _named_similar(c: Context) -> bool:
    return bool(c.named_addresses) and all(similar(domain_of(a), c.msg.domain) for a in c.named_addresses)


def _colleague_admin_can_add(c: Context) -> bool:
    tenant = c.who.tenant
    return (tenant is not None and tenant.external_admins_can_add_users
            and bool(c.who.active_external_admins) and not c.who.public_provider)


# The policy, in order. First matching rule decides the actions.
RULES: list[Rule] = [
    # --- machine mail and non-standard channels: never answered ---------------------------
    Rule("automated-mail", "out-of-office, bounce or bulk mail gets no reply",
         lambda c: bool(c.automation.kind), ("suppress",), worded=False),
    Rule("sent-to-noreply-address", "mail to a no-reply address is not a support channel",
         _only_noreply, ("suppress",), worded=False),
    Rule("from-own-address", "mail from the bot's own addresses (or a +subaddress of one) would loop",
         lambda c: c.config.is_own_address(c.msg.sender), ("suppress",), worded=False),
    Rule("no-sender-address", "nobody to answer: an agent looks at it",
         lambda c: not c.msg.sender, ("hold_for_review", "notify_agents"), worded=False),
    Rule("automated-by-content", "newsletters, marketing and automatic replies known by their wording",
         _category("automated"), ("suppress",)),
    Rule("tenant-unknown", "no tenant owns the recipient: an agent routes it",
         lambda c: c.who.tenant is None, ("hold_for_review", "notify_agents"), worded=False),
    # --- emergencies first, before any doubt about the wording ----------------------------
    Rule("bidding-urgent", "a live auction closing in minutes: alert agents at once",
         _is(URGENT), ("escalate", "acknowledge", "notify_agents")),
    Rule("low-confidence", "the classifier is not sure: an agent decides",
         lambda c: c.cls.confidence < c.config.low_confidence and c.label != UNKNOWN,
         ("acknowledge", "hold_for_review", "notify_agents")),
    # --- technical help and feedback ------------------------------------------------------
    Rule("technical-help", "technical questions are what support answers",
         _category("technical"), ("acknowledge", "notify_agents")),
    Rule("feedback-thanks", "feature wishes are welcome and passed to the product team",
         _category("feedback"), ("acknowledge", "notify_agents")),
    # --- business: never answered by support ------------------------------------------------
    Rule("confidential-declined", "other suppliers' data, internal data and contacts are never shared",
         _is("business/confidential"), ("decline", "notify_agents"), decline="confidential"),
    Rule("deadline-internal", "the tenant's own staff change deadlines themselves",
         lambda c: c.label == "business/deadline" and c.who.requester == "internal",
         ("acknowledge", "hold_for_review", "notify_agents")),
    Rule("deadline-by-company-only", "only the tenant decides on deadlines: relay and decline",
         _is("business/deadline"), ("decline", "relay_to_company", "notify_agents"), decline="deadline"),
    Rule("business-question-internal", "the tenant's own staff asking about business: an agent looks",
         lambda c: c.label == "business/question" and c.who.requester == "internal",
         ("acknowledge", "hold_for_review", "notify_agents")),
    Rule("business-question-from-supplier", "business questions go to the company's own contacts",
         _is("business/question"), ("redirect_business", "relay_to_company", "notify_agents")),
    # --- invitations: renewed only for the invited, verified address itself -------------------
    Rule("invitation-unverified-channel", "an unverified sender cannot have an invitation renewed",
         lambda c: c.label == "account/invitation" and not c.trust.verified,
         ("request_verified_channel", "notify_agents")),
    Rule("invitation-deactivated-account", "a deactivated account is the company's decision",
         lambda c: c.label == "account/invitation" and c.who.user is not None
         and c.who.user.status == "deactivated", ("relay_to_company", "notify_agents")),
    Rule("invitation-renew-own-address", "the invited address itself, verified: renew it",
         lambda c: c.label == "account/invitation" and _invited_self(c),
         ("renew_invitation", "notify_agents")),
    Rule("invitation-from-unregistered-address", "ask the invited person to write from the invited address",
         lambda c: c.label == "account/invitation" and c.who.requester == "unknown",
         ("request_verified_channel", "notify_agents")),
    Rule("invitation-for-someone-else", "a request for another person's invitation goes to the company",
         _is("account/invitation"), ("relay_to_company", "hold_for_review", "notify_agents")),
    # --- new users: nobody gets an account just by asking ------------------------------------
    Rule("new-user-internal-invites", "the tenant's staff invite suppliers in the portal",
         lambda c: c.label == "account/new_user" and c.who.requester == "internal",
         ("guide_self_service", "notify_agents"), guide="internal_invite"),
    Rule("new-user-open-registration", "the tenant lets new supplier companies register themselves "
         "(not someone new at a supplier, or acting for one: that is the company's decision; a colleague "
         "merely mentioned by a company that says it is new does not make it so)",
         lambda c: c.label == "account/new_user" and c.who.tenant is not None and c.who.tenant.open_registration
         and c.who.user is None and not c.who.colleagues
         and (not c.signal("on_behalf") or c.signal("new_company")),
         ("guide_self_service", "notify_agents"), guide="open_registration"),
    Rule("new-user-public-address", "accounts are never made for public mailbox addresses",
         lambda c: c.label == "account/new_user" and _named_public(c),
         ("decline", "relay_to_company", "notify_agents"), decline="account_creation"),
    Rule("new-user-admin-adds-colleague", "a supplier's admin adds colleagues at the same domain",
         lambda c: c.label == "account/new_user" and _admin_may_add(c) and _named_same_domain(c),
         ("guide_self_service", "notify_agents"), guide="admin_add_colleague"),
    Rule("new-user-admin-similar-domain", "an admin's colleague at an obviously similar domain: agent helps",
         lambda c: c.label == "account/new_user" and _admin_may_add(c) and _named_similar(c),
         ("acknowledge", "hold_for_review", "notify_agents")),
    Rule("new-user-ask-company-admin", "the supplier's own admin can add the sender",
         lambda c: c.label == "account/new_user" and _colleague_admin_can_add(c)
         and not c.named_addresses, ("guide_self_service", "notify_agents"), guide="ask_company_admin"),
    Rule("new-user-relay-to-company", "nobody at the supplier can add users: the company decides",
         _is("account/new_user"), ("relay_to_company", "notify_agents")),
    # --- reactivation: the company's decision ------------------------------------------------
    Rule("reactivation-internal", "the tenant's staff reactivate supplier accounts in the portal",
         lambda c: c.label == "account/reactivation" and c.who.requester == "internal" and c.trust.verified,
         ("guide_self_service", "notify_agents"), guide="internal_self_service"),
    Rule("reactivation-unverified-channel", "an unverified sender cannot have an account reactivated",
         lambda c: c.label == "account/reactivation" and not c.trust.verified,
         ("request_verified_channel", "relay_to_company", "notify_agents")),
    Rule("reactivation-by-company-only", "reactivation is the company's decision: relay",
         _is("account/reactivation"), ("relay_to_company", "notify_agents")),
    # --- settings, roles and data: only from verified, registered senders ------------------
    Rule("special-access-declined",
         "suppliers get no access beyond their role from support, from any channel (a verified one "
         "would not change the answer)",
         lambda c: c.label == "account/access_change" and c.who.requester == "external",
         ("decline", "notify_agents"), decline="special_access"),
    Rule("change-unverified-channel", "changes need a verified channel",
         lambda c: c.cls.category == "account" and c.cls.intent in ("access_change", "data_change")
         and not c.trust.verified, ("request_verified_channel", "notify_agents")),
    Rule("data-change-supplier", "support does not edit submitted offers: the company decides",
         lambda c: c.label == "account/data_change" and c.who.requester == "external",
         ("decline", "relay_to_company", "notify_agents"), decline="data_change"),
    Rule("change-unregistered-address", "changes for the tenant need an address it knows",
         lambda c: c.cls.category == "account" and c.cls.intent in ("access_change", "data_change")
         and not c.registered, ("request_verified_channel", "notify_agents")),
    Rule("high-importance-setting", "currency, bank, domain, passwords and roles are never changed by support",
         lambda c: c.label == "account/access_change" and c.signal("high_importance"),
         ("decline", "guide_self_service", "notify_agents"), guide="internal_self_service",
         decline="settings"),
    Rule("setting-change-review", "other settings from a verified admin: an agent reviews",
         _is("account/access_change"), ("acknowledge", "hold_for_review", "notify_agents")),
    Rule("data-change-review", "data changes for the tenant's staff: an agent reviews",
         _is("account/data_change"), ("acknowledge", "hold_for_review", "notify_agents")),
    # --- the rest -----------------------------------------------------------------------------
    Rule("unknown-needs-agent", "not sure what this is: acknowledge and let an agent decide",
         lambda c: True, ("acknowledge", "hold_for_review", "notify_agents")),
]
RULE_IDS = [r.id for r in RULES]
assert len(set(RULE_IDS)) == len(RULE_IDS), "rule ids must be unique"


def short_of_margin(rule: Rule, confidence: float) -> str:
    """``low-confidence-<what>`` when an expensive action of a worded rule lacks its
    margin (see MARGINS), else ""."""
    if not rule.worded:
        return ""
    for action, (what, needed) in MARGINS.items():
        if action in rule.actions and confidence < needed:
            return f"low-confidence-{what}"
    return ""


FORGED_NOT_RELAYED = "relay-withheld-forged-sender"  # the receiving host's DMARC check failed
MARGIN_RULE_IDS = sorted({f"low-confidence-{what}" for what, _ in MARGINS.values()})


def decide(ctx: Context) -> Decision:
    """Apply the first matching rule; the reasons list every fact and rule that led there.
    A worded rule whose expensive action lacks its confidence margin falls back to the
    cheap acknowledge + hold, and both rule ids are in the reasons."""
    reasons = list(ctx.who.reasons) + [ctx.trust.reason] + ctx.automation.reasons + ctx.cls.rules
    for rule in RULES:
        if rule.applies(ctx):
            unsure = short_of_margin(rule, ctx.cls.confidence)
            if unsure:
                return Decision(list(FALLBACKS.get(unsure, CHEAP_FALLBACK)), reasons + [rule.id, unsure])
            topic = "business" if ctx.cls.category == "business" else "account"
            actions, why = list(rule.actions), reasons + [rule.id]
            if "relay_to_company" in actions and ctx.trust.reason == "trust-dmarc-fail":
                actions.remove("relay_to_company")  # a forged From is never forwarded into the company
                why.append(FORGED_NOT_RELAYED)
            return Decision(actions, why, rule.guide, rule.decline, topic if "relay_to_company" in actions else "")
    raise AssertionError("the last rule always applies")  # pragma: no cover


_RULE_IDS = {r.id for r in RULES} | set(MARGIN_RULE_IDS)


def decided_by(reasons: list[str]) -> str:
    """The policy rule among a decision's reasons (the facts before it, the article rule after
    it): what a log line names as the decision."""
    return next((r for r in reversed(reasons) if r in _RULE_IDS), "")
