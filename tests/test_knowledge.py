"""Help articles: loaded and validated like configuration, offered only when clearly right."""
from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
from dataclasses import replace
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import HERE, REPO, TEST_CONFIG, make_email
from triage.config import ConfigError, load_config
from triage.core.knowledge import (MAX_QUERY_TERMS, WEIGHTS, Article, ArticleError, KnowledgeBase, import_export,
                                   load_articles, offer, parse_article, terms)
from triage.core.model import GRAM_PRIME, char_gram_codes, char_gram_list
from triage.core.parse import parse_email
from triage.core.pipeline import Pipeline

KB = HERE / "data" / "kb"
LANGS = ["en", "sv", "uk", "ru", "de"]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    """The example tenant's help centre (config/tenants/borealis-help): thresholds are chosen for
    a knowledge base of realistic size, which a handful of fixture articles is not."""
    return KnowledgeBase(load_config(REPO / "config").tenants["borealis"].articles)


@pytest.fixture(scope="module")
def kb_config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kbconfig") / "config"
    shutil.copytree(TEST_CONFIG, folder)
    shutil.copytree(KB, folder / "tenants" / "acme-kb")
    path = folder / "tenants" / "acme.toml"
    path.write_text('knowledge_base = "acme-kb"\n' + path.read_text())
    return folder


def test_articles_load_with_their_front_matter():
    articles = load_articles(KB, LANGS)
    reset = next(a for a in articles if a.id == "password-reset" and a.language == "sv")
    assert reset.title == "Återställa ditt lösenord" and reset.url.startswith("https://")
    assert reset.intents == ("technical/access",) and "Glömt lösenord" in reset.body


@pytest.mark.parametrize("text, message", [
    ("title = 'x'\n", "must start with a '+++' line"),
    ("+++\ntitle = 'x'\n", "no closing '+++'"),
    ("+++\ntitle = 'x\n+++\n", "not valid TOML"),
    ("+++\ntitle = 'x'\nurl = 'https://h.example/a'\n+++\n", "missing key 'language'"),
    ("+++\ntitle = 'x'\nurl = 'https://h.example/a'\nlanguage = 'xx'\n+++\n", "key 'language' must be one of"),
    ("+++\ntitle = 'x'\nurl = 'javascript:alert(1)'\nlanguage = 'en'\n+++\n", "key 'url' must be an http"),
    ("+++\ntitle = 'x'\nurl = 'https://h.example/a'\nlanguage = 'en'\nintents = 'technical/access'\n+++\n",
     "key 'intents' must be a list of strings"),
    ("+++\ntitle = 'x'\nurl = 'https://h.example/a'\nlanguage = 'en'\nauthor = 'me'\n+++\n", "unknown key 'author'"),
    ("+++\ntitle = 'x'\nurl = 'https://h.example/a'\nlanguage = 'en'\nquestions = [1, 2]\n+++\n",
     "key 'questions' must be a list of strings"),
])
def test_a_malformed_article_names_file_and_key(text, message):
    with pytest.raises(ArticleError, match=re.escape(message)) as caught:
        parse_article(Path("kb/bad.md"), text, LANGS)
    assert "kb/bad.md" in str(caught.value)


