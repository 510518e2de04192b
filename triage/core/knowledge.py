"""A tenant's help articles, and the one that answers a message (or none).

Articles are Markdown files with TOML front matter between ``+++`` lines (``title``,
``url``, ``language``, optional ``id``, ``intents``, ``keywords``), one folder per tenant
(the tenant key ``knowledge_base``). They are validated when the configuration loads, like
every other setting, and indexed per process in an in-memory SQLite FTS5 table ranked
with BM25: no network, no model download, and a few hundred articles cost well under a
millisecond per message.

Suggesting a wrong article is worse than suggesting none: a supplier who is sent to
"Resetting your password" when the bid button is broken loses time and trust. So a match
must clear a score threshold, and the first rule below decides whether articles are
offered at all, each with an id for the ticket's reasons.
"""
from __future__ import annotations

import math
import re
import sqlite3
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import snowballstemmer

RULES = {
    "kb-suggested": "help articles matching the question are offered with the acknowledgement",
    "kb-no-match": "no article clears the score threshold: none is offered (no article beats a wrong one)",
    "kb-not-for-automated": "automatic mail gets no reply, so no articles",
    "kb-not-for-category": "business, confidential, feedback and unclear messages get no articles: one could mislead",
    "kb-not-for-decision": "the decision is not an acknowledgement or self-service guide (a decline, a renewal, a "
                           "request for a verified channel): an article could contradict it",
    "kb-solved": "the visitor said a suggested article solved the problem: the ticket is resolved",
    "kb-not-solved": "the visitor said the suggested articles did not solve the problem: the ticket stays open",
}
ARTICLE_KEYS: dict[str, tuple[type, bool]] = {  # key -> (type, required)
    "id": (str, False), "title": (str, True), "url": (str, True), "language": (str, True),
    "intents": (list, False), "keywords": (list, False),
}
# Categories whose questions a help article can answer; the others get none (rule ids above).
HELPFUL = ("technical", "account")
HELPFUL_ACTIONS = ("acknowledge", "guide_self_service")
MISLEADING_ACTIONS = ("renew_invitation", "request_verified_channel", "decline", "redirect_business",
                      "relay_to_company", "suppress")

_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}", re.U)
# Snowball stemmers by ISO 639-1 code; a language without one (Ukrainian) keeps a word's first
# letters, as the classifier's model does.
SNOWBALL = {"en": "english", "sv": "swedish", "de": "german", "ru": "russian", "da": "danish",
            "nb": "norwegian", "fi": "finnish", "nl": "dutch", "fr": "french", "es": "spanish",
            "it": "italian", "pt": "portuguese", "pl": "polish", "lt": "lithuanian"}
PREFIX = 6
MAX_QUERY_TERMS = 60  # a long mail's first distinct stems are plenty, and bound the query's cost
WEIGHTS = (6.0, 4.0, 1.0)  # BM25 column weights: title, keywords, body
INTENT_BOOST = 1.5  # an article tagged with the classified intent counts this much more
# Chosen on tests/data/kb_questions.jsonl (see bench/kb.py) for no suggestion on questions no
# article answers: the best score divided by the square root of the query's distinct stems
# must reach MIN_SCORE, and beat the next article by CLEAR_LEAD; a second or third article
# is shown only when nearly as good as the first.
MIN_SCORE = 7.0
CLEAR_LEAD = 1.15
ALSO_SHOWN = 0.8
OTHER_LANGUAGE_SCORE = 10.0  # an article in another language must be this clearly right
AGENT_MIN_SCORE = 0.5 * MIN_SCORE  # agents see weaker matches too: they choose before anything is sent


class ArticleError(ValueError):
    """An article file is malformed: the message names the file and the key."""


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    url: str
    language: str
    intents: tuple[str, ...]
    keywords: tuple[str, ...]
    body: str
    source: Path


@dataclass(frozen=True)
class Suggestion:
    article: Article
    score: float


@dataclass
class Suggestions:
    """The articles offered for one message (maybe none) and the rule id that says why."""

    rule: str
    articles: list[Suggestion] = field(default_factory=list)


@lru_cache(maxsize=None)
def _stemmer(language: str) -> snowballstemmer.basestemmer.BaseStemmer | None:
    name = SNOWBALL.get(language)
    return snowballstemmer.stemmer(name) if name else None


@lru_cache(maxsize=65536)
def _stem(word: str, language: str) -> str:
    """One case-folded word's stem (Snowball, else its first letters) without accents (é → e,
    й → и), so a missing diacritic still matches; memoised, as words repeat across mail."""
    stemmer = _stemmer(language)
    stem = stemmer.stemWord(word) if stemmer else word[:PREFIX]
    return "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))


