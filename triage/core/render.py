"""Replies and relays from Jinja2 templates, one folder per language.

Layout of the templates folder::

    <lang>/reply.txt.j2            every reply to the requester: greeting, parts, closing
    <lang>/chat.txt.j2             the same reply sized for the help widget: its parts only
    <lang>/parts/<part>.txt.j2     one paragraph per reply action (acknowledge, decline, ...)
    <lang>/relay.txt.j2            the message forwarded to the tenant's company contacts
    <lang>/relay_subject.txt.j2    its subject line
    <lang>/article.txt.j2          a help article an agent sends to the requester

Safety by construction: a template only ever sees the keys listed in ``REPLY_KEYS`` or
``RELAY_KEYS``. Anything else a caller passes (a tenant's contacts, say) is dropped before
rendering, so a reply to a supplier cannot name the tenant's staff even by mistake.
"""
from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DEFAULT_LANGUAGE = "en"

# Values of ``guide`` (part guide_self_service) and ``decline_reason`` (part decline).
GUIDES = ("admin_add_colleague", "ask_company_admin", "open_registration",
          "internal_invite", "internal_self_service")
DECLINE_REASONS = ("confidential", "deadline", "special_access", "account_creation",
                   "data_change", "settings")

# The whole render context of reply.txt.j2 (``lang`` is set by the renderer). No contact data.
REPLY_KEYS = ("ticket", "ticket_tag", "tenant", "sender_name", "channel", "portal_url",
              "hours", "open_now", "reply_by", "parts", "guide", "decline_reason", "has_contacts",
              "articles", "portal_renews")
# The context of transcript.txt.j2 and transcript_subject.txt.j2: a visitor's own conversation.
TRANSCRIPT_KEYS = ("ticket_tag", "tenant", "lines")
# The context of article.txt.j2: one help article an agent sends, and the ticket it answers.
ARTICLE_KEYS = ("title", "url", "ticket_tag", "tenant", "channel")
# The whole render context of relay.txt.j2 and relay_subject.txt.j2 (internal readers).
RELAY_KEYS = ("ticket_tag", "tenant", "sender_name", "sender_email", "sender_company",
              "requester", "verified", "trust_evidence", "category", "intent", "channel",
              "subject", "text", "reasons")

# German: after "Guten Tag …," the text goes on in lower case, except the polite pronoun.
_POLITE = {"Sie", "Ihr", "Ihre", "Ihnen", "Ihren", "Ihrem", "Ihrer", "Ihres"}


class RenderError(ValueError):
    """A template is missing or broken, or the render context lacks a value."""


def _lowerfirst(text: str) -> str:
    """Lower-case the first letter (German text after a salutation), keeping Sie/Ihr…."""
    stripped = text.lstrip()
    if not stripped:
        return text
    first = re.split(r"[\s,.;:!?]", stripped, maxsplit=1)[0]
    if first in _POLITE:
        return text
    lead = len(text) - len(stripped)
    return text[:lead] + stripped[0].lower() + stripped[1:]


def _fail(message: str) -> None:
    """Templates call ``fail(...)`` in branches that must never be reached."""
    raise RenderError(message)


