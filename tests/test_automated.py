"""Machine mail is recognised by every check the mature helpdesks use."""
from __future__ import annotations

import pytest

from tests.conftest import make_email
from triage.core.automated import Automation, detect
from triage.core.lexicon import load_lexicon
from triage.core.parse import parse_email

LEXICON = load_lexicon()


def _detect(raw: bytes) -> Automation:
    return detect(parse_email(raw), LEXICON)


def _kind(raw: bytes) -> str:
    return _detect(raw).kind


@pytest.mark.parametrize("headers, kind", [
    ({"Auto-Submitted": "auto-replied"}, "auto_reply"),
    ({"Auto-Submitted": "auto-generated"}, "bulk"),  # a notification (RFC 3834), not a reply
    ({"X-Autoreply": "yes"}, "auto_reply"),
    ({"X-Autorespond": "yes"}, "auto_reply"),
    ({"X-AutoReply-From": "a@b.c"}, "auto_reply"),
    ({"X-Mail-Autoreply": "1"}, "auto_reply"),
    ({"X-Auto-Response-Suppress": "OOF"}, "auto_reply"),
    ({"X-Loop": "helpdesk"}, "auto_reply"),
    ({"Precedence": "bulk"}, "bulk"),
    ({"Precedence": "junk"}, "bulk"),
    ({"Precedence": "list"}, "bulk"),
    ({"X-Precedence": "bulk"}, "bulk"),
    ({"Precedence": "auto_reply"}, "auto_reply"),
    ({"List-Id": "<news.example.com>"}, "bulk"),
    ({"List-Unsubscribe": "<mailto:u@example.com>"}, "bulk"),
    ({"X-Failed-Recipients": "gone@example.com"}, "bounce"),
    ({"Return-Path": "<>"}, "auto_reply"),
])
def test_header_checks(headers, kind):
    assert _kind(make_email(headers=headers)) == kind


def test_auto_submitted_no_is_human():
    assert _kind(make_email(headers={"Auto-Submitted": "no"})) == ""


def test_plain_human_mail_is_not_automated():
    assert _kind(make_email(subject="Cannot log in", body="My password does not work.")) == ""


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com"])
def test_system_senders_are_bounces(sender):
    assert _kind(make_email(sender=sender, subject="Mail delivery failed")) == "bounce"


def test_dsn_report_with_failed_recipients():
    raw = (b"From: MAILER-DAEMON@mx.example.com\r\nTo: acme@support.test\r\nSubject: Undelivered Mail\r\n"
           b"Message-ID: <dsn1@x>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
           b"Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
           b"--B--\r\n")
    auto = _detect(raw)
    assert auto.kind == "bounce" and auto.failed_recipients == ["gone@example.com"] and auto.permanent
    assert "auto-dsn-report" in auto.reasons


POSTFIX = ("This is the mail system at host mx2.fenwick.example.\n\nI'm sorry to have to inform you that your "
           "message could not be delivered to one or more recipients.\n\n<j.doe@fenwick.example>: host "
           "mx2.fenwick.example said: 550 5.1.1 User unknown (in reply to RCPT TO command)")


def test_a_bounce_that_lost_its_headers_is_known_by_its_subject_and_opening():
    """A bounce re-sent by a mailbox rule comes from a person's address with no machine header;
    the delivery software's own opening under a bounce subject still tells it. The same text
    under a person's question, or forwarded, is not this sign."""
    auto = _detect(make_email(sender="mikael.berg@nordsteel.se", subject="Undelivered Mail Returned to Sender",
                              body=POSTFIX))
    assert auto.kind == "bounce" and "auto-bounce-subject-and-opening" in auto.reasons
    asked = "Hello, every mail I send to our buyer comes back like this, what is wrong?\n\n" + "x " * 300 + POSTFIX
    assert "auto-bounce-subject-and-opening" not in _detect(make_email(subject="Undelivered Mail", body=asked)).reasons
    assert _kind(make_email(subject="Fwd: Undelivered Mail Returned to Sender", body=POSTFIX)) == ""
    assert _kind(make_email(subject="Mail to the buyer", body=POSTFIX)) == ""  # the opening alone proves nothing


@pytest.mark.parametrize("asked", [
    "Hello, every mail I send to our buyer comes back like this, what is wrong?",
    "Hej! Alla mejl till inköparen studsar, se nedan. Kan ni hjälpa oss?",
    "Please help us, we cannot log in to the supplier portal and our mails to the buyer bounce as well.",
])
def test_a_person_asking_above_a_pasted_bounce_is_a_person(asked):
    """A supplier keeps the bounce's subject, asks about it and pastes the bounce below: with no
    machine sign but the subject, their own words come first, so the mail gets an answer and no
    address is taken for a bounced one. The bounce alone under the same subject is a bounce."""
    auto = _detect(make_email(sender="mikael.berg@nordsteel.se", subject="Undelivered Mail Returned to Sender",
                              body=f"{asked}\n\n{POSTFIX}"))
    assert auto.kind == "" and auto.reasons == ["auto-person-question-over-pasted-bounce"]
    assert auto.failed_recipients == []
    google = "Learn more at https://support.google.com/mail/?p=NoSuchUser\n\n" + POSTFIX  # a ? in an address asks nothing
    for body in (POSTFIX, google):
        auto = _detect(make_email(sender="mikael.berg@nordsteel.se", subject="Undelivered Mail Returned to Sender",
                                  body=body))
        assert auto.kind == "bounce" and auto.failed_recipients == ["j.doe@fenwick.example"]


