#!/usr/bin/env python3
"""triage at a million tickets: ingest and the operators' queries, next to an empty database.

Builds a database of N tickets (default 1,000,000) with one inbound message and two events
each, by bulk inserts (the full-text index fed by its triggers, as in the service, so its
segments are shaped as a real database's: one rebuilt at the end would be a single giant
segment that the next automatic merge rewrites whole), spread over 50 tenants
(``borealis``, the configured one, holds a third of them) and the five statuses. Then, on
an empty database and on the big one in the same run, it measures:

- ingest: the writer filing mail that workers have already assessed (threading, ticket
  numbers, rendering, tickets, events, outbox rows; SQLite with ``synchronous=FULL``) —
  the part of the service whose cost can grow with the database;
- ``triage tickets`` (no filter, ``--tenant``, ``--tenant --status``), ``triage search``
  and the inbox (a tenant's tickets in a status, newest or urgent first, 50 a page):
  p50 and p99 over many calls.

    python bench/scale.py [--tickets 1000000] [--ingest 1000] [--without-indexes]

``--without-indexes`` drops the indexes of migration m005 from the big database first,
to show what they are for.
"""
from __future__ import annotations

import argparse
import pickle
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from smtp import bench_config, make_messages  # noqa: E402
from triage.config import load_config  # noqa: E402
from triage.service.intake import Intake, read_mail  # noqa: E402
from triage.config import parse_limits  # noqa: E402
from triage.service.loops import Gate  # noqa: E402
from triage.core.pipeline import Pipeline  # noqa: E402
from triage.store import Store, iso  # noqa: E402
from triage.core.threading import Signer  # noqa: E402

STATUSES = ["new", "open", "pending", "resolved", "closed"]
STATUS_WEIGHTS = [5, 10, 10, 35, 40]
WORDS = ("login password reset invoice auction bid deadline supplier portal upload error offer currency "
         "registration invitation expired account colleague contract delivery payment terms volume").split()
M005 = ["idx_tickets_tenant_id", "idx_tickets_tenant_status_id", "idx_tickets_tenant_status_priority_id"]


def build(path: Path, count: int, seed: int = 7) -> float:
    """The big database, by bulk inserts; seconds taken."""
    started = time.perf_counter()
    Store(path).close()  # the schema, by the migrations
    rnd = random.Random(seed)
    rare = [f"w{n:05d}" for n in range(20000)]  # rare words: each in about 50 messages
    tenants = ["borealis"] * 24 + [f"tenant{n:02d}" for n in range(48)]
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    numbers: dict[str, int] = {}
    chunk = 50_000
    for base in range(0, count, chunk):
        tickets, messages, events = [], [], []
        for i in range(base + 1, min(base + chunk, count) + 1):
            tenant = tenants[i % len(tenants)]
            numbers[tenant] = numbers.get(tenant, 1000) + 1
            at = iso(start + timedelta(seconds=i * 60))
            status = rnd.choices(STATUSES, STATUS_WEIGHTS)[0]
            priority = "urgent" if rnd.random() < 0.03 else "normal"
            subject = " ".join(rnd.choices(WORDS, k=3))
            text = " ".join(rnd.choices(WORDS, k=25) + rnd.choices(rare, k=2))
            sender = f"user{i % 50000}@supplier{i % 997}.example"
            tickets.append((i, tenant, numbers[tenant], status, priority, "technical", "login", "external",
                            "unverified", "en", "email", subject, sender, at, at))
            messages.append((i, i, "in", f"<scale.{i}@supplier.example>", "email", sender, "[]", subject, text,
                             len(text), at))
            events.append((i, "thread", '["thread-new-ticket"]', "new ticket", "{}", at))
            events.append((i, "decision", '["technical-help"]', "acknowledge,notify_agents", "{}", at))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO tickets (id, tenant, number, status, priority, category, intent, requester, "
                         "trust, language, channel, subject, requester_address, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tickets)
        conn.executemany("INSERT INTO messages (id, ticket, direction, message_id, channel, sender, recipients, "
                         "subject, text, raw_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", messages)
        conn.executemany("INSERT INTO events (ticket, kind, rules, outcome, detail, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", events)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def assessed(config, count: int) -> list[bytes]:  # noqa: ANN001 - a triage Config
    """``count`` mails to the configured tenant, assessed once (as the workers would), pickled."""
    pipeline = Pipeline(config)
    to = config.tenants["borealis"].support_addresses[0]
    out = []
    for sender, raw in make_messages(count, to):
        msg, stored, key = read_mail(raw, sender, [to])
        out.append(pickle.dumps((pipeline.assess(msg).portable(), key, stored, [to])))
    return out


def ingest(config, path: Path, items: list[bytes], tag: str, batch: int = 32) -> float:  # noqa: ANN001
    """Messages per second the writer files into the database at ``path`` (``tag`` makes the
    Message-IDs of this pass new ones, so a second pass is not all duplicates)."""
    store = Store(path)
    gate = Gate(config.own_addresses, parse_limits(config.email["reply_limits"]), config.email["bounce_quiet_hours"])
    from triage.core.pipeline import Drafts

    intake = Intake(config, store, Drafts(), Signer(b"bench-key", "support.localhost"), gate, True)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    for i in range(0, len(items), batch):
        with store.transaction():
            intake.prepare(now)
            for blob in items[i:i + batch]:
                outcome, key, raw, rcpts = pickle.loads(blob)
                with store.transaction():
                    intake.file(outcome.bind(config, "borealis"), f"{key}.{tag}", now, raw, rcpts)
    elapsed = time.perf_counter() - started
    store.close()
    return len(items) / elapsed


def latency(call, runs: int) -> tuple[float, float]:  # noqa: ANN001 - a callable of the run's number
    """p50 and p99 in milliseconds."""
    call(0)
    times = []
    for n in range(runs):
        start = time.perf_counter()
        call(n)
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=100)
    return q[49], q[98]


