"""Configuration: the service file, one TOML file per tenant, and a directory CSV each.

The shape is the one of ``../shared/eval/config``. Everything is validated on load so a
typo is a clear error naming the file and the key, not a surprise at 3 a.m. when the
first mail for that tenant arrives. Paths in the files are relative to the file's folder.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lingua import IsoCode639_1

from triage.core.directory import Directory, DirectoryError, load_directory
from triage.core.domains import base_address
from triage.core.knowledge import Article, ArticleError, load_articles

DEFAULT_LANGUAGES = ["en", "sv", "uk", "ru", "de"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class Window:
    """A rate limit: at most ``count`` events in ``seconds``."""

    count: int
    seconds: int


def parse_limits(values: list[str]) -> list[Window]:
    """``["10/600", "25/3600"]`` -> windows; a malformed value is a configuration error."""
    windows = []
    for value in values:
        count, sep, seconds = str(value).partition("/")
        if not sep or not count.strip().isdigit() or not seconds.strip().isdigit() or int(seconds) <= 0:
            raise ValueError(f"email.reply_limits: {value!r} is not COUNT/SECONDS (for example '10/600')")
        windows.append(Window(int(count), int(seconds)))
    return windows


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has a wrong key or value."""


# Each section: key -> (type, default or REQUIRED, one-line description).  The descriptions
# are the configuration reference: README's table is checked against them by a test.
REQUIRED = object()
SERVICE_KEYS: dict[str, dict[str, tuple[type, Any, str]]] = {
    "service": {
        "database": (str, "var/triage.db", "SQLite file for tickets, events and the outbox (relative to the config folder)"),
        "support_domain": (str, "", "domain of the support addresses"),
        "languages": (list, DEFAULT_LANGUAGES, "ISO 639-1 languages the bot detects and answers in"),
        "low_confidence": (float, 0.45, "below this classification confidence a ticket is held for review"),
        "signing_key_env": (str, "TRIAGE_SIGNING_KEY", "environment variable holding the key that signs the bot's Message-IDs"),
        "workers": (int, 0, "worker processes that assess queued mail (parse … decide); 0 means one per CPU core"),
        "queue_limit": (int, 10000, "queued mails above which SMTP answers 451 4.3.2 until the queue drains"),
    },
    "email": {
        "listen": (str, "127.0.0.1:8025", "host:port of the inbound SMTP listener"),
        "trusted_authserv_ids": (list, [], "authserv-ids whose Authentication-Results headers are believed (RFC 8601)"),
        "relay_url": (str, "", "smtp:// or smtps:// URL of the outbound relay; empty keeps mail in the outbox"),
        "relay_username_env": (str, "TRIAGE_RELAY_USERNAME", "environment variable with the relay user name"),
        "relay_password_env": (str, "TRIAGE_RELAY_PASSWORD", "environment variable with the relay password"),
        "from_address": (str, REQUIRED, "sender address of the bot's replies; bounces of them come back here"),
        "max_message_size": (int, 25 * 1024 * 1024, "largest accepted message in bytes (SMTP 552 above)"),
        "reply_limits": (list, ["10/600", "25/3600", "50/86400"], "automatic replies allowed per recipient, as COUNT/SECONDS windows"),
        "relay_limits": (list, ["5/3600", "20/86400"], "messages relayed to the company's contacts per requester (their mailbox), as COUNT/SECONDS windows"),
        "tenant_relay_limits": (list, ["100/3600", "500/86400"], "messages relayed to a tenant's contacts in all, as COUNT/SECONDS windows"),
        "bounce_quiet_hours": (int, 72, "hours without automatic mail to an address after it hard-bounced"),
    },
    "web": {
        "listen": (str, "127.0.0.1:8080", "host:port of the HTTP server (health, widget, Slack)"),
        "trusted_proxies": (list, [], "addresses or CIDR networks of your reverse proxies, whose X-Forwarded-For names the client (the rate limits then count clients, not the proxy)"),
    },
    "tenants": {
        "folder": (str, "tenants", "folder holding one TOML file per tenant"),
    },
    "slack": {
        "first_response_hours": (float, 4.0, "working hours (within support hours) before an unanswered ticket gets a reminder in its Slack thread"),
        "api_url": (str, "https://slack.com/api/", "base URL of Slack's Web API (GovSlack: https://slack-gov.com/api/)"),
    },
}

