"""From the inbound queue to tickets: workers assess, the one writer files, in queue order.

Like a Mailman runner over its queue directory: the dispatcher takes the oldest queued
rows that are due, a chunk at a time, and hands each chunk to the next free worker
process, so no worker waits for another to finish (a chunk of long mails on one worker
does not idle the rest). The writer (the database thread) takes the chunks back in the
order they were taken from the queue, so two mails of one thread are filed in the order
they came, and threads, numbers, renders and files the chunks that are ready in one
transaction of the main database. Only then are the rows deleted from the queue. At most
one chunk per worker, plus one, is assessed or waiting for the writer at any time, so the
workers, the writer and the memory held all stay bounded.

Taking mail comes first: during a flood (``busy()``: hundreds of mails a second, the queue
under half its limit), the writer files nothing, so the SMTP sessions in the same process
have the interpreter to themselves; the queue absorbs the burst and is filed at full speed
as soon as it calms down or reaches half its limit (then accepting and filing share, and
back-pressure bounds the rest). A flood only delays tickets: every mail in it is committed.

A row whose pipeline raised, whose worker died, or whose filing failed is tried again
after ``retry_delay`` × attempts seconds; the third failure quarantines it (its raw mail,
envelope and error in the ``quarantine`` table, an ``intake-quarantined`` event, the
agents alerted). The sender heard 250 when the row was queued and is never asked again.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from triage.core.policy import decided_by
from triage.service.chat import Conversations, Posted
from triage.service.inbound import MAX_ATTEMPTS, Inbound, Queued
from triage.service.intake import Intake, Result
from triage.service.logs import event
from triage.service.workers import Assessed, Job, NotRun, WorkerDied, WorkerFailed, Workers
from triage.store import iso

log = logging.getLogger(__name__)

RunIn = Callable[..., Awaitable[Any]]
FLOOD_PAUSE = 0.05  # seconds between the writer's looks at whether a flood is over


@dataclass
class Filed:
    """What one batch came to, for the queue and for whoever waits on a row."""

    done: list[int] = field(default_factory=list)  # filed or quarantined: leave the queue
    failed: dict[int, str] = field(default_factory=dict)  # tried again later
    results: dict[int, Result | Posted | Exception] = field(default_factory=dict)
    quarantined: int = 0
    queued: int = 0  # outbox rows waiting for the relay


def file_batch(intake: Intake, conversations: Conversations, rows: list[Queued],
               assessed: list[Assessed | Exception], now: datetime) -> Filed:
    """The writer's part (database thread): one transaction, one savepoint per row."""
    filed = Filed()
    store, at = intake.store, iso(now)
    with store.transaction():
        intake.prepare(now)
        for row, item in zip(rows, assessed):
            if isinstance(item, NotRun):
                continue  # stays queued as it was: the next pass takes it again
            try:
                if isinstance(item, Exception):
                    raise item
                with store.transaction():
                    outcome = item.outcome.bind(intake.config, item.tenant)
                    received = datetime.fromisoformat(row.received_at)
                    if row.kind == "chat":
                        result: Result | Posted = conversations.file(row.chat, outcome, received)
                    else:
                        assert item.raw is not None
                        result = intake.file(outcome, item.key, received, item.raw, row.recipients)
                        filed.queued += result.queued
                filed.done.append(row.id)
                filed.results[row.id] = result
                event(log, logging.INFO, "mail filed" if row.kind != "chat" else "chat line filed",
                      ticket=result.number, tenant=item.tenant, rule=decided_by(outcome.decision.reasons),
                      duplicate=result.duplicate or None, queue_id=row.id,
                      held_local=(result.held or None) if isinstance(result, Result) else None,
                      ms=round((now - received).total_seconds() * 1000))
            except Exception as e:  # this row only: retried, or quarantined after the last attempt
                error = str(e) if isinstance(e, (WorkerFailed, WorkerDied)) else f"{type(e).__name__}: {e}"
                attempts = row.attempts + 1
                if attempts >= MAX_ATTEMPTS:
                    intake.quarantine(row.raw, {**row.envelope, "kind": row.kind}, error, attempts, at)
                    filed.done.append(row.id)
                    filed.quarantined += 1
                    filed.results[row.id] = RuntimeError(f"quarantined after {attempts} attempts: {error}")
                    event(log, logging.ERROR, "mail quarantined", queue_id=row.id, attempts=attempts, error=error,
                          rule="intake-quarantined")
                else:
                    store.add_event(None, "retry", ["intake-retry"], error, at,
                                    detail={**row.envelope, "kind": row.kind, "attempts": attempts, "error": error})
                    filed.failed[row.id] = error
                    event(log, logging.WARNING, "filing failed, will retry", queue_id=row.id, attempts=attempts,
                          error=error, rule="intake-retry")
    return filed


