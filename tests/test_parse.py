"""Parsing: charsets, HTML-only mail, attachments, broken input never raises."""
from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core.parse import parse_chat, parse_email


def test_plain_mail_fields():
    raw = (b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <JM@Example.DE>\r\nTo: acme@support.test\r\n"
           b"Cc: Other <other@x.se>\r\nSubject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\nMessage-ID: <abc@x>\r\n"
           b"In-Reply-To: <t1.xyz@support.test>\r\nReferences: <a@x> <t1.xyz@support.test>\r\n\r\nHallo\r\n")
    msg = parse_email(raw)
    assert msg.sender == "jm@example.de" and msg.sender_name == "Jürgen Müller"
    assert msg.subject == "Привет" and msg.id == "<abc@x>"
    assert msg.recipients == ["acme@support.test", "other@x.se"]
    assert msg.in_reply_to == "<t1.xyz@support.test>" and msg.references[-1] == "<t1.xyz@support.test>"


def test_envelope_recipients_are_added():
    msg = parse_email(b"From: a@b.se\r\nSubject: x\r\n\r\nbody", ["Acme@Support.test"])
    assert msg.recipients == ["acme@support.test"]


def test_html_only_mail_becomes_text():
    m = EmailMessage()
    m["From"] = "a@b.se"
    m["Subject"] = "html"
    m.set_content("<html><body><p>Kan inte <b>logga in</b></p><script>x()</script></body></html>", subtype="html")
    msg = parse_email(bytes(m))
    assert "Kan inte logga in" in msg.text and "<b>" not in msg.text


def test_attachments_keep_name_type_size():
    m = EmailMessage()
    m["From"] = "a@b.se"
    m.set_content("see attached")
    m.add_attachment(b"%PDF-1.4 " + b"x" * 100, maintype="application", subtype="pdf", filename="offer.pdf")
    msg = parse_email(bytes(m))
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [("offer.pdf", "application/pdf", 109)]
    assert "see attached" in msg.text


def test_unknown_charset_falls_back_and_is_recorded():
    raw = b"From: a@b.se\r\nContent-Type: text/plain; charset=x-unknown-42\r\n\r\nGr\xc3\xbc\xc3\x9fe"
    msg = parse_email(raw)
    assert msg.text.startswith("Grüße") and any("x-unknown-42" in d for d in msg.defects)


def test_raw_8bit_header_decoded_with_message_charset():
    raw = "From: a@b.ru\r\nSubject: Проблема со входом\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\nтекст".encode("koi8-r")
    assert parse_email(raw).subject == "Проблема со входом"


def test_junk_before_headers_is_skipped():
    raw = b"From someone@example.com Mon Jan 1 00:00:00 2024\nJunk line\nFrom: a@b.se\nSubject: hi\n\nbody\n"
    msg = parse_email(raw)
    assert msg.sender == "a@b.se" and msg.subject == "hi"


def test_chat_line():
    msg = parse_chat({"id": "w1", "channel": "widget", "tenant": "acme", "from": "A@B.se", "text": "hej", "user_hash": "ab"})
    assert (msg.channel, msg.sender, msg.tenant_hint, msg.user_hash, msg.new_text) == ("widget", "a@b.se", "acme", "ab", "hej")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(data):
    msg = parse_email(data)
    assert msg.channel == "email"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    b"From: a@b.se\r\n", b"Subject: =?utf-8?q?bad=ZZ?=\r\n", b"Content-Type: multipart/mixed; boundary=\"x\"\r\n",
    b"Content-Type: text/plain; charset=utf-7\r\n", b"Content-Transfer-Encoding: base64\r\n", b"\r\n",
    b"--x\r\n", b"--x--\r\n", b"=?iso-8859-1?q?=E9?=\r\n", b"\xff\xfe\x00", b"Date: yesterday\r\n",
    b"To: <<<@>>>\r\n", b"Message-ID: <<>>\r\n", b"Content-Type: message/rfc822\r\n", b"body line\r\n",
]), max_size=40))
def test_mutated_mime_never_raises(chunks):
    parse_email(b"".join(chunks))


# --- Real-mail traps (found in ../shared/corpora; see tests/test_corpus_zammad.py), rebuilt here
# so they are tested on every clone.

def _q(data: bytes) -> str:
    """RFC 2047 Q-encoding of every byte."""
    return "".join(f"={b:02X}" for b in data)


def test_encoded_word_labelled_gb2312_holding_gbk_characters():
    word = "=?GB2312?Q?" + _q("內應力".encode("gbk")) + "?="
    assert parse_email(f"From: a@b.cn\r\nSubject: {word}\r\n\r\nx".encode()).subject == "內應力"


