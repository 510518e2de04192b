"""Unit tests for triage.core.quotes: one group per language, then edge cases and properties.

The mails are written for these tests (procurement-desk style); the real-world corpora
are measured in test_corpus_trimmer.py.
"""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core.quotes import Reply, _classify, _Scan, is_sign_off, split_reply

QUOTE = "> Hello,\n>\n> the approval step was fixed yesterday.\n> Regards, Anna\n"


# --- English -------------------------------------------------------------------------

def test_gmail_attribution_with_quote() -> None:
    reply = split_reply(
        "Hi,\n\nInvoice INV-2291 is still not approved. Can you check the workflow?\n\n"
        "On Thu, 20 Nov 2026 at 07:00, Anna Support <support@vendor.example> wrote:\n\n" + QUOTE
    )
    assert reply.new_text == "Hi,\n\nInvoice INV-2291 is still not approved. Can you check the workflow?"
    assert reply.quoted.startswith("On Thu, 20 Nov 2026 at 07:00")
    assert reply.quoted.endswith("> Regards, Anna")
    assert reply.signature == ""


def test_gmail_attribution_wrapped_over_two_lines() -> None:
    reply = split_reply(
        "Approved, thanks.\n\nOn Thu, 20 Nov 2026 at 07:00, Anna Support <\n"
        "support@vendor.example> wrote:\n\n" + QUOTE
    )
    assert reply.new_text == "Approved, thanks."
    assert reply.quoted.startswith("On Thu, 20 Nov 2026 at 07:00, Anna Support <\nsupport@")


def test_forwarded_message_below_new_text() -> None:
    reply = split_reply(
        "Please see the supplier's complaint below and advise.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Nordic Paper AB <billing@nordicpaper.example>\n"
        "Date: Wed, 19 Nov 2026 at 16:12\n"
        "Subject: Overdue payment PO 4711\n"
        "To: <ap@acme.example>\n\n"
        "We have not received payment for PO 4711.\n"
    )
    assert reply.new_text == "Please see the supplier's complaint below and advise."
    assert reply.quoted.startswith("---------- Forwarded message ---------")
    assert "We have not received payment" in reply.quoted


def test_forward_without_comment_yields_the_forwarded_body() -> None:
    reply = split_reply(
        "---------- Forwarded message ---------\n"
        "From: Nordic Paper AB <billing@nordicpaper.example>\n"
        "Date: Wed, 19 Nov 2026 at 16:12\n"
        "Subject: Overdue payment PO 4711\n"
        "To: <ap@acme.example>\n\n"
        "We have not received payment for PO 4711.\n"
    )
    assert reply.new_text == "We have not received payment for PO 4711."
    assert reply.quoted.startswith("---------- Forwarded message")


def test_outlook_header_block_after_underscores() -> None:
    reply = split_reply(
        "Yes, please cancel it.\n\n________________________________\n"
        "From: Anna Support <support@vendor.example>\nSent: Thursday, November 20, 2026 7:00 AM\n"
        "To: Erik Johansson <erik@acme.example>\nSubject: RE: Order 4711\n\nShall we cancel?\n"
    )
    assert reply.new_text == "Yes, please cancel it."
    assert reply.quoted.startswith("From: Anna Support")


def test_mobile_forward_without_comment() -> None:
    reply = split_reply(
        "Sent from my iPhone\n\nBegin forwarded message:\n\nFrom: Nordic Paper AB <billing@nordicpaper.example>\n"
        "Subject: Invoice 123\nDate: 20 November 2026 at 07:00:00 CET\nTo: ap@acme.example\n\nPlease pay invoice 123.\n"
    )
    assert reply == Reply(
        "Please pay invoice 123.",
        "Begin forwarded message:\nFrom: Nordic Paper AB <billing@nordicpaper.example>\nSubject: Invoice 123\n"
        "Date: 20 November 2026 at 07:00:00 CET\nTo: ap@acme.example",
        "Sent from my iPhone",
    )


def test_quote_only_reply_is_unquoted() -> None:
    assert split_reply("> Is the order confirmed?\n> Please answer.").new_text == (
        "Is the order confirmed?\nPlease answer."
    )


def test_bottom_post_keeps_only_the_answer() -> None:
    reply = split_reply(
        "On Thu, 20 Nov 2026 at 07:00, Anna <anna@vendor.example> wrote:\n"
        "> Is the order confirmed?\n\nYes, confirmed today.\n"
    )
    assert reply.new_text == "Yes, confirmed today."
    assert "Is the order confirmed?" in reply.quoted