def tidy(text: str) -> str:
    """Plain-text output: no trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return body + "\n"


def _one_line(text: str) -> str:
    """A header value: all whitespace (newlines included) collapsed to single spaces."""
    return " ".join(text.split())


def normalise_language(lang: str | None) -> str:
    """"sv-SE", "SV", "sv_SE" -> "sv"; None -> ""."""
    return (lang or "").strip().lower().replace("_", "-").split("-")[0]


class Renderer:
    """Jinja2 templates per language with fallback: requested language, then the tenant's, then English."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else TEMPLATES
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.folder)),
            autoescape=False,  # plain text, not HTML
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # templates are read once; no stat() per message
        )
        self.env.filters["lowerfirst"] = _lowerfirst
        self.env.filters["oneline"] = _one_line
        self.env.globals["fail"] = _fail
        self._languages: list[str] | None = None
        self._parts: dict[str, list[str]] = {}
        self._picked: dict[tuple[str, str, str], str] = {}

    # -- what exists -------------------------------------------------------------------

    def languages(self) -> list[str]:
        """Languages that have a reply.txt.j2."""
        if self._languages is None:
            self._languages = sorted(
                d.name for d in self.folder.iterdir() if (d / "reply.txt.j2").is_file()
            ) if self.folder.is_dir() else []
        return list(self._languages)

    def parts(self, lang: str = DEFAULT_LANGUAGE) -> list[str]:
        """Part names available (in English unless told otherwise)."""
        if lang not in self._parts:
            folder = self.folder / lang / "parts"
            self._parts[lang] = sorted(
                p.name[: -len(".txt.j2")] for p in folder.glob("*.txt.j2")
            ) if folder.is_dir() else []
        return list(self._parts[lang])

    def _pick(self, lang: str, fallback: str, template: str) -> str:
        key = (lang, fallback, template)
        if key in self._picked:
            return self._picked[key]
        for candidate in (normalise_language(lang), normalise_language(fallback), DEFAULT_LANGUAGE):
            if candidate and (self.folder / candidate / template).is_file():
                self._picked[key] = candidate
                return candidate
        raise RenderError(f"no language among {lang!r}, {fallback!r}, {DEFAULT_LANGUAGE!r} "
                          f"has {template} in {self.folder}")

    def pick(self, lang: str, fallback: str) -> str:
        """The language actually used: ``lang`` if it has templates, else ``fallback``, else English."""
        return self._pick(lang, fallback, "reply.txt.j2")

    # -- rendering ---------------------------------------------------------------------

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(context)
        except RenderError:
            raise
        except jinja2.TemplateError as exc:
            raise RenderError(f"{name}: {exc}") from exc

    @staticmethod
    def _context(context: Mapping[str, Any], keys: Sequence[str], what: str) -> dict[str, Any]:
        missing = [k for k in keys if k not in context]
        if missing:
            raise RenderError(f"{what} context lacks {', '.join(missing)}")
        return {k: context[k] for k in keys}

    def reply(self, lang: str, fallback: str, context: dict) -> str:
        """Render reply.txt.j2; the context gets ``lang`` set to the picked language.

        Only ``REPLY_KEYS`` reach the template; every one of them is required.
        """
        used, ctx = self._reply_context(lang, fallback, context, "reply.txt.j2")
        return tidy(self._render(f"{used}/reply.txt.j2", ctx))

    def chat(self, lang: str, fallback: str, context: dict) -> str:
        """Render chat.txt.j2: the same paragraphs as :meth:`reply` without greeting, closing,
        article list or ticket number, sized for a chat window (the widget shows the articles
        as links of their own and the ticket number in its header, once; the whole letter goes
        only into the transcript)."""
        used, ctx = self._reply_context(lang, fallback, context, "chat.txt.j2")
        return tidy(self._render(f"{used}/chat.txt.j2", ctx))

    def _reply_context(self, lang: str, fallback: str, context: dict, template: str) -> tuple[str, dict[str, Any]]:
        """The picked language and the checked context of a reply (letter or chat)."""
        used = self._pick(lang, fallback, template)
        ctx = self._context(context, REPLY_KEYS, "reply")
        ctx["lang"] = used
        parts = list(ctx["parts"])
        known = self.parts(used)
        unknown = [p for p in parts if p not in known]
        if unknown:
            raise RenderError(f"unknown reply part(s) {unknown} for {used!r}; known: {known}")
        if "guide_self_service" in parts and ctx["guide"] not in GUIDES:
            raise RenderError(f"guide_self_service needs guide in {GUIDES}, not {ctx['guide']!r}")
        if "decline" in parts and ctx["decline_reason"] not in DECLINE_REASONS:
            raise RenderError(f"decline needs decline_reason in {DECLINE_REASONS}, "
                              f"not {ctx['decline_reason']!r}")
        ctx["parts"] = parts
        return used, ctx

    def relay(self, lang: str, fallback: str, context: dict) -> tuple[str, str]:
        """(subject, body) of the relay to the tenant's company contacts.

        The relay goes to the company in the tenant's language: callers pass the tenant
        language as ``lang``. Only ``RELAY_KEYS`` reach the template; all are required.
        """
        used = self._pick(lang, fallback, "relay.txt.j2")
        ctx = self._context(context, RELAY_KEYS, "relay")
        ctx["lang"] = used
        ctx["reasons"] = list(ctx["reasons"])
        subject = _one_line(self._render(f"{used}/relay_subject.txt.j2", ctx))
        body = tidy(self._render(f"{used}/relay.txt.j2", ctx))
        return subject, body


    def sender_name(self, lang: str, fallback: str, tenant: str) -> str:
        """The display name of mail from support, in the reader's language (a German supplier
        reads "Support des Lieferantenportals von …", not an English name)."""
        used = self._pick(lang, fallback, "sender_name.txt.j2")
        return _one_line(self._render(f"{used}/sender_name.txt.j2", {"tenant": tenant, "lang": used}))

    def article(self, lang: str, fallback: str, context: dict) -> str:
        """The short message that carries a help article an agent chose (title and address)."""
        used = self._pick(lang, fallback, "article.txt.j2")
        ctx = self._context(context, ARTICLE_KEYS, "article")
        ctx["lang"] = used
        return tidy(self._render(f"{used}/article.txt.j2", ctx))

    def transcript(self, lang: str, fallback: str, context: dict) -> tuple[str, str]:
        """(subject, body) of a widget conversation mailed to its visitor."""
        used = self._pick(lang, fallback, "transcript.txt.j2")
        ctx = self._context(context, TRANSCRIPT_KEYS, "transcript")
        ctx["lang"] = used
        return (_one_line(self._render(f"{used}/transcript_subject.txt.j2", ctx)),
                tidy(self._render(f"{used}/transcript.txt.j2", ctx)))


