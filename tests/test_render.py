"""Reply and relay templates: complete in every language, safe for suppliers, with fallback."""
from __future__ import annotations

import re
from datetime import datetime, time

import jinja2
import jinja2.meta
import pytest

from triage.core.render import (DECLINE_REASONS, GUIDES, RELAY_KEYS, REPLY_KEYS, Renderer, RenderError, format_hours,
                                format_moment)

LANGS = ["en", "sv", "de", "ru", "uk"]
PARTS = ["acknowledge", "urgent", "redirect_business", "relay_notice", "renew_invitation", "renewal_confirmed",
         "guide_self_service", "request_verified_channel", "decline", "hold_for_review", "articles"]

# The tenant's staff: none of this may ever reach a supplier (compared case-insensitively).
INTERNAL = ["Sara Holm", "sara.holm@nordvik.se", "sara.holm", "+46 70 123 45 67", "070-123 45 67",
            "Erik Lund", "erik.lund@nordvik.se", "Anders Ek", "@nordvik.se"]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"\+?\d[\d ()-]{6,}\d")

REPLY_RENDERER = Renderer()


def reply_context(**over) -> dict:
    ctx = {
        "ticket": "1042", "ticket_tag": "[#1042]", "tenant": "Nordvik Industrier AB",
        "sender_name": "Anna Berg", "channel": "email",
        "portal_url": "https://nordvik.portal.example",
        "hours": "Mon–Fri 08:00–17:00 (Europe/Stockholm)", "open_now": True,
        "reply_by": "Mon 24 Nov 08:00", "parts": ["acknowledge"], "guide": "", "decline_reason": "",
        "has_contacts": True, "articles": [], "portal_renews": False,
    }
    ctx.update(over)
    return ctx


def relay_context(**over) -> dict:
    ctx = {
        "ticket_tag": "[#1042]", "tenant": "Nordvik Industrier AB", "sender_name": "Anna Berg",
        "sender_email": "anna.berg@balticsteel.lt", "sender_company": "Baltic Steel Components UAB",
        "requester": "external", "verified": True, "trust_evidence": "DMARC pass for balticsteel.lt",
        "category": "business", "intent": "question", "channel": "email",
        "subject": "Volumes in RFQ 2231", "text": "Hello,\n\nWhat volume do you expect per year?\n\nAnna",
        "reasons": ["business-question-from-supplier"],
    }
    ctx.update(over)
    return ctx


def variants():
    """Every part alone, with every guide and decline reason, in every language."""
    for lang in LANGS:
        for part in PARTS:
            if part == "guide_self_service":
                for guide in GUIDES:
                    yield lang, [part], {"guide": guide}
            elif part == "decline":
                for reason in DECLINE_REASONS:
                    yield lang, [part], {"decline_reason": reason}
            else:
                yield lang, [part], {}


def assert_plain(text: str) -> None:
    assert "{{" not in text and "{%" not in text and "{#" not in text
    assert "None" not in text and "Undefined" not in text
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "  " not in text  # a double space means a template's whitespace went wrong
    assert text.endswith("\n") and not text.endswith("\n\n")


# (1) completeness ---------------------------------------------------------------------

def test_every_language_has_every_template():
    folder = REPLY_RENDERER.folder
    assert set(LANGS) <= set(REPLY_RENDERER.languages())
    assert sorted(PARTS) == REPLY_RENDERER.parts()
    for lang in LANGS:
        for name in ("reply.txt.j2", "relay.txt.j2", "relay_subject.txt.j2"):
            assert (folder / lang / name).is_file(), f"{lang}/{name} missing"
        for part in PARTS:
            assert (folder / lang / "parts" / f"{part}.txt.j2").is_file(), f"{lang}/parts/{part} missing"
        assert REPLY_RENDERER.parts(lang) == REPLY_RENDERER.parts()


def test_every_template_parses():
    env = REPLY_RENDERER.env
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)


