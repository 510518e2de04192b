"""Block Kit payloads for the agents' Slack channel: data in, JSON-ready dicts out.

Kept apart from the Bolt listeners so the cards can be read, tested and changed without a
Slack connection. Text from requesters is escaped (``&``, ``<``, ``>``): a supplier must not
be able to ping ``<!channel>`` or forge a link in the agents' channel.
"""
from __future__ import annotations

from typing import Any

from triage.core.classify import HUMAN_LABELS
from triage.desk.agents import Card

SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters
EXCERPT_LIMIT = 600
ARTICLES_SHOWN = 3


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _quote(text: str, limit: int) -> str:
    return "\n".join("> " + line for line in escape(_cut(text, limit)).splitlines()) or "> (empty)"


def title(card: Card) -> str:
    t = card.ticket
    return f"[#{t['number']}] {escape(t['subject'] or '(no subject)')}"


def ticket_message(card: Card) -> tuple[str, list[dict[str, Any]]]:
    """The ticket card: fallback text (notifications) and blocks. Urgent tickets mention @here."""
    t = card.ticket
    here = "<!here> " if card.urgent else ""
    text = f"{here}New ticket {title(card)} for {escape(card.tenant_name)}"
    verified = f"verified ({escape(card.trust_evidence)})" if card.verified else "not verified"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f"{here}*{title(card)}*\n{escape(card.tenant_name)} · {t['channel']} · priority *{t['priority']}* · "
            f"status *{t['status']}*" + (f" · assigned to {t['assignee']}" if t.get("assignee") else "")}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Requester*\n{escape(t['requester_address'] or '(none)')}"},
            {"type": "mrkdwn", "text": f"*Role / company*\n{escape(card.role)} · {escape(card.company or '?')}"},
            {"type": "mrkdwn", "text": f"*Identity*\n{verified}"},
            {"type": "mrkdwn", "text": f"*Category / intent*\n`{card.label}` ({card.confidence:.0%})"},
            {"type": "mrkdwn", "text": "*Reasons*\n" + (" ".join(f"`{r}`" for r in card.reasons) or "-")},
            {"type": "mrkdwn", "text": "*Actions*\n" + (" ".join(f"`{a}`" for a in card.actions) or "-")},
        ]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _quote(card.excerpt, EXCERPT_LIMIT)}},
    ]
    if card.draft:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
            "*Drafted reply*" + (" (held for review)" if card.held else "") + "\n```"
            + escape(_cut(card.draft, SECTION_LIMIT - 40)) + "```"}})
    blocks += articles(card)
    blocks.append(actions(card))
    return text, blocks


def articles(card: Card) -> list[dict[str, Any]]:
    """The ticket's help articles, each with a Send button (``send_article``, value
    ``ticket:article``): those the bot offered the requester, else the knowledge base's best
    matches, labelled as not offered (the policy withheld them or none cleared its bar). An
    offered one also gets "Not the answer" (``reject_article``, the same value)."""
    tid = str(card.ticket["id"])
    shown = card.offered or card.matches
    if not shown:
        return []
    label = ("*Help articles* (offered to the requester)" if card.offered else
             f"*Help articles* (best matches, not offered to the requester: `{card.offer_rule}`)")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": label}}]
    for n, s in enumerate(shown[:ARTICLES_SHOWN]):
        a = s.article
        blocks.append({"type": "section", "block_id": f"article:{tid}:{n}", "text": {"type": "mrkdwn", "text":
                       f"<{_link(a.url)}|{escape(_cut(a.title, 150))}> ({a.language})"},
                       "accessory": {"type": "button", "action_id": "send_article", "value": f"{tid}:{a.id}",
                                     "text": {"type": "plain_text", "text": "Send to requester"}}})
    for n, s in enumerate(card.offered[:ARTICLES_SHOWN]):  # an action id is unique within its block
        if s.article.id in card.rejected:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                           f"_{escape(_cut(s.article.title, 150))}_: marked not the answer"}]})
            continue
        blocks.append({"type": "actions", "block_id": f"reject:{tid}:{n}", "elements": [
            {"type": "button", "action_id": "reject_article", "value": f"{tid}:{s.article.id}",
             "text": {"type": "plain_text", "text": _cut(f"Not the answer: {s.article.title}", 75)}}]})
    return blocks


def _link(url: str) -> str:
    """A URL inside Slack's ``<url|label>``: the characters that would end the link escaped."""
    return escape(url).replace("|", "%7C")


def actions(card: Card) -> dict[str, Any]:
    """Approve (only while something is held), Reclassify, Escalate, Close. ``block_id`` and the
    button values carry the ticket's row id, so a click needs no lookup by message."""
    tid = str(card.ticket["id"])
    elements: list[dict[str, Any]] = []
    if card.held:
        elements.append({"type": "button", "action_id": "approve", "style": "primary", "value": tid,
                         "text": {"type": "plain_text", "text": "Approve"}})
    options = [{"text": {"type": "plain_text", "text": label}, "value": label} for label in HUMAN_LABELS]
    select: dict[str, Any] = {"type": "static_select", "action_id": "reclassify", "options": options,
                              "placeholder": {"type": "plain_text", "text": "Reclassify"}}
    current = next((o for o in options if o["value"] == card.label), None)
    if current:
        select["initial_option"] = current
    elements += [select,
                 {"type": "button", "action_id": "escalate", "value": tid,
                  "text": {"type": "plain_text", "text": "Escalate"}},
                 {"type": "button", "action_id": "close", "style": "danger", "value": tid,
                  "text": {"type": "plain_text", "text": "Close"}}]
    return {"type": "actions", "block_id": f"ticket:{tid}", "elements": elements}


def follow_up(sender: str, text: str) -> str:
    """A new message from the requester, posted in the ticket's thread."""
    return f"*{escape(sender or 'requester')}* wrote:\n{_quote(text, SECTION_LIMIT)}"


def reminder(number: int, due: str) -> str:
    return f"<!here> [#{number}] has had no answer from an agent; the first response was due {due}."


def summary(card: Card) -> str:
    """``/triage 1042``: the ticket in a few lines."""
    t = card.ticket
    return (f"*{title(card)}* — {escape(card.tenant_name)}, {t['status']}, priority {t['priority']}"
            + (f", assigned to {t['assignee']}" if t.get("assignee") else "")
            + f"\n{escape(t['requester_address'] or '')} ({escape(card.role)}, "
            f"{'verified' if card.verified else 'not verified'}) · `{card.label}` ({card.confidence:.0%})"
            f"\nreasons: {' '.join(f'`{r}`' for r in card.reasons)}\n{_quote(card.excerpt, 400)}")


def search_results(query: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"nothing found for “{escape(query)}”"
    lines = [f"[#{r['number']}] {r['tenant'] or '-'} · {escape(r['subject'] or '')} — {escape(r['snippet'] or '')}"
             for r in rows]
    return f"{len(rows)} messages for “{escape(query)}”:\n" + "\n".join(lines)


def stats(counts: dict[str, dict[str, int]]) -> str:
    if not counts:
        return "no tickets yet"
    return "\n".join(f"*{tenant}*: " + ", ".join(f"{status} {n}" for status, n in by_status.items())
                     for tenant, by_status in counts.items())