@pytest.mark.parametrize("subject", ["Automatic reply: [#1042] Your request", "Autosvar: Ärende",
                                     "Автоответ: Re: заявка", "Автовідповідь: запит",
                                     "Abwesenheitsnotiz: Ihre Anfrage", "Out of Office: ticket"])
def test_out_of_office_subjects_in_every_language(subject):
    assert _kind(make_email(subject=subject, body="I am away.")) == "auto_reply"


@pytest.mark.parametrize("subject", ["RE: Out of Office: [Ticket #4411] Upload error",
                                     "AW: Abwesenheitsnotiz / Einladung abgelaufen", "SV: Frånvaro: inloggning"])
def test_a_person_answering_under_an_out_of_office_subject_is_a_person(subject):
    """Back from holiday, a supplier replies in the thread of their own out-of-office: the
    subject still says so, but a reply prefix means a person wrote it (no headers say otherwise)."""
    raw = make_email(subject=subject, body="Sorry for the late answer, I was on holiday. The upload still fails "
                     "with error 413 when I send the certificate. Can you help?")
    auto = _detect(raw)
    assert auto.kind != "auto_reply", auto.reasons


@pytest.mark.parametrize("subject, body, person", [
    ("Autosvar: Re: [#1001] inloggning", "Förlåt för autosvaret, jag var på mässa. Länken för nytt lösenord "
     "fungerar fortfarande inte. Vad gör jag för fel?", True),
    ("Automatic reply: [#1001] Upload error", "Sorry about my auto-reply, I am back. Where do I see the error log?",
     True),
    ("Automatic reply: [#1001] Upload error", "I am out of the office until Monday with limited access to e-mail. "
     "For urgent matters please contact my colleague.", False),
    ("Автоматический ответ: Re: [#1001] Не могу войти", "Это уже не автоответ, я вернулся из отпуска. По вашей "
     "инструкции сбросил пароль, но при входе всё равно пишет, что учётная запись заблокирована.", True),
    ("Abwesenheitsnotiz: Ihre Anfrage", "", False),
    ("Automatiskt svar: Frånvaro", "Jag är ledig till 3 januari. Hej igen - glöm autosvaret, jag är här. "
     "Mitt konto är spärrat, vad gör jag?", True),
    ("Automatic reply: Re: Ticket 123", "I am out of the office until Monday with limited access to e-mail. "
     "Need help with a login problem or a password reset? Please contact our IT desk.", False),
    ("Automatic reply: Re: login", "I am on holiday and will be back again on 12 January. For urgent matters "
     "contact my colleague.", False),
])
def test_a_question_under_the_autoresponders_own_subject_is_a_person(subject, body, person):
    """An autoresponder does not ask: a question under its subject is the person writing
    again, unless the body itself reads as an out-of-office."""
    auto = _detect(make_email(subject=subject, body=body))
    assert (auto.kind != "auto_reply") is person, auto.reasons


@pytest.mark.parametrize("body", [
    "Our administrator is on parental leave from this week until March. Please give my account admin rights "
    "so I can add users and change our company details while she is away.",
    "Hej, jag är inte ledig, det var min kollegas autosvar. Jag kommer fortfarande inte in i portalen: "
    "lösenordet godtas men sms-koden för tvåstegsverifieringen kommer aldrig.",
    "Unser Einkäufer ist bis einschließlich Freitag im Urlaub. Bitte schalten Sie für mich den Zugang frei, "
    "mein Login wird seit gestern mit falschem Passwort abgelehnt.",
    "Я не в отпуске, это был автоответ коллеги. Не могу войти в портал: пароль не подходит, сброс пароля не приходит.",
])
def test_out_of_office_wording_in_a_request_for_help_is_a_person(body):
    """Someone mentioning leave (their colleague's, or denying their own) while asking for
    technical or account help is a person and must never be suppressed."""
    auto = _detect(make_email(subject="Login", body=body))
    assert auto.kind == "", auto.reasons


@pytest.mark.parametrize("body", [
    "I am on parental leave from 1 December until June with no access to e-mail. "
    "For questions about your account please contact our office.",
    "Jag är föräldraledig till och med 31 maj och läser inte min e-post. Ditt meddelande vidarebefordras inte.",
])
def test_a_real_out_of_office_naming_an_account_is_still_automatic(body):
    auto = _detect(make_email(subject="Frånvaro", body=body))
    assert auto.kind == "auto_reply", auto.reasons