def test_templates_use_only_their_context():
    """Reply templates can only name REPLY_KEYS (no contact data can be asked for)."""
    env = REPLY_RENDERER.env
    allowed_reply = set(REPLY_KEYS) | {"lang", "fail"}
    allowed_relay = set(RELAY_KEYS) | {"lang", "fail"}
    for lang in LANGS:
        names = [f"{lang}/reply.txt.j2"] + [f"{lang}/parts/{p}.txt.j2" for p in PARTS]
        for name in names:
            source = env.loader.get_source(env, name)[0]
            used = jinja2.meta.find_undeclared_variables(env.parse(source))
            assert used <= allowed_reply, f"{name} uses {used - allowed_reply}"
        for name in (f"{lang}/relay.txt.j2", f"{lang}/relay_subject.txt.j2"):
            source = env.loader.get_source(env, name)[0]
            used = jinja2.meta.find_undeclared_variables(env.parse(source))
            assert used <= allowed_relay, f"{name} uses {used - allowed_relay}"


# (2) nothing internal in a reply to a supplier ----------------------------------------

@pytest.mark.parametrize("lang,parts,extra", list(variants()),
                         ids=lambda v: v if isinstance(v, str) else "-".join(v) if isinstance(v, list) else "")
@pytest.mark.parametrize("channel", ["email", "widget"])
@pytest.mark.parametrize("open_now", [True, False])
def test_reply_never_leaks_internal_contacts(lang, parts, extra, channel, open_now):
    # A careless caller passes contact data: it must be dropped before rendering.
    ctx = reply_context(parts=parts, channel=channel, open_now=open_now,
                        portal_url="https://nordvik.portal.example" if open_now else "",
                        contacts=[{"name": "Sara Holm", "email": "sara.holm@nordvik.se",
                                   "phone": "+46 70 123 45 67"}],
                        contact_email="sara.holm@nordvik.se", **extra)
    out = REPLY_RENDERER.reply(lang, "sv", ctx)
    lowered = out.lower()
    for secret in INTERNAL:
        assert secret.lower() not in lowered, f"{secret!r} leaked into {lang} {parts}"
    assert not EMAIL.search(out), EMAIL.search(out)
    assert not PHONE.search(out), PHONE.search(out)
    assert "[#1042]" in out  # the renderer really produced a reply (the test can fail)
    assert "Anna Berg" in out
    assert "Nordvik Industrier AB" in out  # the signature names the tenant
    assert_plain(out)


def test_leak_check_can_fail(tmp_path):
    """The same checks catch a template that prints a contact."""
    (tmp_path / "en" / "parts").mkdir(parents=True)
    (tmp_path / "en" / "reply.txt.j2").write_text("{{ ticket_tag }} Ask Sara Holm, sara.holm@nordvik.se\n")
    (tmp_path / "en" / "parts" / "acknowledge.txt.j2").write_text("x\n")
    out = Renderer(tmp_path).reply("en", "en", reply_context())
    assert any(s.lower() in out.lower() for s in INTERNAL)
    assert EMAIL.search(out)


def test_reply_layout_in_all_languages():
    for lang in LANGS:
        out = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["acknowledge", "redirect_business",
                                                                    "relay_notice"]))
        paragraphs = out.split("\n\n")
        assert "Anna Berg" in paragraphs[0]
        assert len(paragraphs) >= 6
        assert out.count("[#1042]") == 1  # once, in the closing
        assert "https://nordvik.portal.example" in out
        assert_plain(out)
        generic = REPLY_RENDERER.reply(lang, "en", reply_context(sender_name="", channel="slack"))
        assert "Anna" not in generic and "[#1042]" in generic


def test_subject_hint_only_for_email():
    hint = {"en": "subject", "sv": "ämnesraden", "de": "Betreff", "ru": "теме письма", "uk": "темі листа"}
    for lang in LANGS:
        assert hint[lang] in REPLY_RENDERER.reply(lang, "en", reply_context(channel="email"))
        for channel in ("widget", "slack"):
            assert hint[lang] not in REPLY_RENDERER.reply(lang, "en", reply_context(channel=channel))


def test_acknowledge_open_and_closed():
    for lang in LANGS:
        open_ = REPLY_RENDERER.reply(lang, "en", reply_context(open_now=True, reply_by="XYZ-WHEN"))
        closed = REPLY_RENDERER.reply(lang, "en", reply_context(open_now=False, reply_by="XYZ-WHEN"))
        assert "XYZ-WHEN" not in open_ and "XYZ-WHEN" in closed
        assert "Mon–Fri 08:00–17:00" in open_ and "Mon–Fri 08:00–17:00" in closed


