"""One entry point every channel calls: message in, decision and drafted texts out.

parse → identify → trust → automated → classify (then ``relabel``: what the sender's
identity says about the label) → decide → render. Nothing here sends or
stores: the service does that with the :class:`Outcome`, and ``triage classify`` prints it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from triage.config import Config, Tenant
from triage.core import automated, hours, knowledge, relabel, trust
from triage.core.classify import Classification, Classifier
from triage.core.identify import Identity, identify, mail_system
from triage.core.lexicon import load_lexicon
from triage.core.message import Message
from triage.core.model import Model
from triage.core.policy import Context, Decision, decide
from triage.core.render import Renderer, format_hours, format_moment
from triage.core.translit import latin_reading

# Which paragraph of the reply each action contributes, in reading order.
REPLY_PARTS = [("escalate", "urgent"), ("acknowledge", "acknowledge"),
               ("redirect_business", "redirect_business"), ("renew_invitation", "renew_invitation"),
               ("guide_self_service", "guide_self_service"), ("decline", "decline"),
               ("request_verified_channel", "request_verified_channel"),
               ("relay_to_company", "relay_notice"), ("hold_for_review", "hold_for_review"),
               ("renewal_confirmed", "renewal_confirmed")]  # the portal confirmed (triage.service.renewal)


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
    suggestions: knowledge.Suggestions
    chat: str | None = None  # the reply sized for the help widget (widget lines only)

    def portable(self) -> Outcome:
        """A copy that crosses a process boundary cheaply: no MIME tree, no tenant object (its
        directory is large; the receiver binds its own with :meth:`bind`). Of the sender's
        colleagues one is kept: the reply only needs to know that there are any (has_contacts)."""
        return replace(self, msg=self.msg.detached(),
                       who=replace(self.who, tenant=None, colleagues=self.who.colleagues[:1]))

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
            "articles": [{"id": s.article.id, "title": s.article.title, "url": s.article.url,
                          "language": s.article.language, "score": round(s.score, 2)}
                         for s in self.suggestions.articles],
        }
        if self.automation.failed_recipients:
            line["failed_recipients"] = self.automation.failed_recipients
        if self.msg.error:
            line["error"] = self.msg.error
        return line


def _kb_text(msg: Message, language: str) -> str:
    """What the knowledge base is searched with: the subject and the new text of the message,
    and for Russian or Ukrainian typed in Latin letters their Cyrillic reading too (the
    articles are in Cyrillic)."""
    return latin_reading(f"{msg.subject}\n{msg.new_text or msg.text}", language)


def greeting_name(msg: Message, who: Identity, verified: bool) -> str:
    """The name a reply greets: the one the sender gave, else their directory entry's — but
    only for a proven sender, or a stranger typing a supplier's address into the widget would
    learn that person's name."""
    if msg.sender_name:
        return msg.sender_name
    return who.user.name if verified and who.user is not None else ""


def has_contacts(who: Identity) -> bool:
    """Whether the sender already works with the tenant (they or colleagues are in its
    directory, or they are its own staff): only then may a reply point them to "your existing
    contacts", which a company writing for the first time does not have."""
    return who.requester == "internal" or who.user is not None or bool(who.colleagues)


