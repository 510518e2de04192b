#!/usr/bin/env python3
"""Throughput and memory of the triage core (parse → … → render), with a baseline beside it.

Generates N messages (default 10,000): raw emails in several languages with quoted history,
signatures, HTML-only bodies and automatic replies, plus widget/Slack lines, built from the
labelled examples. The baseline is the standard library alone parsing the same bytes
(``email.message_from_bytes`` with ``policy.default`` and reading the body), run side by side
in this process, so the ratio says what triage costs on top of merely reading the mail.

Then the same messages go through the service's worker processes (:mod:`triage.service.workers`,
parse → decide, as ``triage serve`` runs them) with 1 and with 2 workers, and the script
prints both rates, their ratio and each process's peak RSS.

    python bench/classify.py [--count 10000] [--config DIR] [--workers 1,2]
"""
from __future__ import annotations

import argparse
import email
import json
import os
import random
import resource
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from triage.config import load_config  # noqa: E402
from triage.core.parse import parse_chat, parse_email  # noqa: E402
from triage.core.pipeline import Pipeline  # noqa: E402
from triage.desk.train import load_examples  # noqa: E402

QUOTES = {
    "en": "On Mon, 3 Nov 2026 at 09:12, Support <{to}> wrote:\n> Thank you for your message.\n> Ticket [#1001]\n",
    "sv": "Från: Support <{to}>\nSkickat: den 3 november 2026 09:12\nTill: Kund\nÄmne: Ärende\n\nTack för ditt meddelande.\n",
    "de": "-----Ursprüngliche Nachricht-----\nVon: Support <{to}>\nGesendet: Montag, 3. November 2026\nBetreff: Anfrage\n\nDanke.\n",
    "ru": "-----Исходное сообщение-----\nОт: Support <{to}>\nОтправлено: 3 ноября 2026 г.\nТема: Заявка\n\nСпасибо.\n",
    "uk": "Від: Support <{to}>\nНадіслано: 3 листопада 2026\nТема: Заявка\n\nДякуємо.\n",
}


def generate(count: int, config, seed: int = 1) -> list[tuple[str, object]]:
    """(kind, payload) pairs: ("email", bytes) or ("chat", dict)."""
    rnd = random.Random(seed)
    examples = load_examples()
    tenants = list(config.tenants.values())
    out: list[tuple[str, object]] = []
    for i in range(count):
        ex = rnd.choice(examples)
        tenant = rnd.choice(tenants)
        users = tenant.directory.users or []
        sender = rnd.choice(users).email if users and rnd.random() < 0.6 else f"user{i}@supplier{i % 97}.example"
        if ex.channel != "email" or rnd.random() < 0.1:
            out.append(("chat", {"id": f"c{i}", "channel": rnd.choice(["widget", "slack"]), "tenant": tenant.slug,
                                 "from": sender, "name": "", "text": ex.text}))
            continue
        msg = EmailMessage()
        msg["Authentication-Results"] = f"{config.email['trusted_authserv_ids'][0] if config.email['trusted_authserv_ids'] else 'mx'}; dmarc=pass header.from={sender.split('@')[1]}"
        msg["From"] = f"Sender {i} <{sender}>"
        msg["To"] = tenant.support_addresses[0]
        msg["Subject"] = ex.subject or "Question"
        msg["Message-ID"] = f"<bench{i}@bench.example>"
        if rnd.random() < 0.05:
            msg["Auto-Submitted"] = "auto-replied"
        body = ex.text
        if rnd.random() < 0.4:
            body += "\n\n" + QUOTES.get(ex.language, QUOTES["en"]).format(to=tenant.support_addresses[0])
        if rnd.random() < 0.1:
            msg.set_content(body)
            msg.add_alternative("<html><body><p>" + body.replace("\n", "<br>") + "</p></body></html>", subtype="html")
        else:
            msg.set_content(body)
        out.append(("email", bytes(msg)))
    return out