def test_german_continues_in_lower_case_after_salutation():
    out = REPLY_RENDERER.reply("de", "en", reply_context(parts=["acknowledge", "hold_for_review"]))
    assert "Guten Tag Anna Berg,\n\nvielen Dank" in out
    assert "\n\nEin Mitglied" in out  # only the first paragraph is lower-cased
    out = REPLY_RENDERER.reply("de", "en", reply_context(parts=["guide_self_service"], guide="internal_invite"))
    assert "Guten Tag Anna Berg,\n\nIhre Lieferanten" in out  # the polite pronoun stays capitalised


def test_all_parts_together():
    for lang in LANGS:
        out = REPLY_RENDERER.reply(lang, "en", reply_context(parts=PARTS, guide="ask_company_admin",
                                                             decline_reason="deadline"))
        assert_plain(out)
        assert len(out.split("\n\n")) == len(PARTS) + 1 + 1 + 1 + 1  # greeting, portal, ticket, signature


# (3) fallback ------------------------------------------------------------------------

def test_fallback_order():
    r = REPLY_RENDERER
    assert r.pick("sv", "en") == "sv"
    assert r.pick("fr", "sv") == "sv"
    assert r.pick("fr", "de") == "de"
    assert r.pick("fr", "fr") == "en"
    assert r.pick("", "") == "en"
    assert r.pick("SV-se", "en") == "sv"
    assert r.pick("uk_UA", "en") == "uk"
    assert "Mit freundlichen Grüßen" in r.reply("fr", "de", reply_context())
    assert "Kind regards" in r.reply("fr", "fr", reply_context())
    subject, body = r.relay("fr", "xx", relay_context())
    assert subject.startswith("[#1042] Message from a supplier")


def test_fallback_skips_a_language_without_templates(tmp_path):
    for lang in ("en", "sv"):
        (tmp_path / lang / "parts").mkdir(parents=True)
        (tmp_path / lang / "reply.txt.j2").write_text(f"{lang} {{{{ lang }}}} {{{{ ticket_tag }}}}\n")
        (tmp_path / lang / "parts" / "acknowledge.txt.j2").write_text("x\n")
    (tmp_path / "de").mkdir()  # a folder without reply.txt.j2 is not a language
    r = Renderer(tmp_path)
    assert r.languages() == ["en", "sv"]
    assert r.pick("de", "sv") == "sv"
    assert r.pick("de", "ru") == "en"
    assert r.reply("de", "sv", reply_context()) == "sv sv [#1042]\n"  # lang is the picked one


def test_no_english_is_an_error(tmp_path):
    with pytest.raises(RenderError):
        Renderer(tmp_path).pick("fr", "de")


# (4) Ukrainian is Ukrainian -------------------------------------------------------------

def test_ukrainian_and_russian_are_distinct():
    for open_now in (True, False):
        ctx = reply_context(parts=["acknowledge"], open_now=open_now, portal_url="")
        uk = REPLY_RENDERER.reply("uk", "en", ctx)
        ru = REPLY_RENDERER.reply("ru", "en", ctx)
        assert re.search(r"[іїєґ]", uk), uk
        assert not re.search(r"[іїєґІЇЄҐ]", ru), ru
        assert re.search(r"[ыэъё]", ru), ru  # letters Ukrainian does not use
        assert not re.search(r"[ыэъё]", uk), uk
    for part in PARTS:
        ctx = reply_context(parts=[part], guide="ask_company_admin", decline_reason="settings")
        assert not re.search(r"[ыэъё]", REPLY_RENDERER.reply("uk", "en", ctx)), part
        assert not re.search(r"[іїєґ]", REPLY_RENDERER.reply("ru", "en", ctx)), part


# (5) errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [k for k in REPLY_KEYS])
def test_missing_reply_variable_raises(key):
    ctx = reply_context(parts=["acknowledge", "guide_self_service", "decline"], guide="open_registration",
                        decline_reason="confidential")
    del ctx[key]
    with pytest.raises(RenderError, match=key):
        REPLY_RENDERER.reply("en", "en", ctx)


def test_missing_relay_variable_raises():
    ctx = relay_context()
    del ctx["sender_email"]
    with pytest.raises(RenderError, match="sender_email"):
        REPLY_RENDERER.relay("sv", "en", ctx)


