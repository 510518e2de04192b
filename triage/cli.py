"""The ``triage`` command: thin sub-commands over the library.

A bad argument — a number out of range, an unknown tenant, a missing or unreadable file or
configuration, a database that cannot be opened — is one line on stderr and exit code 2,
never a traceback (exit code 1 is for a good question without an answer: no such ticket): arguments are checked by their argparse types, the rest raises
:class:`UsageError` (or an OSError / sqlite3 error) that :func:`main` turns into that line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from triage import command
from triage.config import Config, ConfigError, config_warnings, load_config, redact_url, resolve_hosts
from triage.core.message import Message
from triage.core.parse import parse_chat, parse_email
from triage.service.logs import FORMATS, LEVELS
from triage.store import OUTBOX_STATUSES, STATUSES, Store, iso, utcnow

if TYPE_CHECKING:
    from triage.desk.agents import Agents

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config"
FIRST_DRY_RUN_TICKET = 1001
MAX_INTEGER = 2**63 - 1  # what SQLite's INTEGER holds
MAX_LIMIT = 100_000


class UsageError(Exception):
    """A bad argument found once the configuration is loaded (an unknown tenant, say)."""


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().lstrip("#"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range ({low} to {high})")
        return value
    parse.__name__ = "number"
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise argparse.ArgumentTypeError(f"{text[:40]} is out of range (more than 0, at most 3600 seconds)")
    return value


def _day(text: str) -> str:
    """A UTC day, YYYY-MM-DD: a bad one is a bad argument (exit 2), not an empty answer."""
    from datetime import date

    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a day like 2026-11-23") from None


TICKET_NUMBER = _whole(1, MAX_INTEGER)
LIMIT = _whole(1, MAX_LIMIT)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (argparse prints the usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _tenant(config: Config, slug: str | None, command: str) -> str | None:
    if slug is not None and slug not in config.tenants:
        raise UsageError(f"triage {command}: unknown tenant {slug!r} (known: {', '.join(sorted(config.tenants))})")
    return slug


def _inputs(paths: list[str]) -> Iterator[tuple[str, Message | None, str]]:
    """(input name, message or None, error) for every message in every input file."""
    for name in paths:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as e:
            yield name, None, f"cannot read {name}: {e.strerror}"
            continue
        if path.suffix != ".jsonl":
            yield name, parse_email(data), ""
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a line must be a JSON object")
                yield f"{name}:{n}", parse_chat(row), ""
            except (ValueError, TypeError) as e:
                yield f"{name}:{n}", None, f"{name}:{n}: {e}"


def cmd_classify(args: argparse.Namespace, config: Config) -> int:
    from triage.core.pipeline import Pipeline

    pipeline = Pipeline(config)
    ticket = FIRST_DRY_RUN_TICKET
    for name, msg, error in _inputs(args.inputs):
        if msg is None:
            print(json.dumps({"id": name, "category": "other", "intent": "unknown", "error": error},
                             ensure_ascii=False), flush=True)
            continue
        try:
            line = pipeline.run(msg, ticket).contract()
        except Exception as e:  # the contract: one bad input never stops the run
            line = {"id": msg.id or name, "category": "other", "intent": "unknown",
                    "error": f"{type(e).__name__}: {e}"}
        if not line.get("id"):
            line["id"] = name
        ticket += 1
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


def cmd_train(args: argparse.Namespace, config: Config) -> int:
    from triage.desk.agents import corrections
    from triage.desk.train import train

    fixed = []
    if config.database.exists():  # agents' corrections from Slack are labelled examples too
        store = _store(config)
        try:
            fixed = corrections(store)
        finally:
            store.close()
    report = train(config.languages, corrections=fixed)
    report["corrections"] = len(fixed)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    from triage.service.outbox import Relay

    try:  # the mail settings `triage serve` would refuse at start
        relay = Relay.from_config(config.email["relay_url"], config.email["relay_username_env"],
                                  config.email["relay_password_env"])
        resolve_hosts(config)
    except ConfigError as e:
        print(f"triage: configuration error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"triage: configuration error: {config.root / 'triage.toml'}: {e}", file=sys.stderr)
        return 2
    for warning in config_warnings(config):
        print(f"triage: warning: {warning}", file=sys.stderr)
    print(f"{config.root}: OK")
    print(f"  database {config.database.resolve()}; smtp {config.email['listen']}; http {config.web_listen}; "
          f"relay {relay.describe() if relay else 'none (mail is held in the outbox)'}")
    for tenant in config.tenants.values():
        print(f"  {tenant.slug}: {tenant.name}, {len(tenant.directory)} users, "
              f"{len(tenant.contacts)} contacts, addresses {', '.join(tenant.support_addresses)}")
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from triage.service.app import serve
    from triage.service.logs import configure

    configure(args.log_level, args.log_format)
    try:
        resolve_hosts(config)
    except ConfigError as e:
        print(f"triage: configuration error: {e}", file=sys.stderr)
        return 2
    for warning in config_warnings(config):
        print(f"triage serve: warning: {warning}", file=sys.stderr)
    try:
        asyncio.run(serve(config))
    except (OSError, ValueError) as e:  # port in use, bad listen or relay address
        print(f"triage serve: {e}", file=sys.stderr)
        return 1
    return 0


def _store(config: Config) -> Store:
    return Store(config.database)


def _line(*cells: object) -> str:
    return "  ".join(str(c) for c in cells)


def _table(header: list[str], rows: list[list[object]], width: int = 60) -> None:
    """Rows under a header row, each column as wide as its widest cell (cut at ``width``)."""
    cells = [[str(c) if len(str(c)) <= width else str(c)[:width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    for row in [header, *cells]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def cmd_tickets(args: argparse.Namespace, config: Config) -> int:
    rows = _store(config).tickets(_tenant(config, args.tenant, "tickets"), args.status, args.category, args.limit)
    if not rows:
        print("no tickets" + (" with these filters" if args.tenant or args.status or args.category else ""))
        return 0
    _table(["TICKET", "TENANT", "STATUS", "PRIORITY", "INTENT", "REQUESTER", "TRUST", "LANG", "FROM", "SUBJECT",
            "CREATED (UTC)"],
           [[f"#{t['number']}", t["tenant"] or "-", t["status"], t["priority"], f"{t['category']}/{t['intent']}",
             t["requester"], t["trust"], t["language"], t["requester_address"] or "-", t["subject"] or "",
             t["created_at"][:16].replace("T", " ")] for t in rows])
    return 0


def cmd_ticket(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    found = store.find_tickets(args.number, _tenant(config, args.tenant, "ticket"))
    if len(found) != 1:
        tenants = ", ".join(t["tenant"] or "-" for t in found)
        print(f"triage ticket: {'no ticket' if not found else 'several tickets'} #{args.number}"
              + (f" (tenants: {tenants}; use --tenant)" if found else ""), file=sys.stderr)
        return 1  # a well-formed question without one answer, like grep finding nothing
    t = found[0]
    print(f"#{t['number']} [{t['tenant'] or '-'}] {t['subject']!r}")
    print(_line(f"status {t['status']}", f"priority {t['priority']}", f"{t['category']}/{t['intent']}",
                f"requester {t['requester']} {t['requester_address']}", f"trust {t['trust']}",
                f"language {t['language']}", f"created {t['created_at'][:19]}"))
    print("\nConversation")
    for m in store.conversation(t["id"]):
        arrow = "<-" if m["direction"] == "in" else "->"
        print(f"  {arrow} {m['created_at'][:19]} {m['sender']} to {', '.join(json.loads(m['recipients'] or '[]'))}")
        print(f"     {m['message_id']}  {m['subject']!r}")
        for text_line in (m["text"] or "").strip().splitlines():
            print(f"     | {text_line}")
    print("\nAudit trail")
    for e in store.events(t["id"]):
        rules = ", ".join(json.loads(e["rules"] or "[]"))
        print(f"  {e['created_at'][:19]} {e['kind']:<16} {e['outcome']}" + (f"  [{rules}]" if rules else ""))
    return 0


def cmd_search(args: argparse.Namespace, config: Config) -> int:
    from triage.desk.search import QueryError

    try:
        rows = _store(config).search(" ".join(args.text), args.limit)
    except QueryError as e:
        print(f"triage search: {e} (syntax: words, \"a phrase\", prefix*, AND, OR, NOT, parentheses)",
              file=sys.stderr)
        return 2
    for r in rows:
        print(_line(f"#{r['number']}", r["tenant"] or "-", r["direction"], r["sender"], repr(r["subject"]),
                    r["snippet"].replace("\n", " ")))
    if not rows:
        print("no matches")
    return 0


def cmd_outbox(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    counts = store.outbox_counts()
    print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    rows = store.outbox_rows(args.status, args.limit)
    if not rows:
        print(f"no outgoing mail with status {args.status}" if args.status else "no outgoing mail")
        return 0
    _table(["ID", "STATUS", "KIND", "TICKET", "TENANT", "TO", "SUBJECT", "ATTEMPTS", "LAST ERROR"],
           [[r["id"], r["status"], r["kind"], f"#{r['number']}", r["tenant"] or "-",
             ", ".join(json.loads(r["recipients"])), r["subject"], r["attempts"], r["last_error"] or ""]
            for r in rows])
    return 0


def cmd_webhooks_list(args: argparse.Namespace, config: Config) -> int:
    from triage.service import webhooks

    per = webhooks.counts(_store(config))
    receivers = [(h.name, h.url, ", ".join(h.events)) for h in config.webhooks]
    receivers += [(f"portal:{t.slug}", t.portal_api_url + webhooks.RENEW_PATH, "renew_invitation")
                  for t in config.tenants.values() if t.portal_api_url]
    for name in sorted(set(per) - {r[0] for r in receivers}):
        receivers.append((name, "(no longer configured)", ""))
    if not receivers:
        print("webhooks: none configured")
    for name, url, events in receivers:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(per.get(name, {}).items())) or "no deliveries"
        print(_line(name, redact_url(url), events, counts))
    return 0


def cmd_webhooks_test(args: argparse.Namespace, config: Config) -> int:
    from triage.service import webhooks

    hook = next((h for h in config.webhooks if h.name == args.name), None)
    if hook is None:
        print(f"triage: no webhook named {args.name!r}", file=sys.stderr)
        return 2
    answer = asyncio.run(webhooks.ping(hook))
    print(f"{hook.name}: {answer}")
    return 0 if answer.startswith("HTTP 2") else 1


def cmd_webhooks_redeliver(args: argparse.Namespace, config: Config) -> int:
    import getpass

    from triage.desk.agents import AgentError, redeliver

    try:
        said = redeliver(_store(config), args.id, args.agent or f"cli:{getpass.getuser()}", utcnow())
    except AgentError as e:
        print(f"triage webhooks redeliver: {e}", file=sys.stderr)
        return 1
    print(f"{said}; a running service sends it within seconds")
    return 0


def cmd_directory_import(args: argparse.Namespace, config: Config) -> int:
    from datetime import datetime, timezone

    from triage.core.directory import DirectoryError, read_csv

    _tenant(config, args.tenant, "directory import")
    path = Path(args.file)
    try:
        users = read_csv(path)
    except DirectoryError as e:
        print(f"triage directory import: {e}", file=sys.stderr)
        return 2
    bar = Progress(len(users), "importing")
    count = _store(config).import_directory(args.tenant, users, str(path.resolve()),
                                            datetime.now(timezone.utc).isoformat(), progress=bar.update)
    bar.done()
    print(f"imported {count} users for {args.tenant} from {path} (the running service picks them up "
          "with its next message)")
    return 0


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str, width: int = 30):
        self.total, self.label, self.width = max(total, 1), label, width
        self.shown = sys.stderr.isatty()

    def update(self, count: int) -> None:
        if self.shown:
            filled = self.width * count // self.total
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {count}/{self.total}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def cmd_imap_check(args: argparse.Namespace, config: Config) -> int:
    from channels.imap import check

    tenant = config.tenants[_tenant(config, args.tenant, "imap-check")]
    if not tenant.imap:
        print(f"triage imap-check: tenant {args.tenant!r} has no [[imap]] mailboxes in {tenant.source}",
              file=sys.stderr)
        return 2
    store = _store(config)
    failed = 0
    for box in tenant.imap:
        ok, line = check(box, store.imap_state(box.tenant, box.key), timeout=args.timeout)
        failed += not ok
        print(f"{box.key} ({box.security}): {line}")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    """A consistent copy of the database, safe while `triage serve` runs."""
    import sqlite3

    target = Path(args.path)
    if target.is_dir():
        target = target / config.database.name
    if target.exists() and not args.force:
        print(f"triage backup: {target} exists (use --force to replace it)", file=sys.stderr)
        return 2
    if target.resolve() == config.database.resolve():
        print("triage backup: the backup must not be the database itself", file=sys.stderr)
        return 2
    try:
        tickets = _store(config).backup(target)
    except (OSError, sqlite3.Error) as e:
        print(f"triage backup: {e}", file=sys.stderr)
        return 1
    print(f"backed up {config.database.resolve()} to {target.resolve()} ({tickets} tickets)")
    return 0


def _kb_tenants(args: argparse.Namespace, config: Config, command: str) -> list | None:
    """The tenants a `triage kb` command works on (all with a knowledge base, or --tenant)."""
    if args.tenant and args.tenant not in config.tenants:
        print(f"triage kb {command}: unknown tenant {args.tenant!r} (known: {', '.join(sorted(config.tenants))})",
              file=sys.stderr)
        return None
    return [config.tenants[args.tenant]] if args.tenant else list(config.tenants.values())


def cmd_kb_list(args: argparse.Namespace, config: Config) -> int:
    tenants = _kb_tenants(args, config, "list")
    if tenants is None:
        return 2
    for tenant in tenants:
        print(f"{tenant.slug}: {len(tenant.articles)} articles")
        for a in tenant.articles:
            print(_line(f"  {a.id:<28}", a.language, repr(a.title), a.url, ",".join(a.intents) or "-"))
    return 0


def cmd_kb_search(args: argparse.Namespace, config: Config) -> int:
    """What a message would be offered: the ranking with scores, which clear the thresholds, and
    the rule that decided (``kb-not-answered`` names a near miss the article lists)."""
    from triage.core.knowledge import KnowledgeBase

    tenants = _kb_tenants(args, config, "search")
    if tenants is None:
        return 2
    text = " ".join(args.text)
    for tenant in tenants:
        kb = KnowledgeBase(tenant.articles)
        language = args.language or tenant.language
        decided = kb.choose(text, args.intent, language, tenant.language)
        chosen = {s.article.id for s in decided.articles}
        results = kb.ranked(text, args.intent, language)[:args.limit]
        print(f"{tenant.slug}: " + ("no matching article" if not results else f"{len(results)} ranked, {decided.rule}"))
        for s in results:
            mark = "offered" if s.article.id in chosen else "       "
            print(_line(f"  {s.score:6.3f}", mark, s.article.id, s.article.language, repr(s.article.title)))
    return 0


def cmd_kb_check(args: argparse.Namespace, config: Config) -> int:
    """Loading the configuration already validated every article: say so, and what is missing."""
    tenants = _kb_tenants(args, config, "check")
    if tenants is None:
        return 2
    for tenant in tenants:
        ids = sorted({a.id for a in tenant.articles})
        gaps = [f"{i} lacks {', '.join(sorted(set(config.languages) - {a.language for a in tenant.articles if a.id == i}))}"
                for i in ids if {a.language for a in tenant.articles if a.id == i} != set(config.languages)]
        print(f"{tenant.slug}: {len(tenant.articles)} articles, {len(ids)} topics, OK"
              + (f"; untranslated: {'; '.join(gaps)}" if gaps else ""))
    return 0


def cmd_kb_learn(args: argparse.Namespace, config: Config) -> int:
    """What agents' sent and rejected articles teach the articles (triage/desk/lessons.py): listed
    for review, and with --apply written into the article files."""
    from datetime import datetime, timezone

    from triage.desk.lessons import apply, lessons

    tenants = _kb_tenants(args, config, "learn")
    if tenants is None:
        return 2
    if not config.database.exists():
        print(f"triage kb learn: no database at {config.database}: nothing was learned yet")
        return 0
    store = _store(config)
    try:
        found = lessons(_agents(config, store), datetime.now(timezone.utc), args.tenant, args.since)
    finally:
        store.close()
    for lesson in found:
        print(_line(f"[#{lesson.ticket}]", lesson.tenant, lesson.language, f"+{lesson.kind}", lesson.article,
                    repr(lesson.text[:100] + ("…" if len(lesson.text) > 100 else "")), lesson.agent, lesson.at))
    if not args.apply:
        print(f"{len(found)} lesson{'' if len(found) == 1 else 's'}"
              + (" (--apply writes them into the article files)" if found else ""))
        return 0
    for tenant in tenants:
        changed, skipped = apply(tenant, found, config.languages)
        for path, count in changed.items():
            print(f"{path}: {count} added")
        for reason in skipped:
            print(f"not written: {reason}")
    print("triage serve indexes the articles at its next start")
    return 0


def cmd_kb_import(args: argparse.Namespace, config: Config) -> int:
    """Articles from a help centre's CSV or JSON export, written as Markdown files."""
    from triage.core.knowledge import ArticleError, import_export

    tenant = config.tenants.get(args.tenant)
    if tenant is None:
        print(f"triage kb import: unknown tenant {args.tenant!r} (known: {', '.join(sorted(config.tenants))})",
              file=sys.stderr)
        return 2
    if not tenant.knowledge_base:
        print(f"triage kb import: tenant {args.tenant!r} has no knowledge_base folder in {tenant.source}",
              file=sys.stderr)
        return 2
    try:
        rows = import_export(Path(args.file), config.languages)
    except (OSError, ArticleError) as e:
        print(f"triage kb import: {e}", file=sys.stderr)
        return 2
    bar = Progress(len(rows), "importing")
    folder = tenant.source.parent / tenant.knowledge_base
    folder.mkdir(parents=True, exist_ok=True)
    for n, (name, text) in enumerate(rows, start=1):
        (folder / name).write_text(text, "utf-8")
        bar.update(n)
    bar.done()
    print(f"imported {len(rows)} articles into {folder} (triage serve reads them at its next start)")