class Dispatcher:
    """The loop between the queue, the workers and the writer (see the module docstring)."""

    def __init__(self, inbound: Inbound, run_queue: RunIn, run_db: RunIn, workers: Workers, intake: Intake,
                 conversations: Conversations, clock: Callable[[], datetime],
                 on_filed: Callable[[Filed], None], *, busy: Callable[[], bool] = lambda: False,
                 chunk: int = 16, batch: int = 64, retry_delay: float = 2.0):
        self.inbound = inbound
        self.run_queue = run_queue
        self.run_db = run_db
        self.workers = workers
        self.intake = intake
        self.conversations = conversations
        self.clock = clock
        self.on_filed = on_filed
        self.busy = busy
        self.chunk = chunk  # rows one worker assesses in one go
        self.batch = batch  # rows the writer files in one transaction, at most
        self.retry_delay = retry_delay
        self.inflight: set[int] = set()
        self.last_error = ""
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows were queued."""
        self._wake.set()

    def waiter(self, row_id: int) -> asyncio.Future[Any]:
        """A future set when the row is filed (its Result or Posted) or quarantined (an exception)."""
        future = self._waiters.get(row_id)
        if future is None:
            future = self._waiters[row_id] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
        return future

    async def run(self, stop: asyncio.Event) -> None:
        """Assess and file until ``stop``; the chunks being assessed are still filed."""
        taken = _Taken()
        slots = asyncio.Semaphore(self.workers.count + 1)  # chunks taken and not yet filed
        writer = asyncio.create_task(self._file_loop(taken, slots), name="triage-filer")
        try:
            while not stop.is_set() and not writer.done():
                await slots.acquire()
                self._wake.clear()
                rows = await self.run_queue(self.inbound.due, self.clock(), set(self.inflight), self.chunk)
                if not rows:
                    slots.release()
                    await _first(self._wake.wait(), stop.wait(), timeout=1.0)  # retries come due by time
                    continue
                self.inflight.update(row.id for row in rows)
                version = self.intake.directory_version
                jobs = [Job(row.kind, row.raw, row.mail_from, row.recipients,
                            datetime.fromisoformat(row.received_at), version) for row in rows]
                taken.add(rows, asyncio.create_task(self.workers.assess(jobs)))
        finally:
            taken.close()
            await writer

    async def _file_loop(self, taken: _Taken, slots: asyncio.Semaphore) -> None:
        """File the chunks in the order they were taken, each ready run of them in one transaction."""
        while (ready := await taken.ready(self.batch)) is not None:
            await self._file([row for rows, _ in ready for row in rows],
                             [item for _, results in ready for item in results])
            for _ in ready:
                slots.release()

    async def _file(self, rows: list[Queued], assessed: list[Assessed | Exception]) -> None:
        while self.busy():  # mail is arriving: accepting has the interpreter (see above)
            await asyncio.sleep(FLOOD_PAUSE)
        now = self.clock()
        try:
            filed = await self.run_db(file_batch, self.intake, self.conversations, rows, assessed, now)
            await self.run_queue(self.inbound.finish, filed.done, filed.failed, now, self.retry_delay)
        except Exception as e:  # the database failed: the rows stay queued and are tried again
            self.last_error = f"writer: {type(e).__name__}: {e}"
            self.inflight.difference_update(row.id for row in rows)
            await asyncio.sleep(1.0)
            return
        self.inflight.difference_update(row.id for row in rows)
        for row_id, result in filed.results.items():
            future = self._waiters.pop(row_id, None)
            if future is not None and not future.done():
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        if filed.failed:
            self.last_error = "intake: " + list(filed.failed.values())[-1]
        self.on_filed(filed)


class _Taken:
    """The chunks taken from the queue, in order, each with its assessment under way."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[list[Queued], asyncio.Task[list[Assessed | Exception]]]] = deque()
        self._arrived = asyncio.Event()
        self._closed = False

    def add(self, rows: list[Queued], assessing: asyncio.Task[list[Assessed | Exception]]) -> None:
        self._chunks.append((rows, assessing))
        self._arrived.set()

    def close(self) -> None:
        """No more chunks: :meth:`ready` returns None once the last one is handed out."""
        self._closed = True
        self._arrived.set()

    async def ready(self, limit: int) -> list[tuple[list[Queued], list[Assessed | Exception]]] | None:
        """The oldest chunk once assessed, with the assessed chunks right behind it (up to
        ``limit`` rows): the writer files them together."""
        while not self._chunks:
            if self._closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        rows, assessing = self._chunks.popleft()
        out = [(rows, await assessing)]
        count = len(rows)
        while self._chunks and self._chunks[0][1].done() and count + len(self._chunks[0][0]) <= limit:
            rows, assessing = self._chunks.popleft()
            out.append((rows, assessing.result()))
            count += len(rows)
        return out


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A waiter nobody awaits any more (the widget answered "queued") must not log its exception."""
    if not future.cancelled():
        future.exception()


async def _first(*waits: Awaitable[Any], timeout: float) -> None:
    """Return when the first of ``waits`` finishes or after ``timeout`` seconds."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
