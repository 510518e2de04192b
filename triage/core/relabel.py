"""What the sender's identity says about the label the words gave.

The classifier reads text only; some distinctions of the contract depend on who asks. A
buyer of the tenant asking "how do I see which suppliers have not quoted?" or "how do I
extend the deadline once the RFQ is published?" asks about their own RFQ, which is a how-to,
not a request for confidential data or a deadline change; "give our consultant
jan@gmail.com access" asks for an account when the directory does not know Jan; "how do I register?" from
someone whose company already works with the tenant is an access question, not a request
for a new account. Each rule has an id that goes into the ticket's reasons.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from triage.core.classify import Classification
from triage.core.domains import domain_of
from triage.core.policy import Context

FINAL = "agent-reclassified"  # an agent's label is the label (triage.desk.agents): no rule reads over it


@dataclass(frozen=True)
class Relabel:
    id: str
    description: str
    source: frozenset[str]  # the labels the rule may change
    target: str
    applies: Callable[[Context], bool]


def _company_on_portal(c: Context) -> bool:
    """The sender, or someone at the sender's company, has an active or pending account."""
    people = ([c.who.user] if c.who.user else []) + c.who.colleagues
    return any(u.status in ("active", "invited") for u in people)


def _named_without_account(c: Context) -> bool:
    """The message names people outside the sender's own mail domain (a consultant's gmail, a
    sister company) and none of them has an account yet. An address at the sender's own
    domain or the tenant's is more often a mailbox for notifications than a person."""
    tenant = c.who.tenant
    named = c.named_addresses
    own = {c.msg.domain, *(tenant.internal_domains if tenant else ())}
    return (tenant is not None and bool(named) and all(domain_of(a) not in own for a in named)
            and all(tenant.directory.get(a) is None for a in named))


RULES = [
    Relabel("relabel-internal-own-data-howto",
            "the tenant's own staff asking how to see or do something with their own RFQs (its data, its "
            "deadline) is a how-to",
            frozenset({"business/confidential", "business/question", "business/deadline"}), "technical/howto",
            lambda c: c.who.requester == "internal" and c.signal("howto_form")),
    Relabel("relabel-access-for-someone-without-account",
            "rights or access for a named person who has no account yet is a request for a new account",
            frozenset({"account/access_change"}), "account/new_user", _named_without_account),
    Relabel("relabel-deactivated-cannot-log-in",
            "a sender whose own account is deactivated and who cannot log in needs it reactivated, which "
            "only the company decides",
            frozenset({"technical/access"}), "account/reactivation",
            lambda c: c.who.user is not None and c.who.user.status == "deactivated"),
    Relabel("relabel-howto-add-person",
            "a supplier asking how to add a colleague or a new user to the portal asks for an account for "
            "them (which the company's own admin can create); a buyer adding suppliers to an RFQ does not",
            frozenset({"technical/howto"}), "account/new_user",
            lambda c: c.who.requester != "internal" and c.signal("add_person")),
    Relabel("relabel-register-with-invitation",
            "asking how to register with an invitation in hand, nothing wrong with the invitation itself "
            "(not expired, not missing), is an access question",
            frozenset({"account/invitation"}), "technical/access",
            lambda c: c.who.requester != "internal" and c.signal("howto_form") and not c.signal("invitation_problem")),
    Relabel("relabel-register-known-company",
            "asking how to register, for oneself, from a company already on the tenant's portal, is an "
            "access question (asking how to add someone is not)",
            frozenset({"account/new_user"}), "technical/access",
            lambda c: c.who.requester == "external" and c.signal("howto_form") and _company_on_portal(c)
            and not c.named_addresses and not c.signal("new_company") and not c.signal("add_person")),
]


def refine(ctx: Context) -> Classification:
    """The classification with the first matching rule applied (its id in ``rules``)."""
    cls = ctx.cls
    if FINAL in cls.rules:
        return cls
    for rule in RULES:
        if cls.label in rule.source and rule.applies(ctx):
            category, intent = rule.target.split("/")
            return replace(cls, category=category, intent=intent, rules=[*cls.rules, rule.id],
                           evidence=[f"rule:{rule.id} (read as {cls.label})", *cls.evidence])
    return cls
