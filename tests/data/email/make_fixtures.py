#!/usr/bin/python3
"""Writes the email fixtures (<case>.eml) and the fields each must normalize
to (<case>.expect.json). The messages are written out byte by byte here so
that every charset and transfer encoding is exactly what the case says;
the expectations are literal text, not derived from the connector."""
import base64
import json
import os
import quopri

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = {}


def case(name, raw, expect):
    if isinstance(raw, str):
        raw = raw.encode("ascii")
    CASES[name] = (raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), expect)


def b64(data, width=76):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


def qp(data):
    return quopri.encodestring(data).decode()


def ew(text, charset, enc="B"):
    data = text.encode(charset)
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, base64.b64encode(data).decode())
    out = ""
    for byte in data:
        c = chr(byte)
        if c.isalnum():
            out += c
        elif c == " ":
            out += "_"
        else:
            out += "=%02X" % byte
    return "=?%s?Q?%s?=" % (charset, out)


def simple(charset, subject, body, name="Kunde", cte="base64", sub_charset=None):
    data = body.encode(charset)
    enc = b64(data) if cte == "base64" else qp(data)
    return (
        "From: %s <customer@example.org>\n"
        "To: Support <support@example.com>\n"
        "Subject: %s\n"
        "Date: Tue, 14 Nov 2023 10:00:00 +0100\n"
        "Message-ID: <%s@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=%s\n"
        "Content-Transfer-Encoding: %s\n\n%s\n"
        % (ew(name, sub_charset or charset), ew(subject, sub_charset or charset),
           charset.lower().replace("_", "-"), charset, cte, enc))


def expect_simple(charset, subject, body, name="Kunde"):
    return {"type": "omnihub.message.inbound",
            "data": {"channel": "email", "account": "support@example.com",
                     "direction": "inbound", "kind": "email",
                     "message_id": "%s@example.org" % charset.lower().replace("_", "-"),
                     "contact": {"id": "customer@example.org", "name": name},
                     "subject": subject, "text": body,
                     "sent_at": "2023-11-14T09:00:00.000Z",
                     "email": {"from": {"address": "customer@example.org", "name": name},
                               "to": [{"address": "support@example.com", "name": "Support"}],
                               "date": "2023-11-14T09:00:00.000Z",
                               "auto_reply": False}}}


# ---- one case per charset the issue names ----
CHARSETS = [
    ("ISO-8859-1", "Bestellung für Jürgen", "Grüße aus Köln, die Lieferung ist beschädigt.",
     "quoted-printable"),
    ("ISO-8859-2", "Zamówienie nr 42", "Dzień dobry, proszę o zwrot pieniędzy. Łódź.",
     "base64"),
    ("ISO-8859-15", "Rechnung 50 €", "Der Betrag von 50 € wurde doppelt abgebucht. Œuvre.",
     "quoted-printable"),
    ("Windows-1252", "“Quoted” subject – dash", "It’s broken… “again” – €10 fee.",
     "quoted-printable"),
    ("Windows-1251", "Заказ не пришёл", "Здравствуйте! Мой заказ до сих пор не пришёл.",
     "base64"),
    ("KOI8-R", "Проблема с доставкой", "Посылка потерялась, помогите пожалуйста.", "base64"),
    ("Shift_JIS", "注文について", "こんにちは。注文した商品がまだ届いていません。", "base64"),
    ("GB2312", "订单问题", "你好，我的订单还没有到。请帮忙查一下。", "base64"),
    ("GBK", "退款申请", "您好，我想申请退款。商品有瑕疵，請處理。", "base64"),
    ("Big5", "訂單查詢", "您好，我的訂單還沒有收到，請幫忙查詢。", "base64"),
]
for cs, subj, body, cte in CHARSETS:
    case("charset_" + cs.lower().replace("-", "_"), simple(cs, subj, body, cte=cte),
         expect_simple(cs, subj, body))

# ISO-2022-JP is 7-bit: sent as such, subject in B encoding
jp_subj, jp_body = "お問い合わせ", "担当者様\nパスワードを忘れました。"
case("charset_iso_2022_jp", (
    "From: %s <customer@example.org>\n"
    "To: support@example.com\n"
    "Subject: %s\n"
    "Date: Tue, 14 Nov 2023 18:00:00 +0900\n"
    "Message-ID: <iso-2022-jp@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=ISO-2022-JP\n"
    "Content-Transfer-Encoding: 7bit\n\n"
    % (ew("山田", "iso-2022-jp"), ew(jp_subj, "iso-2022-jp"))).encode()
    + jp_body.encode("iso-2022-jp") + b"\n",
    {"data": {"subject": jp_subj, "text": jp_body,
              "contact": {"id": "customer@example.org", "name": "山田"},
              "sent_at": "2023-11-14T09:00:00.000Z"}})

