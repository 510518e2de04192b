"""The ``triage`` command: thin sub-commands over the library."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from triage.config import Config, ConfigError, config_warnings, load_config, redact_url, resolve_hosts
from triage.message import Message
from triage.parse import parse_chat, parse_email
from triage.store import OUTBOX_STATUSES, STATUSES, Store, iso, utcnow

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config"
FIRST_DRY_RUN_TICKET = 1001


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
    from triage.pipeline import Pipeline

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
    from triage.agents import corrections
    from triage.train import train

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
    from triage.loops import parse_limits
    from triage.outbox import Relay

    try:  # the mail settings `triage serve` would refuse at start
        relay = Relay.from_config(config.email["relay_url"], config.email["relay_username_env"],
                                  config.email["relay_password_env"])
        parse_limits(config.email["reply_limits"])
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
    from triage.service import serve

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


def cmd_tickets(args: argparse.Namespace, config: Config) -> int:
    rows = _store(config).tickets(args.tenant, args.status, args.category, args.limit)
    for t in rows:
        print(_line(f"#{t['number']}", t["tenant"] or "-", f"{t['status']:<8}", f"{t['priority']:<6}",
                    f"{t['category']}/{t['intent']}", t["requester"], t["trust"], t["language"],
                    t["requester_address"] or "-", repr(t["subject"] or ""), t["created_at"][:19]))
    if not rows:
        print("no tickets")
    return 0


def cmd_ticket(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    found = store.find_tickets(args.number, args.tenant)
    if len(found) != 1:
        tenants = ", ".join(t["tenant"] or "-" for t in found)
        print(f"triage ticket: {'no ticket' if not found else 'several tickets'} #{args.number}"
              + (f" (tenants: {tenants}; use --tenant)" if found else ""), file=sys.stderr)
        return 1
    t = found[0]
    print(f"#{t['number']} [{t['tenant'] or '-'}] {t['subject']!r}")
    print(_line(f"status {t['status']}", f"priority {t['priority']}", f"{t['category']}/{t['intent']}",
                f"requester {t['requester']} {t['requester_address']}", f"trust {t['trust']}",
                f"language {t['language']}", f"created {t['created_at'][:19]}"))
    print("\nConversation")
    for m in store.conversation(t["id"]):
        arrow = "<-" if m["direction"] == "in" else "->"
        print(f"  {arrow} {m['at'][:19]} {m['sender']} to {', '.join(json.loads(m['recipients'] or '[]'))}")
        print(f"     {m['message_id']}  {m['subject']!r}")
        for text_line in (m["text"] or "").strip().splitlines():
            print(f"     | {text_line}")
    print("\nAudit trail")
    for e in store.events(t["id"]):
        rules = ", ".join(json.loads(e["rules"] or "[]"))
        print(f"  {e['at'][:19]} {e['kind']:<16} {e['outcome']}" + (f"  [{rules}]" if rules else ""))
    return 0


def cmd_search(args: argparse.Namespace, config: Config) -> int:
    rows = _store(config).search(" ".join(args.text), args.limit)
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
    for r in store.outbox_rows(args.status, args.limit):
        error = f"  last error: {r['last_error']}" if r["last_error"] else ""
        print(_line(r["id"], f"{r['status']:<10}", r["kind"], f"#{r['number']}", r["tenant"] or "-",
                    ", ".join(json.loads(r["recipients"])), repr(r["subject"]), f"attempts {r['attempts']}")
              + error)
    return 0


def cmd_webhooks_list(args: argparse.Namespace, config: Config) -> int:
    from triage import webhooks

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
    from triage import webhooks

    hook = next((h for h in config.webhooks if h.name == args.name), None)
    if hook is None:
        print(f"triage: no webhook named {args.name!r}", file=sys.stderr)
        return 2
    answer = asyncio.run(webhooks.ping(hook))
    print(f"{hook.name}: {answer}")
    return 0 if answer.startswith("HTTP 2") else 1


def cmd_webhooks_redeliver(args: argparse.Namespace, config: Config) -> int:
    from triage import webhooks

    if not webhooks.redeliver(_store(config), args.id, iso(utcnow())):
        print(f"triage: delivery {args.id} is not a failed delivery", file=sys.stderr)
        return 1
    print(f"delivery {args.id} queued again (same Idempotency-Key); a running service sends it within seconds")
    return 0


def cmd_directory_import(args: argparse.Namespace, config: Config) -> int:
    from datetime import datetime, timezone

    from triage.directory import DirectoryError, read_csv

    if args.tenant not in config.tenants:
        print(f"triage directory import: unknown tenant {args.tenant!r} "
              f"(known: {', '.join(sorted(config.tenants))})", file=sys.stderr)
        return 2
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

    tenant = config.tenants.get(args.tenant)
    if tenant is None:
        print(f"triage imap-check: unknown tenant {args.tenant!r} (known: {', '.join(sorted(config.tenants))})",
              file=sys.stderr)
        return 2
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


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from triage.demo import run_demo

    return run_demo(config, args.tenant)


def _command(sub: argparse._SubParsersAction, name: str, help: str, func: Callable[..., int] | None = None
             ) -> argparse.ArgumentParser:
    """A sub-command that also takes ``--config`` after its name (``triage classify --config DIR``)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--config", default=argparse.SUPPRESS)
    if func is not None:
        p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage", description="Email and chat triage for a supplier-portal support desk.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="configuration folder (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = _command(sub, "classify", "dry-run the pipeline on .eml / .jsonl inputs, one JSON line each", cmd_classify)
    p.add_argument("inputs", nargs="+")
    _command(sub, "train", "rebuild the classification model from the labelled examples", cmd_train)
    _command(sub, "check-config", "validate the configuration and print a summary", cmd_check_config)
    _command(sub, "serve", "run the mail service: SMTP in, tickets in SQLite, replies and relays out", cmd_serve)
    p = _command(sub, "tickets", "list tickets, newest first", cmd_tickets)
    p.add_argument("--tenant")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--category")
    p.add_argument("--limit", type=int, default=50)
    p = _command(sub, "ticket", "one ticket: its conversation and audit trail", cmd_ticket)
    p.add_argument("number", type=int)
    p.add_argument("--tenant")
    p = _command(sub, "search", "full-text search over all messages", cmd_search)
    p.add_argument("text", nargs="+")
    p.add_argument("--limit", type=int, default=20)
    p = _command(sub, "outbox", "outgoing mail and its delivery status", cmd_outbox)
    p.add_argument("--status", choices=OUTBOX_STATUSES)
    p.add_argument("--limit", type=int, default=50)
    p = _command(sub, "webhooks", "receivers of signed calls (ticket events, portal actions) and their deliveries")
    w = p.add_subparsers(dest="webhooks_command", required=True)
    _command(w, "list", "receivers and their deliveries per status", cmd_webhooks_list)
    _command(w, "test", "send a signed ping to a receiver now and print its answer", cmd_webhooks_test
             ).add_argument("name")
    _command(w, "redeliver", "queue a failed delivery again", cmd_webhooks_redeliver).add_argument("id", type=int)
    p = _command(sub, "directory", "manage the tenants' user directories")
    d = _command(p.add_subparsers(dest="directory_command", required=True), "import",
                 "replace a tenant's directory with a CSV export of the portal's users", cmd_directory_import)
    d.add_argument("tenant")
    d.add_argument("file")
    p = _command(sub, "backup", "copy the database consistently, also while the service runs", cmd_backup)
    p.add_argument("path", help="file (or folder) to write the copy to")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p = _command(sub, "demo", "send sample messages to the running service and show what it did", cmd_demo)
    p.add_argument("--tenant", help="tenant to write to (default: the first one)")
    p = _command(sub, "imap-check", "connect to a tenant's IMAP mailboxes and say what works and what is wrong",
                 cmd_imap_check)
    p.add_argument("tenant")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each server (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"triage: configuration error: {e}", file=sys.stderr)
        return 2
    return args.func(args, config)


if __name__ == "__main__":
    sys.exit(main())
