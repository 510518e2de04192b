"""A tenant's help articles, and the one that answers a message (or none).

Articles are Markdown files with TOML front matter between ``+++`` lines (``title``,
``url``, ``language``, optional ``id``, ``intents``, ``keywords``, ``questions``,
``not_answered``), one folder per tenant (the tenant key ``knowledge_base``). They are
validated when the configuration loads, like every other setting, and indexed per process
twice, with no network and no model download:

- by character n-grams (the classifier's, 3–5 letters within words; TF-IDF with sublinear
  term frequency, cosine), which rank: suppliers describe a symptom in their own words, and
  n-grams match a compound ("Benachrichtigungseinstellungen"), an inflected or misspelt
  word, and Ukrainian, which has no stemmer; an article's example ``questions`` (how requesters
  ask for it) are documents of their own, so a question in other words meets one asked alike,
  and its ``not_answered`` ones (next to its topic, not in it) keep a near miss from being sent;
- by word stems in an SQLite FTS5 table ranked with BM25, which must agree before an
  article is offered to a requester: two different views choosing the same article is what
  makes it safe to send.

Suggesting a wrong article is worse than suggesting none: a supplier who is sent to
"Resetting your password" when the bid button is broken loses time and trust. So a match
must clear thresholds on both, and the first rule below decides whether articles are
offered at all, each with an id for the ticket's reasons. Agents see the n-gram ranking
with a lower bar: they choose before anything is sent.
"""
from __future__ import annotations

import math
import re
import sqlite3
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import snowballstemmer

from triage.core.lexicon import fold
from triage.core.model import char_gram_list

RULES = {
    "kb-suggested": "help articles matching the question are offered with the acknowledgement",
    "kb-suggested-for-intent": "the request is passed on to a person (the company or an agent), and the article the "
                               "tenant wrote for exactly this kind of request is offered with the notice",
    "kb-no-match": "no article clears the score threshold: none is offered (no article beats a wrong one)",
    "kb-not-answered": "the question is nearer to one the best article lists as not answered by it than to the "
                       "article: none is offered (a feature next to an article's topic is not in it)",
    "kb-not-for-automated": "automatic mail gets no reply, so no articles",
    "kb-not-for-category": "business, confidential, feedback and unclear messages get no articles: one could mislead",
    "kb-not-for-decision": "the decision does or refuses something (a decline, a renewal, a business redirect, a "
                           "request for a verified channel), or neither answers nor passes the request on: an "
                           "article could contradict it",
    "kb-solved": "the visitor said a suggested article solved the problem: the ticket is resolved",
    "kb-not-solved": "the visitor said the suggested articles did not solve the problem: the ticket stays open",
}
ARTICLE_KEYS: dict[str, tuple[type, bool]] = {  # key -> (type, required)
    "id": (str, False), "title": (str, True), "url": (str, True), "language": (str, True),
    "intents": (list, False), "keywords": (list, False), "questions": (list, False), "not_answered": (list, False),
}
# Categories whose questions a help article can answer; the others get none (rule ids above).
HELPFUL = ("technical", "account")
OFFERED_RULES = ("kb-suggested", "kb-suggested-for-intent")  # the rules under which articles went out
HELPFUL_ACTIONS = ("acknowledge", "guide_self_service")
# A request passed on to a person: an article answers it only if the tenant tagged it with the
# request's very intent (the expired-invitation article for an invitation relayed to the company).
PASSED_ON_ACTIONS = ("relay_to_company", "hold_for_review")
MISLEADING_ACTIONS = ("renew_invitation", "request_verified_channel", "decline", "redirect_business", "suppress")

_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}", re.U)
# Snowball stemmers by ISO 639-1 code; a language without one (Ukrainian) keeps a word's first
# letters, as the classifier's model does.
SNOWBALL = {"en": "english", "sv": "swedish", "de": "german", "ru": "russian", "da": "danish",
            "nb": "norwegian", "fi": "finnish", "nl": "dutch", "fr": "french", "es": "spanish",
            "it": "italian", "pt": "portuguese", "pl": "polish", "lt": "lithuanian"}