def test_a_malformed_article_is_a_configuration_error(kb_config, tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(kb_config, folder)
    (folder / "tenants" / "acme-kb" / "broken.md").write_text("+++\ntitle = 'Broken'\n+++\nno url\n")
    with pytest.raises(ConfigError, match=r"acme\.toml: key 'knowledge_base': .*broken\.md: missing key 'url'"):
        load_config(folder)


def test_the_right_article_first(kb):
    found = kb.suggest("I forgot my password and the reset link never arrives", "technical/access", "en", "sv")
    assert [s.article.id for s in found][:1] == ["password-reset"]
    assert found[0].article.language == "en"


def test_the_senders_language_then_the_tenants():
    articles = [a for a in load_config(REPO / "config").tenants["borealis"].articles if a.language != "ru"]
    kb = KnowledgeBase(articles)
    sv = kb.suggest("Jag har glömt mitt lösenord och återställningslänken kommer aldrig", "technical/access", "sv", "en")
    assert (sv[0].article.id, sv[0].article.language) == ("password-reset", "sv")
    # An English question from a sender whose language has no translation (Russian removed):
    # the article that matched is offered in the tenant's language.
    mixed = kb.suggest("I forgot my password and the reset link never arrives", "technical/access", "ru", "sv")
    assert (mixed[0].article.id, mixed[0].article.language) == ("password-reset", "sv")


def test_nothing_irrelevant_is_offered(kb):
    assert kb.suggest("Our invoice 4471 has not been paid yet, when will you pay?", "technical/bug", "en", "en") == []
    assert kb.suggest("hello", "other/unknown", "en", "en") == []
    assert kb.suggest("", "technical/access", "en", "en") == []


def test_compounds_and_other_words_for_the_same_thing_find_the_article(kb):
    """Suppliers describe the thing in their own words: character n-grams match a compound and
    a synonym's shared letters where whole stems do not (the stems alone ranked the
    attachments article and two-factor sign-in first here)."""
    compound = "Ich bekomme ständig Benachrichtigungsmails zu jeder Anfrage, wie stelle ich das ab?"
    assert [s.article.id for s in kb.matches(compound, "", "de", "sv")][:1] == ["notification-settings"]
    forgot = "Das Einloggen klappt nicht mehr, ich hab mein Kennwort vergessen"
    assert [s.article.id for s in kb.matches(forgot, "", "de", "sv")][:1] == ["password-reset"]
    swedish = kb.suggest("Hur slutar jag få alla aviseringsmejl om nya förfrågningar?", "", "sv", "en")
    assert [(s.article.id, s.article.language) for s in swedish] == [("notification-settings", "sv")]


def test_a_question_next_to_an_article_gets_none(kb):
    """Sending quotes into an ERP system shares the quote article's words ("quotes", "portal"),
    but no article answers it: the requester is sent none. Mail volume, which the n-grams once
    matched to the locked-account article, is the notification article's, by its example
    questions."""
    assert kb.suggest("Can the portal send our quotes straight into our ERP system?", "technical/howto", "en", "en") == []
    volume = kb.suggest("Too many emails from the portal about every new request, can I turn them off?",
                        "technical/bug", "en", "en")
    assert [s.article.id for s in volume] == ["notification-settings"]


def _listing(kb: KnowledgeBase, article_id: str, near_miss: str | None) -> KnowledgeBase:
    """The knowledge base with no ``not_answered`` questions but ``near_miss`` under the
    article's English file (none at all for None)."""
    return KnowledgeBase([replace(a, not_answered=(near_miss,) if near_miss and (a.id, a.language) == (article_id, "en")
                                  else ()) for a in kb.articles])


def test_a_question_the_articles_list_as_not_answered_gets_none(kb):
    """Codes by SMS share the two-factor article's words, and it does not offer them. Listed
    under the article's ``not_answered``, a question asked alike gets none, with its rule;
    the article still goes to a question it answers."""
    sms = "Can the login codes come by SMS instead of the authenticator app?"
    bare = _listing(kb, "two-factor-authentication", None)
    assert [s.article.id for s in bare.suggest(sms, "technical/access", "en", "en")] == ["two-factor-authentication"]
    listed = _listing(kb, "two-factor-authentication", "Can I get the login codes by SMS instead of using an app?")
    assert listed.choose(sms, "technical/access", "en", "en").rule == "kb-not-answered"
    assert offer(listed, sms, "technical", "access", ["acknowledge"], False, "en", "en").rule == "kb-not-answered"
    answered = listed.suggest("I lost my phone and the portal asks for the six-digit code", "technical/access", "en", "en")
    assert [s.article.id for s in answered] == ["two-factor-authentication"]


@pytest.mark.parametrize("mail", [
    "Good morning,\n\nour company takes part in the online auction for transformer oil next Thursday, and I will "
    "be travelling that day. Is there an automatic bidding option, so that the portal bids for us down to a "
    "minimum price that we set before the auction starts?\n\nBest regards\nHelena Strand\n"
    "Key account manager, Nordsteel AB",
    "Hello,\n\nthe two-factor authentication is set up for my account with the authenticator app, but our field "
    "engineers are not allowed to install apps on their work phones. Could the login codes be sent to them by "
    "SMS instead?\n\nKind regards\nPer Olsson\nIT, Nordsteel AB",
])
def test_a_long_mail_asking_a_listed_near_miss_gets_none(kb, mail):
    """A greeting, a story and a signature make a mail nearer to an article's body than to any
    short question, so the near miss is measured question against question: this mail is nearer
    to what the article lists as not answered than to the nearest of its example questions,
    though not to the article itself."""
    chosen = kb.choose(mail, "technical/howto", "en", "en")
    assert chosen.rule == "kb-not-answered" and chosen.articles == []
    likeness = kb._similarity(kb.grams.query(mail), "en")
    best = kb._best_files(likeness.best, "technical/howto", 1)[0]
    assert np.nanmax(likeness.asked[kb.ids == best.article.id]) <= likeness.unanswered < best.score


def test_a_near_miss_listed_under_another_article_keeps_the_best_one_from_being_sent(kb):
    """Each article lists what is next to its own topic, and what none covers comes near
    other articles too: downloading all of a request's files at once, listed under the
    documents article only, keeps the attachments article from being sent."""
    ask = "Can I download all the attachments of the request at once instead of clicking each file?"
    bare = _listing(kb, "company-documents", None)
    assert [s.article.id for s in bare.suggest(ask, "technical/howto", "en", "en")] == ["rfq-attachments"]
    listed = _listing(kb, "company-documents", "Can I download all the files in one go?")
    assert listed.choose(ask, "technical/howto", "en", "en").rule == "kb-not-answered"
    assert [s.article.id for s in listed.matches(ask, "technical/howto", "en", "en")][:1] == ["rfq-attachments"]


def _article(slug: str, title: str, body: str, questions: tuple[str, ...] = ()) -> Article:
    front = f'title = "{title}"\nurl = "https://h.example/{slug}"\nlanguage = "en"\n'
    front += f"questions = {json.dumps(list(questions))}\n" if questions else ""
    return parse_article(Path(f"{slug}.en.md"), f"+++\n{front}+++\n{body}\n", LANGS)


def test_a_question_in_other_words_is_found_by_the_articles_example_questions():
    """The article says "cache" and "browser"; the supplier says the screen stays white. Only
    the way others asked it links the two: without the example question the other article
    ranks first, with it the right one does."""
    browsers = ("browsers", "Supported browsers and clearing the cache",
                "Use a current version of Chrome, Edge or Firefox. Delete cookies and cached files, then reload.")
    login = ("login", "Logging in to the portal", "Open the portal, enter your e-mail address and password.")
    asked = "after I log in the screen just stays white"
    bare = KnowledgeBase([_article(*browsers), _article(*login)])
    assert bare.ranked(asked, "", "en")[0].article.id == "login"
    taught = KnowledgeBase([_article(*browsers, questions=("the page is blank and white after signing in",)),
                            _article(*login)])
    assert taught.ranked(asked, "", "en")[0].article.id == "browsers"
    # a question meets only example questions in its own language: n-grams shared across languages are noise
    assert taught.ranked(asked, "", "sv")[0].article.id == "login"


def test_the_best_articles_are_found_among_the_best_files_as_a_full_sort_finds_them():
    """``_best_files`` sorts only the files that can hold the best ids (ties included); on
    scores with many ties, zeros and ids with several files, it must pick what sorting every
    file picks: each id's best file, ties in file order, best first."""
    rng = np.random.default_rng(3)
    articles = [_article(f"a{k}", f"Title {k}", "body") for k in range(40)]
    # 40 files of 13 ids, an id's files in several languages
    kb = KnowledgeBase([replace(a, id=f"id{k % 13}", language=LANGS[k % len(LANGS)]) for k, a in enumerate(articles)])

    def full_sort(scores: np.ndarray, limit: int) -> list[tuple[str, float]]:
        best: dict[str, tuple[str, float]] = {}
        for i in np.argsort(-scores, kind="stable"):
            if len(best) == limit or scores[i] <= 0:
                break
            best.setdefault(kb.articles[i].id, (kb.articles[i].source.name, float(scores[i])))
        return list(best.values())

    for _ in range(300):
        scores = rng.choice([0.0, 0.1, 0.2, 0.3, 0.5], size=len(articles)) * rng.integers(0, 2, size=len(articles))
        for limit in (1, 2, 3, 10):
            got = [(s.article.source.name, s.score) for s in kb._best_files(scores, "", limit)]
            assert got == full_sort(scores, limit)


def _questions(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / "data" / name).read_text("utf-8").splitlines() if line.strip()]


