"""The IMAP adapter: read a tenant's support mailbox where MX cannot point at triage.

imapclient is blocking, so every IMAP call runs in a worker thread (``asyncio.to_thread``)
and the event loop never waits on a server. One :class:`Poller` per mailbox:

- connect, log in, and IDLE when the server offers it (poll every ``poll_seconds`` when it
  does not); after IDLE returns, or on every poll, fetch what is new;
- what is new is decided by SQLite, not by the server's \\Seen flags: UIDs above the last
  UID processed, valid only with the folder's UIDVALIDITY. A changed UIDVALIDITY means the
  server renumbered the folder, so everything in it is fetched again and the Message-ID
  dedupe of the intake turns what was already filed into no-ops (rule
  ``imap-uidvalidity-changed``);
- a batch (``batch`` UIDs) is fetched with BODY.PEEK[] (nothing is marked read yet), every
  mail goes through ``Service.deliver_fetched`` (the same inbound queue as SMTP, so the
  group commit writes a batch with few fsyncs; a full queue makes it wait, the mail stays
  on the server), and only after the commit the mail is
  flagged \\Seen and moved to ``processed_folder``; then the last UID advances. A crash
  anywhere in between leaves the mail where it was, and the next run delivers it again
  as a duplicate: nothing lost, no second ticket;
- a mail whose delivery fails ``max_attempts`` times is quarantined (rule
  ``imap-quarantined``, the raw mail in the ``quarantine`` table), flagged \\Flagged and
  ``$TriageQuarantined`` in the mailbox for a person to look at, and never fetched again;
- a dropped connection is retried with exponential backoff, bounded by ``backoff_max``;
  mail that arrived meanwhile is above the last UID, so it is caught up on reconnect.

:func:`check` is what ``triage imap-check`` prints: each step that can fail, named.
"""
from __future__ import annotations

import asyncio
import email.parser
import email.utils
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from triage.config import ImapMailbox
from triage.store import Store, iso, utcnow

RULES = {
    "imap-quarantined": "a mail that failed delivery again and again: kept in quarantine, flagged in the "
                        "mailbox, not fetched again",
    "imap-uidvalidity-changed": "the server renumbered the folder (new UIDVALIDITY): everything in it is read "
                                "again, the Message-ID dedupe keeps what was filed from becoming a second ticket",
}
QUARANTINE_KEYWORD = b"$TriageQuarantined"
SEEN, FLAGGED = b"\\Seen", b"\\Flagged"
_HEADERS = email.parser.BytesHeaderParser()


class Accepted(Protocol):
    queue_id: int  # committed to the service's inbound queue


Deliver = Callable[[bytes, str, list[str]], Awaitable[Accepted]]
RunDb = Callable[..., Awaitable[Any]]


class ImapSetupError(Exception):
    """A mailbox cannot be used as configured; the message says which step failed and why."""