TENANT_KEYS: dict[str, tuple[type, Any, str]] = {
    "slug": (str, REQUIRED, "short name of the tenant, used in chat lines and the CLI"),
    "name": (str, REQUIRED, "company name shown in replies"),
    "language": (str, "en", "language of replies when the sender's cannot be used"),
    "timezone": (str, "UTC", "IANA time zone of the support hours"),
    "support_addresses": (list, REQUIRED, "addresses suppliers write to; they identify the tenant"),
    "noreply_addresses": (list, [], "addresses that send notifications; human mail to them is suppressed"),
    "internal_domains": (list, [], "mail domains of the tenant's own staff"),
    "open_registration": (bool, False, "new suppliers may register themselves in the portal"),
    "external_admins_can_add_users": (bool, False, "a supplier's admin may add colleagues in the portal"),
    "widget_secret": (str, "", "HMAC key of the help widget's user_hash (prefer widget_secret_env)"),
    "widget_secret_env": (str, "", "environment variable holding the widget secret"),
    "slack_channel": (str, "", "Slack channel id where the tenant's tickets are posted"),
    "widget_origins": (list, [], "web origins allowed to embed the widget"),
    "widget_max_message_size": (int, 4000, "largest widget message in bytes of UTF-8 text (HTTP 413 above)"),
    "widget_rate_limits": (list, ["5/10", "30/600"], "widget messages allowed per conversation and per IP address, as COUNT/SECONDS windows"),
    "widget_color": (str, "#1f3a5f", "the help widget's colour (launcher, header, own lines) as a CSS hex colour like #1f3a5f"),
    "directory": (str, "", "CSV of users: email,name,company,role,status,invitation_expires"),
    "portal_url": (str, "", "address of the tenant's supplier portal, linked in replies"),
    "support_hours": (dict, {}, "days, start and end of staffed support"),
    "contacts": (list, [], "company contacts who receive relayed messages: name, email, topics"),
    "imap": (list, [], "IMAP mailboxes the tenant's support mail is fetched from (see the imap.* keys)"),
    "knowledge_base": (str, "", "folder of help articles (Markdown with TOML front matter) suggested in replies"),
    "portal_api_url": (str, "", "https:// base URL of the portal's API; renewals are then carried out by "
                                "POST {portal_api_url}/invitations/renew (empty: an agent renews)"),
    "portal_api_secret_env": (str, "", "environment variable holding the key that signs calls to the portal's API"),
}
# ``[[webhooks]]`` tables of triage.toml: receivers of signed ticket events (triage.service.webhooks).
WEBHOOK_EVENTS = ("created", "decided", "replied", "relayed", "escalated", "held", "resolved", "closed",
                  "reopened", "assigned", "note", "approved", "reclassified")
WEBHOOK_KEYS: dict[str, tuple[type, Any, str]] = {
    "name": (str, REQUIRED, "name of the receiver (in `triage webhooks` and /healthz)"),
    "url": (str, REQUIRED, "http:// or https:// URL the events are POSTed to (no credentials in it)"),
    "secret_env": (str, REQUIRED, "environment variable holding the receiver's signing key"),
    "events": (list, REQUIRED, "events sent: " + ", ".join(WEBHOOK_EVENTS)),
    "tenants": (list, [], "tenant slugs whose tickets are sent (empty: all)"),
}
# Only a hex colour reaches the widget's style sheet: a CSS expression there could load or hide things.
HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
HOURS_KEYS = {"days": str, "start": str, "end": str}
CONTACT_KEYS = {"name": str, "email": str, "topics": list}
IMAP_SECURITY = ("tls", "starttls", "none")
IMAP_KEYS: dict[str, tuple[type, Any, str]] = {
    "host": (str, REQUIRED, "IMAP server name or address"),
    "port": (int, 0, "IMAP port; 0 means 993 with security tls, 143 otherwise"),
    "security": (str, "tls", "tls (IMAPS), starttls, or none (plain text: loopback and tests only)"),
    "user": (str, REQUIRED, "login name of the mailbox"),
    "password_env": (str, REQUIRED, "environment variable holding the mailbox password"),
    "folder": (str, "INBOX", "folder the bot reads new mail from"),
    "processed_folder": (str, "Processed", "folder processed mail is moved to (created when missing)"),
    "poll_seconds": (int, 60, "seconds between checks without IDLE; also the longest IDLE before a re-check"),
}