def test_raw_shift_jis_header_in_a_mail_declaring_iso_2022_jp():
    raw = ("From: =?ISO-2022-JP?B?g2OBW4OLIEVYQU1QTEU=?= <bar@example.org>\r\nSubject: ツール\r\n"
           "Content-Type: text/plain; charset=iso-2022-jp\r\n\r\nx").encode("shift_jis")
    msg = parse_email(raw)
    assert (msg.subject, msg.sender_name) == ("ツール", "ツール EXAMPLE")


def test_raw_8bit_gbk_headers_without_declaration():
    raw = 'From: "武兰成" <g@example.com>\r\nSubject: 转发：整体提升企业服务水平\r\n\r\nx'.encode("gbk")
    msg = parse_email(raw)
    assert (msg.subject, msg.sender_name, msg.sender) == ("转发：整体提升企业服务水平", "武兰成", "g@example.com")


def test_raw_8bit_cyrillic_is_told_from_its_lookalike_codecs():
    for text, codec in [("Не могу войти в систему", "koi8-r"), ("Не могу войти в систему", "cp1251"),
                        ("Привіт, не можу увійти", "koi8-u"), ("Привіт, не можу увійти", "cp1251")]:
        raw = f"From: a@b.ua\r\nSubject: {text}\r\n\r\nx".encode(codec)
        assert parse_email(raw).subject == text, codec


def test_charset_labels_python_does_not_know():
    from triage.core.parse import resolve_charset
    assert [resolve_charset(c) for c in ("iso-gb2312", "x-gbk", "cp-1251", "windows-874", "ks_c_5601-1987",
                                         "unicode-1-1-utf-7", "iso-8859-1", "\"utf-8\"", "utf-8*en")] == [
        "gb18030", "gb18030", "cp1251", "cp874", "cp949", "utf-7", "cp1252", "utf-8", "utf-8"]
    assert resolve_charset("ansi_x3.110-1983") is None and resolve_charset("x-\udc91") is None
    raw = b"From: a@b.de\r\nContent-Type: text/plain; charset=ansi_x3.110-1983\r\n\r\nGr\xfc\xdfe"
    msg = parse_email(raw)
    assert msg.text == "Grüße" and any("ansi_x3.110-1983" in d for d in msg.defects)


def test_utf7_encoded_word_folded_inside():
    raw = (b"From: a@b.de\r\nSubject: Benachrichtung\r\n\tzum\r\n"
           b"\t=?unicode-1-1-utf-7?Q?+ANw-bermittlungsstatus\r\n\t(Fehlgeschlagen)?=\r\n\r\nx")
    assert parse_email(raw).subject == "Benachrichtung zum Übermittlungsstatus (Fehlgeschlagen)"


def test_adjacent_encoded_words_join_without_the_space_between():
    raw = b"From: =?Windows-1252?Q?Hans_B=C4KO?= =?iso-8859-15?q?Sch=F6nland?= <me@bogen.net>\r\n" \
          b"Subject: =?utf-8?b?0J/RgNC4?= =?utf-8?b?0LLQtdGC?=\r\n\r\nx"  # "При" + "вет": split mid-word
    msg = parse_email(raw)
    assert (msg.sender_name, msg.subject) == ("Hans BÄKOSchönland", "Привет")


def test_multibyte_character_split_across_encoded_words():
    data = "Привет".encode()
    raw = f"From: a@b.ru\r\nSubject: =?utf-8?q?{_q(data[:3])}?= =?utf-8?q?{_q(data[3:])}?=\r\n\r\nx"
    assert parse_email(raw.encode()).subject == "Привет"


def test_header_continuation_without_indentation():
    raw = (b"From: Karoline <k@example.de>\r\nX-Tracker: AAAA\r\nBBBB\r\nCCCC\r\nReceived: from a\r\nby b\r\n"
           b"Subject: AW: One Net Business\r\n\r\nHallo")
    msg = parse_email(raw)
    assert (msg.subject, msg.sender, msg.text) == ("AW: One Net Business", "k@example.de", "Hallo")
    body_without_separator = parse_email(b"From: a@b.se\r\nSubject: hi\r\nHello there\r\nBye\r\n")
    assert body_without_separator.subject == "hi"


def test_display_names_from_comments_and_phrases():
    assert parse_email(b"From: marc@example.com (Marc Smith)\r\n\r\nx").sender_name == "Marc Smith"
    msg = parse_email(b"From: MAILER-DAEMON (Mail Delivery System) <postmaster@example.com>\r\n\r\nx")
    assert (msg.sender_name, msg.sender) == ("MAILER-DAEMON", "postmaster@example.com")
    msg = parse_email(b"From: =?iso-8859-1?Q?B=FCrling,=20Andreas?= <smith@example.com>\r\n\r\nx")
    assert (msg.sender_name, msg.sender) == ("Bürling, Andreas", "smith@example.com")


