"""``triage demo``: a newcomer sees the service work within a minute.

It mails a handful of typical messages, in several languages, to the running
``triage serve`` over SMTP, exactly as a mail server would, then reads the tickets and
the outgoing mail they produced from the database and prints them.
"""
from __future__ import annotations

import json
import smtplib
import time
import uuid
from email.message import EmailMessage

from triage import command
from triage.config import Config, Tenant, split_listen
from triage.store import Store

# (sender name, sender address, subject, body): technical, business, account, urgent, automatic.
# The senders are the demo tenant's directory (config/tenants/borealis.users.csv) where it
# matters: Oksana's invitation is renewed because she writes from the invited address.
SAMPLES = [
    ("Mikael Berg", "mikael.berg@nordsteel.se", "Cannot log in",
     "Hello,\n\nI cannot log in to the supplier portal. The password reset link says it has expired.\n"
     "Could you help?\n\nBest regards,\nMikael Berg"),
    ("Sofia Lind", "sofia.lind@lindsmide.se", "Fråga om anbudsunderlaget",
     "Hej,\n\nVi har en fråga om förfrågningsunderlaget i RFQ 2024-117: vilka volymer gäller för 2025 "
     "och är betalningsvillkoren 30 eller 60 dagar?\n\nMed vänliga hälsningar\nSofia Lind"),
    ("Оксана Мельник", "o.melnyk@dniprometal.com.ua", "Запрошення на портал",
     "Добрий день!\n\nПосилання із запрошення на портал постачальників Borealis більше не працює, "
     "пише, що термін дії минув. Надішліть, будь ласка, нове запрошення.\n\nДякую,\nОксана Мельник"),
    ("Anna Schulz", "anna.schulz@rheinkabel.de", "Zertifikat hochladen",
     "Guten Tag,\n\nwie kann ich unser ISO-9001-Zertifikat im Firmenprofil hochladen? Ich finde die "
     "Schaltfläche nicht.\n\nMit freundlichen Grüßen\nAnna Schulz"),
    ("Иван Петров", "ivan.petrov@uralsteel.ru", "СРОЧНО: аукцион закрывается",
     "Здравствуйте!\n\nАукцион закрывается через 10 минут, а кнопка «Отправить ставку» не работает. "
     "Помогите срочно!\n\nИван Петров"),
    ("Mikael Berg", "mikael.berg@nordsteel.se", "Automatic reply: out of office",
     "I am out of the office until Monday with limited access to email."),
]


def _message(tenant: Tenant, authserv_id: str, name: str, sender: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    if authserv_id:  # the demo plays the receiving MX, which adds its DMARC verdict
        domain = sender.rpartition("@")[2]
        msg["Authentication-Results"] = f"{authserv_id}; dmarc=pass header.from={domain}"
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = tenant.support_addresses[0]
    msg["Subject"] = subject
    msg["Message-ID"] = f"<demo.{uuid.uuid4().hex}@{sender.rpartition('@')[2]}>"
    if subject.startswith("Automatic reply"):
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(body)
    return msg


def run_demo(config: Config, tenant_slug: str | None = None) -> int:
    """Send the samples, then print each ticket with its decision and the mail it produced."""
    tenant = config.tenants.get(tenant_slug) if tenant_slug else next(iter(config.tenants.values()))
    if tenant is None:
        print(f"triage demo: unknown tenant {tenant_slug!r} (known: {', '.join(sorted(config.tenants))})")
        return 2
    host, port = split_listen(config.email["listen"])
    ids = []
    try:
        with smtplib.SMTP(host, port, timeout=30) as smtp:
            for name, sender, subject, body in SAMPLES:
                trusted = config.email["trusted_authserv_ids"]
                msg = _message(tenant, trusted[0] if trusted else "", name, sender, subject, body)
                smtp.send_message(msg)
                ids.append(msg["Message-ID"])
    except OSError as e:
        print(f"triage demo: cannot deliver to {host}:{port} ({e}). Is `triage serve` running "
              "with the same --config?")
        return 1
    print(f"sent {len(ids)} messages to {tenant.support_addresses[0]} via smtp {host}:{port}\n")
    store = Store(config.database)
    deadline = time.monotonic() + 30  # 250 means queued: the workers file the tickets a moment later
    while time.monotonic() < deadline and not all(store.inbound(m) for m in ids):
        time.sleep(0.2)
    for message_id in ids:
        _show(store, message_id)
    run = command()
    print(f"More: {run} tickets, {run} ticket N, {run} outbox, {run} search WORD")
    return 0


def _show(store: Store, message_id: str) -> None:
    found = store.inbound(message_id)
    if found is None:
        print(f"{message_id}: not found in {store.path} (does the service use another database?)\n")
        return
    ticket = store.ticket(found["ticket"])
    assert ticket is not None
    decision = next((e for e in store.events(ticket["id"]) if e["kind"] == "decision"
                     and e["message"] == found["id"]), None)
    print(f"#{ticket['number']} {ticket['subject']!r} from {ticket['requester_address']}")
    print(f"  {ticket['category']}/{ticket['intent']}, language {ticket['language']}, "
          f"priority {ticket['priority']}, requester {ticket['requester']}, {ticket['trust']}")
    if decision:
        print(f"  actions: {decision['outcome']}")
        print(f"  because: {', '.join(json.loads(decision['rules']))}")
    for event in store.events(ticket["id"]):
        if event["kind"] in ("reply-suppressed", "relay-suppressed"):
            print(f"  {event['kind']}: {', '.join(json.loads(event['rules']))}")
    for m in store.conversation(ticket["id"]):
        if m["direction"] != "out":
            continue
        to = json.loads(m["recipients"])
        if to != [ticket["requester_address"]]:  # the relay: internal, shown by `triage ticket N`
            print(f"  relayed to the company contacts ({', '.join(to)}): {m['subject']!r}")
            continue
        print(f"  reply to {to[0]}: {m['subject']!r}")
        for line in (m["text"] or "").strip().splitlines():
            print(f"    | {line}")
    print()