def queries(path: Path, runs: int) -> dict[str, tuple[float, float]]:
    store = Store(path)
    words = ["login", "w00042 w00043", "auction deadline", "w12345"]
    out = {
        "triage tickets": latency(lambda n: store.tickets(limit=50), runs),
        "triage tickets --tenant": latency(lambda n: store.tickets("tenant07", limit=50), runs),
        "triage tickets --tenant --status": latency(lambda n: store.tickets("borealis", "open", limit=50), runs),
        "triage search": latency(lambda n: store.search(words[n % len(words)]), runs),
        "inbox newest (page 1-5)": latency(lambda n: store.inbox("borealis", "open", page=n % 5), runs),
        "inbox urgent first (page 1-5)": latency(lambda n: store.inbox("borealis", "new", True, page=n % 5), runs),
    }
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--without-indexes", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="triage-scale-") as tmp:
        folder = Path(tmp)
        config = load_config(bench_config(REPO / "config", folder))
        big, empty = folder / "big.db", folder / "empty.db"
        seconds = build(big, args.tickets)
        size = big.stat().st_size / 2**20
        print(f"built {args.tickets:,} tickets (+ as many messages, twice as many events) in {seconds:.0f} s, "
              f"{size:,.0f} MiB")
        if args.without_indexes:
            conn = sqlite3.connect(big)
            for name in M005:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
            conn.close()
            print("(indexes of migration m005 dropped)")
        Store(empty).close()
        items = assessed(config, args.ingest)
        rates: dict[str, list[float]] = {"empty": [], "big": []}
        for tag in ("a", "b", "c"):  # alternating, best of three: the machine may be shared
            rates["empty"].append(ingest(config, empty, items, tag))
            rates["big"].append(ingest(config, big, items, tag))
        best = {name: max(values) for name, values in rates.items()}
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(f"ingest (writer, assessed mail, best of 3): empty {best['empty']:.0f} msg/s, at {args.tickets:,} "
              f"tickets {best['big']:.0f} msg/s, ratio {best['big'] / best['empty']:.2f} "
              f"(of the medians {median['big'] / median['empty']:.2f}) "
              f"(all runs: empty {', '.join(f'{r:.0f}' for r in rates['empty'])}; "
              f"big {', '.join(f'{r:.0f}' for r in rates['big'])})")
        small, large = queries(empty, args.runs), queries(big, args.runs)
        print(f"{'query':36} {'empty p50/p99 ms':>18} {f'{args.tickets:,} p50/p99 ms':>22}")
        for name in small:
            print(f"{name:36} {small[name][0]:8.2f} {small[name][1]:8.2f}  {large[name][0]:8.2f} {large[name][1]:8.2f}")


if __name__ == "__main__":
    main()