def connect(box: ImapMailbox, timeout: float = 30.0) -> IMAPClient:
    """Open the connection the configuration asks for and log in (blocking)."""
    password = os.environ.get(box.password_env)
    if password is None:
        raise ImapSetupError(f"password: environment variable {box.password_env} is not set")
    context = ssl.create_default_context()
    try:
        socket.getaddrinfo(box.host, box.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ImapSetupError(f"DNS: cannot resolve {box.host!r}: {e.strerror}") from None
    try:
        client = IMAPClient(box.host, port=box.port, ssl=box.security == "tls", ssl_context=context,
                            timeout=timeout)
    except ConnectionRefusedError:
        raise ImapSetupError(f"connect: connection refused by {box.host}:{box.port} (no IMAP server there?)") from None
    except ssl.SSLError as e:
        raise ImapSetupError(f"TLS: handshake with {box.host}:{box.port} failed: {e.reason or e}") from None
    except (TimeoutError, socket.timeout):
        raise ImapSetupError(f"connect: no answer from {box.host}:{box.port} within {timeout:.0f} s") from None
    except OSError as e:
        raise ImapSetupError(f"connect: {box.host}:{box.port}: {e.strerror or e}") from None
    try:
        if box.security == "starttls":
            if b"STARTTLS" not in client.capabilities():
                raise ImapSetupError(f"TLS: {box.host}:{box.port} does not offer STARTTLS")
            try:
                client.starttls(context)
            except ssl.SSLError as e:
                raise ImapSetupError(f"TLS: STARTTLS with {box.host} failed: {e.reason or e}") from None
        try:
            client.login(box.user, password)
        except LoginError as e:
            raise ImapSetupError(f"login: failed for user {box.user!r} (wrong user or password; the server "
                                 f"says {_text(e)})") from None
    except BaseException:
        _close(client)
        raise
    return client


def check(box: ImapMailbox, state: dict[str, Any] | None = None, timeout: float = 15.0) -> tuple[bool, str]:
    """One line on whether a mailbox works: the step that failed, or what the bot would see."""
    try:
        client = connect(box, timeout)
    except ImapSetupError as e:
        return False, str(e)
    try:
        if not client.folder_exists(box.folder):
            names = ", ".join(sorted(str(f[2]) for f in client.list_folders()))
            return False, f"folder: {box.folder!r} does not exist (folders: {names})"
        info = client.select_folder(box.folder, readonly=True)
        idle = b"IDLE" in client.capabilities()
        processed = ("exists" if client.folder_exists(box.processed_folder)
                     else "missing, the service creates it")
    except Exception as e:  # a server error after login: say it rather than a traceback
        return False, f"server: {type(e).__name__}: {_text(e)}"
    finally:
        _close(client)
    line = (f"OK: {info[b'EXISTS']} messages in {box.folder}, UIDVALIDITY {info[b'UIDVALIDITY']}, "
            f"{'IDLE' if idle else f'no IDLE (polling every {box.poll_seconds} s)'}, "
            f"processed folder {box.processed_folder!r} {processed}")
    if state:
        stale = " (stale: the folder was renumbered)" if state["uidvalidity"] != info[b"UIDVALIDITY"] else ""
        line += f"; processed up to UID {state['last_uid']}{stale}"
    return True, line


def envelope_sender(raw: bytes) -> str:
    """The envelope sender an MTA recorded in Return-Path (``""`` for bounces), else From."""
    headers = _HEADERS.parsebytes(raw[:65536])
    path = headers.get("Return-Path")
    if path is not None:
        return email.utils.parseaddr(str(path))[1]
    return email.utils.parseaddr(str(headers.get("From", "")))[1]


@dataclass
class _Batch:
    filed: list[int]  # committed (or duplicates): flag \Seen and move
    quarantined: list[int]
    retry: list[int]  # failed, will be tried again
    gone: list[int]  # expunged between search and fetch: nothing to do


class Poller:
    """Reads one mailbox into ``deliver`` until ``stop`` is set."""

    def __init__(self, box: ImapMailbox, recipients: list[str], deliver: Deliver, run_db: RunDb, store: Store,
                 out: Callable[[str], None], *, batch: int = 100, max_attempts: int = 3,
                 backoff: tuple[float, float] = (1.0, 300.0)):
        self.box = box
        self.recipients = recipients  # the tenant's support address: the mailbox was delivered to it
        self.deliver = deliver
        self.run_db = run_db
        self.store = store
        self.out = out
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff_min, self.backoff_max = backoff
        self.name = f"{box.tenant}/{box.key}"
        self.last_error = ""
        self._client: IMAPClient | None = None
        self._attempts: dict[tuple[int, int], int] = {}  # (uidvalidity, uid) -> failed deliveries
        self._lock = threading.Lock()
        self._idling = False
        self._stopping = False

    def interrupt(self) -> None:
        """Ask the poller to stop: an IDLE in progress is cut by closing its socket, any other
        step is let finish so a committed batch is still moved."""
        with self._lock:
            self._stopping = True
            if self._idling and self._client is not None:
                try:
                    self._client.socket().shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.backoff_min
        while not stop.is_set():
            try:
                self._client = await asyncio.to_thread(connect, self.box)
                self.out(f"imap {self.name}: connected")
                delay = self.backoff_min
                await self._session(stop)
            except Exception as e:  # dropped connection, server error, refused login: retry later
                if stop.is_set():
                    break
                self.last_error = str(e) if isinstance(e, ImapSetupError) else f"{type(e).__name__}: {_text(e)}"
                self.out(f"imap {self.name}: {self.last_error}; reconnecting in {delay:g} s")
                await _sleep(stop, delay)
                delay = min(delay * 2, self.backoff_max)
            finally:
                client, self._client = self._client, None
                if client is not None:
                    await asyncio.to_thread(_close, client)

    async def _session(self, stop: asyncio.Event) -> None:
        client = self._client
        assert client is not None
        capabilities = await asyncio.to_thread(client.capabilities)
        if not await asyncio.to_thread(client.folder_exists, self.box.processed_folder):
            await asyncio.to_thread(client.create_folder, self.box.processed_folder)
            self.out(f"imap {self.name}: created folder {self.box.processed_folder!r}")
        while not stop.is_set():
            await self._sync(client, capabilities, stop)
            if stop.is_set():
                return
            if b"IDLE" in capabilities:
                await asyncio.to_thread(self._idle, client)
            else:
                await _sleep(stop, self.box.poll_seconds)

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE until the server reports something or poll_seconds pass (worker thread)."""
        with self._lock:
            if self._stopping:
                return
            self._idling = True
        try:
            client.idle()
            client.idle_check(timeout=self.box.poll_seconds)
            client.idle_done()
        finally:
            with self._lock:
                self._idling = False

    async def _sync(self, client: IMAPClient, capabilities: tuple[bytes, ...], stop: asyncio.Event) -> None:
        """Deliver everything above the last UID, batch by batch."""
        box = self.box
        info = await asyncio.to_thread(client.select_folder, box.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        state = await self.run_db(self.store.imap_state, box.tenant, box.key)
        last = state["last_uid"] if state else 0
        if state is None or state["uidvalidity"] != uidvalidity:
            if state is not None:
                detail = {"tenant": box.tenant, "mailbox": box.key, "old": state["uidvalidity"], "new": uidvalidity}
                await self.run_db(self.store.imap_event, "imap-resync", "imap-uidvalidity-changed",
                                  f"UIDVALIDITY {state['uidvalidity']} -> {uidvalidity}: reading the folder again",
                                  iso(utcnow()), detail)
                self.out(f"imap {self.name}: UIDVALIDITY changed {state['uidvalidity']} -> {uidvalidity}: "
                         "reading the whole folder again (duplicates are ignored)")
            last = 0
            await self.run_db(self.store.set_imap_state, box.tenant, box.key, uidvalidity, 0, iso(utcnow()))
        found = await asyncio.to_thread(client.search, ["UID", f"{last + 1}:*", "NOT", "KEYWORD",
                                                         QUARANTINE_KEYWORD.decode()])
        uids = sorted(u for u in found if u > last)
        for start in range(0, len(uids), self.batch):
            if stop.is_set():
                return
            chunk = uids[start:start + self.batch]
            outcome = await self._deliver_batch(client, uidvalidity, chunk)
            await asyncio.to_thread(self._file_away, client, capabilities, outcome)
            done = set(outcome.filed) | set(outcome.quarantined) | set(outcome.gone)
            for uid in chunk:  # the last UID advances over a prefix that needs nothing more
                if uid not in done:
                    break
                last = uid
            await self.run_db(self.store.set_imap_state, box.tenant, box.key, uidvalidity, last, iso(utcnow()))
            if len(uids) > self.batch:
                self.out(f"imap {self.name}: {min(start + len(chunk), len(uids))}/{len(uids)}")
            if outcome.retry:
                return  # tried again at the next check, from the first one that failed

    async def _deliver_batch(self, client: IMAPClient, uidvalidity: int, chunk: list[int]) -> _Batch:
        """Fetch without marking read, deliver all at once (one group commit), sort the results."""
        fetched = await asyncio.to_thread(client.fetch, chunk, ["BODY.PEEK[]"])
        present = [uid for uid in chunk if uid in fetched]
        raws = [fetched[uid][b"BODY[]"] for uid in present]
        results = await asyncio.gather(*(self.deliver(raw, envelope_sender(raw), list(self.recipients))
                                         for raw in raws), return_exceptions=True)
        outcome = _Batch([], [], [], [uid for uid in chunk if uid not in fetched])
        for uid, raw, result in zip(present, raws, results):
            if not isinstance(result, BaseException):
                outcome.filed.append(uid)
                self._attempts.pop((uidvalidity, uid), None)
                continue
            if isinstance(result, asyncio.CancelledError):
                raise result
            attempts = self._attempts[(uidvalidity, uid)] = self._attempts.get((uidvalidity, uid), 0) + 1
            error = f"{type(result).__name__}: {result}"
            if attempts < self.max_attempts:
                self.out(f"imap {self.name}: UID {uid} failed ({error}), attempt {attempts} of {self.max_attempts}")
                outcome.retry.append(uid)
                continue
            detail = {"tenant": self.box.tenant, "mailbox": self.box.key, "uidvalidity": uidvalidity, "uid": uid,
                      "attempts": attempts}
            await self.run_db(self.store.imap_event, "quarantined", "imap-quarantined", error, iso(utcnow()),
                              detail, raw)
            self.out(f"imap {self.name}: UID {uid} quarantined after {attempts} attempts: {error}")
            self._attempts.pop((uidvalidity, uid), None)
            outcome.quarantined.append(uid)
        return outcome

    def _file_away(self, client: IMAPClient, capabilities: tuple[bytes, ...], outcome: _Batch) -> None:
        """After the commit: filed mail is marked read and moved; quarantined mail is flagged."""
        if outcome.filed:
            client.add_flags(outcome.filed, [SEEN])
            if b"MOVE" in capabilities:
                client.move(outcome.filed, self.box.processed_folder)
            else:
                client.copy(outcome.filed, self.box.processed_folder)
                client.delete_messages(outcome.filed)
                if b"UIDPLUS" in capabilities:
                    client.uid_expunge(outcome.filed)
                else:
                    client.expunge()
        if outcome.quarantined:
            client.add_flags(outcome.quarantined, [FLAGGED, QUARANTINE_KEYWORD])


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def _close(client: IMAPClient) -> None:
    """Log out politely, or just drop the connection when it is already broken."""
    try:
        client.logout()
    except Exception:  # the connection is gone anyway
        try:
            client.shutdown()
        except Exception:  # nothing left to close
            pass


def _text(error: BaseException) -> str:
    """The server's words: imapclient passes them as bytes, or as the str() of bytes."""
    value = error.args[0] if error.args else error
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text[2:-1] if text.startswith(("b'", 'b"')) and text[-1:] in "'\"" else text
