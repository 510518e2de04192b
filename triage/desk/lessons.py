"""What agents' work teaches a tenant's help articles (``triage kb learn``).

The articles' example ``questions`` and ``not_answered`` lists are what make the bot's choice
safe (see triage/core/knowledge.py), and a help centre's export has neither. Agents write them
without meaning to: an agent who sends an article has said that it answers the message, and one
who marks an offered article "Not the answer" has said that the message asks what the article
does not cover. ``lessons`` reads those events back, and ``apply`` writes each message into the
article's file in the message's language (questions meet only messages in their own language),
where the tenant's editors review it like any change to the configuration; the service indexes
the files when it next starts.

Replayed over the thirteen question sets in order (bench/kb_learning.py: the agents send the
right article where the bot sent none or a wrong one, and reject the wrong ones; each set is
scored on what the sets before it taught), the example articles stripped of both lists went from
26–45 right first articles and 8–24 wrong per set to 41–50 right and 0–4 wrong on the last
three sets, where the lists written by hand give 46–50 and 0–4.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from triage.config import Tenant
from triage.core.knowledge import Article, ArticleError, front_matter, parse_article, split_front_matter
from triage.desk.agents import Agents, message_of

# the event an agent's action leaves -> the list of the article it teaches
TAUGHT_BY = {"article-sent": "questions", "article-rejected": "not_answered"}
MAX_LESSON_CHARS = 600  # of the message (subject and new text): enough to meet it again, short enough to review


@dataclass(frozen=True)
class Lesson:
    """One message to list under one article, and who taught it."""

    tenant: str
    article: str  # the article's id
    language: str  # the message's: the file it goes into
    kind: str  # "questions" or "not_answered"
    text: str
    ticket: int  # the ticket's number, for the editor
    agent: str
    at: str


def lesson_text(subject: str, text: str) -> str:
    """The message as a question for an article's list: subject and new text on one line,
    cut at a word near MAX_LESSON_CHARS (the n-grams of a mail's first lines are what meet the
    next one like it)."""
    line = " ".join(f"{subject}\n{text}".split())
    if len(line) <= MAX_LESSON_CHARS:
        return line
    cut = line[:MAX_LESSON_CHARS]
    return cut[:cut.rfind(" ")] if " " in cut else cut


def lessons(agents: Agents, now: datetime, tenant: str | None = None, since: str | None = None) -> list[Lesson]:
    """Every article sent and every article rejected by an agent, as lessons, oldest first,
    leaving out those the knowledge base already acts on (the bot now offers the sent article
    for the message, or no longer offers the rejected one). The widget's "I still need help"
    teaches nothing: a visitor gives it unproven, and it may mean the article was right but
    the problem is not solved. ``since``: a UTC day; the pipeline reruns once per ticket with
    lessons (an agent who rejects one article and sends another taught two), so a weekly review
    need not reread the year."""
    out = []
    offered_for: dict[int, set[str]] = {}  # ticket -> the articles the bot offers for it now
    for event in agents.store.events_of(tuple(TAUGHT_BY), tenant, since):
        ticket_id, kind = event["ticket"], event["kind"]
        ticket = agents.ticket(ticket_id)
        first = agents.store.first_inbound(ticket_id)
        detail = json.loads(event["detail"] or "{}")
        if first is None or not detail.get("article"):
            continue
        if ticket_id not in offered_for:
            offered_for[ticket_id] = {s.article.id for s in agents.outcome(ticket_id, now).suggestions.articles}
        offered = offered_for[ticket_id]
        if (detail["article"] in offered) == (kind == "article-sent"):
            continue  # already so
        msg = message_of(ticket, first)
        out.append(Lesson(ticket["tenant"], detail["article"], ticket["language"] or "", TAUGHT_BY[kind],
                          lesson_text(msg.subject, msg.new_text or msg.text), ticket["number"],
                          detail.get("agent", ""), event["created_at"]))
    return out


def _additions(articles: list[Article], taught: list[Lesson]) -> tuple[dict[Path, dict[str, list[str]]], list[str]]:
    """Per article file, the texts to add to each list (none it already holds, none twice), and
    what could not be placed (no file of the article in the message's language)."""
    files = {(a.id, a.language): a for a in articles}
    adds: dict[Path, dict[str, list[str]]] = {}
    skipped = []
    for lesson in taught:
        article = files.get((lesson.article, lesson.language))
        if article is None:
            skipped.append(f"[#{lesson.ticket}] {lesson.article}: no {lesson.language or 'unknown'}-language file")
            continue
        lists = adds.setdefault(article.source, {})
        known = set(getattr(article, lesson.kind)) | set(lists.get(lesson.kind, []))
        if lesson.text and lesson.text not in known:
            lists.setdefault(lesson.kind, []).append(lesson.text)
    return adds, skipped


def taught(articles: list[Article], lessons: list[Lesson]) -> list[Article]:
    """The articles with the lessons added in memory, as ``apply`` would write them."""
    adds, _ = _additions(articles, lessons)
    return [replace(a, **{kind: getattr(a, kind) + tuple(texts) for kind, texts in adds.get(a.source, {}).items()})
            for a in articles]


def apply(tenant: Tenant, taught_lessons: list[Lesson], languages: list[str]) -> tuple[dict[Path, int], list[str]]:
    """Write the lessons into the tenant's article files: per file changed, how many texts it
    gained, and what could not be placed. A file is rewritten whole (its front matter in the
    order of ARTICLE_KEYS, comments in it dropped; the body as it was), checked as the
    configuration will check it, then moved into place, so a failure leaves the old file."""
    adds, skipped = _additions(tenant.articles, [s for s in taught_lessons if s.tenant == tenant.slug])
    changed = {}
    for path, lists in adds.items():
        if not lists:
            continue
        meta, rest = split_front_matter(path, path.read_text("utf-8"))
        for kind, texts in lists.items():
            meta[kind] = list(meta.get(kind, [])) + texts
        new = front_matter(meta) + rest
        try:
            parse_article(path, new, languages)
        except ArticleError as e:  # a text TOML cannot hold (a lone surrogate): that file is left alone
            skipped.append(str(e))
            continue
        temporary = path.with_name(f".{path.name}.learning")
        temporary.write_text(new, "utf-8")
        os.replace(temporary, path)
        changed[path] = sum(len(t) for t in lists.values())
    return changed, skipped