# ---- RFC 2047 in every form ----
case("rfc2047_subjects", (
    "From: =?UTF-8?Q?Andr=C3=A9_M=C3=BCller?= <Andre.Mueller@Example.ORG>\n"
    "To: =?ISO-8859-1?Q?Support_K=F6ln?= <support@example.com>,\n"
    " =?utf-8?b?5byg5LiJ?= <zhang@example.com>\n"
    "Cc: \"Plain Name\" <cc@example.net>\n"
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?ISO-8859-1?Q?_und_Gr=FC=DFe?=\n"
    " =?utf-8?q?_=E2=82=AC?= plain tail\n"
    "Date: Wed, 15 Nov 2023 08:30:00 -0500\n"
    "Message-ID: <rfc2047@example.org>\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "Hallo!\n"),
    {"data": {"subject": "Grüße und Grüße € plain tail", "text": "Hallo!",
              "contact": {"id": "andre.mueller@example.org", "name": "André Müller"},
              "sent_at": "2023-11-15T13:30:00.000Z",
              "email": {"to": [{"address": "support@example.com", "name": "Support Köln"},
                               {"address": "zhang@example.com", "name": "张三"}],
                        "cc": [{"address": "cc@example.net", "name": "Plain Name"}]}}})

# raw UTF-8 in headers (RFC 6532)
case("utf8_raw_headers", (
    "From: Zoë Ångström <zoe@example.org>\n"
    "To: support@example.com\n"
    "Subject: Café crème – naïve question\n"
    "Date: Wed, 15 Nov 2023 08:30:00 +0000\n"
    "Message-ID: <utf8-headers@example.org>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n\n"
    "Ça marche pas.\n").encode("utf-8"),
    {"data": {"subject": "Café crème – naïve question", "text": "Ça marche pas.",
              "contact": {"id": "zoe@example.org", "name": "Zoë Ångström"}}})

# ---- bodies ----
case("html_only", (
    "From: Shop <news@shop.example>\n"
    "To: support@example.com\n"
    "Subject: HTML only\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <html-only@shop.example>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/html; charset=\"utf-8\"\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    + qp("<html><head><title>ignored title</title><style>p{color:red}</style></head>"
         "<body><p>Hello&nbsp;there,</p><p>Your order&#8217;s <b>status</b> &amp; "
         "tracking:<br>line two<br/>line&#x20;three</p><ul><li>first</li><li>second</li></ul>"
         "<script>alert('x')</script><div>5 &lt; 6 &gt; 4 &quot;ok&quot; &euro;</div>"
         "</body></html>".encode("utf-8"))),
    {"data": {"subject": "HTML only",
              "text": "Hello there,\n\nYour order’s status & tracking:\nline two\nline three\n\n"
                      "- first\n- second\n5 < 6 > 4 \"ok\" €"}})

case("nested_multipart", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: nested\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <nested@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n\n"
    "This is a multi-part message in MIME format.\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
    "--alt\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "The plain version with a soft=\n"
    " break and =C3=A9.\n"
    "--alt\n"
    "Content-Type: multipart/related; boundary=\"rel\"\n\n"
    "--rel\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    "<p>The HTML version <img src=\"cid:logo@x\"></p>\n"
    "--rel\n"
    "Content-Type: image/png\n"
    "Content-ID: <logo@x>\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64(b"\x89PNG\r\n\x1a\nfakepng") + "\n"
    "--rel--\n"
    "--alt--\n"
    "--outer\n"
    "Content-Type: application/pdf; name=\"invoice.pdf\"\n"
    "Content-Disposition: attachment; filename=\"invoice.pdf\"\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64(b"%PDF-1.4 fake invoice") + "\n"
    "--outer--\n"),
    {"data": {"text": "The plain version with a soft break and é.",
              "attachments": [
                  {"kind": "image", "mime_type": "image/png", "size": 15, "inline": True,
                   "content_id": "logo@x"},
                  {"kind": "document", "mime_type": "application/pdf", "filename": "invoice.pdf",
                   "size": 21}]}})

