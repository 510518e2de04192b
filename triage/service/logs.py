"""Operator logs: one line per thing that happened, as text for a terminal or JSON for a shipper.

Every line is a message plus named fields (``ticket``, ``tenant``, ``rule``, ``to``, ``ms`` …),
so `grep rule=outbox-failed` works on text and a log shipper indexes the JSON keys. Mail
addresses are personal data: at ``info`` and above they are shortened (``t***@steelworks.lt``)
unless ``--log-level debug`` asks for everything, as Zulip's gateway does in system errors.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
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


class _Dropping(logging.handlers.QueueHandler):
    """Hands records to the writer thread; when the queue is full (nobody reads stderr), the
    line is dropped and counted instead of blocking the service's event loop."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _Dropping.dropped += 1


_listener: logging.handlers.QueueListener | None = None
QUEUE_LINES = 10_000  # log lines waiting for stderr at most; beyond, new ones are dropped


def configure(level: str = "info", fmt: str = "text", stream: Any = None, background: bool = True) -> None:
    """Send the ``triage`` and ``channels`` loggers to stderr in the chosen format. With
    ``background`` (the service) a thread writes the lines, so a slow or full stderr pipe
    never stalls SMTP sessions; the tests write directly."""
    global _listener
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler: logging.Handler = writer
    if background:
        if _listener is not None:
            _listener.stop()
        lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LINES)
        handler = _Dropping(lines)
        _listener = logging.handlers.QueueListener(lines, writer)
        _listener.start()
    for name in ("triage", "channels"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
