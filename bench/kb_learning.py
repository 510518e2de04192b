#!/usr/bin/env python3
"""What agents' work teaches the help articles (triage/desk/lessons.py), replayed.

The question sets (``tests/data/kb_questions*.jsonl``, in their order) go through the whole
pipeline as mail to the example tenant, one set after the other, as if agents worked them:
where the bot sent none or a wrong article and the question has one, the agent sends it (the
message becomes an example question of that article); where the bot sent a wrong article, the
agent marks it "Not the answer" (the message becomes one of its ``not_answered`` questions).
After each set the knowledge base is rebuilt with what it taught (``lessons.taught``, as
``triage kb learn --apply`` writes it), so each set is scored only on what the sets before it
taught. Two starts, side by side: the articles with the lists their editors wrote, and the same
articles with neither list, as a help centre's export arrives.

    python bench/kb_learning.py [--config DIR]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from kb import NOW, mail  # noqa: E402

from triage.config import load_config  # noqa: E402
from triage.core.knowledge import KnowledgeBase  # noqa: E402
from triage.core.parse import parse_email  # noqa: E402
from triage.core.pipeline import Pipeline  # noqa: E402
from triage.desk.lessons import Lesson, lesson_text, taught  # noqa: E402


def set_number(path: Path) -> int:
    found = re.search(r"(\d+)$", path.stem)
    return int(found.group(1)) if found else 1


def replay(pipeline: Pipeline, slug: str, articles: list, sets: list[Path], learn: bool) -> list[tuple[int, int, int]]:
    """Per set: right first articles, wrong ones, lessons it taught."""
    tenant = pipeline.config.tenants[slug]
    address, authserv = tenant.support_addresses[0], pipeline.config.email["trusted_authserv_ids"][0]
    pipeline.knowledge = {slug: KnowledgeBase(articles)}
    out = []
    for path in sets:
        right = wrong = 0
        lessons = []
        for line in path.read_text("utf-8").splitlines():
            question = json.loads(line)
            msg = parse_email(mail(question, address, authserv), [address])
            result = pipeline.run(msg, 1001, NOW)
            got = [s.article.id for s in result.suggestions.articles]
            answer = question["answer"]
            right += bool(got) and got[0] == answer
            wrong += bool(got) and got[0] != answer
            text = lesson_text(msg.subject, msg.new_text or msg.text)
            lesson = Lesson(slug, "", result.cls.language, "", text, 1001, "bench", "")
            if got and got[0] != answer:
                lessons.append(replace(lesson, article=got[0], kind="not_answered"))
            if answer and got != [answer] and not result.automation.kind:
                lessons.append(replace(lesson, article=answer, kind="questions"))
        out.append((right, wrong, len(lessons)))
        if learn:
            articles = taught(articles, lessons)
            pipeline.knowledge = {slug: KnowledgeBase(articles)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config"))
    ap.add_argument("--tenant", default="borealis")
    args = ap.parse_args()
    config = load_config(args.config)
    tenant = config.tenants[args.tenant]
    sets = sorted((REPO / "tests" / "data").glob("kb_questions*.jsonl"), key=set_number)
    pipeline = Pipeline(config)
    bare = [replace(a, questions=(), not_answered=()) for a in tenant.articles]
    runs = {
        "written lists": replay(pipeline, tenant.slug, tenant.articles, sets, learn=False),
        "written lists, learning": replay(pipeline, tenant.slug, tenant.articles, sets, learn=True),
        "no lists": replay(pipeline, tenant.slug, bare, sets, learn=False),
        "no lists, learning": replay(pipeline, tenant.slug, bare, sets, learn=True),
    }
    print("right / wrong first articles per set (lessons the set taught, where learning)")
    print(f"{'set':<16}" + "".join(f"{name:>26}" for name in runs))
    for n, path in enumerate(sets):
        cells = []
        for name, rows in runs.items():
            right, wrong, taught_count = rows[n]
            cells.append(f"{right:>3} / {wrong:<3}" + (f" ({taught_count:>2})" if "learning" in name else "     "))
        print(f"{path.stem:<16}" + "".join(f"{c:>26}" for c in cells))
    totals = [f"{sum(r for r, _, _ in rows):>3} / {sum(w for _, w, _ in rows):<3}     " for rows in runs.values()]
    print(f"{'all':<16}" + "".join(f"{c:>26}" for c in totals))


if __name__ == "__main__":
    main()
