"""``triage serve``: the SMTP listener, the pipeline, the store and the outbox in one process.

One asyncio loop runs the SMTP sessions, the health endpoint and the outbox sender. All
database work goes to one thread of its own (SQLite wants one writer, and a commit's fsync
must not stall the sessions). Inbound mail is committed with group commit: while one
transaction is being written, the mails that arrive meanwhile queue up and go into the
next one, so each fsync carries many messages, yet every session hears 250 only after
the commit that contains its mail.
"""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from aiohttp import web

from channels.imap import Poller
from channels.smtp import SmtpHandler, smtp_factory
from channels.widget import WidgetChannel
from triage.chat import ChatLine, Conversations, Posted
from triage.config import Config
from triage.intake import Delivery, Intake, Result
from triage.loops import Gate, parse_limits
from triage.outbox import Outbox, Relay
from triage.pipeline import Pipeline
from triage.store import Store, iso, utcnow
from triage.threading import Signer, signing_key


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8025"`` -> ("127.0.0.1", 8025); port 0 picks a free port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be host:port, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Service:
    """Start with :meth:`start`, stop with :meth:`stop`; :func:`serve` adds signal handling."""

    def __init__(self, config: Config, *, retry_base: float = 30.0, batch_limit: int = 200,
                 out: Callable[[str], None] = lambda line: print(line, flush=True),
                 clock: Callable[[], datetime] = utcnow, slack_base_url: str | None = None,
                 slack_interval: float = 5.0):
        self.config = config
        self.slack_base_url = slack_base_url  # tests point the Slack Web API client at a local stand-in
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
        self.gate = Gate(config.own_addresses, parse_limits(config.email["reply_limits"]),
                         config.email["bounce_quiet_hours"])
        self._accepted = config.own_addresses
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-db")
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[Result]] | None] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._sessions: set[Any] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.imap_options: dict[str, Any] = {}  # Poller keywords (batch, max_attempts, backoff)
        self.pollers: list[Poller] = []
        self.imap_tasks: list[asyncio.Task[None]] = []
        self._imap_stop = asyncio.Event()
        self._accepting = False
        self.last_error = ""
        self.smtp_address: tuple[str, int] = ("", 0)
        self.web_address: tuple[str, int] = ("", 0)

    async def run_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a store call in the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.store: Store = await self.run_db(Store, self.config.database)
        key = await self.run_db(signing_key, self.config.signing_key_env, self.store)
        domain = self.config.support_domain or self.config.email["from_address"].rpartition("@")[2]
        signer = Signer(key, domain)
        pipeline = await self.run_db(Pipeline, self.config)
        self.intake: Intake = await self.run_db(Intake, self.config, self.store, pipeline, signer, self.gate,
                                                self.relay is None)
        self.outbox = Outbox(self.store, self.relay, self.run_db, base_delay=self.retry_base, clock=self.clock)
        self.conversations = Conversations(self.config, self.store, self.intake)
        self.widget = WidgetChannel(self)
        self._start_slack(pipeline)
        loop = asyncio.get_running_loop()
        host, port = split_listen(self.config.email["listen"])
        handler = SmtpHandler(self.accepts, self.deliver)
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
        self._tasks = [asyncio.create_task(self._writer(), name="triage-writer")]
        if self.relay is not None:  # without a relay mail waits in the outbox and nothing delivers
            self._tasks.append(asyncio.create_task(self.outbox.run(self._stop), name="triage-outbox"))
        if self.notifier is not None:
            self._tasks.append(asyncio.create_task(self.notifier.run(self._stop), name="triage-slack-notifier"))
        await self._start_socket_mode()
        self._accepting = True
        self._start_imap()
        self.out(f"triage serve: smtp {self.smtp_address[0]}:{self.smtp_address[1]}")
        self.out(f"triage serve: http http://{self.web_address[0]}:{self.web_address[1]}/healthz")
        self.out(f"triage serve: database {self.config.database.resolve()}")
        self.out("triage serve: relay " + (self.relay.describe() if self.relay
                                           else "none (relay_url is empty: mail is held in the outbox)"))
        self.out(f"triage serve: tenants {', '.join(sorted(self.config.tenants))}")
        self.out("triage serve: ready")

    async def stop(self) -> None:
        """Stop taking mail, finish what was accepted, let the outbox finish its current mail."""
        await self._stop_imap()
        self._accepting = False
        self._smtp.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._queue.put(None)
        self._stop.set()
        self.outbox.wake()
        if self.notifier is not None:
            self.notifier.wake()
        if self._socket_mode is not None:
            await self._socket_mode.close_async()
        done, pending = await asyncio.wait(self._tasks, timeout=15)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._web.cleanup()
        await self.run_db(self.store.close)
        self._executor.shutdown(wait=True)
        self.out("triage serve: stopped")

    # -- IMAP mailboxes -----------------------------------------------------------------

    def _start_imap(self) -> None:
        """One poller task per configured mailbox; their mail goes through :meth:`deliver`."""
        for tenant in self.config.tenants.values():
            for box in tenant.imap:
                poller = Poller(box, tenant.support_addresses[:1], self.deliver, self.run_db, self.store, self.out,
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

    def _start_slack(self, pipeline: Pipeline) -> None:
        """Agents in Slack, only when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set (secrets come
        from the environment only); otherwise Slack stays off and /slack/events does not exist."""
        token, secret = os.environ.get("SLACK_BOT_TOKEN", ""), os.environ.get("SLACK_SIGNING_SECRET", "")
        if not (token and secret):
            return
        from slack_sdk.web.async_client import AsyncWebClient

        from channels.slack import SlackChannel
        from triage.agents import Agents
        from triage.notifier import Notifier

        client = AsyncWebClient(token=token, **({"base_url": self.slack_base_url} if self.slack_base_url else {}))
        agents = Agents(self.config, self.store, pipeline, self.intake)
        self.notifier = Notifier(self.config, self.store, agents, client, self.run_db, self.clock,
                                 interval=self.slack_interval,
                                 first_response_hours=self.config.slack["first_response_hours"])
        self.slack = SlackChannel(self.config, agents, self.run_db, client, secret, self.clock, self._agent_acted)
        self.out("triage serve: slack on (POST /slack/events)")

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
        """An agent's action may have queued mail or a widget answer: deliver and show it now."""
        self.outbox.wake()
        self.widget.hub.notify()

    # -- inbound ----------------------------------------------------------------------

    def accepts(self, address: str) -> bool:
        """RCPT TO: only the tenants' support and no-reply addresses and the bot's own address."""
        return address.strip().lower() in self._accepted

    async def deliver(self, raw: bytes, mail_from: str, recipients: list[str]) -> Result:
        """The one entry point of inbound mail: returns once the mail is committed, raises otherwise."""
        if not self._accepting:
            raise RuntimeError("the service is shutting down")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((Delivery(raw, mail_from, recipients, self.clock()), future))
        # shield: a client hanging up must not cancel the commit the writer is doing for it
        return await asyncio.shield(future)

    async def deliver_chat(self, line: ChatLine) -> Posted:
        """The entry point of widget lines: returns once the line, its ticket, its reply and the
        conversation are committed (one transaction in the database thread), raises otherwise."""
        if not self._accepting:
            raise RuntimeError("the service is shutting down")
        posted = await self.run_db(self.conversations.post, line, self.clock())
        self.widget.hub.notify()
        self.outbox.wake()  # a relay to the tenant's contacts may be waiting
        return posted

    async def add_widget_reply(self, ticket_id: int, text: str, author: str) -> int:
        """An agent's answer (from Slack, say) to a widget ticket: shown live in the open widget."""
        message = await self.run_db(self.store.add_widget_reply, ticket_id, text, author, iso(self.clock()))
        self.widget.hub.notify()
        return message

    async def mail_transcript(self, token: str) -> str | None:
        """Queue a widget conversation's transcript to its verified visitor (see Conversations.transcript)."""
        refused = await self.run_db(self.conversations.transcript, token, self.clock())
        self.outbox.wake()
        return refused

    async def article_feedback(self, token: str, line: int, article: str, solved: bool) -> dict[str, Any]:
        """The visitor's answer to suggested help articles (see Conversations.feedback)."""
        result = await self.run_db(self.conversations.feedback, token, line, article, solved, self.clock())
        self.widget.hub.notify()  # an open widget shows the ticket's new status
        return result

    async def _writer(self) -> None:
        """Group commit: take everything waiting, commit it in one transaction, answer all."""
        while True:
            item = await self._queue.get()
            stopping = item is None
            batch = [] if item is None else [item]
            while len(batch) < self.batch_limit and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            if batch:
                await self._commit(batch)
            if stopping and self._queue.empty():
                return

    async def _commit(self, batch: list[tuple[Delivery, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.run_db(self.intake.process_batch, [d for d, _ in batch])
        except Exception as e:  # the commit itself failed: nobody gets a 250
            self.last_error = f"commit: {type(e).__name__}: {e}"
            results = [e] * len(batch)
        queued = False
        for (_, future), result in zip(batch, results):
            if future.done():
                continue
            if isinstance(result, Exception):
                self.last_error = f"intake: {type(result).__name__}: {result}"
                future.set_exception(result)
            else:
                queued = queued or result.queued > 0
                future.set_result(result)
        if queued:
            self.outbox.wake()
        if self.notifier is not None:
            self.notifier.wake()  # new tickets and follow-ups for the agents' Slack channels

    # -- health -----------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        if self.slack is not None:
            app.router.add_post("/slack/events", self.slack.handle)
        self.widget.mount(app)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            counts = await self.run_db(self.store.outbox_counts)
            stored_error = await self.run_db(self.store.last_error)
            database = True
        except Exception as e:  # the point of a health check: say so instead of failing
            counts, stored_error, database = {}, "", False
            self.last_error = f"database: {type(e).__name__}: {e}"
        ended = [t.get_name() for t in self._tasks if t.done()]  # a dead loop: nothing delivers or posts
        healthy = database and not ended
        body = {
            "status": "ok" if healthy else "error",
            "database": database,
            "tasks": ended,
            "outbox_backlog": counts.get("queued", 0) + counts.get("sending", 0),
            "outbox": counts,
            "last_error": self.outbox.last_error or self.last_error or stored_error,
            "smtp": f"{self.smtp_address[0]}:{self.smtp_address[1]}",
            "relay": self.relay.describe() if self.relay else "",
        }
        return web.json_response(body, status=200 if healthy else 503)


async def serve(config: Config, **options: Any) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
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