PREFIX = 6
MAX_QUERY_TERMS = 60  # a long mail's first distinct stems are plenty, and bound the query's cost
MAX_QUERY_CHARS = 4000  # and its first characters the n-gram query's
WEIGHTS = (6.0, 4.0, 1.0, 1.0)  # BM25 column weights: title, keywords, questions, body (chosen below)
GRAMS = (3, 5)  # n-gram sizes
TITLE_REPEAT, KEYWORDS_REPEAT = 3, 2  # the same emphasis in the n-gram index: the words repeated
INTENT_BOOST = 1.2  # an article tagged with the classified intent counts this much more
# Chosen on three question sets by authors who did not write the articles (tests/data/
# kb_questions.jsonl, kb_questions2.jsonl, kb_questions3.jsonl, see bench/kb.py), with the example
# tenant's example questions in place, for the most right first articles less twice the wrong
# ones (a wrong article costs more than a right one gains): the best article's n-gram similarity
# must reach MIN_SIMILARITY and exceed the next article's by CLEAR_LEAD, and the stems' BM25
# ranking (score divided by the square root of the query's distinct stems) must put the same
# article first with at least MIN_SCORE. A question that shares an article's words but asks what
# it does not cover ("can I get the codes by SMS instead?") is kept from it when one of the
# article's ``not_answered`` questions is at least NOT_ANSWERED times as near as the article
# (chosen afterwards the same way, the other thresholds fixed; of two values as good, the one
# that withholds more).
MIN_SIMILARITY = 0.275
CLEAR_LEAD = 1.05
MIN_SCORE = 6.0
NOT_ANSWERED = 1.1
OTHER_LANGUAGE_SIMILARITY = 0.4  # an article in another language must be this clearly right
AGENT_MIN_SIMILARITY = 0.12  # agents see weaker matches too: they choose before anything is sent


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
    questions: tuple[str, ...]  # how requesters ask for it, in their words (matched question to question)
    not_answered: tuple[str, ...]  # questions next to its topic that it does not answer
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
    # without an id, the file's name is it, less a language suffix: x.en.md and x.sv.md are one article
    default = path.stem.removesuffix(f".{meta['language']}")
    return Article(id=meta.get("id", default), title=" ".join(meta["title"].split()), url=meta["url"],
                   language=meta["language"], intents=tuple(meta.get("intents", [])),
                   keywords=tuple(meta.get("keywords", [])), questions=tuple(meta.get("questions", [])),
                   not_answered=tuple(meta.get("not_answered", [])),
                   body="\n".join(lines[end + 1:]).strip(), source=path)


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


