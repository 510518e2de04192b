#!/usr/bin/env python3
"""Help-article suggestions: retrieval quality on a labelled question set, and their cost.

The questions (``tests/data/kb_questions.jsonl``) were written by authors who did not write
the articles; each names the article that answers it, or none. Every question goes through
the whole pipeline as mail to the example tenant (classification and policy decide whether
articles are offered at all), so the figures are what a supplier would see:

- precision@1: of the suggestions made (for any question), the share that is the answering
  article: what a supplier who is sent an article can trust;
- answered@1: of the questions an article answers, the share whose first suggestion is it;
- recall@3: the share with the answering article among the (at most three) suggestions;
- suggestions for "none" questions, business questions and automated mail (must be 0);
- the agents' view (Slack card, console): the articles an agent is shown for the ticket, those
  offered or else the knowledge base's best matches whatever the policy decided: the share
  of answerable questions whose article is shown first, and among the three shown.

Cost: the pipeline without the knowledge base, with the tenant's articles and with them padded
to 500 by generated ones, side by side on the same messages (what a knowledge base adds to a
message, wherever the policy lets it be searched), and ``suggest()`` alone with the 500.

    python bench/kb.py [--questions FILE] [--config DIR] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from triage.config import load_config  # noqa: E402
from triage.core.knowledge import KnowledgeBase  # noqa: E402
from triage.core.parse import parse_email  # noqa: E402
from triage.core.pipeline import Outcome, Pipeline  # noqa: E402

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
SENDER = ("Mikael Berg", "mikael.berg@nordsteel.se")  # a supplier in the example directory


def mail(question: dict, tenant_address: str, authserv: str) -> bytes:
    msg = EmailMessage()
    headers = dict(question.get("headers", {}))
    sender = headers.pop("From", f"{SENDER[0]} <{SENDER[1]}>")  # a question may come from a mailer daemon
    headers.pop("Content-Type", None)  # the body is the question's text; set_content writes its type
    headers.pop("To", None)  # delivered to the tenant, whatever support address the author guessed
    domain = sender.rpartition("@")[2].strip(">")
    msg["Authentication-Results"] = f"{authserv}; dmarc=pass header.from={domain}"
    msg["From"] = sender
    msg["To"] = tenant_address
    msg["Subject"] = question.get("subject", "")
    msg["Message-ID"] = f"<{question['id']}@kb.bench>"
    for key, value in headers.items():  # the question's own headers (a bounce's Subject) over the defaults
        del msg[key]
        msg[key] = value
    msg.set_content(question["text"])
    return bytes(msg)


def why(out: Outcome) -> str:
    """The reading and the knowledge-base rule behind one question's outcome, for --verbose."""
    return f"read {out.cls.label} -> {'+'.join(out.decision.actions)}, {out.suggestions.rule}"