def test_the_stems_are_ranked_exactly_as_sqlite_fts5_ranks_them(kb):
    """The BM25 scores are computed over numpy postings, not by FTS5 (whose bm25() costs more
    than a millisecond with 500 articles): a real FTS5 table of the same stems, ranked by its
    own bm25() with the same column weights, must give every message the same scores."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE a USING fts5(title, keywords, questions, body)")
    db.executemany("INSERT INTO a(rowid, title, keywords, questions, body) VALUES (?, ?, ?, ?, ?)",
                   [(n, *(" ".join(terms(part, x.language)) for part in (x.title, " ".join(x.keywords),
                                                                         "\n".join(x.questions), x.body)))
                    for n, x in enumerate(kb.articles)])
    weights = ", ".join(str(w) for w in WEIGHTS)
    compared = 0
    for q in _questions("kb_questions8.jsonl") + _questions("kb_questions.jsonl"):
        text = f"{q['subject']}\n{q['text']}"
        stems = list(dict.fromkeys(terms(text, q["language"])))[:MAX_QUERY_TERMS]
        # FTS5 floors the idf of a stem in half the articles or more at 1e-6; here it is 0
        weighed = [t for t in stems if 0 < db.execute("SELECT count(*) FROM a WHERE a MATCH ?",
                                                       (f'"{t}"',)).fetchone()[0] < len(kb.articles) / 2]
        expected = np.zeros(len(kb.articles))
        if weighed:
            for rowid, score in db.execute(f"SELECT rowid, -bm25(a, {weights}) FROM a WHERE a MATCH ?",
                                           (" OR ".join(f'"{t}"' for t in weighed),)):
                expected[rowid] = score / math.sqrt(len(stems))
        assert np.allclose(kb.stem_scores(text, q["language"]), expected, rtol=1e-9, atol=1e-12), q["id"]
        compared += bool(weighed)
    assert compared > 100


@pytest.mark.parametrize("text", ["", "a", "ab", "I am 42", "Ёлка и ёж", "Grüße, straße 12b", "x\u0301y ab_cd",
                                  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 日本語のテキスト", "Benachrichtigungseinstellungen"])
def test_the_n_gram_codes_are_the_classifiers_n_grams(text):
    """The knowledge base numbers a text's character n-grams in numpy; they must be exactly
    the classifier's n-grams (``char_gram_list``), each coded as 1 and its letters."""
    def code(gram: str) -> int:
        value = 1
        for c in gram:
            value = (value * int(GRAM_PRIME) + ord(c)) % 2 ** 64
        return value
    for sample in (text, *(f"{q['subject']} {q['text']}" for q in _questions("kb_questions8.jsonl")[:20])):
        assert sorted(char_gram_codes(sample, 3, 5, None).tolist()) == \
            sorted(code(g.removeprefix("~")) for g in char_gram_list(sample, 3, 5, None))