@dataclass(frozen=True)
class ImapMailbox:
    """One mailbox the IMAP channel reads for a tenant (the password stays in the environment)."""

    tenant: str
    host: str
    port: int
    security: str
    user: str
    password_env: str
    folder: str
    processed_folder: str
    poll_seconds: int

    @property
    def key(self) -> str:
        """Names the mailbox in the database and in log lines: its state belongs to this key."""
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


@dataclass(frozen=True)
class Webhook:
    """A receiver of ticket events (its secret stays in the environment, named by secret_env)."""

    name: str
    url: str
    secret_env: str
    events: tuple[str, ...]
    tenants: tuple[str, ...]


@dataclass(frozen=True)
class Contact:
    """A person or desk at the tenant who receives relayed messages. Never shown to suppliers."""

    name: str
    email: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class SupportHours:
    """When humans answer; acknowledgements promise a reply within these hours."""

    days: tuple[int, ...]  # 0 = Monday
    start: time
    end: time


@dataclass
class Tenant:
    """One client company hosting a supplier portal."""

    slug: str
    name: str
    language: str
    timezone: str
    support_addresses: list[str]
    noreply_addresses: list[str]
    internal_domains: list[str]
    open_registration: bool
    external_admins_can_add_users: bool
    widget_secret: str
    slack_channel: str
    widget_origins: list[str]
    portal_url: str
    hours: SupportHours
    contacts: list[Contact]
    directory: Directory
    source: Path
    widget_max_message_size: int = 4000
    widget_rate_limits: list[Window] = field(default_factory=lambda: [Window(5, 10), Window(30, 600)])
    imap: list[ImapMailbox] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)  # the knowledge base, validated on load
    knowledge_base: str = ""  # its folder, relative to the tenant file
    portal_api_url: str = ""
    portal_api_secret_env: str = ""
    widget_color: str = "#1f3a5f"

    def contacts_for(self, topic: str) -> list[Contact]:
        """Contacts for a topic (business, account); all contacts when none names it."""
        chosen = [c for c in self.contacts if topic in c.topics]
        return chosen or list(self.contacts)


@dataclass
class Config:
    """The whole service configuration."""

    root: Path
    database: Path
    support_domain: str
    languages: list[str]
    low_confidence: float
    signing_key_env: str
    email: dict[str, Any]
    web_listen: str
    tenants: dict[str, Tenant] = field(default_factory=dict)
    slack: dict[str, Any] = field(default_factory=lambda: {"first_response_hours": 4.0,
                                                           "api_url": "https://slack.com/api/"})
    workers: int = 1
    queue_limit: int = 10000
    webhooks: list["Webhook"] = field(default_factory=list)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def tenant_for_address(self, address: str) -> list[Tenant]:
        """Tenants that own a support or no-reply address (a no-reply address may be shared)."""
        address = address.lower()
        return [t for t in self.tenants.values()
                if address in t.support_addresses or address in t.noreply_addresses]

    def is_noreply(self, address: str) -> bool:
        address = address.lower()
        return any(address in t.noreply_addresses for t in self.tenants.values())

    @property
    def own_addresses(self) -> set[str]:
        """Addresses the bot sends from or receives at: never auto-reply to these."""
        own = {self.email["from_address"].lower()}
        for t in self.tenants.values():
            own.update(t.support_addresses)
            own.update(t.noreply_addresses)
        return own

    def is_own_address(self, address: str) -> bool:
        """One of the bot's addresses, or a subaddress of one (``nordvik+x@…`` reaches ``nordvik@…``)."""
        return base_address(address) in self.own_addresses


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8025"`` -> ("127.0.0.1", 8025); ``"[::1]:25"`` -> ("::1", 25); port 0 picks a free port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port 0..65535, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def redact_url(url: str) -> str:
    """A URL fit for an error message or a log line: any user:password part replaced."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _check_relay_url(path: Path, url: str) -> None:
    """smtp://host[:port] or smtps://host[:port], never with credentials (they live in the
    environment); the value is echoed redacted, so a mistaken password never reaches a log."""
    if not url:
        return
    where = f"{path}: key email.relay_url"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- reading it validates it (0..65535, digits)
    except ValueError:
        raise ConfigError(f"{where} has a bad port: {redact_url(url)!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where} must not carry credentials (set them in the relay_*_env variables): "
                          f"{redact_url(url)!r}")
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"{where} must be smtp://host[:port] or smtps://host[:port], not {redact_url(url)!r}")


def check_http_url(where: str, url: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
    """An http(s) URL without credentials (keys live in the environment); echoed redacted."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- reading it validates it
    except ValueError:
        raise ConfigError(f"{where} has a bad port: {redact_url(url)!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where} must not carry credentials (the signing key comes from the environment): "
                          f"{redact_url(url)!r}")
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{where} must be a {' or '.join(s + '://' for s in schemes)} URL, not {redact_url(url)!r}")