class Drafts:
    """The render stage alone (templates, no classifier): the service's writer renders with it
    once it knows the ticket number, and only for a decision that gets a reply or a relay."""

    def __init__(self, renderer: Renderer | None = None):
        self.renderer = renderer or Renderer()

    def complete(self, outcome: Outcome, ticket: int, now: datetime) -> Outcome:
        """The assessed outcome with its reply (and, for a widget line, the chat-sized one) and
        relay drafted for ticket number ``ticket``."""
        who, decision, msg = outcome.who, outcome.decision, outcome.msg
        outcome.ticket = ticket
        if who.tenant and not decision.suppressed:
            outcome.reply = self.draft_reply(msg, who, outcome.cls, decision, ticket, now,
                                             outcome.trust.verified, outcome.suggestions)
            if outcome.reply and msg.channel == "widget":
                outcome.chat = self.draft_reply(msg, who, outcome.cls, decision, ticket, now,
                                                outcome.trust.verified, outcome.suggestions, chat=True)
            if decision.relay_topic:
                outcome.relay_subject, outcome.relay = self._relay(msg, who, outcome.trust, outcome.cls,
                                                                   decision, ticket)
        return outcome

    def draft_reply(self, msg: Message, who: Identity, cls: Classification, decision: Decision,
                    ticket: int, now: datetime, verified: bool, offered: knowledge.Suggestions,
                    chat: bool = False) -> str | None:
        """The reply to the requester for a decision (None when it has nothing to say): the
        letter, or with ``chat`` the same paragraphs sized for the widget."""
        parts = [part for action, part in REPLY_PARTS if action in decision.actions]
        if not parts or not msg.sender:
            return None
        if offered.articles and not chat:  # the widget shows them as links of their own
            parts.insert(parts.index("acknowledge") + 1 if "acknowledge" in parts else len(parts), "articles")
        tenant = who.tenant
        assert tenant is not None
        lang = self.renderer.pick(cls.language, tenant.language)
        back = hours.next_open(tenant.hours, tenant.timezone, now)
        context = {
            "ticket": str(ticket), "ticket_tag": f"[#{ticket}]", "tenant": tenant.name,
            "sender_name": greeting_name(msg, who, verified), "channel": msg.channel,
            "portal_url": tenant.portal_url, "has_contacts": has_contacts(who),
            "portal_renews": bool(tenant.portal_api_url),
            "hours": format_hours(tenant.hours.days, tenant.hours.start, tenant.hours.end, lang, tenant.timezone),
            "open_now": hours.is_open(tenant.hours, tenant.timezone, now),
            "reply_by": format_moment(back, lang), "parts": parts,
            "guide": decision.guide, "decline_reason": decision.decline,
            "articles": [{"title": s.article.title, "url": s.article.url} for s in offered.articles],
        }
        return (self.renderer.chat if chat else self.renderer.reply)(lang, tenant.language, context)

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
        self.knowledge = {slug: knowledge.KnowledgeBase(t.articles) for slug, t in config.tenants.items() if t.articles}

    def assess(self, msg: Message, now: datetime | None = None) -> Outcome:
        """Everything up to the decision (the expensive part, run in the service's worker
        processes); nothing is rendered, since the ticket number is not known yet."""
        who = identify(msg, self.config)
        tenant = who.tenant
        proof = trust.assess(msg, tenant.widget_secret if tenant else "",
                             self.config.email["trusted_authserv_ids"])
        auto = automated.detect(msg, self.lexicon)
        if auto.kind == "bounce":
            who = mail_system(who)
        cls = self.classifier.classify(msg, auto, tenant.language if tenant else "en")
        context = Context(msg, who, proof, auto, cls, self.config)
        cls = context.cls = relabel.refine(context)
        decision = decide(context)
        offered = self.suggest(msg, tenant, auto, cls, decision)
        decision.reasons.append(offered.rule)
        return Outcome(msg, who, proof, auto, cls, decision, 0, None, None, None, offered)

    def suggest(self, msg: Message, tenant: Tenant | None, auto: automated.Automation, cls: Classification,
                decision: Decision) -> knowledge.Suggestions:
        """Help articles for the reply, from the tenant's knowledge base (see triage/core/knowledge.py)."""
        kb = self.knowledge.get(tenant.slug) if tenant else None
        return knowledge.offer(kb, _kb_text(msg, cls.language), cls.category, cls.intent, decision.actions,
                               bool(auto.kind), cls.language, tenant.language if tenant else "en", decision.decline)

    def matches(self, out: Outcome) -> list[knowledge.Suggestion]:
        """The knowledge base's best articles for the message as agents see them, whatever the
        policy offered the requester (a misread question still shows its article to an agent)."""
        tenant = out.who.tenant
        kb = self.knowledge.get(tenant.slug) if tenant else None
        if kb is None or tenant is None:
            return []
        return kb.matches(_kb_text(out.msg, out.cls.language), out.cls.label, out.cls.language, tenant.language)

    def run(self, msg: Message, ticket: int, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(timezone.utc)
        return self.complete(self.assess(msg, now), ticket, now)