def test_the_policy_offers_articles_only_where_they_help(kb):
    text = "I forgot my password. The reset link in the e-mail does not work."
    assert offer(kb, text, "technical", "access", ["acknowledge", "notify_agents"], False, "en", "en").rule == "kb-suggested"
    assert offer(kb, text, "technical", "access", ["suppress"], True, "en", "en").rule == "kb-not-for-automated"
    assert offer(kb, text, "business", "question", ["redirect_business"], False, "en", "en").rule == "kb-not-for-category"
    assert offer(kb, text, "account", "invitation", ["renew_invitation"], False, "en", "en").rule == "kb-not-for-decision"
    assert offer(kb, "zzz qqq", "technical", "bug", ["acknowledge"], False, "en", "en").rule == "kb-no-match"
    assert offer(None, text, "technical", "access", ["acknowledge"], False, "en", "en").rule == "kb-no-match"


@pytest.fixture(scope="module")
def example() -> Pipeline:
    return Pipeline(load_config(REPO / "config"))


def test_the_acknowledgement_carries_the_matching_article_and_no_other(example):
    raw = make_email("mikael.berg@nordsteel.se", "borealis@support.localhost", subject="Upload certificate",
                     body="Hello, how do I upload our ISO 9001 certificate to the company profile? "
                          "I cannot find the button.\n\nRegards, Mikael", authserv="mx.support.localhost")
    out = example.run(parse_email(raw, ["borealis@support.localhost"]), 1042, NOW)
    assert out.reply is not None and "kb-suggested" in out.decision.reasons
    offered = out.contract()["articles"]
    assert offered and offered[0]["id"] == "company-documents"
    for article in offered:
        assert f"{article['title']}: {article['url']}" in out.reply
    assert out.reply.count("https://help.borealis.portal.localhost/") == len(offered)