case("attachment_without_filename", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: scan attached\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <nofilename@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=b1\n\n"
    "--b1\n"
    "Content-Type: text/plain\n\n"
    "See the scan.\n"
    "--b1\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64(bytes(range(256))) + "\n"
    "--b1\n"
    "Content-Type: image/jpeg\n"
    "Content-Disposition: attachment\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64(b"\xff\xd8\xff\xe0jpegdata") + "\n"
    "--b1--\n"),
    {"data": {"text": "See the scan.",
              "attachments": [
                  {"kind": "document", "mime_type": "application/octet-stream",
                   "filename": "attachment-1.bin", "size": 256},
                  {"kind": "image", "mime_type": "image/jpeg", "filename": "attachment-2.jpg",
                   "size": 12}]}})

# Apple Mail with a picture placed inside the text: multipart/mixed of
# text, picture, text (RFC 2046 5.1.3: the parts are in sequence); the
# text after the picture is the body too
case("apple_mail_text_picture_text", (
    "From: Anna <anna@example.org>\n"
    "To: support@example.com\n"
    "Subject: screenshot\n"
    "Date: Thu, 16 Nov 2023 12:30:00 +0000\n"
    "Message-ID: <apple-mixed@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"Apple-Mail=_1\"\n\n"
    "--Apple-Mail=_1\n"
    "Content-Transfer-Encoding: 7bit\n"
    "Content-Type: text/plain; charset=us-ascii\n\n"
    "The error looks like this:\n"
    "--Apple-Mail=_1\n"
    "Content-Disposition: inline; filename=error.png\n"
    "Content-Type: image/png; name=\"error.png\"\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64(b"\x89PNG\r\n\x1a\nfake") + "\n"
    "--Apple-Mail=_1\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    + qp("It started on Tuesday \u2013 order 4711.\n".encode("utf-8")) +
    "--Apple-Mail=_1--\n"),
    {"data": {"text": "The error looks like this:\nIt started on Tuesday \u2013 order 4711.",
              "attachments": [
                  {"kind": "image", "mime_type": "image/png", "filename": "error.png",
                   "size": 12}]}})

# RFC 3676 format=flowed; delsp=yes (Apple Mail, Thunderbird): lines ending
# in a space are soft breaks, with delsp the space is not text (a word may be
# cut there), a leading space is stuffing, quoted lines flow by depth
case("format_flowed_delsp", (
    "From: Max <max@example.org>\n"
    "To: support@example.com\n"
    "Subject: Re: password\n"
    "Date: Thu, 16 Nov 2023 13:00:00 +0000\n"
    "Message-ID: <flowed@example.org>\n"
    "In-Reply-To: <ours-1@example.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\n"
    "Content-Transfer-Encoding: 8bit\n\n"
    "Thank you. The new password works on the web, but the app still sa \n"
    "ys \u201cwrong password\u201d on my ph \n"
    "one.\n"
    " From now on I use the web.\n"
    "\n"
    "On 16 Nov 2023, at 12:00, Support <support@example.com> wrote:\n"
    "\n"
    "> Please try the new password we \n"
    "> sent.\n").encode("utf-8"),
    {"data": {"text": "Thank you. The new password works on the web, but the app still says "
                      "\u201cwrong password\u201d on my phone.\nFrom now on I use the web.",
              "reply_to": "ours-1@example.com"}})

# boundary never closed, and a part whose boundary is misspelt
case("broken_boundary", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: broken boundary\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <broken-boundary@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"----=_Part_1\"\n\n"
    "------=_Part_1\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "The text survives.\n"
    "------=_Part_1\n"
    "Content-Type: text/csv; name=data.csv\n\n"
    "a,b\n1,2\n"
    "------=_Part_X--\n"),
    {"data": {"text": "The text survives.",
              "attachments": [{"kind": "document", "mime_type": "text/csv",
                               "filename": "data.csv"}]}})

case("missing_date_and_message_id", (
    "From: \"No Headers\" <nohdr@example.org>\n"
    "To: support@example.com\n"
    "Subject: where is my date\n\n"
    "No Date and no Message-ID here.\n"),
    {"type": "omnihub.message.inbound",
     "data": {"text": "No Date and no Message-ID here.",
              "contact": {"id": "nohdr@example.org", "name": "No Headers"},
              "email": {"date": None, "in_reply_to": None}}})