class GramIndex:
    """TF-IDF vectors of documents' character n-grams (term frequency ``1 + ln(count)``,
    ``idf = ln((1 + n) / (1 + df)) + 1``, each vector of length 1), stored by n-gram as
    numpy arrays: a query gathers the postings of its n-grams and sums them per document in
    one ``bincount``, which keeps 500 articles to about a millisecond (the same loops in
    Python took ten). The n-grams are numbered in a ``vocabulary`` shared by every index of
    one knowledge base (it grows as each is built), so a query is looked up once for all."""

    def __init__(self, documents: list[str], vocabulary: dict[str, int]):
        counts = [Counter(char_gram_list(fold(d), *GRAMS, limit=None)) for d in documents]
        for c in counts:
            for gram in c:
                vocabulary.setdefault(gram, len(vocabulary))
        n, self.width = len(documents), len(vocabulary)  # the columns this index knows: those numbered so far
        self.size = n
        # one (document, n-gram, count) triple per distinct n-gram of a document, made into
        # arrays: the weights, the norms and the postings are computed in numpy, not per n-gram
        owner = np.repeat(np.arange(n, dtype=np.int32), [len(c) for c in counts])
        column = np.fromiter((vocabulary[g] for c in counts for g in c), dtype=np.int64, count=len(owner))
        count = np.fromiter((k for c in counts for k in c.values()), dtype=np.float64, count=len(owner))
        frequency = np.bincount(column, minlength=self.width)  # documents with the n-gram
        # 0 for an n-gram only other indexes have: it weighs nothing here
        self.idfs = np.where(frequency > 0, np.log((1 + n) / (1 + frequency)) + 1, 0.0)
        weight = (1 + np.log(count)) * self.idfs[column]
        weight /= np.sqrt(np.bincount(owner, weights=weight * weight, minlength=n))[owner]
        order = np.argsort(column, kind="stable")  # by n-gram, each n-gram's documents in order
        self.starts = np.concatenate(([0], np.cumsum(frequency))).astype(np.int32)
        self.documents = owner[order]
        self.weights = weight[order].astype(np.float32)

    def similarity(self, columns: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Cosine of a query's vector with every document's: the query is its distinct n-grams'
        vocabulary numbers and counts, and only those this index has make its vector, built in
        numpy as the documents' were."""
        inside = columns < self.width
        columns, counts = columns[inside], counts[inside]
        vector = (1 + np.log(counts)) * self.idfs[columns]
        norm = np.sqrt(vector @ vector)
        if not norm:
            return np.zeros(self.size, dtype=np.float32)
        vector /= norm
        starts, lengths = self.starts[columns], self.starts[columns + 1] - self.starts[columns]
        # every posting of the query's n-grams: each run starts at its column's first posting
        at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        products = self.weights[at] * np.repeat(vector.astype(np.float32), lengths)
        return np.bincount(self.documents[at], weights=products, minlength=self.size)


class KnowledgeBase:
    """One tenant's articles, indexed by character n-grams (ranking) and by stems in FTS5
    (corroboration); title and keywords weigh more in both."""

    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE articles USING fts5(title, keywords, questions, body)")
        rows = [(n, *(" ".join(terms(part, a.language)) for part in (a.title, " ".join(a.keywords),
                                                                      "\n".join(a.questions), a.body)))
                for n, a in enumerate(articles)]
        self.db.executemany("INSERT INTO articles(rowid, title, keywords, questions, body) VALUES (?, ?, ?, ?, ?)",
                            rows)
        # in how many articles each stem occurs: BM25 gives a stem in half of them or more no weight
        # (FTS5 floors its idf at 1e-6), so the query leaves those out and reads fewer postings
        self.stem_articles = Counter(t for row in rows for t in set(" ".join(row[1:]).split()))
        self.languages = {a.language for a in articles}
        self.vocabulary: dict[str, int] = {}
        self.grams = GramIndex([" ".join([a.title] * TITLE_REPEAT + list(a.keywords) * KEYWORDS_REPEAT + [a.body])
                                for a in articles], self.vocabulary)
        self.ids = np.array([a.id for a in articles])
        # every example question is a document of its own, owned by its article; a language's
        # questions meet only questions in that language (n-grams shared across languages are noise)
        self.asked = self._owned(lambda a: a.questions)
        # and so are the questions next to each article's topic that it does not answer
        self.unanswered = self._owned(lambda a: a.not_answered)

    def _owned(self, questions: Callable[[Article], tuple[str, ...]]) -> dict[str, tuple[GramIndex, np.ndarray]]:
        """Per language, an index of the articles' questions of one kind, each a document, with
        the number of the article file that owns it."""
        out = {}
        for lang in sorted({a.language for a in self.articles if questions(a)}):
            owned = [(n, q) for n, a in enumerate(self.articles) if a.language == lang for q in questions(a)]
            out[lang] = (GramIndex([q for _, q in owned], self.vocabulary),
                         np.array([n for n, _ in owned], dtype=np.int64))
        return out

    def _query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary numbers and counts of the text's distinct n-grams (diacritics folded,
        its first MAX_QUERY_CHARS) that some index has."""
        known = [c for c in map(self.vocabulary.get, char_gram_list(fold(text), *GRAMS, limit=MAX_QUERY_CHARS))
                 if c is not None]
        return np.unique(np.array(known, dtype=np.int64), return_counts=True)

    def _similarity(self, query: tuple[np.ndarray, np.ndarray], language: str) -> np.ndarray:
        """Each article's likeness to a text (its ``_query``): the better of the article itself and
        its nearest example question in the text's language (a question in other words meets one
        asked alike)."""
        columns, counts = query
        similarity = self.grams.similarity(columns, counts)
        if language not in self.asked:
            return similarity
        index, owners = self.asked[language]
        nearest = np.zeros(len(self.articles))
        np.maximum.at(nearest, owners, index.similarity(columns, counts))
        return np.maximum(similarity, nearest)

    def search(self, text: str, language: str, limit: int = 10) -> list[Suggestion]:
        """Articles ranked by BM25 over the text's stems, best first; the score is divided by
        the square root of the query's length, so a long mail's many incidental matches do
        not outweigh a short question's decisive ones (no threshold applied here). Stems BM25
        gives no weight (in half the articles or more) stay out of the query, but count in its length."""
        query = list(dict.fromkeys(terms(text, language)))[:MAX_QUERY_TERMS]
        weighed = [t for t in query if 0 < self.stem_articles[t] < len(self.articles) / 2]
        if not weighed:
            return []
        match = " OR ".join(f'"{t}"' for t in weighed)
        weights = ", ".join(str(w) for w in WEIGHTS)
        rows = self.db.execute(f"SELECT rowid, -bm25(articles, {weights}) FROM articles WHERE articles MATCH ? "
                               f"ORDER BY bm25(articles, {weights}) LIMIT ?", (match, limit)).fetchall()
        scale = math.sqrt(len(query))
        return [Suggestion(self.articles[rowid], score / scale) for rowid, score in rows]

    def _best_per_id(self, found: list[Suggestion], intent: str) -> list[Suggestion]:
        """The best-scoring file of each article id, intent boost applied, best first."""
        best: dict[str, Suggestion] = {}
        for s in found:
            score = s.score * (INTENT_BOOST if intent in s.article.intents else 1.0)
            if s.article.id not in best or score > best[s.article.id].score:
                best[s.article.id] = Suggestion(s.article, score)
        return sorted(best.values(), key=lambda s: s.score, reverse=True)

    def ranked(self, text: str, intent: str, language: str, limit: int = 10) -> list[Suggestion]:
        """The ``limit`` most similar article ids by n-gram similarity to the text (cosine,
        0–1; example questions count in the text's ``language``), best first; no threshold: what
        the policy and the agents' view each cut in their own way."""
        if not self.articles or not text.strip():
            return []
        return self._ranked(self._query(text), intent, language, limit)

    def _ranked(self, query: tuple[np.ndarray, np.ndarray], intent: str, language: str, limit: int = 10
                ) -> list[Suggestion]:
        """``ranked`` for a text already turned into its ``_query``, which ``choose`` reuses."""
        similarity = self._similarity(query, language)
        take = min(len(self.articles), limit * (len(self.languages) + 1))  # files enough for ``limit`` ids
        best = np.argpartition(-similarity, take - 1)[:take]
        found = [Suggestion(self.articles[i], float(similarity[i])) for i in best if similarity[i] > 0]
        return self._best_per_id(found, intent)[:limit]

    def suggest(self, text: str, intent: str, language: str, fallback_language: str) -> list[Suggestion]:
        """The one article that clearly answers the text, or none (see ``choose``)."""
        return self.choose(text, intent, language, fallback_language).articles

    def choose(self, text: str, intent: str, language: str, fallback_language: str) -> Suggestions:
        """The one article that clearly answers the text, or none, with the rule that says why:
        its n-gram similarity clears MIN_SIMILARITY and leads the next article's by CLEAR_LEAD,
        the stems' BM25 ranking puts it first too, and no question the article lists as not
        answered is clearly nearer (NOT_ANSWERED). In the sender's language, else the tenant's;
        another language only when it is clearly right and no translation exists."""
        none = Suggestions("kb-no-match")
        if not self.articles or not text.strip():
            return none
        query = self._query(text)  # made once, for the articles, their questions and their near misses
        ranked = self._ranked(query, intent, language)
        if not ranked or ranked[0].score < MIN_SIMILARITY:
            return none
        if len(ranked) > 1 and ranked[0].score < CLEAR_LEAD * ranked[1].score:
            return none  # two articles about as good: the question is not clearly one of them
        stems = self._best_per_id(self.search(text, language, limit=30), intent)
        if not stems or stems[0].article.id != ranked[0].article.id or stems[0].score < MIN_SCORE:
            return none  # the words themselves do not point at the same article
        best = ranked[0]
        if language in self.unanswered:  # nearer to what the article says it does not answer?
            index, owners = self.unanswered[language]
            near = index.similarity(*query)[self.ids[owners] == best.article.id]
            if near.size and near.max() >= NOT_ANSWERED * best.score:
                return Suggestions("kb-not-answered")
        pick = self.article(best.article.id, language, fallback_language, anywhere=False)
        if pick is not None:
            return Suggestions("kb-suggested", [Suggestion(pick, best.score)])
        return Suggestions("kb-suggested", [best]) if best.score >= OTHER_LANGUAGE_SIMILARITY else none

    def matches(self, text: str, intent: str, language: str, fallback_language: str,
                limit: int = 3) -> list[Suggestion]:
        """What an agent is shown to pick from, whatever the policy offered the requester: the
        best ``limit`` articles above AGENT_MIN_SIMILARITY, without the clear-lead and
        agreement rules (the agent, not the bot, judges between two close ones), each in the
        requester's language if it has a translation. A person reads these before anything
        is sent, so the bar is lower."""
        out = []
        for s in self.ranked(text, intent, language)[:limit]:
            if s.score < AGENT_MIN_SIMILARITY:
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
    label = f"{category}/{intent}"
    if any(a in actions for a in MISLEADING_ACTIONS):
        return Suggestions("kb-not-for-decision")
    if "relay_to_company" in actions or not any(a in actions for a in HELPFUL_ACTIONS):
        if not any(a in actions for a in PASSED_ON_ACTIONS):
            return Suggestions("kb-not-for-decision")
        chosen = kb.choose(text, label, language, fallback_language) if kb else Suggestions("kb-no-match")
        found = [s for s in chosen.articles if label in s.article.intents]
        return Suggestions("kb-suggested-for-intent", found) if found else \
            Suggestions("kb-no-match" if chosen.articles else chosen.rule)
    return kb.choose(text, label, language, fallback_language) if kb else Suggestions("kb-no-match")


def import_export(path: Path, languages: list[str]) -> list[tuple[str, str]]:
    """(file name, Markdown text) for every article of a help centre's export: a CSV with the
    columns title, url, language, body (optional id, and intents, keywords, questions and
    not_answered, each separated by ';'), or a JSON list of objects with the same keys. Every
    article is validated as a file would be."""
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
        lists = {k: row.get(k) or [] for k in ("intents", "keywords", "questions", "not_answered")}
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
