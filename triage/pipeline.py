"""One entry point every channel calls: message in, decision and drafted texts out.

parse → identify → trust → automated → classify → decide → render. Nothing here sends or
stores: the service does that with the :class:`Outcome`, and ``triage classify`` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from triage import automated, hours, trust
from triage.classify import Classification, Classifier
from triage.config import Config
from triage.identify import Identity, identify
from triage.lexicon import load_lexicon
from triage.message import Message
from triage.model import Model
from triage.policy import Context, Decision, decide
from triage.render import Renderer, format_hours, format_moment

# Which paragraph of the reply each action contributes, in reading order.
REPLY_PARTS = [("escalate", "urgent"), ("acknowledge", "acknowledge"),
               ("redirect_business", "redirect_business"), ("renew_invitation", "renew_invitation"),
               ("guide_self_service", "guide_self_service"), ("decline", "decline"),
               ("request_verified_channel", "request_verified_channel"),
               ("relay_to_company", "relay_notice"), ("hold_for_review", "hold_for_review")]


@dataclass
class Outcome:
    msg: Message
    who: Identity
    trust: trust.Trust
    automation: automated.Automation
    cls: Classification
    decision: Decision
    ticket: int
    reply: str | None
    relay_subject: str | None
    relay: str | None

    def portable(self) -> Outcome:
        """A copy that crosses a process boundary cheaply: no MIME tree, no tenant object (its
        directory is large; the receiver binds its own with :meth:`bind`)."""
        return replace(self, msg=self.msg.detached(), who=replace(self.who, tenant=None, colleagues=[]))

    def bind(self, config: Config, tenant: str | None) -> Outcome:
        """The portable outcome with the receiver's own tenant object for ``tenant`` (a slug)."""
        self.who.tenant = config.tenants.get(tenant) if tenant else None
        return self

    def contract(self) -> dict:
        """The JSON line of ``triage classify`` (see CONTRACT.md)."""
        line = {
            "id": self.msg.id,
            "tenant": self.who.tenant.slug if self.who.tenant else None,
            "category": self.cls.category, "intent": self.cls.intent,
            "requester": self.who.requester, "trust": self.trust.label,
            "language": self.cls.language, "priority": self.cls.priority,
            "actions": self.decision.actions, "reasons": self.decision.reasons,
            "confidence": self.cls.confidence, "evidence": self.cls.evidence,
            "reply": self.reply, "relay": self.relay,
        }
        if self.automation.failed_recipients:
            line["failed_recipients"] = self.automation.failed_recipients
        if self.msg.error:
            line["error"] = self.msg.error
        return line


class Drafts:
    """The render stage alone (templates, no classifier): the service's writer renders with it
    once it knows the ticket number, and only for a decision that gets a reply or a relay."""

    def __init__(self, renderer: Renderer | None = None):
        self.renderer = renderer or Renderer()

    def complete(self, outcome: Outcome, ticket: int, now: datetime) -> Outcome:
        """The assessed outcome with its reply and relay drafted for ticket number ``ticket``."""
        who, decision = outcome.who, outcome.decision
        outcome.ticket = ticket
        if who.tenant and not decision.suppressed:
            outcome.reply = self.draft_reply(outcome.msg, who, outcome.cls, decision, ticket, now)
            if decision.relay_topic:
                outcome.relay_subject, outcome.relay = self._relay(outcome.msg, who, outcome.trust, outcome.cls,
                                                                   decision, ticket)
        return outcome

    def draft_reply(self, msg: Message, who: Identity, cls: Classification, decision: Decision,
                    ticket: int, now: datetime) -> str | None:
        """The reply to the requester for a decision (None when it has nothing to say)."""
        parts = [part for action, part in REPLY_PARTS if action in decision.actions]
        if not parts or not msg.sender:
            return None
        tenant = who.tenant
        assert tenant is not None
        lang = self.renderer.pick(cls.language, tenant.language)
        back = hours.next_open(tenant.hours, tenant.timezone, now)
        context = {
            "ticket": str(ticket), "ticket_tag": f"[#{ticket}]", "tenant": tenant.name,
            "sender_name": msg.sender_name, "channel": msg.channel, "portal_url": tenant.portal_url,
            "hours": format_hours(tenant.hours.days, tenant.hours.start, tenant.hours.end, lang, tenant.timezone),
            "open_now": hours.is_open(tenant.hours, tenant.timezone, now),
            "reply_by": format_moment(back, lang), "parts": parts,
            "guide": decision.guide, "decline_reason": decision.decline,
        }
        return self.renderer.reply(lang, tenant.language, context)

    def _relay(self, msg: Message, who: Identity, proof: trust.Trust, cls: Classification,
               decision: Decision, ticket: int) -> tuple[str, str]:
        tenant = who.tenant
        assert tenant is not None
        context = {
            "ticket_tag": f"[#{ticket}]", "tenant": tenant.name, "sender_name": msg.sender_name,
            "sender_email": msg.sender, "sender_company": who.company, "requester": who.requester,
            "verified": proof.verified, "trust_evidence": proof.evidence, "category": cls.category,
            "intent": cls.intent, "channel": msg.channel, "subject": msg.subject,
            "text": msg.text or msg.new_text, "reasons": decision.reasons,
        }
        return self.renderer.relay(tenant.language, tenant.language, context)


class Pipeline(Drafts):
    """Built once per configuration: the lexicon, model and templates are loaded here."""

    def __init__(self, config: Config, renderer: Renderer | None = None):
        super().__init__(renderer)
        self.config = config
        self.lexicon = load_lexicon(config.languages)
        self.classifier = Classifier(self.lexicon, Model.load(), config.languages)

    def assess(self, msg: Message, now: datetime | None = None) -> Outcome:
        """Everything up to the decision (the expensive part, run in the service's worker
        processes); nothing is rendered, since the ticket number is not known yet."""
        who = identify(msg, self.config)
        tenant = who.tenant
        proof = trust.assess(msg, tenant.widget_secret if tenant else "",
                             self.config.email["trusted_authserv_ids"])
        auto = automated.detect(msg, self.lexicon)
        cls = self.classifier.classify(msg, auto, tenant.language if tenant else "en")
        decision = decide(Context(msg, who, proof, auto, cls, self.config))
        return Outcome(msg, who, proof, auto, cls, decision, 0, None, None, None)

    def run(self, msg: Message, ticket: int, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(timezone.utc)
        return self.complete(self.assess(msg, now), ticket, now)
