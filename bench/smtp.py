#!/usr/bin/env python3
"""SMTP throughput of ``triage serve`` next to a bare aiosmtpd sink, in the same run.

A separate client process sends N messages (default 5,000) over C connections (default 8),
first to an aiosmtpd server whose handler only answers 250, then to ``triage serve`` (a
subprocess on a temporary copy of ``config/``: durable commits, replies held in the outbox),
and prints both rates, their ratio and the service's p50/p99 latency (MAIL FROM to the
250 after DATA). The ratio says what triage costs on top of merely receiving the mail.
The 250 means "in the inbound queue"; the bench then waits until the queue has drained,
checks that every accepted message is a ticket, and prints the time from each 250 to its
ticket (seen by polling the database every 20 ms), the CPU time per message of the SMTP
process (in all, and until the client has its last 250: the cost of accepting, next to
the sink's CPU per message) and of the worker processes, and their peak RSS.

    python bench/smtp.py [--messages 5000] [--connections 8] [--config DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BODIES = [
    ("en", "Cannot log in", "Hello,\n\nI cannot log in to the supplier portal: the password reset link has expired.\n"
     "Could you help?\n\nBest regards,\n{name}"),
    ("sv", "Fråga om anbudet", "Hej,\n\nVilka volymer gäller för 2025 i förfrågan RFQ-{i}, och är betalningsvillkoren "
     "30 eller 60 dagar?\n\nMed vänliga hälsningar\n{name}"),
    ("de", "Fehlermeldung beim Hochladen", "Guten Tag,\n\nbeim Hochladen unseres Angebots erscheint die Meldung "
     "'Fehler 500'. Was können wir tun?\n\nMit freundlichen Grüßen\n{name}"),
    ("uk", "Як додати колегу?", "Добрий день!\n\nЯк додати колегу до нашого облікового запису на порталі?\n\n"
     "Дякую,\n{name}"),
    ("ru", "Ставка не отправляется", "Здравствуйте!\n\nАукцион закрывается через 15 минут, а кнопка отправки "
     "ставки не работает.\n\n{name}"),
]


def make_messages(count: int, to: str) -> list[tuple[str, bytes]]:
    """(sender, raw) pairs: distinct senders and Message-IDs, several languages."""
    out = []
    for i in range(count):
        _lang, subject, body = BODIES[i % len(BODIES)]
        sender = f"user{i}@supplier{i % 97}.example"
        msg = EmailMessage()
        msg["From"] = f"User {i} <{sender}>"
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = f"<bench.{i}.{os.getpid()}@supplier{i % 97}.example>"
        msg.set_content(body.format(i=i, name=f"User {i}"))
        out.append((sender, msg.as_bytes().replace(b"\n", b"\r\n")))
    return out


# -- the client (its own process) ------------------------------------------------------------

async def _read_reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


async def _session(host: str, port: int, messages: list[tuple[str, bytes]], to: str,
                   latencies: list[float], accepted: dict[str, float]) -> int:
    """A minimal SMTP client (no pipelining): the client must cost less than the servers."""
    reader, writer = await asyncio.open_connection(host, port)
    await _read_reply(reader)
    writer.write(b"EHLO bench.example\r\n")
    await _read_reply(reader)
    ok = 0
    for sender, raw in messages:
        start = time.perf_counter()
        writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
        await _read_reply(reader)
        writer.write(f"RCPT TO:<{to}>\r\n".encode())
        await _read_reply(reader)
        writer.write(b"DATA\r\n")
        await _read_reply(reader)
        writer.write(raw + b"\r\n.\r\n")
        code = await _read_reply(reader)
        latencies.append(time.perf_counter() - start)
        ok += code == 250
        if code == 250:
            accepted[raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()] = time.time()
    writer.write(b"QUIT\r\n")
    await _read_reply(reader)
    writer.close()
    await writer.wait_closed()
    return ok


async def _client(host: str, port: int, count: int, connections: int, to: str) -> dict:
    messages = make_messages(count, to)
    latencies: list[float] = []
    accepted: dict[str, float] = {}
    start = time.perf_counter()
    oks = await asyncio.gather(*(_session(host, port, messages[i::connections], to, latencies, accepted)
                                 for i in range(connections)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {"messages": count, "accepted": sum(oks), "seconds": elapsed, "rate": count / elapsed,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "accepted_at": accepted}


def run_client(host: str, port: int, count: int, connections: int, to: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--role", "client", "--host", host, "--port", str(port),
                          "--messages", str(count), "--connections", str(connections), "--to", to],
                         capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)


# -- the bare sink (its own process) -------------------------------------------------------

class _Sink:
    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's hook
        return "250 OK"


async def _sink() -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(_Sink(), hostname="sink"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def _start(cmd: list[str], ready: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"{cmd} exited: {''.join(lines)}")
        lines.append(line)
        if ready in line or ready == "":
            # keep reading its output (log lines) so a full pipe never stalls it
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
            return proc, lines
    raise SystemExit(f"{cmd} did not start in time")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_config(source: Path, folder: Path) -> Path:
    """A copy of the configuration with its database in ``folder``, free ports, no relay."""
    config = folder / "config"
    shutil.copytree(source, config)
    text = (config / "triage.toml").read_text()
    data = tomllib.loads(text)
    text = text.replace(f'database = "{data["service"]["database"]}"', 'database = "triage.db"')
    text = text.replace(f'listen = "{data["email"]["listen"]}"', 'listen = "127.0.0.1:0"')
    text = text.replace(f'listen = "{data["web"]["listen"]}"', 'listen = "127.0.0.1:0"')
    (config / "triage.toml").write_text(text)
    return config


class TicketWatch(threading.Thread):
    """Notes when each inbound message first shows up in the database (polling every 20 ms)."""

    def __init__(self, database: Path):
        super().__init__(daemon=True)
        self.database = database
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = 0
        while not self.stop.is_set():
            try:
                conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5)
                try:
                    rows = conn.execute("SELECT id, message_id FROM messages WHERE direction = 'in' AND id > ? "
                                        "ORDER BY id", [last]).fetchall()
                finally:
                    conn.close()
            except sqlite3.Error:  # not created yet
                rows = []
            now = time.time()
            for row_id, message_id in rows:
                self.seen.setdefault(message_id, now)
                last = row_id
            self.stop.wait(0.02)


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of a process (VmHWM, Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pipeline_rate(config, to: str, count: int) -> float:  # noqa: ANN001 - a triage Config
    """Messages per second of parse + Pipeline.run in this process: the ceiling of one service core."""
    from triage.core.parse import parse_email
    from triage.core.pipeline import Pipeline

    pipeline = Pipeline(config)
    messages = make_messages(count, to)
    pipeline.run(parse_email(messages[0][1], [to]), 1000)  # warm caches (language models load lazily)
    start = time.perf_counter()
    for i, (_, raw) in enumerate(messages):
        pipeline.run(parse_email(raw, [to]), 1001 + i)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--config", default=str(REPO / "config"))
    parser.add_argument("--role", choices=["bench", "client", "sink"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--to", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        print(json.dumps(asyncio.run(_client(args.host, args.port, args.messages, args.connections, args.to))))
        return
    if args.role == "sink":
        asyncio.run(_sink())
        return

    sys.path.insert(0, str(REPO))
    from triage.config import load_config

    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        config_dir = bench_config(Path(args.config), Path(tmp))
        config = load_config(config_dir)
        to = next(iter(config.tenants.values())).support_addresses[0]

        sink, lines = _start([sys.executable, __file__, "--role", "sink"], "")
        try:
            sink_before = cpu_seconds(sink.pid)
            bare = run_client("127.0.0.1", int(lines[0]), args.messages, args.connections, to)
            bare["cpu_ms"] = (cpu_seconds(sink.pid) - sink_before) / args.messages * 1000
        finally:
            _stop(sink)

        service, lines = _start([sys.executable, "-m", "triage.cli", "--config", str(config_dir), "serve"],
                                "triage serve: ready")
        watch = TicketWatch(config.database)
        watch.start()
        try:
            port = int(next(line for line in lines if line.startswith("triage serve: smtp")).rpartition(":")[2])
            queue_line = next(line for line in lines if line.startswith("triage serve: queue"))
            workers = [int(pid) for pid in queue_line.rpartition(")")[2].split()[-1].split(",")]
            cpu_before = cpu_seconds(service.pid)
            workers_before = sum(cpu_seconds(pid) for pid in workers)
            served = run_client("127.0.0.1", port, args.messages, args.connections, to)
            served["accept_cpu_ms"] = (cpu_seconds(service.pid) - cpu_before) / args.messages * 1000
            accepted_at = served.pop("accepted_at")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not set(accepted_at) <= set(watch.seen):
                time.sleep(0.1)
            drained = time.time()
            served["cpu_ms"] = (cpu_seconds(service.pid) - cpu_before) / args.messages * 1000
            served["worker_cpu_ms"] = (sum(cpu_seconds(pid) for pid in workers) - workers_before) / args.messages * 1000
            served["rss"] = peak_rss_mib(service.pid)
            served["worker_rss"] = [peak_rss_mib(pid) for pid in workers]
        finally:
            watch.stop.set()
            _stop(service)
        from triage.store import Store

        tickets = Store(config.database).db["tickets"].count
        waits = sorted(watch.seen[m] - t for m, t in accepted_at.items() if m in watch.seen)
        first_250 = min(accepted_at.values())
        ceiling = pipeline_rate(config, to, min(args.messages, 500))

    print(f"messages {args.messages} over {args.connections} connections, one client process")
    print(f"bare aiosmtpd sink : {bare['rate']:8.1f} msg/s  (p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms)"
          f"  CPU {bare['cpu_ms']:.2f} ms per message")
    print(f"triage serve       : {served['rate']:8.1f} msg/s  (p50 {served['p50_ms']:.1f} ms, p99 {served['p99_ms']:.1f} ms)"
          f"  accepted {served['accepted']}, tickets {tickets}")
    print(f"ratio service/sink : {served['rate'] / bare['rate']:.3f}")
    wq = statistics.quantiles(waits, n=100) if len(waits) > 1 else [0.0] * 99
    print(f"250 → ticket       : p50 {wq[49] * 1000:.0f} ms, p99 {wq[98] * 1000:.0f} ms; all {len(waits)} filed "
          f"{drained - first_250:.1f} s after the first 250 ({len(waits) / max(drained - first_250, 1e-9):.1f} msg/s "
          f"end to end)")
    print(f"CPU per message    : SMTP/writer process {served['cpu_ms']:.2f} ms ({served['accept_cpu_ms']:.2f} ms of it "
          f"until the client's last 250), workers {served['worker_cpu_ms']:.2f} ms")
    print(f"peak RSS           : SMTP/writer process {served['rss']:.0f} MiB, workers "
          + ", ".join(f"{r:.0f} MiB" for r in served["worker_rss"]))
    print(f"for scale: the pipeline alone (parse → render, one core, no SMTP, no SQLite) runs {ceiling:.1f} msg/s "
          f"({1000 / ceiling:.1f} ms per message)")


if __name__ == "__main__":
    main()