def test_a_business_question_gets_no_article(example):
    raw = make_email("mikael.berg@nordsteel.se", "borealis@support.localhost", subject="RFQ volumes",
                     body="Hello, what volumes and payment terms apply in RFQ 2211? Can we upload a certificate "
                          "later?", authserv="mx.support.localhost")
    out = example.run(parse_email(raw, ["borealis@support.localhost"]), 1043, NOW)
    assert out.cls.category == "business"
    assert out.contract()["articles"] == [] and "kb-not-for-category" in out.decision.reasons
    assert "help.borealis.portal.localhost" not in (out.reply or "")


def test_a_request_passed_on_gets_only_the_article_written_for_its_intent(example, kb):
    """An active supplier's invitation question is relayed to the company and held for an agent;
    the reply says so and adds the article the tenant tagged for invitation questions, after the
    notice. A question that matches an untagged article gets none on that road."""
    raw = make_email("mikael.berg@nordsteel.se", "borealis@support.localhost", subject="Invitation",
                     body="Hello, the link in my invitation e-mail says the invitation has expired. "
                          "How do I get a new invitation link?\n\nMikael", authserv="mx.support.localhost")
    out = example.run(parse_email(raw, ["borealis@support.localhost"]), 1044, NOW)
    assert {"relay_to_company", "hold_for_review"} <= set(out.decision.actions)
    assert "kb-suggested-for-intent" in out.decision.reasons
    assert [a["id"] for a in out.contract()["articles"]] == ["expired-invitation"]
    assert out.reply is not None
    notice, listed = out.reply.index("look at your request personally"), out.reply.index("Expired or lost invitation")
    assert notice < listed and "https://help.borealis.portal.localhost/en/expired-invitation" in out.reply
    password = "I forgot my password. The reset link in the e-mail does not work."
    passed_on = ["relay_to_company", "hold_for_review", "notify_agents"]
    assert kb.suggest(password, "account/invitation", "en", "en")  # it matches, but is not tagged for the intent
    assert offer(kb, password, "account", "invitation", passed_on, False, "en", "en").rule == "kb-no-match"
    assert offer(kb, password, "account", "invitation", ["notify_agents"], False, "en", "en").rule == \
        "kb-not-for-decision"