long_subject = "This subject is very long " * 20
refs = " ".join("<ref%03d@example.org>" % i for i in range(60))
case("long_header_lines", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: " + long_subject.strip() + "\n"
    "X-Unfolded: " + "x" * 3000 + "\n"
    "References: " + refs + "\n"
    "In-Reply-To: <ref059@example.org>\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <long-headers@example.org>\n\n"
    "Long headers.\n"),
    {"data": {"subject": long_subject.strip(), "text": "Long headers.",
              "reply_to": "ref059@example.org",
              "email": {"in_reply_to": "ref059@example.org"}}})

# ---- replies from the big clients ----
outlook_html = (
    "<html><body><div>Thanks, that fixed it.</div><div><br></div>"
    "<hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">"
    "<div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri\"><b>From:</b> Support "
    "&lt;support@example.com&gt;<br><b>Sent:</b> Tuesday, November 14, 2023 10:05 AM<br>"
    "<b>To:</b> Customer &lt;customer@example.org&gt;<br><b>Subject:</b> Re: Printer</font>"
    "<div>&nbsp;</div></div><div>Please restart it.</div></body></html>")
case("outlook_reply", (
    "From: Customer <customer@example.org>\n"
    "To: Support <support+0123456789abcdef@example.com>\n"
    "Subject: RE: Printer\n"
    "Thread-Topic: Printer\n"
    "Thread-Index: AQHZ1234abcd==\n"
    "Date: Tue, 14 Nov 2023 11:00:00 +0000\n"
    "Message-ID: <AM0PR01MB1234@eurprd01.prod.outlook.com>\n"
    "In-Reply-To: <AM0PR01MB0000@eurprd01.prod.outlook.com>\n"
    "References: <oh.0123456789abcdef.aaaaaaaaaaaaaaaaaaaaaaaa@example.com>\n"
    " <AM0PR01MB0000@eurprd01.prod.outlook.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"_000_AM0PR\"\n\n"
    "--_000_AM0PR\n"
    "Content-Type: text/plain; charset=\"us-ascii\"\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Thanks, that fixed it.\n\n"
    "________________________________\n"
    "From: Support <support@example.com>\n"
    "Sent: Tuesday, November 14, 2023 10:05 AM\n"
    "To: Customer <customer@example.org>\n"
    "Subject: Re: Printer\n\n"
    "Please restart it.\n"
    "--_000_AM0PR\n"
    "Content-Type: text/html; charset=\"us-ascii\"\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    + qp(outlook_html.encode()) + "\n"
    "--_000_AM0PR--\n"),
    {"data": {"subject": "RE: Printer", "text": "Thanks, that fixed it.",
              "reply_to": "AM0PR01MB0000@eurprd01.prod.outlook.com",
              "email": {"in_reply_to": "AM0PR01MB0000@eurprd01.prod.outlook.com",
                        "references": ["oh.0123456789abcdef.aaaaaaaaaaaaaaaaaaaaaaaa@example.com",
                                       "AM0PR01MB0000@eurprd01.prod.outlook.com"],
                        "to": [{"address": "support+0123456789abcdef@example.com"}]}}})

gmail_plain = (
    "Yes, Tuesday works for me.\n\n"
    "Best,\nCarla\n\n"
    "On Tue, Nov 14, 2023 at 10:05 AM Support <support@example.com>\n"
    "wrote:\n\n"
    "> Would Tuesday work?\n"
    ">\n"
    "> On Mon, Nov 13, 2023 Carla <carla@gmail.com> wrote:\n"
    "> > Can we meet?\n")
gmail_html = (
    "<div dir=\"ltr\">Yes, Tuesday works for me.<div><br></div><div>Best,</div><div>Carla</div>"
    "</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Tue, Nov 14, "
    "2023 at 10:05 AM Support &lt;<a href=\"mailto:support@example.com\">support@example.com</a>"
    "&gt; wrote:<br></div><blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex\">"
    "Would Tuesday work?</blockquote></div>")
