#!/usr/bin/env python3
"""IMAP backlog throughput: a real Dovecot (tests/dovecot.py) holds N messages (default
2,000) in INBOX, then the service starts with that mailbox configured and reads the whole
backlog: fetch in batches, one group commit per batch, \\Seen and MOVE to Processed.
Prints the progress lines the service logs and the rate in messages/s (from the service's
start to the last UID recorded as processed, every mail moved).

    python bench/imap.py [--messages 2000] [--batch 100]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.smtp import make_messages  # noqa: E402
from tests.dovecot import PASSWORD, Dovecot  # noqa: E402
from tests.servicekit import SUPPORT, write_config  # noqa: E402
from triage.config import load_config  # noqa: E402
from triage.service.app import Service  # noqa: E402

ENV = "TRIAGE_BENCH_IMAP_PASSWORD"


async def ingest(folder: Path, total: int, batch: int) -> float:
    """Run the service until the backlog is processed; returns the seconds it took."""
    service = Service(load_config(folder), out=lambda line: print(line, flush=True) if "imap" in line else None)
    service.imap_options = {"batch": batch}
    started = time.perf_counter()
    await service.start()
    try:
        poller = service.pollers[0]
        while True:
            state = await service.run_db(service.store.imap_state, poller.box.tenant, poller.box.key)
            if state and state["last_uid"] >= total:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        await service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    os.environ[ENV] = PASSWORD
    dovecot = Dovecot()
    try:
        with dovecot.client() as client:
            raws = [raw for _sender, raw in make_messages(args.messages, SUPPORT)]
            for start in range(0, len(raws), 500):
                client.multiappend("INBOX", raws[start:start + 500])
        with tempfile.TemporaryDirectory(prefix="triage-bench-imap-") as tmp:
            folder = write_config(Path(tmp) / "config")
            with (folder / "tenants" / "acme.toml").open("a") as f:
                f.write(f'\n[[imap]]\nhost = "127.0.0.1"\nport = {dovecot.port}\nsecurity = "none"\n'
                        f'user = "support"\npassword_env = "{ENV}"\n')
            seconds = asyncio.run(ingest(folder, args.messages, args.batch))
        moved = len(dovecot.uids("Processed"))
        left = len(dovecot.uids("INBOX"))
    finally:
        dovecot.remove()
    print(f"imap backlog: {args.messages} messages in {seconds:.1f} s = {args.messages / seconds:.0f} messages/s "
          f"(batch {args.batch}; {moved} moved to Processed, {left} left in INBOX)")
    return 0 if moved == args.messages and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
