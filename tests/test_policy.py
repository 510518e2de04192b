"""The decision rules, tested with fixed classifications so each rule is seen on its own.

Includes the contract's "Never" lines: no reply or relay for automated mail or mail to a
no-reply address; no renew_invitation for an unverified sender, another address or a
deactivated account.
"""
from __future__ import annotations

import pytest

from tests.conftest import make_email
from triage.core.automated import Automation
from triage.core.classify import Classification
from triage.core.identify import identify
from triage.core.parse import parse_chat, parse_email
from triage.core.policy import ACTIONS, CHEAP_FALLBACK, FALLBACKS, MARGINS, RULES, Context, decide
from triage.core.trust import assess

REPLYING = {"acknowledge", "redirect_business", "relay_to_company", "renew_invitation",
            "guide_self_service", "request_verified_channel", "decline"}


def _decide(config, raw: bytes | None = None, label: str = "technical/access", *,
            chat: dict | None = None, automation: Automation | None = None,
            confidence: float = 0.9, signals: dict | None = None):
    msg = parse_chat(chat) if chat else parse_email(raw)
    who = identify(msg, config)
    proof = assess(msg, who.tenant.widget_secret if who.tenant else "", config.email["trusted_authserv_ids"])
    category, intent = label.split("/")
    cls = Classification(category, intent, "en", "normal", confidence, [], signals or {})
    return decide(Context(msg, who, proof, automation or Automation(), cls, config))


def test_rule_ids_are_unique_and_actions_known():
    assert len({r.id for r in RULES}) == len(RULES)
    for rule in RULES:
        assert set(rule.actions) <= set(ACTIONS), rule.id


def test_technical_gets_acknowledged(config):
    d = _decide(config, make_email(), "technical/bug")
    assert d.actions == ["acknowledge", "notify_agents"] and "technical-help" in d.reasons


def test_business_question_from_supplier_redirected_and_relayed(config):
    d = _decide(config, make_email(), "business/question")
    assert {"redirect_business", "relay_to_company"} <= set(d.actions)
    assert d.relay_topic == "business"


@pytest.mark.parametrize("kind", ["auto_reply", "bounce", "bulk"])
def test_never_reply_or_relay_to_automated_mail(config, kind):
    auto = Automation()
    auto.add("auto-header-auto-submitted", kind)
    d = _decide(config, make_email(), "business/question", automation=auto)
    assert d.actions == ["suppress"] and not set(d.actions) & REPLYING


def test_never_reply_to_mail_sent_to_noreply(config):
    d = _decide(config, make_email(to="noreply@support.test", sender="tom.user@steelworks.lt"), "business/question")
    assert d.actions == ["suppress"] and "sent-to-noreply-address" in d.reasons


def test_invitation_renewed_for_invited_verified_address(config):
    d = _decide(config, make_email("iva.new@cablecorp.com.ua"), "account/invitation")
    assert "renew_invitation" in d.actions and "invitation-renew-own-address" in d.reasons


@pytest.mark.parametrize("raw, rule", [
    (make_email("iva.new@cablecorp.com.ua", dmarc="fail"), "invitation-unverified-channel"),
    (make_email("iva.new@cablecorp.com.ua", dmarc="pass", authserv="evil.example"), "invitation-unverified-channel"),
    (make_email("iva.new.private@gmail.com"), "invitation-from-unregistered-address"),
    (make_email("colleague@cablecorp.com.ua", body="Please renew for iva.new@cablecorp.com.ua"),
     "invitation-for-someone-else"),
    (make_email("old.timer@plastics.ru"), "invitation-deactivated-account"),
])
def test_never_renew_for_unverified_other_or_deactivated(config, raw, rule):
    d = _decide(config, raw, "account/invitation")
    assert "renew_invitation" not in d.actions
    assert rule in d.reasons