def terms(text: str, language: str) -> list[str]:
    """Stems of a text in a language."""
    return [_stem(w, language) for w in _WORD.findall(text.casefold())]


def _slug(text: str) -> str:
    """A file-name-safe id: ``"Resetting your password"`` -> ``resetting-your-password``."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    words = re.findall(r"\w+", "".join(c for c in folded if not unicodedata.combining(c)))
    return "-".join(words)[:60].strip("-")


def parse_article(path: Path, text: str, languages: list[str]) -> Article:
    """One article file: ``+++`` TOML front matter ``+++`` then the Markdown body."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "+++":
        raise ArticleError(f"{path}: must start with a '+++' line and TOML front matter")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "+++")
    except StopIteration:
        raise ArticleError(f"{path}: the front matter has no closing '+++' line") from None
    try:
        meta = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as e:
        raise ArticleError(f"{path}: front matter is not valid TOML: {e}") from None
    for key in meta:
        if key not in ARTICLE_KEYS:
            raise ArticleError(f"{path}: unknown key {key!r} (known: {', '.join(ARTICLE_KEYS)})")
    for key, (kind, required) in ARTICLE_KEYS.items():
        if key not in meta:
            if required:
                raise ArticleError(f"{path}: missing key {key!r}")
            continue
        if not isinstance(meta[key], kind) or (kind is list and not all(isinstance(v, str) for v in meta[key])):
            raise ArticleError(f"{path}: key {key!r} must be {'a list of strings' if kind is list else 'a string'}")
    if meta["language"] not in languages:
        raise ArticleError(f"{path}: key 'language' must be one of {languages}, not {meta['language']!r}")
    if not re.match(r"^https?://[^\s/]+", meta["url"]):
        raise ArticleError(f"{path}: key 'url' must be an http(s) address, not {meta['url']!r}")
    for intent in meta.get("intents", []):
        if not re.fullmatch(r"[a-z]+/[a-z_]+", intent):
            raise ArticleError(f"{path}: key 'intents' must hold category/intent labels, not {intent!r}")
    if not meta["title"].strip():
        raise ArticleError(f"{path}: key 'title' must not be empty")
    return Article(id=meta.get("id", path.stem), title=" ".join(meta["title"].split()), url=meta["url"],
                   language=meta["language"], intents=tuple(meta.get("intents", [])),
                   keywords=tuple(meta.get("keywords", [])), body="\n".join(lines[end + 1:]).strip(),
                   source=path)


def load_articles(folder: Path, languages: list[str]) -> list[Article]:
    """Every ``*.md`` in the folder (not recursive), in name order."""
    if not folder.is_dir():
        raise ArticleError(f"{folder}: the knowledge_base folder does not exist")
    articles = []
    seen: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.md")):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ArticleError(f"{path}: cannot be read as UTF-8 text ({e})") from None
        article = parse_article(path, text, languages)
        key = (article.id, article.language)
        if key in seen:
            raise ArticleError(f"{path}: id {article.id!r} in language {article.language!r} is also {seen[key]}")
        seen[key] = path
        articles.append(article)
    return articles