case("gmail_reply", (
    "From: Carla Gomez <carla@gmail.com>\n"
    "To: support@example.com\n"
    "Subject: Re: Meeting\n"
    "Date: Tue, 14 Nov 2023 11:00:00 -0800\n"
    "Message-ID: <CAF=abc123+xyz@mail.gmail.com>\n"
    "In-Reply-To: <oh.fedcba9876543210.bbbbbbbbbbbbbbbbbbbbbbbb@example.com>\n"
    "References: <CAF=first@mail.gmail.com>\n"
    " <oh.fedcba9876543210.bbbbbbbbbbbbbbbbbbbbbbbb@example.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"000000000000abcdef\"\n\n"
    "--000000000000abcdef\n"
    "Content-Type: text/plain; charset=\"UTF-8\"\n\n"
    + gmail_plain +
    "\n--000000000000abcdef\n"
    "Content-Type: text/html; charset=\"UTF-8\"\n\n"
    + gmail_html +
    "\n--000000000000abcdef--\n"),
    {"data": {"text": "Yes, Tuesday works for me.\n\nBest,\nCarla",
              "contact": {"id": "carla@gmail.com", "name": "Carla Gomez"},
              "reply_to": "oh.fedcba9876543210.bbbbbbbbbbbbbbbbbbbbbbbb@example.com",
              "email": {"references": ["CAF=first@mail.gmail.com",
                                       "oh.fedcba9876543210.bbbbbbbbbbbbbbbbbbbbbbbb@example.com"]}}})

case("original_message_separator", (
    "From: old.client@example.org\n"
    "To: support@example.com\n"
    "Subject: RE: Account\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <orig-sep@example.org>\n\n"
    "Please close my account.\n\n"
    "-----Original Message-----\n"
    "From: Support [mailto:support@example.com]\n"
    "Sent: Wednesday, November 15, 2023 9:00 AM\n"
    "Subject: Account\n\n"
    "Anything else?\n"),
    {"data": {"text": "Please close my account."}})

case("bottom_posted_quote", (
    "From: listy@example.org\n"
    "To: support@example.com\n"
    "Subject: Re: question\n"
    "Date: Thu, 16 Nov 2023 12:00:00 +0000\n"
    "Message-ID: <bottom@example.org>\n\n"
    "> Did you try turning it off and on?\n"
    "> Really?\n\n"
    "Yes, twice.\n\n"
    "> And the cable?\n\n"
    "Also checked.\n"),
    {"data": {"text": "Yes, twice.\n\n\nAlso checked."}})

# ---- automatic mail ----
case("bounce", (
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\n"
    "To: support@example.com\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <20231117090000.ABC@mx.example.com>\n"
    "Auto-Submitted: auto-replied\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status;\n"
    "\tboundary=\"DSN.boundary\"\n\n"
    "--DSN.boundary\n"
    "Content-Description: Notification\n"
    "Content-Type: text/plain; charset=us-ascii\n\n"
    "I'm sorry to have to inform you that your message could not\n"
    "be delivered to one or more recipients.\n\n"
    "--DSN.boundary\n"
    "Content-Description: Delivery report\n"
    "Content-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns; mx.example.com\n"
    "Arrival-Date: Fri, 17 Nov 2023 08:59:58 +0000\n\n"
    "Final-Recipient: rfc822; nobody@example.org\n"
    "Original-Recipient: rfc822;nobody@example.org\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Remote-MTA: dns; mx.example.org\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address\n"
    "    rejected: User unknown in virtual mailbox table\n\n"
    "--DSN.boundary\n"
    "Content-Description: Undelivered Message Headers\n"
    "Content-Type: text/rfc822-headers\n\n"
    "From: Support <support@example.com>\n"
    "To: nobody@example.org\n"
    "Subject: Re: Your order\n"
    "Message-ID: <oh.0011223344556677.cccccccccccccccccccccccc@example.com>\n\n"
    "--DSN.boundary--\n"),
    {"type": "omnihub.message.status",
     "data": {"direction": "outbound",
              "contact": {"id": "nobody@example.org"},
              "status": {"message_id": "oh.0011223344556677.cccccccccccccccccccccccc@example.com",
                         "state": "failed",
                         "error": {"code": "5.1.1",
                                   "message": "550 5.1.1 <nobody@example.org>: Recipient "
                                              "address rejected: User unknown in virtual "
                                              "mailbox table"}}}})