def test_inline_reply_keeps_questions_as_context() -> None:
    reply = split_reply(
        "See my answers below.\n\nOn Thu, 20 Nov 2026 at 07:00, Anna <anna@vendor.example> wrote:\n"
        "> Which warehouse?\nGothenburg.\n> Which date?\nMonday.\n"
    )
    assert "wrote:" not in reply.new_text
    assert reply.new_text.endswith("> Which warehouse?\nGothenburg.\n> Which date?\nMonday.")


def test_dash_signature() -> None:
    reply = split_reply("Please reset my password.\n\n-- \nErik Johansson\nACME AB\n")
    assert reply == Reply("Please reset my password.", "", "-- \nErik Johansson\nACME AB")


def test_device_signature() -> None:
    reply = split_reply("OK, go ahead.\n\nSent from my iPhone\n")
    assert reply == Reply("OK, go ahead.", "", "Sent from my iPhone")


def test_sign_off_with_name_and_title() -> None:
    reply = split_reply(
        "The delivery note is missing.\n\nBest regards,\nErik Johansson\nProcurement, ACME AB\n+46 31 123 45 67\n"
    )
    assert reply.new_text == "The delivery note is missing."
    assert reply.signature == "Best regards,\nErik Johansson\nProcurement, ACME AB\n+46 31 123 45 67"


def test_sign_off_followed_by_prose_is_body() -> None:
    text = "Hi Anna,\nThanks!\nCould you also send the credit note for order 4711 before Friday?\nErik"
    assert split_reply(text) == Reply(text, "", "")


def test_sign_off_followed_by_long_block_is_body() -> None:
    text = "Hi,\n\nKind regards\n" + "".join(f"line {n}\n" for n in range(8))
    assert split_reply(text).new_text == text.strip()


def test_message_that_is_only_a_thank_you() -> None:
    assert split_reply("Thank you!") == Reply("Thank you!", "", "")


def test_single_from_line_in_prose_is_not_a_header() -> None:
    text = "From: our warehouse in Gothenburg, as agreed.\nPlease confirm the date."
    assert split_reply(text).new_text == text


def test_route_in_a_delivery_note_is_not_a_header_block() -> None:
    text = "Shipping details for the new order:\nFrom: Gothenburg\nTo: Stockholm\n\nPlease book the truck."
    assert split_reply(text).new_text == text


# --- German --------------------------------------------------------------------------

def test_german_original_message_separator_and_sign_off() -> None:
    reply = split_reply(
        "Hallo,\n\nbitte die Bestellung 4711 stornieren.\n\nMit freundlichen Grüßen\nMax Mustermann\n\n"
        "-----Ursprüngliche Nachricht-----\nVon: Support <support@vendor.example>\n"
        "Gesendet: Donnerstag, 20. November 2026 07:00\nAn: Max Mustermann <max@kunde.example>\n"
        "Betreff: AW: Bestellung 4711\n\nSehr geehrter Herr Mustermann, ...\n"
    )
    assert reply.new_text == "Hallo,\n\nbitte die Bestellung 4711 stornieren."
    assert reply.signature == "Mit freundlichen Grüßen\nMax Mustermann"
    assert reply.quoted.startswith("-----Ursprüngliche Nachricht-----")


def test_german_gmail_attribution() -> None:
    reply = split_reply(
        "Danke, das passt.\n\nAm Do., 20. Nov. 2026 um 07:00 Uhr schrieb Anna Support <\n"
        "support@vendor.example>:\n\n" + QUOTE
    )
    assert reply.new_text == "Danke, das passt."


def test_german_device_line() -> None:
    reply = split_reply("Passt.\n\nVon meinem iPhone gesendet\n")
    assert reply == Reply("Passt.", "", "Von meinem iPhone gesendet")


def test_german_outlook_block_without_separator() -> None:
    reply = split_reply(
        "Erledigt.\n\nViele Grüße\nMax\n\nVon: Anna <anna@vendor.example>\nGesendet: Donnerstag, 20. November 2026 07:00\n"
        "An: Max <max@kunde.example>\nBetreff: Rechnung\n\nBitte prüfen.\n"
    )
    assert (reply.new_text, reply.signature) == ("Erledigt.", "Viele Grüße\nMax")


# --- Swedish -------------------------------------------------------------------------

def test_swedish_outlook_header_block() -> None:
    reply = split_reply(
        "Hej,\n\nleveransen kom inte fram. Kan ni kontrollera?\n\nMed vänliga hälsningar\nErik Johansson\n\n"
        "Från: Anna Support <support@vendor.example>\nSkickat: den 20 november 2026 07:00\n"
        "Till: Erik Johansson <erik@acme.example>\nÄmne: SV: Order 4711\n\nHej Erik, ordern är skickad.\n"
    )
    assert reply.new_text == "Hej,\n\nleveransen kom inte fram. Kan ni kontrollera?"
    assert reply.signature == "Med vänliga hälsningar\nErik Johansson"
    assert reply.quoted.startswith("Från: Anna Support")