class KnowledgeBase:
    """One tenant's articles in an FTS5 index of their stems (title and keywords weigh more)."""

    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE articles USING fts5(title, keywords, body)")
        self.db.executemany("INSERT INTO articles(rowid, title, keywords, body) VALUES (?, ?, ?, ?)", [
            (n, " ".join(terms(a.title, a.language)), " ".join(terms(" ".join(a.keywords), a.language)),
             " ".join(terms(a.body, a.language))) for n, a in enumerate(articles)])
        self.languages = {a.language for a in articles}

    def search(self, text: str, language: str, limit: int = 10) -> list[Suggestion]:
        """Articles ranked by BM25 over the text's stems, best first; the score is divided by
        the square root of the query's length, so a long mail's many incidental matches do
        not outweigh a short question's decisive ones (no threshold applied here)."""
        query = list(dict.fromkeys(terms(text, language)))[:MAX_QUERY_TERMS]
        if not query or not self.articles:
            return []
        match = " OR ".join(f'"{t}"' for t in query)
        weights = ", ".join(str(w) for w in WEIGHTS)
        rows = self.db.execute(f"SELECT rowid, -bm25(articles, {weights}) FROM articles WHERE articles MATCH ? "
                               f"ORDER BY bm25(articles, {weights}) LIMIT ?", (match, limit)).fetchall()
        scale = math.sqrt(len(query))
        return [Suggestion(self.articles[rowid], score / scale) for rowid, score in rows]

    def ranked(self, text: str, intent: str, language: str) -> list[Suggestion]:
        """The best-scoring file of each article id (intent boost applied), best first; no
        threshold: what the policy and the agents' view each cut in their own way."""
        best: dict[str, Suggestion] = {}
        for s in self.search(text, language, limit=30):
            score = s.score * (INTENT_BOOST if intent in s.article.intents else 1.0)
            if s.article.id not in best or score > best[s.article.id].score:
                best[s.article.id] = Suggestion(s.article, score)
        return sorted(best.values(), key=lambda s: s.score, reverse=True)

    def suggest(self, text: str, intent: str, language: str, fallback_language: str,
                limit: int = 3) -> list[Suggestion]:
        """Up to ``limit`` articles, one per article id, when the best clears MIN_SCORE and
        leads the next by CLEAR_LEAD: in the sender's language, else the tenant's; another
        language only when it is clearly right and no translation exists."""
        ranked = self.ranked(text, intent, language)
        if not ranked or ranked[0].score < MIN_SCORE:
            return []
        if len(ranked) > 1 and ranked[0].score < CLEAR_LEAD * ranked[1].score:
            return []  # two articles about as good: the question is not clearly one of them
        chosen: list[Suggestion] = []
        for s in ranked[:limit]:
            if s.score < ALSO_SHOWN * ranked[0].score:
                break
            pick = self.article(s.article.id, language, fallback_language, anywhere=False)
            if pick is not None:
                chosen.append(Suggestion(pick, s.score))
            elif s.score >= OTHER_LANGUAGE_SCORE:
                chosen.append(s)
        return chosen

    def matches(self, text: str, intent: str, language: str, fallback_language: str,
                limit: int = 3) -> list[Suggestion]:
        """What an agent is shown to pick from, whatever the policy offered the requester: the
        best ``limit`` articles above AGENT_MIN_SCORE, without the clear-lead rule (the agent,
        not the bot, judges between two close ones), each in the requester's language if it
        has a translation. A person reads these before anything is sent, so the bar is lower."""
        out = []
        for s in self.ranked(text, intent, language)[:limit]:
            if s.score < AGENT_MIN_SCORE:
                break
            out.append(Suggestion(self.article(s.article.id, language, fallback_language) or s.article, s.score))
        return out

    def article(self, article_id: str, language: str, fallback: str, anywhere: bool = True) -> Article | None:
        """The article with this id in ``language``, else ``fallback``, else (with ``anywhere``)
        in whichever language it exists; None for an id the knowledge base does not have."""
        found = [a for a in self.articles if a.id == article_id]
        for lang in (language, fallback):
            for a in found:
                if a.language == lang:
                    return a
        return found[0] if found and anywhere else None


def offer(kb: KnowledgeBase | None, text: str, category: str, intent: str, actions: list[str],
          automated: bool, language: str, fallback_language: str) -> Suggestions:
    """Whether articles are offered for a decided message, and which (the policy lives here)."""
    if automated:
        return Suggestions("kb-not-for-automated")
    if category not in HELPFUL:
        return Suggestions("kb-not-for-category")
    if not any(a in actions for a in HELPFUL_ACTIONS) or any(a in actions for a in MISLEADING_ACTIONS):
        return Suggestions("kb-not-for-decision")
    found = kb.suggest(text, f"{category}/{intent}", language, fallback_language) if kb else []
    return Suggestions("kb-suggested", found) if found else Suggestions("kb-no-match")


def import_export(path: Path, languages: list[str]) -> list[tuple[str, str]]:
    """(file name, Markdown text) for every article of a help centre's export: a CSV with the
    columns title, url, language, body (optional id, intents, keywords separated by ';'), or a
    JSON list of objects with the same keys. Every article is validated as a file would be."""
    import csv
    import json

    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text("utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ArticleError(f"{path}: must be a JSON list of objects")
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    out = []
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ("title", "url", "language", "body") if not str(row.get(k) or "").strip()]
        if missing:
            raise ArticleError(f"{path}: article {n} lacks {', '.join(missing)}")
        lists = {k: row.get(k) or [] for k in ("intents", "keywords")}
        lists = {k: [x.strip() for x in v.split(";") if x.strip()] if isinstance(v, str) else v for k, v in lists.items()}
        slug = _slug(str(row.get("id") or row["title"])) or f"article-{n}"
        meta = {"id": str(row.get("id") or slug), "title": str(row["title"]), "url": str(row["url"]),
                "language": str(row["language"]), **{k: v for k, v in lists.items() if v}}
        text = "+++\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in meta.items()) \
            + "+++\n\n" + str(row["body"]).strip() + "\n"
        name = f"{meta['id']}.{meta['language']}.md"
        parse_article(Path(name), text, languages)
        out.append((name, text))
    return out
