"""Who asks changes what a question is: a buyer's how-to about their own RFQ, a known
supplier asking how to register. Each rule is checked against the case it must leave alone."""
from __future__ import annotations

from tests.conftest import make_email
from triage.core.automated import Automation
from triage.core.classify import Classification
from triage.core.identify import identify
from triage.core.parse import parse_email
from triage.core.policy import Context
from triage.core.relabel import refine
from triage.core.trust import assess


def _refined(config, label: str, signals: dict, sender: str, body: str = "Hello", rules: list | None = None):
    msg = parse_email(make_email(sender=sender, body=body))
    who = identify(msg, config)
    proof = assess(msg, who.tenant.widget_secret, config.email["trusted_authserv_ids"])
    category, intent = label.split("/")
    cls = Classification(category, intent, "en", "normal", 0.9, [], signals, rules=rules or [])
    return refine(Context(msg, who, proof, Automation(), cls, config))


HOW = {"howto_form": ["how do I"]}


def test_a_buyer_asking_how_to_see_their_own_rfq_data_asks_a_how_to(config):
    got = _refined(config, "business/confidential", HOW, "eva.strand@acme.se")
    assert got.label == "technical/howto" and got.rules == ["relabel-internal-own-data-howto"]
    # the same words from a supplier ask for data that is not theirs
    assert _refined(config, "business/confidential", HOW, "tom.user@steelworks.lt").label == "business/confidential"
    # and a buyer who does not ask how stays as read
    assert _refined(config, "business/confidential", {}, "eva.strand@acme.se").label == "business/confidential"


def test_a_buyer_asking_how_to_extend_their_own_rfqs_deadline_asks_a_how_to(config):
    got = _refined(config, "business/deadline", HOW, "eva.strand@acme.se")
    assert got.label == "technical/howto" and got.rules == ["relabel-internal-own-data-howto"]
    # a supplier asking for more time asks for a deadline change, however it is phrased
    assert _refined(config, "business/deadline", HOW, "tom.user@steelworks.lt").label == "business/deadline"


def test_asking_how_to_register_from_a_company_on_the_portal_is_access(config):
    got = _refined(config, "account/new_user", HOW, "new.person@steelworks.lt")  # colleagues are active
    assert got.label == "technical/access" and got.rules == ["relabel-register-known-company"]
    for sender in ("someone@plastics.ru",  # the company's only account is deactivated
                   "someone@unknown-firm.example"):  # the company is not on the portal
        assert _refined(config, "account/new_user", HOW, sender).label == "account/new_user", sender
    # asking for somebody else (an address named) stays a request for an account
    other = _refined(config, "account/new_user", HOW, "petra.admin@steelworks.lt",
                     body="How do I add jan.consult@gmail.com as a user?")
    assert other.label == "account/new_user"
    # and so does asking how to add someone, named or not
    adding = _refined(config, "account/new_user", {**HOW, "add_person": ["add our new"]}, "petra.admin@steelworks.lt",
                      body="How do I add our new sales manager?")
    assert adding.label == "account/new_user"


def test_an_agents_correction_is_never_read_over(config):
    got = _refined(config, "business/confidential", HOW, "eva.strand@acme.se", rules=["agent-reclassified"])
    assert got.label == "business/confidential"


def test_access_for_a_named_person_without_an_account_asks_for_an_account(config):
    got = _refined(config, "account/access_change", {}, "petra.admin@steelworks.lt",
                   body="Please give access to our external consultant, rimas.consult@gmail.com.")
    assert got.label == "account/new_user" and got.rules == ["relabel-access-for-someone-without-account"]
    # rights for someone who already has an account are a change of access
    known = _refined(config, "account/access_change", {}, "petra.admin@steelworks.lt",
                     body="Please make tom.user@steelworks.lt an administrator too.")
    assert known.label == "account/access_change"
    # a mailbox at the sender's own domain is where notifications should go, not a new person
    mailbox = _refined(config, "account/access_change", {}, "petra.admin@steelworks.lt",
                       body="Please send the tender notifications to orders@steelworks.lt as well.")
    assert mailbox.label == "account/access_change"
    # and without anyone named it is the sender's own access
    assert _refined(config, "account/access_change", {}, "tom.user@steelworks.lt").label == "account/access_change"


def test_asking_how_to_add_a_person_asks_for_an_account(config):
    got = _refined(config, "technical/howto", {**HOW, "add_person": ["lagger jag till var nya inkopare"]},
                   "petra.admin@steelworks.lt", body="hur lagger jag till var nya inkopare?")
    assert got.label == "account/new_user" and got.rules == ["relabel-howto-add-person"]
    assert _refined(config, "technical/howto", HOW, "petra.admin@steelworks.lt").label == "technical/howto"
    # a buyer asking how to add suppliers to an RFQ asks a how-to
    assert _refined(config, "technical/howto", {**HOW, "add_person": ["add two suppliers"]},
                    "eva.strand@acme.se").label == "technical/howto"


def test_a_deactivated_account_that_cannot_log_in_asks_for_reactivation(config):
    got = _refined(config, "technical/access", {}, "old.timer@plastics.ru")
    assert got.label == "account/reactivation" and got.rules == ["relabel-deactivated-cannot-log-in"]
    assert _refined(config, "technical/access", {}, "tom.user@steelworks.lt").label == "technical/access"


def test_asking_how_to_register_with_an_invitation_in_hand_is_access(config):
    got = _refined(config, "account/invitation", HOW, "someone@unknown-firm.example",
                   body="We were invited to a tender. How do we register? We have the invitation e-mail.")
    assert got.label == "technical/access" and got.rules == ["relabel-register-with-invitation"]
    # an invitation that expired or never came is a request about the invitation
    broken = _refined(config, "account/invitation", {**HOW, "invitation_problem": ["expired"]},
                      "someone@unknown-firm.example", body="How do we register? The invitation has expired.")
    assert broken.label == "account/invitation"
    # the tenant's own staff asking about invitations ask how to invite
    assert _refined(config, "account/invitation", HOW, "eva.strand@acme.se").label == "account/invitation"