# -- localised dates and hours for the reply context (``reply_by`` and ``hours``) --------

_WEEKDAYS = {
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "sv": ["mån", "tis", "ons", "tor", "fre", "lör", "sön"],
    "de": ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"],
    "ru": ["пн", "вт", "ср", "чт", "пт", "сб", "вс"],
    "uk": ["пн", "вт", "ср", "чт", "пт", "сб", "нд"],
}
_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "sv": ["jan", "feb", "mars", "apr", "maj", "juni", "juli", "aug", "sep", "okt", "nov", "dec"],
    "ru": ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
           "сентября", "октября", "ноября", "декабря"],
    "uk": ["січня", "лютого", "березня", "квітня", "травня", "червня", "липня", "серпня",
           "вересня", "жовтня", "листопада", "грудня"],
}


def _clock(t: time | datetime, lang: str) -> str:
    return f"{t.hour:02d}.{t.minute:02d}" if lang == "sv" else f"{t.hour:02d}:{t.minute:02d}"


def format_moment(when: datetime, lang: str) -> str:
    """``reply_by`` in the reply's language, in the caller's local time:
    en "Mon 24 Nov 08:00", sv "mån 24 nov kl. 08.00", de "Mo., 24.11., 08:00 Uhr",
    ru "пн, 24 ноября, 08:00", uk "пн, 24 листопада, 08:00"."""
    lang = normalise_language(lang)
    if lang not in _WEEKDAYS:
        lang = DEFAULT_LANGUAGE
    day = _WEEKDAYS[lang][when.weekday()]
    clock = _clock(when, lang)
    if lang == "de":
        return f"{day}., {when.day:02d}.{when.month:02d}., {clock} Uhr"
    month = _MONTHS[lang][when.month - 1]
    if lang == "sv":
        return f"{day} {when.day} {month} kl. {clock}"
    if lang in ("ru", "uk"):
        return f"{day}, {when.day} {month}, {clock}"
    return f"{day} {when.day} {month} {clock}"


def format_hours(days: Sequence[int], start: time, end: time, lang: str, timezone: str = "") -> str:
    """``hours`` in the reply's language: "Mon–Fri 08:00–17:00 (Europe/Stockholm)",
    "mån–fre kl. 08.00–17.00 (…)", "Mo–Fr 08:00–17:00 Uhr (…)", "пн–пт 08:00–17:00 (…)".
    ``days`` are 0 = Monday, as in ``triage.config.SupportHours``."""
    lang = normalise_language(lang)
    if lang not in _WEEKDAYS:
        lang = DEFAULT_LANGUAGE
    names = _WEEKDAYS[lang]
    days = sorted(days)
    if not days:
        span = ""
    elif len(days) > 1 and days == list(range(days[0], days[-1] + 1)):
        span = f"{names[days[0]]}–{names[days[-1]]}"
    else:
        span = ", ".join(names[d] for d in days)
    clock = f"{_clock(start, lang)}–{_clock(end, lang)}"
    if lang == "sv":
        clock = f"kl. {clock}"
    elif lang == "de":
        clock = f"{clock} Uhr"
    text = f"{span} {clock}".strip()
    return f"{text} ({timezone})" if timezone else text