def baseline(items) -> float:
    start = time.perf_counter()
    for kind, payload in items:
        if kind == "email":
            m = email.message_from_bytes(payload, policy=policy.default)
            part = m.get_body(("plain", "html"))
            if part is not None:
                part.get_content()
        else:
            json.dumps(payload)
    return time.perf_counter() - start


def run_triage(items, pipeline: Pipeline) -> float:
    start = time.perf_counter()
    for n, (kind, payload) in enumerate(items):
        msg = parse_email(payload) if kind == "email" else parse_chat(payload)
        pipeline.run(msg, 1000 + n)
    return time.perf_counter() - start


def worker_jobs(items) -> list:
    """The generated messages as the queue hands them to the worker processes."""
    from datetime import datetime, timezone

    from triage.service.workers import Job

    now = datetime.now(timezone.utc)
    jobs = []
    for n, (kind, payload) in enumerate(items):
        if kind == "email":
            jobs.append(Job("email", payload, "", [], now, 0))
        else:
            line = {"client_id": f"bench{n:08d}", "tenant": payload["tenant"], "email": payload["from"], "name": "",
                    "user_hash": "", "text": payload["text"], "key": f"<bench.{n}@widget.invalid>"}
            jobs.append(Job("chat", json.dumps(line).encode(), "", [], now, 0))
    return jobs


async def run_workers(config_dir: Path, jobs: list, count: int, chunk: int = 16) -> tuple[float, list[float]]:
    """Messages per second through ``count`` worker processes, and their peak RSS (MiB).

    Fed as the service's dispatcher feeds them: chunks of ``chunk`` jobs, each to the next
    free worker, at most one chunk per worker plus one under way, taken back in order."""
    import asyncio

    from triage.service.workers import Workers

    async def feed(part: list) -> None:
        slots = asyncio.Semaphore(count + 1)
        under_way: list[asyncio.Task] = []

        async def one(piece: list) -> None:
            try:
                await workers.assess(piece)
            finally:
                slots.release()

        for i in range(0, len(part), chunk):
            await slots.acquire()
            under_way.append(asyncio.create_task(one(part[i:i + chunk])))
        await asyncio.gather(*under_way)

    workers = Workers(config_dir, config_dir / "no-database.db", count, nice=0)  # as fast as this process
    await workers.start()
    try:
        await feed(jobs[:100 * count])  # warm up each
        start = time.perf_counter()
        await feed(jobs)
        elapsed = time.perf_counter() - start
        rss = []
        for worker in workers.describe():
            status = Path(f"/proc/{worker['pid']}/status").read_text()
            rss.append(int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 1024)
    finally:
        await workers.stop()
    return len(jobs) / elapsed, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--config", default=str(REPO / "config"))
    ap.add_argument("--workers", default="1,2", help="worker process counts to measure, comma-separated")
    args = ap.parse_args()
    config = load_config(args.config)
    items = generate(args.count, config)
    pipeline = Pipeline(config)
    run_triage(items[:200], pipeline)  # warm caches (regexes, language models) before timing
    base = baseline(items)
    full = run_triage(items, pipeline)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(items)
    print(f"messages: {n} ({sum(k == 'email' for k, _ in items)} emails, {sum(k == 'chat' for k, _ in items)} chat lines)")
    print(f"baseline (stdlib parse only): {n / base:,.0f} msg/s")
    print(f"triage full pipeline:         {n / full:,.0f} msg/s  ({full / n * 1e3:.3f} ms/msg)")
    print(f"ratio triage/baseline:        {base / full:.3f}")
    print(f"peak memory (max RSS):        {peak:,.0f} MiB")
    import asyncio

    jobs = worker_jobs(items)
    rates = {}
    for count in [int(c) for c in args.workers.split(",") if c]:
        rates[count], rss = asyncio.run(run_workers(Path(args.config).resolve(), jobs, count))
        print(f"worker processes: {count}:        {rates[count]:,.0f} msg/s  "
              f"(peak RSS per worker: {', '.join(f'{r:.0f} MiB' for r in rss)})")
    if 1 in rates and len(rates) > 1:
        most = max(rates)
        print(f"speed-up {most} vs 1 worker:       {rates[most] / rates[1]:.2f}x on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