def test_swedish_gmail_attribution_and_mvh() -> None:
    reply = split_reply(
        "Tack, det stämmer.\n\nMvh\nErik\n\nDen tors 20 nov. 2026 kl 07:00 skrev Anna Support "
        "<support@vendor.example>:\n\n" + QUOTE
    )
    assert (reply.new_text, reply.signature) == ("Tack, det stämmer.", "Mvh\nErik")


def test_swedish_device_line_and_forward() -> None:
    reply = split_reply(
        "Se nedan.\n\nSkickat från min iPhone\n\nVidarebefordrat meddelande:\n\n"
        "Från: Leverantör AB <info@lev.example>\nDatum: 20 november 2026 07:00:00 CET\n"
        "Till: inkop@acme.example\nÄmne: Faktura\n\nFakturan bifogas.\n"
    )
    assert (reply.new_text, reply.signature) == ("Se nedan.", "Skickat från min iPhone")
    assert reply.quoted.startswith("Vidarebefordrat meddelande:")


# --- Russian -------------------------------------------------------------------------

def test_russian_original_message_separator() -> None:
    reply = split_reply(
        "Добрый день!\n\nСчёт до сих пор не оплачен. Проверьте, пожалуйста.\n\nС уважением,\nИван Петров\n\n"
        "-----Исходное сообщение-----\nОт: Anna Support <support@vendor.example>\n"
        "Отправлено: 20 ноября 2026 г. 7:00\nКому: Иван Петров <ivan@acme.example>\nТема: Счёт 4711\n\nЗдравствуйте!\n"
    )
    assert reply.new_text == "Добрый день!\n\nСчёт до сих пор не оплачен. Проверьте, пожалуйста."
    assert reply.signature == "С уважением,\nИван Петров"
    assert reply.quoted.startswith("-----Исходное сообщение-----")


def test_russian_gmail_attribution_without_verb() -> None:
    reply = split_reply(
        "Спасибо, получили.\n\nчт, 20 нояб. 2026 г. в 07:00, Anna Support <support@vendor.example>:\n\n" + QUOTE
    )
    assert reply.new_text == "Спасибо, получили."


def test_russian_wrote_attribution_and_device_line() -> None:
    reply = split_reply(
        "Да, всё верно.\n\nОтправлено с iPhone\n\n"
        "20 нояб. 2026 г., в 07:00, Anna Support <support@vendor.example> написал(а):\n\n" + QUOTE
    )
    assert (reply.new_text, reply.signature) == ("Да, всё верно.", "Отправлено с iPhone")


# --- Ukrainian -----------------------------------------------------------------------

def test_ukrainian_outlook_header_block() -> None:
    reply = split_reply(
        "Доброго дня!\n\nНакладна досі не надійшла.\n\nЗ повагою,\nІван Петренко\n\n"
        "Від: Anna Support <support@vendor.example>\nНадіслано: 20 листопада 2026 р. 07:00\n"
        "Кому: Іван Петренко <ivan@acme.example>\nТема: Замовлення 4711\n\nДобрий день!\n"
    )
    assert reply.new_text == "Доброго дня!\n\nНакладна досі не надійшла."
    assert reply.signature == "З повагою,\nІван Петренко"
    assert reply.quoted.startswith("Від: Anna Support")


def test_ukrainian_gmail_attribution_and_thanks() -> None:
    reply = split_reply(
        "Рахунок отримали.\n\nДякую!\n\nчт, 20 лист. 2026 р. о 07:00 Anna Support "
        "<support@vendor.example> пише:\n\n" + QUOTE
    )
    assert (reply.new_text, reply.signature) == ("Рахунок отримали.", "Дякую!")


def test_ukrainian_original_message_and_wrote() -> None:
    separator = split_reply("Так.\n\n-----Оригінальне повідомлення-----\nВід: Anna\nТема: Рахунок\n\nТекст")
    assert separator.new_text == "Так."
    wrote = split_reply("Так.\n\n20.11.2026 07:00, Anna Support <support@vendor.example> написав(ла):\n" + QUOTE)
    assert wrote.new_text == "Так."


# --- Edge cases ----------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "\n\n", "\r\n"])
def test_empty_input(text: str) -> None:
    assert split_reply(text) == Reply("", "", "")


def test_windows_line_endings() -> None:
    reply = split_reply("Fine.\r\n\r\nOn Thu, 20 Nov 2026 at 07:00, Anna <a@vendor.example> wrote:\r\n> ok?\r\n")
    assert reply.new_text == "Fine."
    assert "\r" not in reply.quoted


