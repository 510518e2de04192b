"""``triage serve`` started as a subprocess on a copy of ../shared/eval/config, watched while
attacks are replayed against it.

The replays of tests/test_mail_attacks.py and tests/test_serve_attacks.py share this: the
process is the one an operator runs (``python -m triage.cli serve``), its output is read
all along (so a full pipe never stalls it, and a traceback in it is seen), and a watcher
asks ``/healthz`` every 0.2 s for the whole replay. On leaving, every answer must have been
200, the process must still be up, and no request may have ended in a 500 (aiohttp logs
each, whoever sent the request: raw sockets and fuzzing threads included).
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import need_shared

REPO = Path(__file__).resolve().parents[1]
POLL = 0.2  # seconds between two /healthz requests of the watcher


def server_errors(output: list[str]) -> list[str]:
    """aiohttp's "Error handling request" lines that were 500s: it logs the same words for a
    request it could not parse (a 400, aiohttp.http_exceptions in the traceback that follows)."""
    return [line for i, line in enumerate(output) if line.startswith("Unhandled exception") or (
        line.startswith("Error handling request")
        and not any("aiohttp.http_exceptions." in x for x in output[i + 1:i + 16]))]


def serve_config(folder: Path, relay_url: str) -> Path:
    """A copy of the evaluation configuration on free loopback ports, its database in tmp."""
    shutil.copytree(need_shared("eval", "config"), folder)
    toml = (folder / "triage.toml").read_text()
    for key, value in (("database", '"var/triage.db"'), ("listen", '"127.0.0.1:0"'), ("relay_url", f'"{relay_url}"')):
        toml, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", toml)
        assert n, key
    (folder / "triage.toml").write_text(toml)
    return folder


@dataclass
class Served:
    """The running process as the attacks reach it."""

    proc: asyncio.subprocess.Process
    smtp: tuple[str, int]
    base: str  # http://host:port of the web server
    database: Path
    output: list[str] = field(default_factory=list)
    health: list[int | str] = field(default_factory=list)  # each /healthz answer: a status or the error

    @property
    def healthz(self) -> str:
        return f"{self.base}/healthz"

    async def query(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        """Read-only, on the process's own database file (WAL: readers never block its writer)."""
        def read() -> list[dict[str, Any]]:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30) as db:
                db.row_factory = sqlite3.Row
                return [dict(r) for r in db.execute(sql, params)]
        return await asyncio.to_thread(read)


async def _drain(served: Served) -> None:
    assert served.proc.stdout is not None
    while line := await served.proc.stdout.readline():
        served.output.append(line.decode(errors="replace").rstrip("\n"))


async def _watch(served: Served, stop: asyncio.Event) -> None:
    """Ask /healthz every POLL seconds until stopped; each answer (or failure) is recorded."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while not stop.is_set():
            try:
                async with session.get(served.healthz) as response:
                    served.health.append(response.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                served.health.append(f"{type(e).__name__}: {e}")
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL)


@asynccontextmanager
async def triage_serve(folder: Path, env: dict[str, str] | None = None) -> AsyncIterator[Served]:
    """``triage serve`` on ``folder`` with ``env`` added to the environment (secrets), watched."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "triage.cli", "--config", str(folder), "serve", cwd=REPO,
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "triage serve: ready":
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
        smtp_port = int(next(x for x in lines if x.startswith("triage serve: smtp")).rpartition(":")[2])
        healthz = next(x for x in lines if x.startswith("triage serve: http")).split()[-1]
        served = Served(proc, ("127.0.0.1", smtp_port), healthz.removesuffix("/healthz"),
                        folder / "var" / "triage.db", output=lines)
        tasks = [asyncio.create_task(_drain(served)), asyncio.create_task(_watch(served, stop))]
        yield served
        stop.set()
        await tasks[1]
        assert proc.returncode is None, "\n".join(served.output)  # the service is still up after all of it
        assert len(served.health) >= 2 and set(served.health) == {200}, served.health
        assert not server_errors(served.output), "\n".join(served.output)
    finally:
        stop.set()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        for task in tasks:
            task.cancel()
