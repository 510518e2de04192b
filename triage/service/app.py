"""``triage serve``: the SMTP listener and the writer in one process, the pipeline in workers.

One asyncio loop runs the SMTP sessions, the health endpoint, the widget, the outbox
sender and the dispatcher. Taking mail is cheap and comes first: a mail is committed to
the inbound queue (:mod:`triage.service.inbound`, its own SQLite file and thread) with group
commit — while one transaction is being written, the mails that arrive meanwhile go into
the next one, so each fsync carries many messages — and the session hears 250 once the
commit that contains its mail is on disk. Above ``service.queue_limit`` queued mails it
hears ``451 4.3.2`` instead, so memory and latency stay bounded under any flood.

The worker processes (:mod:`triage.service.workers`) assess queued mail; the one writer, the
database thread of the main database, files it (:mod:`triage.service.dispatch`). This process
never loads the classifier (unless Slack is on: agents' cards recompute decisions).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from channels.console import ConsoleChannel
from channels.imap import Poller
from channels.smtp import QueueFull, SmtpHandler, smtp_factory
from channels.widget import WidgetChannel
from triage import command
from triage.config import Config, split_listen
from triage.core.pipeline import Drafts, Pipeline
from triage.core.threading import Signer, signing_key
from triage.desk.agents import Agents
from triage.service.chat import ChatLine, Conversations, Posted, token_hash
from triage.service.dispatch import Dispatcher, Filed
from triage.service.host import Hub
from triage.service.inbound import Inbound, queue_path
from triage.service.intake import Intake
from triage.service.loops import Gate
from triage.service.outbox import Outbox, Relay
from triage.service.renewal import confirm
from triage.service.webhooks import Deliveries
from triage.service.webhooks import health as webhook_health
from triage.service.workers import Workers
from triage.store import Store, iso, utcnow

DRAIN_GRACE = 10.0  # seconds a clean stop waits for the queue to be filed (the rest waits for the restart)
FLOOD_RATE = 200  # mails a second above which accepting is a flood and the writer yields
FLOOD_WINDOW = 0.5  # seconds over which the arrival rate is counted
SWITCH_INTERVAL = 0.0005  # seconds a busy thread keeps the interpreter when the event loop wants it
CHECKPOINT_SECONDS = 300.0  # how often the WAL is checkpointed into the database file
CHAT_WAIT = 3.0  # seconds the widget waits for its line's ticket before answering "queued"
COMMIT_DELAY = 0.003  # seconds a group commit waits for the mail of SMTP transactions under way (< one fsync)


@dataclass
class Queued:
    """What SMTP says 250 to: the mail is in the inbound queue as row ``queue_id``."""

    queue_id: int


class Service:
    """Start with :meth:`start`, stop with :meth:`stop`; :func:`serve` adds signal handling."""

    def __init__(self, config: Config, *, retry_base: float = 30.0, batch_limit: int = 200,
                 out: Callable[[str], None] = lambda line: print(line, flush=True),
                 clock: Callable[[], datetime] = utcnow,
                 slack_interval: float = 5.0, pipeline: Callable[[Config], Pipeline] = Pipeline,
                 intake_retry: float = 2.0, chat_wait: float = CHAT_WAIT,
                 checkpoint_every: float = CHECKPOINT_SECONDS):
        self.config = config
        self.slack_interval = slack_interval
        self.slack: Any = None  # channels.slack.SlackChannel when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set
        self.notifier: Any = None
        self._socket_mode: Any = None
        self.retry_base = retry_base
        self.batch_limit = batch_limit
        self.out = out
        self.clock = clock
        self.relay = Relay.from_config(config.email["relay_url"], config.email["relay_username_env"],
                                       config.email["relay_password_env"])
        self.gate = Gate.from_config(config)
        self._accepted = config.own_addresses
        self.pipeline_factory = pipeline  # what the workers run (tests give one that fails on purpose)
        self._agents: Agents | None = None
        self.intake_retry = intake_retry
        self.chat_wait = chat_wait
        self.checkpoint_every = checkpoint_every  # seconds between WAL checkpoints (tests: a fraction of one)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-db")
        self._queue_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-queue")
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[int]] | None] = asyncio.Queue()
        self.depth = 0  # rows in the inbound queue, committed or being committed (back-pressure)
        self._recent: deque[tuple[float, int]] = deque()  # (loop time, mails) of the queue commits of the last FLOOD_WINDOW s
        self._stop = asyncio.Event()
        self._sessions: set[Any] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.imap_options: dict[str, Any] = {}  # Poller keywords (batch, max_attempts, backoff)
        self.pollers: list[Poller] = []
        self.imap_tasks: list[asyncio.Task[None]] = []
        self._imap_stop = asyncio.Event()
        self._accepting = False
        self._coming: set[Any] = set()  # SMTP transactions under way whose mail is not queued yet
        self.last_error = ""
        self.smtp_address: tuple[str, int] = ("", 0)
        self.web_address: tuple[str, int] = ("", 0)

    async def run_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store call in the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run_queue(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run an inbound-queue call in the queue's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._queue_executor, fn, *args)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.store: Store = await self.run_db(Store, self.config.database)
        key = await self.run_db(signing_key, self.config.signing_key_env, self.store)
        domain = self.config.support_domain or self.config.email["from_address"].rpartition("@")[2]
        signer = Signer(key, domain)
        self.inbound: Inbound = await self.run_queue(Inbound, queue_path(self.config.database))
        self.depth = (await self.run_queue(self.inbound.depth))[0]
        self.intake: Intake = await self.run_db(Intake, self.config, self.store, Drafts(), signer, self.gate,
                                                self.relay is None)
        self.outbox = Outbox(self.store, self.relay, self.run_db, base_delay=self.retry_base, clock=self.clock)
        self.conversations = Conversations(self.config, self.store, self.intake)
        self.hub = Hub()  # wakes the widget's and the console's event streams
        self.widget = WidgetChannel(self)
        self.workers = Workers(self.config.root, self.config.database, self.config.workers, self.pipeline_factory)
        await self.workers.start()
        self.dispatcher = Dispatcher(self.inbound, self.run_queue, self.run_db, self.workers, self.intake,
                                     self.conversations, self.clock, self._filed, busy=self._busy,
                                     retry_delay=self.intake_retry)
        self.webhooks = self._deliveries()
        self._start_slack()
        loop = asyncio.get_running_loop()
        host, port = split_listen(self.config.email["listen"])
        handler = SmtpHandler(self.accepts, self.deliver, lambda: self.depth >= self.config.queue_limit)
        self._coming = handler.coming
        self._smtp = await loop.create_server(
            smtp_factory(handler, hostname=domain or "triage", size_limit=self.config.email["max_message_size"],
                         sessions=self._sessions), host, port)
        self.smtp_address = self._smtp.sockets[0].getsockname()[:2]
        self._web = web.AppRunner(self._app(), access_log=None)
        await self._web.setup()
        web_host, web_port = split_listen(self.config.web_listen)
        site = web.TCPSite(self._web, web_host, web_port)
        await site.start()
        self.web_address = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
        self._tasks = [asyncio.create_task(self._writer(), name="triage-writer"),
                       asyncio.create_task(self.dispatcher.run(self._stop), name="triage-dispatcher")]
        if self.relay is not None:  # without a relay mail waits in the outbox and nothing delivers
            self._tasks.append(asyncio.create_task(self.outbox.run(self._stop), name="triage-outbox"))
        if self.notifier is not None:
            self._tasks.append(asyncio.create_task(self.notifier.run(self._stop), name="triage-slack-notifier"))
        self._tasks.append(asyncio.create_task(self.webhooks.run(self._stop), name="triage-webhooks"))
        self._tasks.append(asyncio.create_task(self._checkpoints(), name="triage-checkpoints"))
        await self._start_socket_mode()
        self._accepting = True
        self._start_imap()
        self.out(f"triage serve: smtp {self.smtp_address[0]}:{self.smtp_address[1]}")
        self.out(f"triage serve: http http://{self.web_address[0]}:{self.web_address[1]}/healthz")
        self.out(f"triage serve: database {self.config.database.resolve()}")
        self.out(f"triage serve: queue {queue_path(self.config.database).resolve()} ({self.depth} waiting), "
                 f"{self.config.workers} worker process(es) {','.join(str(w['pid']) for w in self.workers.describe())}")
        self.out("triage serve: relay " + (self.relay.describe() if self.relay
                                           else "none (relay_url is empty: mail is held in the outbox)"))
        self.out(f"triage serve: tenants {', '.join(sorted(self.config.tenants))}")
        web_url = f"http://{self.web_address[0]}:{self.web_address[1]}"
        self.out(f"triage serve: widget demo {web_url}/widget/demo?tenant={sorted(self.config.tenants)[0]}")
        agents = await self.run_db(lambda: self.store.db["agents"].count)
        self.out(f"triage serve: console {web_url}/ ({agents} agent{'' if agents == 1 else 's'}"
                 + ("" if agents else f"; add one with: {command()} agents add EMAIL --name NAME") + ")")
        if self.slack is None:
            self.out("triage serve: slack off (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to turn it on)")
        self.out("triage serve: ready")

    async def stop(self) -> None:
        """Stop taking mail, commit what was accepted to the queue, file it (for up to
        DRAIN_GRACE seconds; what is left is filed after the restart), let the outbox finish
        its current mail."""
        await self._stop_imap()
        self._accepting = False
        self._smtp.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._queue.put(None)
        writer = self._tasks[0]
        await asyncio.wait([writer], timeout=15)
        for _ in range(int(DRAIN_GRACE / 0.05)):  # file what was accepted, if it takes moments
            if not self.depth or self._tasks[1].done():
                break
            await asyncio.sleep(0.05)
        self._stop.set()
        self.outbox.wake()
        self.webhooks.wake()
        if self.notifier is not None:
            self.notifier.wake()
        if self._socket_mode is not None:
            await self._socket_mode.close_async()
        done, pending = await asyncio.wait(self._tasks, timeout=15)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._web.cleanup()
        await self.workers.stop()
        await self.run_db(self.store.close)
        await self.run_queue(self.inbound.close)
        self._executor.shutdown(wait=True)
        self._queue_executor.shutdown(wait=True)
        self.out("triage serve: stopped")

    # -- webhooks (portal actions and ticket events) ------------------------------------

    def _deliveries(self) -> Deliveries:
        """The signed-call delivery loop (portal actions, ticket events; triage/service/webhooks.py); a
        portal's 2xx queues the renewal's confirmation mail, drafted by the agents' pipeline."""
        return Deliveries(self.store, self.config, self.run_db, base_delay=self.retry_base, clock=self.clock,
                          confirmed=lambda row: confirm(self.agents, self.intake, row, self.clock()),
                          after_commit=self._agent_acted)

    # -- IMAP mailboxes -----------------------------------------------------------------

    def _start_imap(self) -> None:
        """One poller task per configured mailbox; their mail goes through :meth:`deliver`."""
        for tenant in self.config.tenants.values():
            for box in tenant.imap:
                poller = Poller(box, tenant.support_addresses[:1], self.deliver_fetched, self.run_db, self.store, self.out,
                                **self.imap_options)
                self.pollers.append(poller)
                self.imap_tasks.append(asyncio.create_task(poller.run(self._imap_stop), name=f"imap {poller.name}"))
                self.out(f"triage serve: imap {poller.name}")

    async def _stop_imap(self, grace: float = 10.0) -> None:
        """Before the writer stops: a batch being delivered is committed and moved, IDLE is cut."""
        self._imap_stop.set()
        for poller in self.pollers:
            poller.interrupt()
        if not self.imap_tasks:
            return
        _, pending = await asyncio.wait(self.imap_tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.imap_tasks, return_exceptions=True)

    # -- Slack ------------------------------------------------------------------------

    def _start_slack(self) -> None:
        """Agents in Slack, only when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set (secrets come
        from the environment only); otherwise Slack stays off and /slack/events does not exist.
        Agents' cards recompute decisions, so only then does this process load a pipeline."""
        token, secret = os.environ.get("SLACK_BOT_TOKEN", ""), os.environ.get("SLACK_SIGNING_SECRET", "")
        if not (token and secret):
            return
        from slack_sdk.web.async_client import AsyncWebClient

        from channels.slack import SlackChannel
        from triage.service.notifier import Notifier

        client = AsyncWebClient(token=token, base_url=self.config.slack["api_url"])
        agents = self.agents
        self.notifier = Notifier(self.config, self.store, agents, client, self.run_db, self.clock,
                                 interval=self.slack_interval,
                                 first_response_hours=self.config.slack["first_response_hours"])
        self.slack = SlackChannel(self.config, agents, self.run_db, client, secret, self.clock, self._agent_acted)
        self.out("triage serve: slack on (POST /slack/events)")

    async def _checkpoints(self) -> None:
        """Move the WAL into the database file regularly, so the file alone stays current (a
        copy of it is never minutes behind) and the WAL does not grow without bound."""
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.checkpoint_every)
            except asyncio.TimeoutError:
                try:
                    await self.run_db(self.store.checkpoint)
                except Exception as e:  # a busy moment: the next round checkpoints
                    self.last_error = f"checkpoint: {type(e).__name__}: {e}"

    @property
    def agents(self) -> Agents:
        """Agents' actions (Slack, the console) recompute decisions with the whole pipeline, so
        the first one loads it into this process; until then only the workers hold a classifier."""
        if self._agents is None:
            self._agents = Agents(self.config, self.store, self.pipeline_factory(self.config), self.intake)
        return self._agents

    async def _start_socket_mode(self) -> None:
        """With SLACK_APP_TOKEN the same Bolt app also listens over Socket Mode (no public URL)."""
        app_token = os.environ.get("SLACK_APP_TOKEN", "")
        if self.slack is None or not app_token:
            return
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        self._socket_mode = AsyncSocketModeHandler(self.slack.app, app_token)
        await self._socket_mode.connect_async()
        self.out("triage serve: slack socket mode connected")

    def _agent_acted(self) -> None:
        """An agent's action may have queued mail, a webhook or a widget answer: deliver and show it now."""
        self.outbox.wake()
        self.webhooks.wake()
        self.hub.notify()
        if self.notifier is not None:
            self.notifier.wake()

    # -- inbound ----------------------------------------------------------------------

    def accepts(self, address: str) -> bool:
        """RCPT TO: only the tenants' support and no-reply addresses and the bot's own address."""
        return address.strip().lower() in self._accepted

    async def deliver(self, raw: bytes, mail_from: str, recipients: list[str]) -> Queued:
        """The one entry point of inbound mail: returns once the mail is committed to the inbound
        queue; raises QueueFull above service.queue_limit, and otherwise when it cannot commit."""
        if self.depth >= self.config.queue_limit:
            raise QueueFull(f"{self.depth} mails are waiting to be processed")
        return Queued(await self._enqueue({"kind": "email", "raw": raw, "mail_from": mail_from,
                                           "recipients": recipients, "received_at": iso(self.clock())}))

    async def deliver_fetched(self, raw: bytes, mail_from: str, recipients: list[str]) -> Queued:
        """IMAP's entry point: a full queue makes the poller wait (the mail stays on the server)
        instead of failing the delivery, which would count towards the poller's quarantine."""
        while self.depth >= self.config.queue_limit and self._accepting:
            await asyncio.sleep(0.5)
        return Queued(await self._enqueue({"kind": "email", "raw": raw, "mail_from": mail_from,
                                           "recipients": recipients, "received_at": iso(self.clock())}))

    async def _enqueue(self, row: dict[str, Any]) -> int:
        if not self._accepting:
            raise RuntimeError("the service is shutting down")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.depth += 1
        await self._queue.put((row, future))
        # shield: a client hanging up must not cancel the commit the writer is doing for it
        return await asyncio.shield(future)

    async def deliver_chat(self, line: ChatLine) -> Posted:
        """The entry point of widget lines: queued like mail, then the answer waits up to
        ``chat_wait`` seconds for the line's ticket; after that it says "queued" and the reply
        arrives on the conversation's event stream."""
        now = self.clock()
        pending = await self.run_queue(self.inbound.pending_chat, token_hash(line.token)) if line.token else None
        row, token, verified = await self.run_db(self.conversations.admit, line, pending, now)
        row_id = await self._enqueue(row)
        try:
            posted = await asyncio.wait_for(asyncio.shield(self.dispatcher.waiter(row_id)), self.chat_wait)
        except asyncio.TimeoutError:
            return Posted(token, None, None, verified, False, queued=True)
        posted.token = token
        return posted

    async def conversation_state(self, token: str, after: int = 0) -> dict[str, Any] | None:
        """What the widget shows of a conversation, also while its first line is still queued."""
        pending = await self.run_queue(self.inbound.pending_chat, token_hash(token)) if token else None
        return await self.run_db(self.conversations.state, token, after, pending)

    async def add_widget_reply(self, ticket_id: int, text: str, author: str) -> int:
        """An agent's answer (from Slack, say) to a widget ticket: shown live in the open widget."""
        message = await self.run_db(self.store.add_widget_reply, ticket_id, text, author, iso(self.clock()))
        self.hub.notify()
        return message

    async def mail_transcript(self, token: str) -> str | None:
        """Queue a widget conversation's transcript to its verified visitor (see Conversations.transcript)."""
        refused = await self.run_db(self.conversations.transcript, token, self.clock())
        self.outbox.wake()
        return refused

    async def article_feedback(self, token: str, line: int, article: str, solved: bool) -> dict[str, Any]:
        """The visitor's answer to suggested help articles (see Conversations.feedback)."""
        result = await self.run_db(self.conversations.feedback, token, line, article, solved, self.clock())
        self.hub.notify()  # an open widget shows the ticket's new status
        return result

    async def _writer(self) -> None:
        """Group commit into the inbound queue: take everything waiting, commit it in one
        transaction, answer all. While other SMTP transactions are under way (their MAIL FROM
        answered, their mail not here yet) it waits up to COMMIT_DELAY for them: an fsync
        costs milliseconds, so eight senders sharing one commit are answered sooner than
        eight queueing behind each other's."""
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            stopping = item is None
            batch = [] if item is None else [item]
            deadline = loop.time() + COMMIT_DELAY
            while len(batch) < self.batch_limit:
                if not self._queue.empty():
                    more = self._queue.get_nowait()
                elif stopping or not self._coming or (remaining := deadline - loop.time()) <= 0:
                    break
                else:
                    try:
                        more = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if batch:
                await self._commit(batch)
            if stopping and self._queue.empty():
                return

    async def _commit(self, batch: list[tuple[dict[str, Any], asyncio.Future[int]]]) -> None:
        try:
            ids = await self.run_queue(self.inbound.add, [row for row, _ in batch])
        except Exception as e:  # the commit itself failed: nobody gets a 250
            self.last_error = f"queue: {type(e).__name__}: {e}"
            self.depth -= len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), row_id in zip(batch, ids):
            if not future.done():
                future.set_result(row_id)
        self._recent.append((asyncio.get_running_loop().time(), len(batch)))
        self.dispatcher.wake()

    def _busy(self) -> bool:
        """A flood: more than FLOOD_RATE mails a second arriving (a steady load below it the
        writer files as it comes) and the queue under half its limit. Then accepting comes
        first and the writer waits (see triage.service.dispatch)."""
        now = asyncio.get_running_loop().time()
        while self._recent and self._recent[0][0] < now - FLOOD_WINDOW:
            self._recent.popleft()
        rate = sum(n for _, n in self._recent) / FLOOD_WINDOW
        return rate > FLOOD_RATE and self.depth < self.config.queue_limit // 2

    def _filed(self, filed: Filed) -> None:
        """After the writer's commit: the queue shrank; the outbox, Slack and the widget may have news."""
        self.depth -= len(filed.done)
        if filed.queued:
            self.outbox.wake()
        if filed.quarantined:
            self.last_error = self.dispatcher.last_error
        self.webhooks.wake()  # issue 14: a decision may have queued a portal call or events
        if self.notifier is not None:
            self.notifier.wake()  # new tickets and follow-ups for the agents' Slack channels
        self.hub.notify()

    # -- health -----------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        if self.slack is not None:
            app.router.add_post("/slack/events", self.slack.handle)
        self.widget.mount(app)
        ConsoleChannel(self).mount(app)  # the agents' web console: /login, /tickets, /reports
        app.on_shutdown.insert(0, self._end_streams)
        return app

    async def _end_streams(self, app: web.Application) -> None:
        self.hub.close()  # open event streams end, so the web server does not wait for them

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            counts = await self.run_db(self.store.outbox_counts)
            stored_error = await self.run_db(self.store.last_error)
            hooks = await self.run_db(webhook_health, self.store, self.webhooks.last_error)
            database = True
        except Exception as e:  # the point of a health check: say so instead of failing
            counts, stored_error, database, hooks = {}, "", False, {}
            self.last_error = f"database: {type(e).__name__}: {e}"
        try:
            depth, oldest = await self.run_queue(self.inbound.depth)
        except Exception as e:
            depth, oldest = self.depth, None
            self.last_error = f"queue: {type(e).__name__}: {e}"
        age = (self.clock() - datetime.fromisoformat(oldest)).total_seconds() if oldest else 0.0
        ended = [t.get_name() for t in self._tasks if t.done()]  # a dead loop: nothing delivers or posts
        healthy = database and not ended
        body = {
            "status": "ok" if healthy else "error",
            "database": database,
            "tasks": ended,
            "outbox_backlog": counts.get("queued", 0) + counts.get("sending", 0),
            "outbox": counts,
            "queue_depth": depth,
            "queue_oldest_seconds": round(max(age, 0.0), 3),
            "queue_limit": self.config.queue_limit,
            "workers": self.workers.describe(),
            "last_error": self.outbox.last_error or self.last_error or self.dispatcher.last_error or stored_error,
            "smtp": f"{self.smtp_address[0]}:{self.smtp_address[1]}",
            "relay": self.relay.describe() if self.relay else "",
            "webhooks": hooks,  # issue 14: backlog, failed, last_error
        }
        return web.json_response(body, status=200 if healthy else 503)


async def serve(config: Config, **options: Any) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly.

    The writer thread files tickets with the interpreter lock held for milliseconds at a
    time; by default another thread waits up to 5 ms for it, so each turn of the event loop
    that woke up for an SMTP line could wait that long while a batch is filed. A tenth of
    that keeps the sessions' answers prompt (for the cost of some more thread switches)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    service = Service(config, **options)
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await service.stop()