def test_strict_undefined_in_a_template(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "reply.txt.j2").write_text("{{ ticket_tag }} {{ no_such_variable }}\n")
    with pytest.raises(RenderError) as caught:
        Renderer(tmp_path).reply("en", "en", reply_context(parts=[]))
    assert isinstance(caught.value.__cause__, jinja2.UndefinedError)


def test_unknown_part_guide_or_reason_raises():
    with pytest.raises(RenderError, match="unknown reply part"):
        REPLY_RENDERER.reply("en", "en", reply_context(parts=["acknowledge", "no_such_part"]))
    with pytest.raises(RenderError, match="guide"):
        REPLY_RENDERER.reply("en", "en", reply_context(parts=["guide_self_service"], guide=""))
    with pytest.raises(RenderError, match="decline_reason"):
        REPLY_RENDERER.reply("en", "en", reply_context(parts=["decline"], decline_reason="because"))


# relay to the company --------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
def test_relay_verified(lang):
    subject, body = REPLY_RENDERER.relay(lang, "en", relay_context())
    assert subject.startswith("[#1042] ") and subject.endswith(": Volumes in RFQ 2231")
    assert "\n" not in subject
    for needed in ("anna.berg@balticsteel.lt", "Anna Berg", "Baltic Steel Components UAB",
                   "DMARC pass for balticsteel.lt", "What volume do you expect per year?",
                   "business-question-from-supplier", "[#1042]", "Nordvik Industrier AB"):
        assert needed in body, needed
    assert_plain(body)


NOT_VERIFIED = {"en": "NOT verified", "sv": "EJ verifierad", "de": "NICHT verifiziert",
                "ru": "НЕ подтверждена", "uk": "НЕ підтверджена"}


@pytest.mark.parametrize("lang", LANGS)
def test_relay_unverified_and_without_address(lang):
    ctx = relay_context(verified=False, trust_evidence="", requester="unknown", sender_email="",
                        sender_company="", subject="Line one\r\nBcc: evil@example.com", channel="widget",
                        reasons=[], category="other", intent="unknown")
    subject, body = REPLY_RENDERER.relay(lang, "en", ctx)
    assert NOT_VERIFIED[lang] in body
    assert NOT_VERIFIED[lang] not in REPLY_RENDERER.relay(lang, "en", relay_context())[1]
    assert "\n" not in subject and "\r" not in subject  # no header injection
    assert "<>" not in body
    assert_plain(body)


def test_relay_says_reply_goes_to_sender_and_support_did_not_answer():
    _, body = REPLY_RENDERER.relay("en", "en", relay_context())
    assert "reply goes directly to the sender (anna.berg@balticsteel.lt)" in body
    assert "has not answered the business content" in body
    _, body = REPLY_RENDERER.relay("sv", "en", relay_context())
    assert "svaret går direkt till avsändaren (anna.berg@balticsteel.lt)" in body
    assert "har inte besvarat meddelandets affärsinnehåll" in body


def test_relay_in_the_tenant_language_for_unknown_one():
    subject, body = REPLY_RENDERER.relay("fr", "sv", relay_context())
    assert subject == "[#1042] Meddelande från en leverantör: Volumes in RFQ 2231"
    assert body.startswith("Hej!")


# helpers for the caller ---------------------------------------------------------------------

def test_format_moment_and_hours():
    when = datetime(2025, 11, 24, 8, 0)
    assert format_moment(when, "en") == "Mon 24 Nov 08:00"
    assert format_moment(when, "sv") == "mån 24 nov kl. 08.00"
    assert format_moment(when, "de") == "Mo., 24.11., 08:00 Uhr"
    assert format_moment(when, "ru") == "пн, 24 ноября, 08:00"
    assert format_moment(when, "uk") == "пн, 24 листопада, 08:00"
    assert format_moment(when, "fr") == "Mon 24 Nov 08:00"
    weekdays = range(5)
    assert format_hours(weekdays, time(8), time(17), "en", "Europe/Stockholm") == \
        "Mon–Fri 08:00–17:00 (Europe/Stockholm)"
    assert format_hours(weekdays, time(8), time(17), "sv") == "mån–fre kl. 08.00–17.00"
    assert format_hours(weekdays, time(9), time(17, 30), "de") == "Mo–Fr 09:00–17:30 Uhr"
    assert format_hours(weekdays, time(8), time(17), "uk") == "пн–пт 08:00–17:00"
    assert format_hours([0, 2, 4], time(8), time(12), "ru") == "пн, ср, пт 08:00–12:00"