@pytest.mark.parametrize("body", [
    "Dear customer, the registration of your domain example-steel.com expires tonight. Renew now for only "
    "$19.99 a year, otherwise the domain name will be deleted and every mailbox stops working.",
    "Sehr geehrter Kunde, morgen wird die Domain example-steel.de endgültig gelöscht. Jetzt verlängern für nur "
    "29,00 EUR: https://renew.example/d",
    "Hej! Domänen example-steel.se raderas i natt. Förnya nu för endast 199 kr via länken nedan.",
    "Уважаемый клиент! Ваш домен example-steel.ru будет удалён сегодня в 23:59. Продлите сейчас всего за 990 руб.",
    "Шановний клієнте! Ваш домен example-steel.ua буде видалено сьогодні. Продовжте зараз лише за 450 грн.",
])
def test_domain_renewal_scams_are_bulk_in_every_language(body):
    """Registrar scams ("your domain is deleted tonight, renew now for only …") come without
    list headers; their wording is enough, and they must never be answered or relayed."""
    auto = _detect(make_email(sender="service@renew-domains.example", subject="Last notice", body=body))
    assert auto.kind == "bulk", auto.reasons


@pytest.mark.parametrize("body", [
    "Dear Customer, invoice INV-5521 for EUR 2,340.00 is now overdue. To avoid suspension of services and a "
    "late-payment fee, please settle the outstanding balance within 48 hours using the secure link below. "
    "If you have already paid, please disregard this notice.",
    "Hej! Faktura 88123 för registrering i företagskatalogen är obetald. Betala senast inom 5 dagar för att "
    "undvika påminnelseavgift och inkasso. Fakturan hittar du här: https://pay.example/88123",
    "Sehr geehrte Damen und Herren, um eine Sperrung Ihrer Dienste zu vermeiden, überweisen Sie den Betrag über "
    "den folgenden Link. Sollten Sie bereits bezahlt haben, betrachten Sie diese letzte Mahnung als gegenstandslos.",
    "Уважаемый клиент! Оплатить счёт необходимо в течение 3 банковских дней, иначе доступ к услугам будет "
    "приостановлен. Если вы уже оплатили, не обращайте внимания.",
    "Шановний клієнте! Сплатити рахунок необхідно протягом 3 банківських днів, інакше доступ до послуг буде "
    "призупинено. Якщо ви вже сплатили, проігноруйте цей лист.",
])
def test_fake_invoices_demanding_payment_are_bulk_in_every_language(body):
    """An invoice nobody ordered, with threats and a payment link, is spam: never a business
    question to redirect or relay."""
    auto = _detect(make_email(sender="billing@invoice-desk.example", subject="Overdue invoice", body=body))
    assert auto.kind == "bulk", auto.reasons


@pytest.mark.parametrize("body", [
    "Hello, our invoice 4471 for the October deliveries is now 21 days overdue. When will it be paid? "
    "The payment terms were 30 days.",
    "Добрый день, наш счёт на оплату № 12 от 01.11 до сих пор не оплачен. Подскажите, пожалуйста, сроки оплаты.",
])
def test_a_supplier_asking_about_an_unpaid_invoice_is_a_person(body):
    auto = _detect(make_email(subject="Invoice 4471", body=body))
    assert auto.kind == "", auto.reasons


@pytest.mark.parametrize("body", [
    "Deal 'Nordvik cable' changed status to 'awaiting customer'.\n\n"
    "This message was generated automatically, please do not reply to this e-mail.",
    "This is an automated message from Stockwatch: 12 items are below their reorder point. Log in for details.",
    "Detta är ett automatiskt meddelande från Lagerkoll. 12 artiklar ligger under beställningspunkt. "
    "Svara inte på detta mejl.",
    "Dies ist eine automatische Benachrichtigung: 12 Artikel liegen unter dem Meldebestand.",
])
def test_a_system_notification_is_bulk_not_an_out_of_office(body):
    """"This message was created automatically, do not reply" is machine mail, but says
    nothing about anybody being away."""
    raw = make_email(sender="notify@crm.example", subject="Status report", body=body,
                     headers={"Auto-Submitted": "auto-generated"})
    auto = _detect(raw)
    assert auto.kind == "bulk" and "auto-out-of-office-body" not in auto.reasons, auto.reasons


@pytest.mark.parametrize("body", [
    "This is an automatic reply: I am away until Monday 12 January.",
    "Detta är ett automatiskt svar. Jag är på semester till och med 15 augusti.",
    "Dies ist eine automatische Antwort. Ich bin bis einschließlich Freitag nicht im Büro.",
])
def test_an_automatic_reply_saying_so_is_still_an_out_of_office(body):
    auto = _detect(make_email(subject="Re: Status", body=body))
    assert auto.kind == "auto_reply", auto.reasons