def _webhook(path: Path, i: int, table: Any, slugs: set[str]) -> Webhook:
    """One ``[[webhooks]]`` table, checked on load like the rest."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: webhooks[{i}] must be a table ([[webhooks]])")
    data = _check(path, f"webhooks[{i}].", table, WEBHOOK_KEYS)
    check_http_url(f"{path}: key webhooks[{i}].url", data["url"])
    unknown = [e for e in data["events"] if e not in WEBHOOK_EVENTS]
    if unknown or not data["events"]:
        raise ConfigError(f"{path}: key webhooks[{i}].events must name events from {', '.join(WEBHOOK_EVENTS)}, "
                          f"not {unknown or 'an empty list'}")
    strange = [t for t in data["tenants"] if t not in slugs]
    if strange:
        raise ConfigError(f"{path}: key webhooks[{i}].tenants names unknown tenants {strange}")
    if not data["name"] or not data["secret_env"]:
        raise ConfigError(f"{path}: webhooks[{i}] needs a name and a secret_env")
    return Webhook(data["name"], data["url"], data["secret_env"], tuple(data["events"]), tuple(data["tenants"]))


def _check_service(path: Path, config: "Config") -> None:
    """Values of triage.toml that have the right type but a wrong meaning."""
    for key, value in (("email.listen", config.email["listen"]), ("web.listen", config.web_listen)):
        try:
            split_listen(value)
        except ValueError as e:
            raise ConfigError(f"{path}: key {key} {e}") from None
    if not 0.0 <= config.low_confidence <= 1.0:
        raise ConfigError(f"{path}: key service.low_confidence must be between 0 and 1, not {config.low_confidence}")
    unknown = [code for code in config.languages if not hasattr(IsoCode639_1, code.upper()) or len(code) != 2]
    if unknown or not config.languages:
        raise ConfigError(f"{path}: key service.languages must be ISO 639-1 codes (like 'en', 'sv'), "
                          f"not {', '.join(map(repr, unknown)) or 'an empty list'}")
    if "@" not in config.email["from_address"]:
        raise ConfigError(f"{path}: key email.from_address must be an address, not {config.email['from_address']!r}")
    if config.email["max_message_size"] < 1024:
        raise ConfigError(f"{path}: key email.max_message_size must be at least 1024 bytes")
    if config.email["bounce_quiet_hours"] < 0:
        raise ConfigError(f"{path}: key email.bounce_quiet_hours must not be negative")
    for key in ("reply_limits", "relay_limits", "tenant_relay_limits"):  # a typo must not disable a limit
        _limits(path, f"email.{key}", config.email[key])
    _check_relay_url(path, config.email["relay_url"])


def _check_timezone(path: Path, name: str) -> None:
    """A misspelt zone must not quietly become UTC in every reply's support hours."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}: key 'timezone' is not a known IANA time zone: {name!r} "
                          "(for example 'Europe/Stockholm')") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _check(path: Path, where: str, data: dict[str, Any],
           schema: dict[str, tuple[type, Any, str]]) -> dict[str, Any]:
    """Apply defaults and check types; unknown keys are errors (a typo must not pass silently)."""
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            raise ConfigError(f"{path}: unknown key {where}{key!r} (known: {', '.join(sorted(schema))})")
    for key, (kind, default, _doc) in schema.items():
        if key not in data:
            if default is REQUIRED:
                raise ConfigError(f"{path}: missing key {where}{key!r}")
            out[key] = list(default) if isinstance(default, list) else default
            continue
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: key {where}{key!r} must be {kind.__name__}, not {type(value).__name__}")
        out[key] = value
    return out