def test_a_decline_the_requester_can_act_on_carries_the_article_for_its_intent(example, kb):
    """Support does not edit a submitted quote: the reply declines, relays to the company, and
    adds the article the tenant tagged for such requests (how to change one's quote before the
    deadline), after the refusal. Declines that leave nothing to do oneself get none, and an
    article not tagged with the declined request's intent is not offered under a decline."""
    raw = make_email("mikael.berg@nordsteel.se", "borealis@support.localhost", subject="Wrong price in our quote",
                     body="Hello, we submitted our quote for RFQ 2231 yesterday, but the price on line 2 is wrong. "
                          "Can you change the price in our submitted quote?\n\nMikael", authserv="mx.support.localhost")
    out = example.run(parse_email(raw, ["borealis@support.localhost"]), 1045, NOW)
    assert out.cls.label == "account/data_change" and out.decision.decline == "data_change"
    assert "decline" in out.decision.actions and "kb-suggested-with-decline" in out.decision.reasons
    assert [a["id"] for a in out.contract()["articles"]] == ["submit-quote"]
    assert out.reply is not None
    refusal, listed = out.reply.index("Support cannot edit or delete submitted offers"), out.reply.index(
        "https://help.borealis.portal.localhost/en/submit-quote")
    assert refusal < listed
    text = "Please create a portal account for our new colleague, she has no invitation."
    declined = ["decline", "relay_to_company", "notify_agents"]
    assert offer(kb, text, "account", "new_user", declined, False, "en", "en", decline="account_creation").rule == \
        "kb-not-for-decision"
    quote = "Can you change the price in our submitted quote? Line 2 is wrong."
    assert offer(kb, quote, "account", "data_change", declined, False, "en", "en", decline="data_change").rule == \
        "kb-suggested-with-decline"
    # the same request from a channel that cannot change anything gets no article
    assert offer(kb, quote, "account", "data_change", ["decline", "request_verified_channel"], False, "en", "en",
                 decline="data_change").rule == "kb-not-for-decision"
    password = "I forgot my password and the reset link in the e-mail does not work."
    assert kb.suggest(password, "account/data_change", "en", "en")  # it matches, but is not tagged for the intent
    assert offer(kb, password, "account", "data_change", declined, False, "en", "en", decline="data_change").rule == \
        "kb-no-match"


def test_import_from_csv_and_json(tmp_path):
    csv_file = tmp_path / "export.csv"
    csv_file.write_text("title,url,language,body,intents,questions,not_answered\nLogging in,https://h.example/login,en,"
                        "Use your e-mail.,technical/access,where do I sign in?; what is my user name,"
                        "can I sign in with Microsoft?\n", "utf-8")
    [(name, text)] = import_export(csv_file, LANGS)
    assert name == "logging-in.en.md"
    article = parse_article(Path(name), text, LANGS)
    assert article.title == "Logging in" and article.intents == ("technical/access",)
    assert article.questions == ("where do I sign in?", "what is my user name")
    assert article.not_answered == ("can I sign in with Microsoft?",)
    json_file = tmp_path / "export.json"
    json_file.write_text(json.dumps([{"title": "Ohne URL", "language": "de", "body": "x"}]))
    with pytest.raises(ArticleError, match="article 1 lacks url"):
        import_export(json_file, LANGS)


def test_kb_commands(kb_config, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "triage.cli", "--config", str(kb_config), "kb", *args],
                              capture_output=True, text=True, timeout=120)

    listed = run("list", "--tenant", "acme")
    assert listed.returncode == 0 and "acme: 5 articles" in listed.stdout
    searched = run("search", "--tenant", "acme", "forgot", "my", "password")
    assert searched.returncode == 0 and "password-reset" in searched.stdout and "ranked, kb-" in searched.stdout
    checked = run("check", "--tenant", "acme")
    assert checked.returncode == 0 and "OK" in checked.stdout and "untranslated" in checked.stdout
    assert run("list", "--tenant", "nope").returncode == 2
    export = tmp_path / "e.json"
    export.write_text(json.dumps([{"id": "login", "title": "Logging in", "url": "https://h.example/l",
                                   "language": "en", "body": "Use your e-mail address."}]))
    imported = run("import", "acme", str(export))
    assert imported.returncode == 0, imported.stderr
    assert (kb_config / "tenants" / "acme-kb" / "login.en.md").exists()