def test_invited_user_asking_for_another_address_is_not_renewed(config):
    raw = make_email("iva.new@cablecorp.com.ua", body="Send the new invitation to iva@gmail.com please")
    assert "renew_invitation" not in _decide(config, raw, "account/invitation").actions


def test_unverified_widget_cannot_renew(config):
    chat = {"id": "w1", "channel": "widget", "tenant": "acme", "from": "iva.new@cablecorp.com.ua",
            "text": "my invitation expired"}
    d = _decide(config, label="account/invitation", chat=chat)
    assert "renew_invitation" not in d.actions and "request_verified_channel" in d.actions


@pytest.mark.parametrize("raw, body_rule", [
    (make_email("tom.user@steelworks.lt"), "new-user-ask-company-admin"),
    (make_email("petra.admin@steelworks.lt", body="add nina@steelworks.lt"), "new-user-admin-adds-colleague"),
    (make_email("petra.admin@steelworks.lt", body="add nina@vilnius.steelworks.lt"), "new-user-admin-similar-domain"),
    (make_email("petra.admin@steelworks.lt", body="add nina.steel@gmail.com"), "new-user-public-address"),
    (make_email("someone@mail.ru"), "new-user-public-address"),
    (make_email("newbie@lonely-parts.de"), "new-user-relay-to-company"),
    (make_email("ceo@brand-new.ee"), "new-user-relay-to-company"),
    (make_email("eva.strand@acme.se"), "new-user-internal-invites"),
    (make_email("ceo@brand-new.ee", to="zenith@support.test"), "new-user-open-registration"),
])
def test_new_user_rules(config, raw, body_rule):
    d = _decide(config, raw, "account/new_user")
    assert body_rule in d.reasons
    assert "renew_invitation" not in d.actions


def test_nobody_gets_an_account_by_asking(config):
    for raw in (make_email("ceo@brand-new.ee"), make_email("someone@mail.ru")):
        d = _decide(config, raw, "account/new_user")
        assert "relay_to_company" in d.actions and "guide_self_service" not in d.actions


@pytest.mark.parametrize("label", ["account/access_change", "account/data_change"])
def test_changes_from_unverified_channels_change_nothing(config, label):
    chat = {"id": "w2", "channel": "widget", "tenant": "acme", "from": "eva.strand@acme.se", "text": "x"}
    d = _decide(config, label=label, chat=chat)
    assert "request_verified_channel" in d.actions and "hold_for_review" not in d.actions
    d = _decide(config, make_email("eva.private@gmail.com"), label)
    assert "request_verified_channel" in d.actions


def test_high_importance_settings_never_done_by_support(config):
    d = _decide(config, make_email("eva.strand@acme.se"), "account/access_change",
                signals={"high_importance": ["currency"]})
    assert "decline" in d.actions and d.decline == "settings"
    d = _decide(config, make_email("eva.strand@acme.se"), "account/access_change")
    assert "hold_for_review" in d.actions


def test_supplier_asking_for_special_access_is_declined(config):
    d = _decide(config, make_email("tom.user@steelworks.lt"), "account/access_change")
    assert d.decline == "special_access"
    # from an unverified channel too: asking for a verified one would promise a change
    d = _decide(config, make_email("tom.user@steelworks.lt", dmarc="none"), "account/access_change")
    assert d.decline == "special_access" and "request_verified_channel" not in d.actions


def test_bidding_urgent_escalates_even_when_unsure(config):
    d = _decide(config, make_email(), "technical/bidding_urgent", confidence=0.2)
    assert "escalate" in d.actions


def test_low_confidence_is_held(config):
    d = _decide(config, make_email(), "business/question", confidence=0.2)
    assert "hold_for_review" in d.actions and "relay_to_company" not in d.actions


def test_confidential_declined(config):
    assert _decide(config, make_email(), "business/confidential").decline == "confidential"


def test_deadline_relayed_and_declined(config):
    d = _decide(config, make_email(), "business/deadline")
    assert {"relay_to_company", "decline"} <= set(d.actions)


