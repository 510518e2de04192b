"""Worker processes: the expensive part of the pipeline, away from the SMTP process.

Each worker is a ``multiprocessing`` process (spawn context: a clean interpreter, no
inherited sockets or threads) that loads its own configuration, lexicon, model and
templates once, then assesses one queued mail at a time: parse → identify → trust →
automated → classify → decide (:meth:`Pipeline.assess`). What it sends back is a portable
:class:`~triage.core.pipeline.Outcome` (no MIME tree, the tenant by name); the service's writer
threads, numbers, renders and files it. Workers never write to the database; they read
the tenants' imported directories from it (read-only) when the writer says the version
changed.

Why not ``ProcessPoolExecutor``: when one of its processes dies, every pending future
fails with ``BrokenProcessPool`` and the pool is gone, so the mail that killed it cannot
be told from the mails that happened to be in flight. Here each worker has its own pipe
and holds one job, so a death is charged to exactly that mail (it is tried again, and
quarantined after three deaths) and only that worker is restarted.

Workers run at a lower CPU priority (``nice``): taking mail (the 250) comes first, and
the queue absorbs a burst; back-pressure (``service.queue_limit``) bounds it.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from triage.core.pipeline import Outcome, Pipeline

NICE = 10  # workers yield the CPU to the SMTP process under load
START_TIMEOUT = 120.0  # seconds for a worker to import and load its pipeline on a busy machine


class WorkerFailed(Exception):
    """The pipeline raised for this mail (the text is the worker's error)."""


class WorkerDied(Exception):
    """The worker process ended while it held this mail (killed, crashed, out of memory)."""


class NotRun(Exception):
    """The worker died before it reached this mail: not an attempt, it is simply tried again."""


@dataclass
class Job:
    """One queued mail or chat line, as a worker needs it."""

    kind: str  # "email" or "chat"
    raw: bytes  # the mail, or the chat line as JSON
    mail_from: str
    recipients: list[str]
    received_at: datetime
    directory_version: int


@dataclass
class Assessed:
    """What a worker found: the dedupe key, the tenant's slug and the portable outcome."""

    key: str
    tenant: str | None
    outcome: Outcome
    raw: bytes | None  # the mail as stored (with the Return-Path the final delivery adds)


def assess(pipeline: Pipeline, job: Job) -> Assessed:
    """The worker's whole job (also what the intake runs in-process without workers)."""
    from triage.service.intake import read_chat, read_mail

    if job.kind == "chat":
        msg, key = read_chat(job.raw)
        raw = None
    else:
        msg, raw, key = read_mail(job.raw, job.mail_from, job.recipients)
    outcome = pipeline.assess(msg, job.received_at)
    tenant = outcome.who.tenant.slug if outcome.who.tenant else None
    return Assessed(key, tenant, outcome.portable(), raw)


def _refresh_directories(pipeline: Pipeline, database: Path, version: int) -> None:
    """Imported directories replace the CSV files, as in the writer (read-only connection)."""
    from triage.core.directory import Directory, User

    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        tenants = [r[0] for r in conn.execute("SELECT DISTINCT tenant FROM directory_imports")]
        for slug in tenants:
            if slug not in pipeline.config.tenants:
                continue
            rows = conn.execute("SELECT email, name, company, role, status, invitation_expires FROM directory "
                                "WHERE tenant = ? ORDER BY email", [slug]).fetchall()
            pipeline.config.tenants[slug].directory = Directory([
                User(r[0], r[1], r[2], r[3], r[4], date.fromisoformat(r[5]) if r[5] else None)
                for r in rows])
    finally:
        conn.close()


def _serve(conn: Connection, config_root: str, database: str, factory: Callable[..., Pipeline], nice: int) -> None:
    """The worker process: load once, then answer jobs until the pipe closes."""
    from triage.config import load_config

    try:
        os.nice(nice)
    except OSError:  # not allowed here: run at normal priority
        pass
    pipeline = factory(load_config(config_root))
    version = 0
    conn.send(("ready", os.getpid()))
    while True:
        try:
            jobs: list[Job] = conn.recv()
        except (EOFError, OSError):
            return
        for job in jobs:  # each answer as soon as it is ready: a death is charged to one mail
            try:
                if job.directory_version != version:
                    _refresh_directories(pipeline, Path(database), job.directory_version)
                    version = job.directory_version
                conn.send(("ok", assess(pipeline, job)))
            except Exception as e:  # the mail's own failure: the writer retries and then quarantines it
                conn.send(("error", f"{type(e).__name__}: {e}"))


class _Worker:
    """One process and the parent's end of its pipe."""

    def __init__(self, pool: Workers):
        self.pool = pool
        self.conn, child = pool.context.Pipe()
        self.process = pool.context.Process(target=_serve, daemon=True, name="triage-worker",
                                            args=(child, pool.config_root, pool.database, pool.factory, pool.nice))
        self.process.start()
        child.close()
        self.jobs = 0
        kind, self.pid = self._receive(START_TIMEOUT)
        assert kind == "ready"

    def _receive(self, timeout: float | None = None) -> Any:
        ready = wait([self.conn, self.process.sentinel], timeout)
        if self.conn in ready:
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                pass
        if not ready:
            raise WorkerDied("the worker did not start in time")
        self.process.join(5)
        raise WorkerDied(f"worker process {self.process.pid} died (exit code {self.process.exitcode})")

    def call(self, jobs: list[Job]) -> list[Assessed | Exception]:
        """Blocking: send a chunk of jobs in one message (one wake-up of the worker for all of
        them), collect an answer per job; after a death, the job it held is WorkerDied and
        the ones after it NotRun."""
        try:
            self.conn.send(jobs)
        except (BrokenPipeError, OSError):
            pass  # it died before reading: _receive says so
        results: list[Assessed | Exception] = []
        for _ in jobs:
            try:
                kind, value = self._receive()
            except WorkerDied as e:
                results.append(e)
                break
            self.jobs += 1
            results.append(WorkerFailed(value) if kind == "error" else value)
        return results + [NotRun("the worker died before this mail")] * (len(jobs) - len(results))

    def stop(self) -> None:
        self.conn.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class Workers:
    """``count`` worker processes; :meth:`assess` runs one job on the next free one."""

    def __init__(self, config_root: Path, database: Path, count: int, factory: Callable[..., Pipeline] = Pipeline,
                 nice: int = NICE):
        self.config_root = str(config_root)
        self.nice = nice
        self.database = str(database)
        self.count = count
        self.factory = factory  # a module-level callable (tests give a pipeline that fails on purpose)
        self.context = multiprocessing.get_context("spawn")
        self._threads = ThreadPoolExecutor(max_workers=count, thread_name_prefix="triage-worker-pipe")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.deaths = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        workers = await asyncio.gather(*(loop.run_in_executor(self._threads, _Worker, self)
                                         for _ in range(self.count)))
        for worker in workers:
            self._all.append(worker)
            self._idle.put_nowait(worker)

    def describe(self) -> list[dict[str, Any]]:
        """Per worker: its pid and how many jobs it answered (for /healthz)."""
        with self._lock:
            return [{"pid": w.pid, "jobs": w.jobs} for w in self._all]

    async def assess(self, jobs: list[Job]) -> list[Assessed | Exception]:
        """A chunk of jobs on the next free worker: per job its Assessed, or WorkerFailed,
        WorkerDied or NotRun. A dead worker is replaced before it takes work again."""
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._threads, worker.call, jobs)
            if any(isinstance(r, WorkerDied) for r in results):
                self.deaths += 1
                worker = await loop.run_in_executor(self._threads, self._replace, worker)
            return results
        finally:
            self._idle.put_nowait(worker)

    def _replace(self, dead: _Worker) -> _Worker:
        dead.stop()
        fresh = _Worker(self)
        with self._lock:
            self._all = [fresh if w is dead else w for w in self._all]
        return fresh

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, w.stop) for w in self._all))
        self._threads.shutdown(wait=False)
