"""Operator logs: one line per thing that happened, as text for a terminal or JSON for a shipper.

Every line is a message plus named fields (``ticket``, ``tenant``, ``rule``, ``to``, ``ms`` …),
so `grep rule=outbox-failed` works on text and a log shipper indexes the JSON keys. Mail
addresses are personal data: at ``info`` and above they are shortened (``t***@steelworks.lt``)
unless ``--log-level debug`` asks for everything, as Zulip's gateway does in system errors.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
_RESERVED = set(vars(logging.makeLogRecord({})))


def redact(address: str) -> str:
    """``tom.user@steelworks.lt`` -> ``t***@steelworks.lt`` unless debug logging is on."""
    if logging.getLogger("triage").isEnabledFor(logging.DEBUG) or "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def event(log: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """One line: ``message`` with ``fields`` (values that are None are left out)."""
    log.log(level, message, extra={k: v for k, v in fields.items() if v is not None})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2026-12-02T21:30:01Z info  triage.service.outbox delivered ticket=1042 to=t***@x.lt``"""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = " ".join(f"{k}={_quote(v)}" for k, v in _fields(record).items())
        line = f"{at} {record.levelname.lower():<7} {record.name} {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
                **_fields(record)}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (not text or any(c in text for c in ' "=\n')) else text


class _Lines(logging.Handler):
    """Hands records to a writer thread that wakes every FLUSH_SECONDS and writes what came
    in one go. A record costs the caller one deque append: no formatting, no copy, no lock
    and no wake-up per line (under a flood of mail each wake-up took the interpreter from
    the SMTP sessions). When QUEUE_LINES wait (nobody reads stderr), new lines are dropped
    and counted instead of blocking the service's event loop."""

    def __init__(self, stream: Any, formatter: logging.Formatter):
        super().__init__()
        self.stream = stream
        self.setFormatter(formatter)
        self.lines: deque[logging.LogRecord] = deque()
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) >= QUEUE_LINES:
            self.dropped += 1
            return
        self.lines.append(record)  # deque.append is atomic: the writer thread pops from the left

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        text = []
        while self.lines:
            text.append(self.format(self.lines.popleft()) + "\n")
        if not text:
            return
        try:
            self.stream.write("".join(text))
            self.stream.flush()
        except Exception:  # a closed or broken stderr: the lines are lost, the service goes on
            self.dropped += len(text)

    def close(self) -> None:
        """Write what is waiting and end the thread (a new configure(), or logging's shutdown
        when the process exits, which closes every handler)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)
        super().close()


_background: _Lines | None = None
QUEUE_LINES = 10_000  # log lines waiting for stderr at most; beyond, new ones are dropped
FLUSH_SECONDS = 0.05  # how often the writer thread writes the waiting lines


def configure(level: str = "info", fmt: str = "text", stream: Any = None, background: bool = True) -> None:
    """Send the ``triage`` and ``channels`` loggers to stderr in the chosen format. With
    ``background`` (the service) a thread writes the lines, so a slow or full stderr pipe
    never stalls SMTP sessions; the tests write directly."""
    global _background
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler: logging.Handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    # The lines show none of these, so a record need not look them up (each a cost per line
    # under a flood; the logging HOWTO's "Optimization" section lists exactly these switches).
    logging._srcfile = None  # type: ignore[attr-defined]  # no walk up the stack for file and line
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if background:
        if _background is not None:
            _background.close()
        handler = _background = _Lines(stream or sys.stderr, formatter)
    for name in ("triage", "channels"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