# --- cost-aware decisions: expensive actions need their own confidence margin -------------

@pytest.mark.parametrize("label, sender, rule, fallback", [
    ("business/question", "tom.user@steelworks.lt", "business-question-from-supplier", "low-confidence-relay"),
    ("business/confidential", "tom.user@steelworks.lt", "confidential-declined", "low-confidence-decline"),
    ("account/invitation", "iva.new@cablecorp.com.ua", "invitation-renew-own-address", "low-confidence-account"),
    ("automated/bulk", "tom.user@steelworks.lt", "automated-by-content", "low-confidence-suppress"),
])
def test_expensive_actions_below_their_margin_are_held(config, label, sender, rule, fallback):
    margin = min(needed for _, needed in MARGINS.values())
    d = _decide(config, make_email(sender), label, confidence=margin - 0.01)
    assert d.actions == list(FALLBACKS.get(fallback, CHEAP_FALLBACK)) and d.reasons[-2:] == [rule, fallback]
    assert "hold_for_review" in d.actions
    assert not d.relay_topic and not d.decline
    sure = _decide(config, make_email(sender), label, confidence=0.99)
    assert rule == sure.reasons[-1] and "hold_for_review" not in sure.actions


def test_automatic_mail_by_content_is_suppressed_when_sure(config):
    d = _decide(config, make_email(), "automated/bulk", confidence=0.95)
    assert d.actions == ["suppress"] and d.suppressed


def test_header_facts_need_no_margin(config):
    auto = Automation()
    auto.add("auto-header-list-id", "bulk")
    d = _decide(config, make_email(), "automated/bulk", automation=auto, confidence=0.1)
    assert d.actions == ["suppress"] and "automated-mail" in d.reasons
    d = _decide(config, make_email(to="noreply@support.test"), "business/question", confidence=0.5)
    assert d.actions == ["suppress"]


def test_cheap_actions_need_no_margin(config):
    d = _decide(config, make_email(), "technical/bug", confidence=0.5)
    assert d.actions == ["acknowledge", "notify_agents"] and d.reasons[-1] == "technical-help"


def test_a_forged_sender_is_never_relayed_into_the_company(config):
    """The receiving host's DMARC check failed: the From address is not who wrote, so the
    business question is answered with the redirect but not forwarded to the contacts."""
    d = _decide(config, make_email(dmarc="fail"), "business/question")
    assert "relay_to_company" not in d.actions and not d.relay_topic
    assert "redirect_business" in d.actions and "relay-withheld-forged-sender" in d.reasons
    assert "relay_to_company" in _decide(config, make_email(dmarc="none"), "business/question").actions


def test_open_registration_is_for_new_companies_not_for_someone_acting_for_one(config):
    """A consultant hired by a supplier, or someone new at one, does not register a company:
    that is the tenant's decision (relayed), even where new companies may register."""
    raw = make_email("ceo@brand-new.ee", to="zenith@support.test")
    assert "new-user-open-registration" in _decide(config, raw, "account/new_user").reasons
    acting = _decide(config, raw, "account/new_user", signals={"on_behalf": ["on their behalf"]})
    assert "new-user-open-registration" not in acting.reasons and "guide_self_service" not in acting.actions


def test_a_new_company_mentioning_a_colleague_still_registers_itself(config):
    """"A colleague at another firm told us about you" is no request on someone's behalf when
    the company says it is new: it gets the open registration guide, and a company on the
    portal still does not."""
    raw = make_email("sales@brand-new.ee", to="zenith@support.test")
    said = {"on_behalf": ["colleague"], "new_company": ["we're a family-run manufacturer"]}
    assert "new-user-open-registration" in _decide(config, raw, "account/new_user", signals=said).reasons
    assert "new-user-open-registration" not in _decide(config, raw, "account/new_user",
                                                       signals={"on_behalf": ["colleague"]}).reasons