def padded(kb_articles: list, count: int, seed: int = 7) -> list:
    """The real articles plus generated ones (shuffled words of the real bodies) up to ``count``;
    each keeps the example and not-answered questions of the article it was made from, so the
    question indexes grow with the articles as a real help centre's would (with 500 articles,
    about 1,400 example questions per language)."""
    rng = random.Random(seed)
    words = " ".join(a.body for a in kb_articles).split()
    out = list(kb_articles)
    while len(out) < count:
        base = rng.choice(kb_articles)
        body = " ".join(rng.choice(words) for _ in range(150))
        title = " ".join(rng.choice(words) for _ in range(5))
        out.append(replace(base, id=f"generated-{len(out)}", title=title, body=body, keywords=(), intents=()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", default=str(REPO / "tests" / "data" / "kb_questions.jsonl"))
    ap.add_argument("--config", default=str(REPO / "config"))
    ap.add_argument("--tenant", default="borealis")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    config = load_config(args.config)
    tenant = config.tenants[args.tenant]
    questions = [json.loads(line) for line in Path(args.questions).read_text("utf-8").splitlines() if line.strip()]
    pipeline = Pipeline(config)
    address, authserv = tenant.support_addresses[0], config.email["trusted_authserv_ids"][0]
    messages = [parse_email(mail(q, address, authserv), [address]) for q in questions]

    answered = top1 = top3 = agent1 = agent3 = offered = 0
    offered_when_none = {"none": 0, "business": 0, "automated": 0}
    asked_none = {"none": 0, "business": 0, "automated": 0}
    per_language: dict[str, list[int]] = {}
    for q, msg in zip(questions, messages):
        out = pipeline.run(msg, 1001, NOW)
        got = [a["id"] for a in out.contract()["articles"]]
        shown = got or [s.article.id for s in pipeline.matches(out)]
        lang = per_language.setdefault(q["language"], [0, 0])
        offered += bool(got)
        if q["answer"]:
            answered += 1
            top1 += bool(got) and got[0] == q["answer"]
            top3 += q["answer"] in got
            agent1 += shown[:1] == [q["answer"]]
            agent3 += q["answer"] in shown[:3]
            lang[1] += 1
            lang[0] += bool(got) and got[0] == q["answer"]
            if args.verbose and (not got or got[0] != q["answer"]):
                print(f"MISS {q['id']} ({q['language']}): want {q['answer']}, got {got}, {why(out)}")
        else:
            kind = q.get("kind") if q.get("kind") in asked_none else "none"
            asked_none[kind] += 1
            offered_when_none[kind] += bool(got)
            if args.verbose and got:
                print(f"WRONG {q['id']} ({q['language']}, {kind}): want none, got {got}, {why(out)}")

    print(f"questions {len(questions)}: {answered} with an answering article, "
          + ", ".join(f"{asked_none[k]} {k}" for k in asked_none))
    print(f"precision@1 {top1 / max(offered, 1):.3f} ({top1} of {offered} suggestions)   "
          f"answered@1 {top1 / max(answered, 1):.3f}   recall@3 {top3 / max(answered, 1):.3f}   "
          + "suggestions where none is right: "
          + ", ".join(f"{k} {offered_when_none[k]}/{asked_none[k]}" for k in asked_none))
    print(f"agents' view: the answering article shown first {agent1 / max(answered, 1):.3f}, "
          f"among the three shown {agent3 / max(answered, 1):.3f}")
    print("answered@1 by language: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_language.items())))

    # Cost, side by side: the same messages through a pipeline without the knowledge base, with
    # the example tenant's articles, and with them padded to 500; the three take turns each
    # repeat, so a busy moment of a shared machine falls on all alike, and each keeps its
    # fastest pass.
    bare = Pipeline(config)
    bare.knowledge = {}
    big = Pipeline(config)
    big.knowledge = {tenant.slug: KnowledgeBase(padded(tenant.articles, 500))}
    runs = {"without": bare, f"with {len(tenant.articles)} articles": pipeline, "with 500 articles": big}
    for p in runs.values():  # warm all (caches of stems, templates, the model's first calls) before timing
        for msg in messages:
            p.run(msg, 1001, NOW)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):
        for name, p in runs.items():
            start = time.perf_counter()
            for msg in messages:
                p.run(msg, 1001, NOW)
            best[name] = min(best[name], time.perf_counter() - start)
    for name in best:
        print(f"pipeline {name} knowledge base: {best[name] / len(messages) * 1000:.3f} ms/message"
              if name == "without" else f"pipeline {name}: {best[name] / len(messages) * 1000:.3f} ms/message")
    for name in list(runs)[1:]:
        print(f"added per message {name}: {(best[name] - best['without']) / len(messages) * 1000:.3f} ms "
              f"(ratio {best[name] / best['without']:.2f})")
    # suggest() alone, each question in its own language, the tenant's as the fallback
    kb = big.knowledge[tenant.slug]
    texts = [(f"{m.subject}\n{m.new_text or m.text}", q["language"]) for q, m in zip(questions, messages)]
    best_suggest = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        for text, language in texts:
            kb.suggest(text, "technical/howto", language, tenant.language)
        best_suggest = min(best_suggest, time.perf_counter() - start)
    print(f"suggest() with 500 articles: {best_suggest / len(texts) * 1000:.3f} ms/message")

if __name__ == "__main__":
    main()