case("bounce_exchange_rfc822", (
    "From: postmaster@outlook.example\n"
    "To: support@example.com\n"
    "Subject: Undeliverable: Re: Refund\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <ndr-1@outlook.example>\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"ndr\"\n\n"
    "--ndr\n"
    "Content-Type: text/plain\n\n"
    "Delivery has failed to these recipients.\n"
    "--ndr\n"
    "Content-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns;outlook.example\n\n"
    "Final-Recipient: rfc822;gone@corp.example\n"
    "Action: failed\n"
    "Status: 5.2.2\n"
    "Diagnostic-Code: smtp;552 5.2.2 mailbox full\n\n"
    "--ndr\n"
    "Content-Type: message/rfc822\n\n"
    "From: support@example.com\n"
    "To: gone@corp.example\n"
    "Subject: Re: Refund\n"
    "Message-ID: <oh.8899aabbccddeeff.dddddddddddddddddddddddd@example.com>\n\n"
    "Your refund is on its way.\n"
    "--ndr--\n"),
    {"type": "omnihub.message.status",
     "data": {"contact": {"id": "gone@corp.example"},
              "status": {"message_id": "oh.8899aabbccddeeff.dddddddddddddddddddddddd@example.com",
                         "state": "failed",
                         "error": {"code": "5.2.2", "message": "552 5.2.2 mailbox full"}}}})

case("auto_reply", (
    "From: Dana Out <dana@example.org>\n"
    "To: support@example.com\n"
    "Subject: Automatic reply: Your ticket\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <ooo-1@example.org>\n"
    "In-Reply-To: <oh.0123456789abcdef.eeeeeeeeeeeeeeeeeeeeeeee@example.com>\n"
    "Auto-Submitted: auto-replied\n"
    "X-Auto-Response-Suppress: All\n"
    "Content-Type: text/plain; charset=utf-8\n\n"
    "I am out of the office until Monday.\n"),
    {"type": "omnihub.message.inbound",
     "data": {"auto_reply": True, "text": "I am out of the office until Monday.",
              "author": {"kind": "system"},
              "email": {"auto_reply": True}}})

case("precedence_bulk", (
    "From: robot@lists.example\n"
    "To: support@example.com\n"
    "Subject: Weekly digest\n"
    "Precedence: bulk\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <digest@lists.example>\n\n"
    "Nothing new this week.\n"),
    {"data": {"auto_reply": True, "email": {"auto_reply": True}}})

case("forwarded_message", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: Fwd: the original\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <fwd@example.org>\n"
    "Content-Type: multipart/mixed; boundary=fw\n\n"
    "--fw\n"
    "Content-Type: text/plain\n\n"
    "See below.\n"
    "--fw\n"
    "Content-Type: message/rfc822\n\n"
    "From: someone@example.net\n"
    "Subject: the original\n"
    "Message-ID: <inner@example.net>\n\n"
    "Inner text.\n"
    "--fw--\n"),
    {"data": {"text": "See below.",
              "attachments": [{"kind": "document", "mime_type": "message/rfc822",
                               "filename": "the original.eml"}]}})

case("base64_utf8_crlf", (
    "From: =?utf-8?B?0JjQstCw0L0=?= <ivan@example.org>\n"
    "To: support@example.com\n"
    "Subject: =?utf-8?B?8J+YgCBlbW9qaQ==?=\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <b64@example.org>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n\n"
    + b64("Line one\r\nLine two 😀\r\n".encode()) + "\n"),
    {"data": {"subject": "😀 emoji", "text": "Line one\nLine two 😀",
              "contact": {"id": "ivan@example.org", "name": "Иван"}}})

case("mislabeled_charset", (
    "From: customer@example.org\n"
    "To: support@example.com\n"
    "Subject: wrong label\n"
    "Date: Fri, 17 Nov 2023 09:00:00 +0000\n"
    "Message-ID: <mislabeled@example.org>\n"
    "Content-Type: text/plain; charset=x-unknown-charset\n"
    "Content-Transfer-Encoding: 8bit\n\n").encode() + "Fa\xe7ade ok\n".encode("latin-1"),
    {"data": {"text": "Façade ok"}})


def main():
    for name, (raw, expect) in sorted(CASES.items()):
        with open(os.path.join(HERE, name + ".eml"), "wb") as f:
            f.write(raw)
        with open(os.path.join(HERE, name + ".expect.json"), "w") as f:
            json.dump(expect, f, ensure_ascii=False, indent=1)
            f.write("\n")
    print("%d cases" % len(CASES))


if __name__ == "__main__":
    main()