# -- what a supplier reads: every text once, and true ------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("channel", ["email", "widget"])
def test_acknowledgement_gives_the_ticket_number_once(lang, channel):
    text = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["acknowledge"], channel=channel))
    assert text.count("[#1042]") == 1, text


@pytest.mark.parametrize("lang", LANGS)
def test_redirect_with_relay_points_to_existing_contacts_once(lang):
    """Redirect and relay notice together used to both send the supplier to their contacts."""
    parts = ["redirect_business", "relay_notice"]
    with_contacts = REPLY_RENDERER.reply(lang, "en", reply_context(parts=parts, has_contacts=True))
    without = REPLY_RENDERER.reply(lang, "en", reply_context(parts=parts, has_contacts=False))
    assert with_contacts.count("Nordvik Industrier AB") > without.count("Nordvik Industrier AB")
    # the relay notice names the tenant once in its first sentence; the pointer adds exactly one more
    assert with_contacts.count("Nordvik Industrier AB") - without.count("Nordvik Industrier AB") == 1


@pytest.mark.parametrize("lang", LANGS)
def test_a_new_company_is_not_sent_to_contacts_it_does_not_have(lang):
    alone = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["redirect_business"], has_contacts=False))
    known = REPLY_RENDERER.reply(lang, "en", reply_context(parts=["redirect_business"], has_contacts=True))
    assert alone != known
    pointer = {"en": "existing contacts", "sv": "vanliga kontaktpersoner", "de": "bisherigen Ansprechpersonen",
               "ru": "с которыми Вы уже работаете", "uk": "з якими Ви вже співпрацюєте"}[lang]
    assert pointer in known and pointer not in alone


@pytest.mark.parametrize("lang", LANGS)
def test_urgent_outside_hours_says_what_really_happens(lang):
    """Outside hours the reply must not claim an immediate answer: it says nobody may answer
    before the close, and (to a supplier who has contacts) that only the tenant can extend it."""
    parts = ["urgent", "acknowledge"]
    inside = REPLY_RENDERER.reply(lang, "en", reply_context(parts=parts, open_now=True))
    outside = REPLY_RENDERER.reply(lang, "en", reply_context(parts=parts, open_now=False))
    promise = {"en": "cannot promise", "sv": "kan inte lova", "de": "nicht zusagen",
               "ru": "не можем обещать", "uk": "не можемо обіцяти"}[lang]
    assert promise in outside and promise not in inside
    assert "Mon 24 Nov 08:00" in outside
    assert outside.count("Nordvik Industrier AB") > REPLY_RENDERER.reply(
        lang, "en", reply_context(parts=parts, open_now=False, has_contacts=False)).count("Nordvik Industrier AB")


@pytest.mark.parametrize("lang, name", [("en", "Nordvik Industrier AB supplier portal support"),
                                        ("de", "Support des Lieferantenportals von Nordvik Industrier AB"),
                                        ("sv", "Support för leverantörsportalen, Nordvik Industrier AB"),
                                        ("ru", "Поддержка портала поставщиков Nordvik Industrier AB"),
                                        ("uk", "Підтримка порталу постачальників Nordvik Industrier AB")])
def test_the_sender_name_is_in_the_readers_language(lang, name):
    assert REPLY_RENDERER.sender_name(lang, "en", "Nordvik Industrier AB") == name


@pytest.mark.parametrize("lang", LANGS)
def test_a_transcript_in_every_language(lang):
    subject, body = REPLY_RENDERER.transcript(lang, "en", {
        "ticket_tag": "[#1042]", "tenant": "Nordvik Industrier AB",
        "lines": [{"at": "2026-11-24 10:00", "inbound": True, "text": "Hello?"},
                  {"at": "2026-11-24 10:01", "inbound": False, "text": "Hi!"}]})
    assert "[#1042]" in subject and "Hello?" in body and "Hi!" in body and "2026-11-24 10:01 UTC" in body