def test_code_block_markers_are_not_signatures() -> None:
    text = "The config:\n\n```\n-- \nSent from my iPhone\n> not a quote\n```\n\nIs that right?"
    assert split_reply(text).new_text == text


def test_blank_line_in_unterminated_code_block() -> None:
    assert split_reply("0\n____\n```\n") == Reply("0", "", "____\n```")


def test_is_sign_off() -> None:
    assert is_sign_off("Best regards,")
    assert is_sign_off("Gruß Anna")
    assert is_sign_off("С уважением,")
    assert not is_sign_off("Thanks for the quick delivery")


# --- Properties and speed ------------------------------------------------------------

LINES = st.sampled_from([
    "", ">", "> quoted", ">> deeper", "-- ", "--", "____", "ᐧ", "Best regards,", "Дякую!",
    "On Thu, 20 Nov 2026 at 07:00, Anna <a@b.example> wrote:", "wrote:", "<a@b.example> wrote:",
    "Från: Anna", "From: Anna <a@b.example>", "Sent: Monday", "Subject: x", "Тема: x",
    "-----Original Message-----", "Sent from my iPhone", "```", "чт, 20 нояб. 2026 г. в 07:00, A <a@b.c>:",
    "2016-03-03 17:21 GMT+01:00 Some One", "C> supercite",
])
MAILS = st.lists(st.one_of(LINES, st.text(max_size=60)), max_size=25).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), MAILS))
def test_never_raises_and_only_returns_input_characters(text: str) -> None:
    reply = split_reply(text)
    assert set("".join(reply.new_text.split())) <= set(text)
    assert reply.new_text == reply.new_text.strip()
    if text.strip():
        assert reply.new_text or reply.quoted or reply.signature


PATHOLOGICAL = {
    "one long line": "a" * 1_000_000,
    "one long rule": "-" * 1_000_000,
    "one long quote": ">" * 1_000_000,
    "long line of attributions": "On 1 Jan 2020, a@b.c wrote " * 40_000,
    "alternating quote and text": "> q\nanswer\n" * 100_000,
    "attribution lines": "On 1 Jan 2020, Bob <b@c.d> wrote:\n" * 30_000,
    "header fields": "From: a\nTo: b\n" * 70_000,
    "sign-offs": "Thanks\n\n" * 120_000,
    "verbs and addresses": "x@y.z says: wrote: schrieb: " * 20_000 + "\n",
    "attribution-like lines": ("a@b wrote: " * 36 + "\n") * 2_500,
    "address lines": "Anna <anna@vendor.example>\n" * 35_000,
    "colon lines": "Note:\n" * 160_000,
}


@settings(max_examples=300, deadline=None)
@given(MAILS)
def test_first_look_agrees_with_the_classifier(text: str) -> None:
    """The per-text fast path may leave a line undecided, but never decide it differently."""
    scan = _Scan(text)
    for kind, stripped in zip(scan._kinds, scan.stripped):
        assert kind is None or kind == _classify(stripped), stripped


@pytest.mark.parametrize("shape", PATHOLOGICAL)
def test_pathological_megabyte_is_fast(shape: str) -> None:
    started = time.process_time()
    split_reply(PATHOLOGICAL[shape])
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize("footer", [
    "This e-mail and any attachments are confidential and intended solely for the addressee. If you have "
    "received it in error, please notify the sender and delete it.",
    "Detta e-postmeddelande kan innehålla konfidentiell information och är endast avsett för adressaten. Om du "
    "fått det av misstag, meddela avsändaren och radera meddelandet.",
    "Diese E-Mail enthält vertrauliche Informationen. Wenn Sie nicht der richtige Adressat sind, löschen Sie "
    "diese E-Mail bitte.",
    "Данное сообщение может содержать конфиденциальную информацию. Если вы получили это письмо по ошибке, "
    "удалите его.",
    "Цей лист може містити конфіденційну інформацію. Якщо ви отримали цей лист помилково, видаліть його.",
])
def test_a_legal_disclaimer_under_the_text_is_signature(footer: str) -> None:
    """Its words ("delete", "by mistake", "confidential") are not the sender's request."""
    got = split_reply(f"Hello,\n\nwhich moisture class applies in RFQ 340, 2 or 3?\n\nLars Nyberg\nSkogpack AB\n\n{footer}")
    assert got.new_text.endswith("Skogpack AB") and got.signature.startswith(footer[:20])


def test_a_mail_that_opens_like_a_disclaimer_is_still_text() -> None:
    assert split_reply("This email may contain a question: can I log in?").new_text.startswith("This email")