def _parse_time(path: Path, key: str, value: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{path}: key support_hours.{key} must be HH:MM, not {value!r}") from None


def _parse_days(path: Path, value: str) -> tuple[int, ...]:
    """'mon-fri' or 'mon,wed,fri' -> weekday numbers."""
    days: list[int] = []
    for part in value.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ConfigError(f"{path}: key support_hours.days must be like 'mon-fri', not {value!r}")
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.extend(range(a, b + 1))
    return tuple(sorted(set(days)))


def _lower_list(path: Path, key: str, values: list[Any]) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{path}: key {key!r} must be a list of strings")
    return [v.strip().lower() for v in values]


def load_tenant(path: Path, languages: list[str]) -> Tenant:
    """Read and validate one tenant file and its directory."""
    data = _check(path, "", _read_toml(path), TENANT_KEYS)
    hours = data["support_hours"]
    for key in hours:
        if key not in HOURS_KEYS:
            raise ConfigError(f"{path}: unknown key 'support_hours.{key}'")
    contacts = []
    for i, c in enumerate(data["contacts"]):
        if not isinstance(c, dict) or "email" not in c:
            raise ConfigError(f"{path}: contacts[{i}] needs an email")
        for key in c:
            if key not in CONTACT_KEYS:
                raise ConfigError(f"{path}: unknown key 'contacts[{i}].{key}' (known: {', '.join(CONTACT_KEYS)})")
        contacts.append(Contact(str(c.get("name", "")), str(c["email"]).lower(),
                                tuple(c.get("topics", ["business", "account"]))))
    secret = data["widget_secret"]
    if data["widget_secret_env"]:
        secret = os.environ.get(data["widget_secret_env"], secret)
    if data["language"] not in languages:
        raise ConfigError(f"{path}: key 'language' must be one of {languages}, not {data['language']!r}")
    _check_timezone(path, data["timezone"])
    if not HEX_COLOUR.match(data["widget_color"]):
        raise ConfigError(f"{path}: key 'widget_color' must be a CSS hex colour like \"#1f3a5f\" or \"#234\", "
                          f"not {data['widget_color']!r}")
    directory_path = path.parent / data["directory"] if data["directory"] else None
    if data["portal_api_url"]:
        check_http_url(f"{path}: key portal_api_url", data["portal_api_url"])
        if not data["portal_api_secret_env"]:
            raise ConfigError(f"{path}: key portal_api_url needs portal_api_secret_env (the signing key's variable)")
    return Tenant(
        slug=data["slug"], name=data["name"], language=data["language"], timezone=data["timezone"],
        support_addresses=_lower_list(path, "support_addresses", data["support_addresses"]),
        noreply_addresses=_lower_list(path, "noreply_addresses", data["noreply_addresses"]),
        internal_domains=_lower_list(path, "internal_domains", data["internal_domains"]),
        open_registration=data["open_registration"],
        external_admins_can_add_users=data["external_admins_can_add_users"],
        widget_secret=secret, slack_channel=data["slack_channel"],
        widget_origins=list(data["widget_origins"]), portal_url=data["portal_url"],
        hours=SupportHours(_parse_days(path, hours.get("days", "mon-fri")),
                           _parse_time(path, "start", hours.get("start", "09:00")),
                           _parse_time(path, "end", hours.get("end", "17:00"))),
        contacts=contacts,
        directory=_directory(path, directory_path),
        source=path,
        widget_max_message_size=data["widget_max_message_size"],
        widget_rate_limits=_limits(path, "widget_rate_limits", data["widget_rate_limits"]),
        imap=[_imap_mailbox(path, data["slug"], i, table) for i, table in enumerate(data["imap"])],
        articles=_articles(path, data["knowledge_base"], languages), knowledge_base=data["knowledge_base"],
        portal_api_url=data["portal_api_url"].rstrip("/"), portal_api_secret_env=data["portal_api_secret_env"],
        widget_color=data["widget_color"].lower(),
    )


def _articles(path: Path, folder: str, languages: list[str]) -> list[Article]:
    """The tenant's help articles; a malformed one is an error naming the article's file."""
    if not folder:
        return []
    try:
        return load_articles(path.parent / folder, languages)
    except ArticleError as e:
        raise ConfigError(f"{path}: key 'knowledge_base': {e}") from None


def _imap_mailbox(path: Path, slug: str, i: int, table: Any) -> ImapMailbox:
    """One ``[[imap]]`` table, checked like the rest (a bad port must fail at load, not at 3 a.m.)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: imap[{i}] must be a table ([[imap]])")
    data = _check(path, f"imap[{i}].", table, IMAP_KEYS)
    if data["security"] not in IMAP_SECURITY:
        raise ConfigError(f"{path}: key imap[{i}].security must be one of {IMAP_SECURITY}, not {data['security']!r}")
    if not 0 <= data["port"] <= 65535:
        raise ConfigError(f"{path}: key imap[{i}].port must be 0..65535, not {data['port']}")
    if data["poll_seconds"] < 1:
        raise ConfigError(f"{path}: key imap[{i}].poll_seconds must be at least 1")
    if data["processed_folder"] == data["folder"]:
        raise ConfigError(f"{path}: key imap[{i}].processed_folder must differ from folder")
    port = data["port"] or (993 if data["security"] == "tls" else 143)
    return ImapMailbox(slug, data["host"], port, data["security"], data["user"], data["password_env"],
                       data["folder"], data["processed_folder"], data["poll_seconds"])


def _networks(path: Path, key: str, values: list[Any]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses and CIDR networks, checked on load (a typo must not trust the whole internet,
    nor quietly trust nobody)."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{path}: key {key}: {value!r} is not an IP address or CIDR network") from None
    return tuple(out)


def _limits(path: Path, key: str, values: list[Any]) -> list[Window]:
    """COUNT/SECONDS windows, checked on load (a typo must not disable a rate limit)."""
    windows: list[Window] = []
    for value in values:
        try:
            windows += parse_limits([value])
        except ValueError:
            raise ConfigError(f"{path}: key {key!r}: {value!r} is not COUNT/SECONDS (for example '5/10')") from None
    return windows


def _directory(path: Path, directory_path: Path | None) -> Directory:
    if directory_path is None:
        return Directory([])
    try:
        return load_directory(directory_path)
    except DirectoryError as e:
        raise ConfigError(f"{path}: key 'directory': {e}") from None


def load_config(folder: str | Path) -> Config:
    """Load ``triage.toml`` and every tenant of a configuration folder."""
    root = Path(folder).resolve()
    path = root / "triage.toml"
    raw = _read_toml(path)
    hooks = raw.pop("webhooks", [])
    for section in raw:
        if section not in SERVICE_KEYS:
            raise ConfigError(f"{path}: unknown section [{section}] (known: {', '.join(SERVICE_KEYS)}, [[webhooks]])")
    if not isinstance(hooks, list):
        raise ConfigError(f"{path}: webhooks must be tables ([[webhooks]])")
    sections = {name: _check(path, f"{name}.", raw.get(name, {}), schema)
                for name, schema in SERVICE_KEYS.items()}
    service = sections["service"]
    if service["workers"] < 0 or service["workers"] > 64:
        raise ConfigError(f"{path}: key service.workers must be 0 (one per core) to 64, not {service['workers']}")
    if service["queue_limit"] < 1:
        raise ConfigError(f"{path}: key service.queue_limit must be at least 1, not {service['queue_limit']}")
    languages = _lower_list(path, "service.languages", service["languages"])
    check_http_url(f"{path}: key slack.api_url", sections["slack"]["api_url"])
    sections["slack"]["api_url"] = sections["slack"]["api_url"].rstrip("/") + "/"  # the client joins method names on
    config = Config(
        root=root, database=root / service["database"], support_domain=service["support_domain"],
        languages=languages, low_confidence=service["low_confidence"],
        signing_key_env=service["signing_key_env"], email=sections["email"],
        web_listen=sections["web"]["listen"], slack=sections["slack"],
        workers=service["workers"] or os.cpu_count() or 1, queue_limit=service["queue_limit"],
        trusted_proxies=_networks(path, "web.trusted_proxies", sections["web"]["trusted_proxies"]),
    )
    config.email["from_address"] = config.email["from_address"].lower()
    _check_service(path, config)
    folder_path = root / sections["tenants"]["folder"]
    if not folder_path.is_dir():
        raise ConfigError(f"{path}: key tenants.folder: {folder_path} is not a folder")
    for tenant_file in sorted(folder_path.glob("*.toml")):
        tenant = load_tenant(tenant_file, languages)
        if tenant.slug in config.tenants:
            raise ConfigError(f"{tenant_file}: tenant slug {tenant.slug!r} is used twice")
        config.tenants[tenant.slug] = tenant
    if not config.tenants:
        raise ConfigError(f"{folder_path}: no tenant files (*.toml)")
    config.webhooks = [_webhook(path, i, table, set(config.tenants)) for i, table in enumerate(hooks)]
    names = [w.name for w in config.webhooks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: webhook names must be unique: {names}")
    return config


def resolve_hosts(config: Config) -> None:
    """The hosts the service will connect to must resolve: `check-config` and `serve` say so at
    once, naming the file and key, rather than the first delivery failing hours later."""
    targets: list[tuple[Path, str, str]] = []
    if config.email["relay_url"]:
        targets.append((config.root / "triage.toml", "email.relay_url", urlsplit(config.email["relay_url"]).hostname or ""))
    for tenant in config.tenants.values():
        targets += [(tenant.source, f"imap[{i}].host", box.host) for i, box in enumerate(tenant.imap)]
    for path, key, host in targets:
        try:
            socket.getaddrinfo(host, None)
        except (OSError, UnicodeError) as e:
            raise ConfigError(f"{path}: key {key}: host {host!r} does not resolve ({e})") from None


# What the shipped example tenant uses until its operator sets a real one.
DEMO_WIDGET_SECRET = "demo-widget-secret-change-me"
MIN_WIDGET_SECRET = 32  # bytes: RFC 7518 §3.2 asks HS256 keys to be at least the hash's size
SLACK_TOKENS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")


def config_warnings(config: Config, environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Settings that work but should not go to production: printed by `check-config` and at start."""
    out = []
    if not environ.get(config.signing_key_env):
        out.append(f"{config.signing_key_env} is not set: Message-IDs are signed with a random key kept in the "
                   "database (fine for a demo; set it in production so a restored database keeps threading)")
    for tenant in config.tenants.values():
        if tenant.widget_secret == DEMO_WIDGET_SECRET:
            out.append(f"{tenant.source}: tenant {tenant.slug!r} still uses the demo widget secret: anyone can "
                       "sign a widget identity; set widget_secret_env")
        elif tenant.widget_secret and len(tenant.widget_secret.encode()) < MIN_WIDGET_SECRET:
            out.append(f"{tenant.source}: tenant {tenant.slug!r} has a widget secret shorter than "
                       f"{MIN_WIDGET_SECRET} bytes: a short HMAC key can be guessed")
    slack = [name for name in SLACK_TOKENS if environ.get(name)]
    if len(slack) == 1:
        missing = next(name for name in SLACK_TOKENS if name not in slack)
        out.append(f"{slack[0]} is set but {missing} is not: Slack stays off until both are set")
    if environ.get("SLACK_APP_TOKEN") and len(slack) < 2:
        out.append("SLACK_APP_TOKEN is set without SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET: Socket Mode stays off")
    return out