def test_sender_is_the_first_mailbox_with_an_address_then_reply_to():
    msg = parse_email(b'From: "Yangzhou ABC " <>, "LTD" <ly@example.com>\r\n\r\nx')
    assert (msg.sender_name, msg.sender) == ("LTD", "ly@example.com")
    msg = parse_email(b"From: [??????]\r\nFrom: =?utf-8?B?6YO955C5?= <g@185.com.cn>\r\n\r\nx")
    assert (msg.sender_name, msg.sender) == ("都琹", "g@185.com.cn")
    assert parse_email(b'From: "=?GB2312?B?ztI=?=" <>\r\nReply-To: <vip@126.com>\r\n\r\nx').sender == "vip@126.com"
    assert parse_email(b"Reply-To: <vip@126.com>\r\nSubject: no From\r\n\r\nx").sender == "vip@126.com"
    bare = parse_email(b"From: MAILER-DAEMON (Mail Delivery System)\r\n\r\nx")
    assert (bare.sender, bare.sender_name) == ("", "Mail Delivery System")
    assert parse_email(b"From: Clement <Claudia.Shu@yahoo.com.>\r\n\r\nx").sender == "claudia.shu@yahoo.com"


def test_encoded_word_in_an_address_is_not_decoded():
    """RFC 2047 §5: an addr-spec never holds an encoded-word; decoding one could forge an address."""
    forged = "=?utf-8?q?" + _q(b"ceo@bank.example>") + "?="
    msg = parse_email(f"From: {forged}@attacker.example\r\n\r\nx".encode())
    assert msg.sender.endswith("@attacker.example") and "bank.example" not in msg.sender_name


def test_pathological_address_headers_do_not_raise():
    msg = parse_email(b"From: " + b"(" * 5000 + b"\r\nTo: " + b"(a)" * 3000 + b" <q@w.e>\r\n\r\nx")
    assert msg.channel == "email" and msg.recipients == ["q@w.e"]


def test_html_layout_whitespace_is_collapsed():
    html = "<table>" + "<tr><td>&nbsp;</td>" * 300 + "<td>Kan inte logga in</td></tr></table>"
    raw = ("From: a@b.se\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html).encode()
    text = parse_email(raw).text
    assert "Kan inte logga in" in text and "  " not in text and len(text) < 100


def test_codecs_that_are_no_charsets_are_ignored():
    """Python knows "base64", "rot13", "undefined", "idna" as codecs: a mail naming one as its
    charset must still parse (they raise LookupError or a bare UnicodeError when used)."""
    for name in ("base64", "rot13", "undefined", "idna", "hex"):
        raw = (f"From: a@b.c\r\nSubject: =?{name}?q?abc=FF?= \xc0\xc1\r\n"
               f"Content-Type: text/plain; charset={name}\r\n\r\nGr\xfc\xdfe").encode("latin-1")
        msg = parse_email(raw)
        assert msg.subject and msg.text == "Grüße", name


def test_a_mime_tree_thousands_deep_keeps_its_envelope_and_headers():
    """The stdlib parser recurses once per level; the headers alone still parse, so the
    tenant (from the envelope recipient) and the sender are found and the text is kept."""
    head = "From: Tom <tom@steelworks.example>\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\nMIME-Version: 1.0\r\n"
    body = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(5000))
    msg = parse_email((head + body + "Content-Type: text/plain\r\n\r\nI cannot log in\r\n").encode(),
                      ["acme@support.test"])
    assert msg.recipients == ["acme@support.test"] and msg.sender == "tom@steelworks.example"
    assert msg.id == "<deep@x>" and "RecursionError" in msg.error and msg.text == "I cannot log in"


def test_message_parts_nested_deeper_than_any_real_mail_are_not_walked():
    """400 message/rfc822 levels parse, but walking or printing them recurses per level."""
    head = "From: Tom <tom@steelworks.example>\r\nSubject: deep\r\nMessage-ID: <deep822@x>\r\nMIME-Version: 1.0\r\n"
    body = "".join(f"Content-Type: message/rfc822\r\n\r\nSubject: level {i}\r\nMIME-Version: 1.0\r\n" for i in range(400))
    msg = parse_email((head + body + "Content-Type: text/plain\r\n\r\nI cannot log in\r\n").encode(), ["acme@support.test"])
    assert msg.recipients == ["acme@support.test"] and "unparseable MIME structure" in msg.error
    assert list(msg.mime.walk()) == [msg.mime] and len(msg.returned_headers()) <= 1  # text, never a tree