def cmd_report(args: argparse.Namespace, config: Config) -> int:
    from triage.desk.reports import ReportError, build

    try:
        report = build(_store(config), args.tenant, args.since, args.until, config=config)
    except ReportError as e:
        print(f"triage report: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(report.csv() if args.format == "csv" else report.text())
    return 0


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from triage.desk.demo import run_demo

    return run_demo(config, _tenant(config, args.tenant, "demo"))


def _accounts(config: Config):  # noqa: ANN202 - triage.desk.accounts.Accounts, imported lazily (argon2)
    from triage.desk.accounts import Accounts

    return Accounts(_store(config), sorted(config.tenants))


def _password(prompt: str) -> str:
    """TRIAGE_AGENT_PASSWORD for scripts, else asked twice on the terminal."""
    import getpass
    import os

    from triage.desk.accounts import AccountError

    value = os.environ.get("TRIAGE_AGENT_PASSWORD", "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise AccountError("set TRIAGE_AGENT_PASSWORD or run this on a terminal to be asked for the password")
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def cmd_agents(args: argparse.Namespace, config: Config) -> int:
    from datetime import datetime, timezone

    from triage.desk.accounts import AccountError

    accounts = _accounts(config)
    try:
        if args.agents_command == "add":
            agent = accounts.add(args.email, args.name, _password(f"password for {args.email}: "),
                                 args.tenant or None, datetime.now(timezone.utc))
            print(f"added {agent.email} ({agent.name}), tenants: {', '.join(agent.tenants or ['all'])}")
        elif args.agents_command == "list":
            agents = accounts.list()
            for agent in agents:
                print(_line(agent.email, repr(agent.name), "tenants: " + ", ".join(agent.tenants or ["all"])))
            if not agents:
                print(f"no agents (add one with: {command()} agents add EMAIL --name NAME)")
        elif args.agents_command == "remove":
            accounts.remove(args.email)
            print(f"removed {args.email} (their sessions have ended)")
        else:
            accounts.set_password(args.email, _password(f"new password for {args.email}: "))
            print(f"password of {args.email} changed (their other sessions have ended)")
    except AccountError as e:
        print(f"triage agents {args.agents_command}: {e}", file=sys.stderr)
        return 2
    return 0


def _agents(config: Config, store: Store) -> Agents:
    """The agents' actions over the database, as the service builds them: what they queue, the
    running service's outbox sends."""
    from triage.core.pipeline import Pipeline
    from triage.core.threading import Signer, signing_key
    from triage.desk.agents import Agents
    from triage.service.intake import Intake
    from triage.service.loops import Gate

    key = signing_key(config.signing_key_env, store)
    domain = config.support_domain or config.email["from_address"].rpartition("@")[2]
    gate = Gate.from_config(config)
    pipeline = Pipeline(config)
    intake = Intake(config, store, pipeline, Signer(key, domain), gate, hold_local=not config.email["relay_url"])
    return Agents(config, store, pipeline, intake)


def cmd_act(args: argparse.Namespace, config: Config) -> int:
    """reply, note, approve, resolve, close, assign, send-article, reject-article: through
    triage/desk/agents.py, straight into the database; the running service's outbox picks the
    queued mail up (see the README)."""
    import getpass
    from datetime import datetime, timezone

    from triage.desk.agents import AgentError

    store = _store(config)
    _tenant(config, args.tenant, args.command)  # a tenant that does not exist is a bad argument (exit 2)
    try:
        ticket_id = _only_ticket(store, args.number, args.tenant)
    except AgentError as e:
        print(f"triage {args.command}: {e}", file=sys.stderr)
        return 1
    agents = _agents(config, store)
    agent = args.agent or f"cli:{getpass.getuser()}"
    now = datetime.now(timezone.utc)
    try:
        if args.command in ("reply", "note"):
            text = " ".join(args.text)
            said = (agents.note if args.command == "note" else agents.reply)(ticket_id, text, agent, now)
        elif args.command == "assign":
            said = agents.assign(ticket_id, args.email, agent, now)
        elif args.command in ("send-article", "reject-article"):
            said = getattr(agents, args.command.replace("-", "_"))(ticket_id, args.article, agent, now)
        else:
            said = getattr(agents, args.command)(ticket_id, agent, now)
    except AgentError as e:
        print(f"triage {args.command}: {e}", file=sys.stderr)
        return 1
    print(f"#{args.number}: {said}")
    return 0


def _only_ticket(store: Store, number: int, tenant: str | None) -> int:
    """The id of the one ticket with this number; an AgentError says why there is not exactly one."""
    from triage.desk.agents import AgentError

    found = store.find_tickets(number, tenant)
    if not found:
        raise AgentError(f"no ticket #{number}" + (f" for tenant {tenant}" if tenant else ""))
    if len(found) > 1:
        raise AgentError(f"#{number} exists for {', '.join(t['tenant'] or '-' for t in found)}: use --tenant")
    return found[0]["id"]


def _command(sub: argparse._SubParsersAction, name: str, help: str, func: Callable[..., int] | None = None
             ) -> argparse.ArgumentParser:
    """A sub-command that also takes ``--config`` after its name (``triage classify --config DIR``)."""
    p = sub.add_parser(name, help=help)  # a Parser too: argparse makes sub-parsers of the parent's class
    p.add_argument("--config", default=argparse.SUPPRESS, help="configuration folder (as before the command)")
    if func is not None:
        p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="triage", description="Email and chat triage for a supplier-portal support desk.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="configuration folder (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = _command(sub, "classify", "dry-run the pipeline on .eml / .jsonl inputs, one JSON line each", cmd_classify)
    p.add_argument("inputs", nargs="+", help=".eml files (one mail each) and .jsonl files (one chat line per line)")
    _command(sub, "train", "rebuild the classification model from the labelled examples", cmd_train)
    _command(sub, "check-config", "validate the configuration and print a summary", cmd_check_config)
    p = _command(sub, "serve", "run the mail service: SMTP in, tickets in SQLite, replies and relays out", cmd_serve)
    p.add_argument("--log-level", choices=LEVELS, default="info",
                   help="least important log lines shown on stderr; debug also shows full addresses (default: %(default)s)")
    p.add_argument("--log-format", choices=FORMATS, default="text",
                   help="text for people, json (one object per line) for log shippers (default: %(default)s)")
    p = _command(sub, "tickets", "list tickets, newest first", cmd_tickets)
    p.add_argument("--tenant", help="only this tenant's tickets (its slug)")
    p.add_argument("--status", choices=STATUSES, help="only tickets with this status")
    p.add_argument("--category", help="only this category (technical, account, business, feedback, automated, other)")
    p.add_argument("--limit", type=LIMIT, default=50, help="at most this many (default: %(default)s)")
    p = _command(sub, "ticket", "one ticket: its conversation and audit trail", cmd_ticket)
    p.add_argument("number", type=TICKET_NUMBER, help="the ticket number, as in [#1042]")
    p.add_argument("--tenant", help="the tenant, when several have a ticket with this number")
    p = _command(sub, "search", "full-text search over all messages", cmd_search)
    p.add_argument("text", nargs="+", help="words to find in subjects and texts")
    p.add_argument("--limit", type=LIMIT, default=20, help="at most this many matches (default: %(default)s)")
    p = _command(sub, "outbox", "outgoing mail and its delivery status", cmd_outbox)
    p.add_argument("--status", choices=OUTBOX_STATUSES, help="only mail with this delivery status")
    p.add_argument("--limit", type=LIMIT, default=50, help="at most this many rows (default: %(default)s)")
    p = _command(sub, "webhooks", "receivers of signed calls (ticket events, portal actions) and their deliveries")
    w = p.add_subparsers(dest="webhooks_command", required=True)
    _command(w, "list", "receivers and their deliveries per status", cmd_webhooks_list)
    _command(w, "test", "send a signed ping to a receiver now and print its answer", cmd_webhooks_test
             ).add_argument("name", help="the receiver's name (as in triage webhooks list)")
    q = _command(w, "redeliver", "queue a failed delivery again", cmd_webhooks_redeliver)
    q.add_argument("id", type=TICKET_NUMBER, help="the delivery's id (as in the console's Webhooks page)")
    q.add_argument("--agent", help="who acts, for the audit trail (default: cli:$USER)")
    p = _command(sub, "directory", "manage the tenants' user directories")
    d = _command(p.add_subparsers(dest="directory_command", required=True), "import",
                 "replace a tenant's directory with a CSV export of the portal's users", cmd_directory_import)
    d.add_argument("tenant", help="the tenant's slug")
    d.add_argument("file", help="CSV with the columns email,name,company,role,status,invitation_expires")
    p = _command(sub, "backup", "copy the database consistently, also while the service runs", cmd_backup)
    p.add_argument("path", help="file (or folder) to write the copy to")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p = _command(sub, "kb", "the tenants' knowledge bases: help articles suggested in replies")
    kb = p.add_subparsers(dest="kb_command", required=True)
    for name, func, text in (("list", cmd_kb_list, "list the articles"),
                             ("check", cmd_kb_check, "validate the articles and show missing translations")):
        k = _command(kb, name, text, func)
        k.add_argument("--tenant", help="one tenant (default: all)")
    k = _command(kb, "search", "rank the articles for a text, as a message would be offered them", cmd_kb_search)
    k.add_argument("text", nargs="+", help="the question, as a message would ask it")
    k.add_argument("--tenant", help="one tenant (default: all)")
    k.add_argument("--intent", default="", help="classified intent to boost, e.g. technical/access")
    k.add_argument("--language", default="", help="the sender's language (default: the tenant's)")
    k.add_argument("--limit", type=LIMIT, default=10, help="articles to rank (default: %(default)s)")
    k = _command(kb, "learn", "list what agents' sent and rejected articles teach the articles", cmd_kb_learn)
    k.add_argument("--tenant", help="one tenant (default: all)")
    k.add_argument("--apply", action="store_true", help="write the lessons into the article files")
    k.add_argument("--since", type=_day, help="only what agents did from this day on, YYYY-MM-DD (UTC)")
    k = _command(kb, "import", "write articles from a CSV or JSON export (title, url, language, body)", cmd_kb_import)
    k.add_argument("tenant", help="the tenant's slug")
    k.add_argument("file", help="a .csv or .json export with title, url, language and body")
    p = _command(sub, "demo", "send sample messages to the running service and show what it did", cmd_demo)
    p.add_argument("--tenant", help="tenant to write to (default: the first one)")
    p = _command(sub, "agents", "manage the agents who sign in to the web console")
    a = p.add_subparsers(dest="agents_command", required=True)
    q = _command(a, "add", "add an agent (password from TRIAGE_AGENT_PASSWORD or asked)", cmd_agents)
    q.add_argument("email", help="the address the agent signs in with")
    q.add_argument("--name", required=True, help="the name shown in the console and the audit trail")
    q.add_argument("--tenant", action="append", help="a tenant the agent may see (repeat; none: all tenants)")
    _command(a, "list", "list the agents and their tenants", cmd_agents)
    q = _command(a, "remove", "remove an agent (their sessions end)", cmd_agents)
    q.add_argument("email", help="the agent's sign-in address")
    q = _command(a, "password", "set an agent's password (TRIAGE_AGENT_PASSWORD or asked)", cmd_agents)
    q.add_argument("email", help="the agent's sign-in address")
    for name, help_text in (("reply", "answer the requester on the ticket's channel (mail via the outbox)"),
                            ("note", "add an internal note to a ticket"),
                            ("approve", "send the drafted reply of a ticket held for review"),
                            ("resolve", "resolve a ticket"), ("close", "close a ticket"),
                            ("assign", "assign a ticket to an agent"),
                            ("send-article", "send one of the tenant's help articles to the requester"),
                            ("reject-article", "mark the help article the bot offered as not the answer "
                                               "(teaches the knowledge base: triage kb learn)")):
        q = _command(sub, name, help_text, cmd_act)
        q.add_argument("number", type=TICKET_NUMBER, help="the ticket number, as in [#1042]")
        if name in ("reply", "note"):
            q.add_argument("text", nargs="+", help="the text (words are joined with spaces)")
        if name == "assign":
            q.add_argument("email", help="the agent to assign it to")
        if name.endswith("-article"):
            q.add_argument("article", help="the article's id (triage kb list)")
        q.add_argument("--tenant", help="the ticket's tenant, when the number exists for several")
        q.add_argument("--agent", help="who acts, for the audit trail (default: cli:$USER)")
    p = _command(sub, "imap-check", "connect to a tenant's IMAP mailboxes and say what works and what is wrong",
                 cmd_imap_check)
    p.add_argument("tenant", help="the tenant's slug")
    p.add_argument("--timeout", type=_seconds, default=15.0, help="seconds to wait for each server (default: %(default)s)")
    p = _command(sub, "report", "the support desk's figures: volume, response times, automation, corrections",
                 cmd_report)
    p.add_argument("--tenant", action="append", help="only this tenant (repeat for several; default: all)")
    p.add_argument("--since", help="first day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--until", help="last day, YYYY-MM-DD (UTC), inclusive")
    p.add_argument("--format", choices=("text", "csv"), default="text",
                   help="aligned tables, or one CSV block per chart (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"triage: configuration error: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:  # triage.toml is a folder, unreadable, not UTF-8
        print(f"triage: configuration error: cannot read {args.config}: {_reason(e)}", file=sys.stderr)
        return 2
    try:
        return args.func(args, config)
    except UsageError as e:
        print(e, file=sys.stderr)
    except sqlite3.Error as e:
        print(f"triage {args.command}: cannot use the database {config.database}: {e}", file=sys.stderr)
    except OSError as e:
        print(f"triage {args.command}: {_reason(e)}", file=sys.stderr)
    return 2


def _reason(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
