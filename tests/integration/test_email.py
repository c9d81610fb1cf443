"""The email connector against real servers: Dovecot (IMAP) and OpenSMTPD
(SMTP), started on loopback in a temporary directory (mailservers.py).
Mail goes in over IMAP APPEND or SMTP delivery, agent replies come out in
the customer's mailbox, and everything is checked in omnihub's history."""
import email
import email.policy
import json
import time
import uuid
from email.utils import make_msgid
from pathlib import Path

import pytest
import requests

from conftest import ctl
from mailservers import DeferringSMTP, Dovecot, OpenSMTPD

DATA = Path(__file__).resolve().parents[1] / "data" / "email"
SUPPORT = "support@example.com"
CUSTOMER = "customer@example.org"
COLLEAGUE = "colleague@example.org"
PASSWORD = "secret"


@pytest.fixture
def mail():
    dv = Dovecot({SUPPORT: PASSWORD, CUSTOMER: PASSWORD, COLLEAGUE: PASSWORD})
    try:
        smtp = OpenSMTPD(dv)
    except BaseException:
        dv.close()
        raise
    yield dv, smtp
    smtp.close()
    dv.close()


def config(dv, smtp, **extra):
    c = {"email.imap_url": dv.url(), "email.smtp_url": smtp.url, "email.username": SUPPORT,
         "email.password": PASSWORD, "email.address": SUPPORT,
         "email.from_name": "Example Support", "email.poll_interval": "1"}
    c.update(extra)
    return c


def message(sender, subject, body, to=SUPPORT, msgid=None, headers=None):
    msgid = msgid or make_msgid(domain=sender.split("@")[1])
    h = {"From": f"Customer <{sender}>", "To": to, "Subject": subject,
         "Date": "Tue, 14 Nov 2023 10:00:00 +0000", "Message-ID": msgid,
         "MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8"}
    h.update(headers or {})
    raw = "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None)
    return (raw + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode(), msgid.strip("<>")


def conv_of(raw, account=SUPPORT):
    out = ctl("normalize", "--channel", "email", "--account", account, input=raw, check=True)
    return json.loads(out.stdout.splitlines()[0])["subject"]


def inbound(events):
    return [e for e in events if e["type"] == "omnihub.message.inbound"]


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(d, conv, state):
    return [e for e in d.history(conv) if e["type"] == "omnihub.message.status"
            and e["data"]["status"]["state"] == state]


def test_delivered_mail_becomes_event_with_media(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    raw = (DATA / "nested_multipart.eml").read_bytes()
    dv.append(SUPPORT, raw)
    conv = conv_of(raw)
    ev = d.wait_history(conv, 1)[0]
    data = ev["data"]
    assert ev["type"] == "omnihub.message.inbound"
    assert data["channel"] == "email" and data["account"] == SUPPORT
    assert data["text"] == "The plain version with a soft break and é."
    assert data["contact"]["id"] == "customer@example.org"
    pdf = data["attachments"][1]
    assert pdf["filename"] == "invoice.pdf"
    r = d.request("GET", f"/v1/media/email/{pdf['media_ref']}", token=d.agent_token())
    assert r.status_code == 200
    assert r.content == b"%PDF-1.4 fake invoice"
    assert r.headers["content-type"].startswith("application/pdf")
    html = d.request("GET", f"/v1/media/email/{data['html_ref']}", token=d.agent_token())
    assert html.status_code == 200 and b"The HTML version" in html.content
    ready = requests.get(d.url + "/readyz", timeout=5).json()
    assert ready["connectors"]["email"]["imap"] == "ok", ready
    assert ready["connectors"]["email"]["mailboxes"] == {"INBOX": "ok"}
    assert ready["connectors"]["email"]["last_poll"]
    # the mail itself is neither deleted nor moved
    assert len(dv.messages(SUPPORT)) == 1


def test_reply_threads_and_customer_answer_lands_in_same_conversation(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    raw, first_id = message(CUSTOMER, "Grüße – my printer is broken", "It makes a noise.")
    smtp.send(CUSTOMER, [SUPPORT], raw)
    conv = conv_of(raw)
    d.wait_history(conv, 1)

    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "Have you tried turning it off and on?", "client_msg_id": "k1"},
                  token=d.agent_token())
    assert r.status_code == 202, r.text
    ours = r.json()["event_id"]
    wait_for(lambda: statuses(d, conv, "sent"), what="sent status")

    reply = email.message_from_bytes(dv.wait_messages(CUSTOMER, 1)[0], policy=email.policy.default)
    assert reply["Subject"] == "Re: Grüße – my printer is broken"
    assert reply["To"].addresses[0].addr_spec == CUSTOMER
    assert reply["From"].addresses[0].addr_spec == SUPPORT
    assert reply["In-Reply-To"] == f"<{first_id}>"
    assert f"<{first_id}>" in reply["References"]
    assert reply["Date"] and reply["Message-ID"].endswith("@example.com>")
    plus = reply["Reply-To"].addresses[0].addr_spec
    assert plus.startswith("support+") and plus.endswith("@example.com")
    assert reply.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in reply.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "turning it off and on" in reply.get_body(("plain",)).get_content()
    our_msgid = reply["Message-ID"].strip("<>")
    sent = statuses(d, conv, "sent")[0]
    assert sent["data"]["status"]["provider_message_id"] == our_msgid

    # 1. a normal reply: In-Reply-To and References intact, to the plus address
    raw2, _ = message(CUSTOMER, "Re: Grüße – my printer is broken", "Yes, still broken.",
                      to=plus, headers={"In-Reply-To": f"<{our_msgid}>",
                                        "References": f"<{first_id}> <{our_msgid}>"})
    smtp.send(CUSTOMER, [plus], raw2)
    # 2. Outlook rewrites In-Reply-To and drops References, but answers the
    #    plus-addressed Reply-To
    raw3, _ = message(CUSTOMER, "RE: printer", "Outlook here.", to=plus,
                      headers={"In-Reply-To": "<AM0PR01MB999@outlook.example>",
                               "Thread-Index": "AQHZabc="})
    smtp.send(CUSTOMER, [plus], raw3)
    # 3. a colleague writes to the plain address, only References match
    raw4, _ = message(COLLEAGUE, "Re: printer", "I am the colleague.",
                      headers={"References": f"<{our_msgid}>"})
    smtp.send(COLLEAGUE, [SUPPORT], raw4)
    events = wait_for(lambda: len(inbound(d.history(conv))) >= 4 and d.history(conv),
                      what="three replies in the conversation")
    texts = [e["data"]["text"] for e in inbound(events)]
    assert texts[0] == "It makes a noise."
    # the MTA may deliver the three replies in any order
    assert sorted(texts[1:]) == ["I am the colleague.", "Outlook here.", "Yes, still broken."]
    assert [e["id"] for e in events if e["type"] == "omnihub.message.outbound"] == [ours]
    # nothing opened a conversation of its own
    convs = {c["conversation_id"] for c in d.conversations()}
    assert convs == {conv}

    # the agent's second reply continues the thread from the latest message
    # and goes to the customer, not to the colleague who joined
    latest = inbound(events)[-1]["data"]["message_id"]
    latest_subject = inbound(events)[-1]["data"]["subject"]
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "Thanks both.", "client_msg_id": "k2"}, token=d.agent_token())
    assert r.status_code == 202
    wait_for(lambda: len(statuses(d, conv, "sent")) >= 2, what="second sent status")
    second = email.message_from_bytes(dv.wait_messages(CUSTOMER, 2)[1],
                                      policy=email.policy.default)
    assert second["Subject"] == (latest_subject if latest_subject.lower().startswith("re:")
                                 else "Re: " + latest_subject)
    assert second["In-Reply-To"] == f"<{latest}>"
    assert f"<{our_msgid}>" in second["References"]
    assert second["Reply-To"].addresses[0].addr_spec == plus
    assert dv.messages(COLLEAGUE) == []


def test_uidvalidity_reset_duplicates_nothing(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    raws = [message(CUSTOMER, f"n{i}", f"body {i}")[0] for i in range(3)]
    for raw in raws:
        dv.append(SUPPORT, raw)
    conv = conv_of(raws[0])
    d.wait_history(conv, 3)
    dv.reset_uidvalidity(SUPPORT)
    raw, _ = message(CUSTOMER, "after reset", "body after")
    dv.append(SUPPORT, raw)
    wait_for(lambda: d.metric("omnihub_email_uidvalidity_resets_total") >= 1,
             what="the reset to be noticed")
    events = d.wait_history(conv, 4)
    time.sleep(3)  # a few more polls: nothing else may appear
    events = d.history(conv)
    assert [e["data"]["text"] for e in events] == ["body 0", "body 1", "body 2", "body after"]


def test_imap_restart_mid_poll_loses_nothing(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    n = 60
    for i in range(n // 2):
        smtp.send(CUSTOMER, [SUPPORT], message(CUSTOMER, f"m{i}", f"message {i}")[0])
    conv = conv_of(message(CUSTOMER, "x", "y")[0])
    wait_for(lambda: len(d.history(conv)) >= 1, what="the first events")
    dv.stop()  # while the poller is at work
    print("events when the IMAP server stopped:", len(d.history(conv)), "of", n // 2)
    for i in range(n // 2, n):
        smtp.send(CUSTOMER, [SUPPORT], message(CUSTOMER, f"m{i}", f"message {i}")[0])
    wait_for(lambda: d.metric("omnihub_email_polls_total", {"result": "error"}) >= 1,
             what="a failed poll")
    ready = requests.get(d.url + "/readyz", timeout=5).json()
    assert ready["connectors"]["email"]["imap"].startswith("error: "), ready
    dv.start()
    events = d.wait_history(conv, n, timeout=60)
    time.sleep(2)
    texts = sorted(e["data"]["text"] for e in d.history(conv))
    assert texts == sorted(f"message {i}" for i in range(n))


def test_malformed_message_is_dead_lettered_and_polling_goes_on(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp, **{"email.max_message": "4k"}))
    dv.append(SUPPORT, b"Subject: no sender at all\r\nTo: support@example.com\r\n\r\nhm\r\n")
    big, _ = message(CUSTOMER, "too big", "x" * 10000)
    dv.append(SUPPORT, big)
    good, _ = message(CUSTOMER, "fine", "a good one")
    dv.append(SUPPORT, good)
    conv = conv_of(good)
    events = d.wait_history(conv, 1)
    assert [e["data"]["text"] for e in events] == ["a good one"]
    assert d.metric("omnihub_email_deadletters_total") == 2


def test_a_message_too_large_for_the_log_is_dead_lettered(mail, omnihub):
    """A mail under email.max_message whose event is over the largest record
    the log takes is dead-lettered with its reason, not fetched again at
    every poll; the mail after it comes in."""
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    huge, _ = message(CUSTOMER, "huge", ("y" * 75 + "\n") * 13_500)
    dv.append(SUPPORT, huge)
    good, _ = message(CUSTOMER, "after it", "a good one")
    dv.append(SUPPORT, good)
    assert [e["data"]["text"] for e in d.wait_history(conv_of(good), 1)] == ["a good one"]
    assert d.metric("omnihub_email_deadletters_total") == 1
    assert "larger than the log takes" in d.logs()


def test_bounce_becomes_failed_status_of_our_reply(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    raw, _ = message(CUSTOMER, "hello", "question")
    dv.append(SUPPORT, raw)
    conv = conv_of(raw)
    d.wait_history(conv, 1)
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "answer", "client_msg_id": "k1"}, token=d.agent_token())
    ours = r.json()["event_id"]
    wait_for(lambda: statuses(d, conv, "sent"), what="sent status")
    our_msgid = email.message_from_bytes(dv.wait_messages(CUSTOMER, 1)[0])["Message-ID"]
    dsn = (DATA / "bounce.eml").read_bytes().replace(
        b"<oh.0011223344556677.cccccccccccccccccccccccc@example.com>", our_msgid.encode())
    dv.append(SUPPORT, dsn)
    failed = wait_for(lambda: statuses(d, conv, "failed"), what="failed status")[0]
    st = failed["data"]["status"]
    out = [e for e in d.history(conv) if e["type"] == "omnihub.message.outbound"][0]
    assert st["message_id"] == out["data"]["message_id"]
    assert st["error"]["code"] == "5.1.1"
    assert "User unknown" in st["error"]["message"]
    assert len(d.conversations()) == 1


def test_smtp_5xx_becomes_failed_status_with_server_reply(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    raw, _ = message("ghost@example.org", "hi", "I do not exist on the SMTP side")
    dv.append(SUPPORT, raw)
    conv = conv_of(raw)
    d.wait_history(conv, 1)
    d.request("POST", f"/v1/conversations/{conv}/messages",
              {"text": "hello ghost", "client_msg_id": "k1"}, token=d.agent_token())
    failed = wait_for(lambda: statuses(d, conv, "failed"), what="failed status")[0]
    err = failed["data"]["status"]["error"]
    # OpenSMTPD refuses unknown users of its domains with a 5xx
    assert err["code"].startswith("5."), err
    assert err["message"].startswith("5") and "ghost@example.org" in err["message"], err


def test_smtp_4xx_is_retried_with_backoff(mail, omnihub):
    dv, smtp = mail
    stub = DeferringSMTP(defer=2)
    try:
        d = omnihub(config(dv, smtp, **{"email.smtp_url": stub.url}))
        raw, first_id = message(CUSTOMER, "slow server", "hello")
        dv.append(SUPPORT, raw)
        conv = conv_of(raw)
        d.wait_history(conv, 1)
        d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "eventually", "client_msg_id": "k1"}, token=d.agent_token())
        sent = wait_for(lambda: statuses(d, conv, "sent"), what="sent status")[0]
        assert stub.transactions == 3  # two 451s, then accepted
        assert len(stub.messages) == 1
        assert not statuses(d, conv, "failed")
        assert f"In-Reply-To: <{first_id}>".encode() in stub.messages[0]
        assert sent["data"]["status"]["provider_message_id"].encode() in stub.messages[0]
        assert d.metric("omnihub_email_sent_total", {"result": "retry"}) == 2
    finally:
        stub.close()


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_imap_over_tls(mode, omnihub):
    dv = Dovecot({SUPPORT: PASSWORD}, tls=True)
    try:
        d = omnihub({"email.imap_url": dv.url(implicit_tls=mode == "tls"),
                     "email.username": SUPPORT, "email.password": PASSWORD,
                     "email.address": SUPPORT, "email.poll_interval": "1",
                     "email.tls": mode, "email.ca_file": dv.ca_file})
        raw, _ = message(CUSTOMER, "secure", "over TLS")
        dv.append(SUPPORT, raw)
        events = d.wait_history(conv_of(raw), 1)
        assert events[0]["data"]["text"] == "over TLS"
    finally:
        dv.close()


def test_untrusted_certificate_is_refused(omnihub):
    dv = Dovecot({SUPPORT: PASSWORD}, tls=True)
    try:
        d = omnihub({"email.imap_url": dv.url(), "email.username": SUPPORT,
                     "email.password": PASSWORD, "email.address": SUPPORT,
                     "email.poll_interval": "1", "email.tls": "starttls"})
        wait_for(lambda: d.metric("omnihub_email_polls_total", {"result": "error"}) >= 1,
                 what="a refused poll")
        ready = requests.get(d.url + "/readyz", timeout=5).json()
        assert ready["connectors"]["email"]["imap"].startswith("error: "), ready
    finally:
        dv.close()


def test_several_mailboxes(mail, omnihub):
    dv, smtp = mail
    dv.create_mailbox(SUPPORT, "Sales")
    d = omnihub(config(dv, smtp, **{"email.mailboxes": ["Sales"]}))
    raw, _ = message(CUSTOMER, "to sales", "sales question")
    dv.append(SUPPORT, raw, mailbox="Sales")
    raw2, _ = message(CUSTOMER, "to inbox", "inbox question")
    dv.append(SUPPORT, raw2)
    events = d.wait_history(conv_of(raw), 2)
    assert sorted(e["data"]["text"] for e in events) == ["inbox question", "sales question"]


def test_fixtures_through_imap(mail, omnihub):
    """Every inbound fixture delivered to the mailbox shows up in the history
    with the fields its expect file names."""
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    cases = []
    for eml in sorted(DATA.glob("*.eml")):
        expect = json.loads(eml.with_name(eml.stem + ".expect.json").read_text())
        if expect.get("type", "omnihub.message.inbound") != "omnihub.message.inbound":
            continue
        raw = eml.read_bytes()
        ev = json.loads(ctl("normalize", "--channel", "email", "--account", SUPPORT,
                            input=raw, check=True).stdout.splitlines()[0])
        dv.append(SUPPORT, raw)
        cases.append((eml.name, ev["subject"], ev["id"], expect))
    assert len(cases) >= 25
    for name, conv, eid, expect in cases:
        events = wait_for(lambda: [e for e in d.history(conv) if e["id"] == eid],
                          what=name)
        check_subset(expect.get("data", {}), events[0]["data"], name)


def check_subset(expect, actual, where):
    if isinstance(expect, dict):
        assert isinstance(actual, dict), where
        for k, v in expect.items():
            assert k in actual, f"{where}.{k} missing"
            check_subset(v, actual[k], f"{where}.{k}")
    elif isinstance(expect, list):
        assert isinstance(actual, list) and len(actual) == len(expect), where
        for i, (e, a) in enumerate(zip(expect, actual)):
            check_subset(e, a, f"{where}[{i}]")
    else:
        assert expect == actual, f"{where}: {expect!r} != {actual!r}"


@pytest.mark.parametrize("eml", sorted(p.name for p in DATA.glob("*.eml")))
def test_fixture_normalizes(eml):
    """omnihubctl normalize --channel email, field by field."""
    path = DATA / eml
    expect = json.loads(path.with_name(path.stem + ".expect.json").read_text())
    out = ctl("normalize", "--channel", "email", input=path.read_bytes())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    check_subset(expect, json.loads(lines[0]), eml)


def test_normalize_rejects_garbage():
    out = ctl("normalize", "--channel", "email", input=b"no headers here\n")
    assert out.returncode == 2
    assert b"RFC 5322" in out.stderr


def test_unknown_media_ref_is_404(mail, omnihub):
    dv, smtp = mail
    d = omnihub(config(dv, smtp))
    r = d.request("GET", "/v1/media/email/" + "0" * 64, token=d.agent_token())
    assert r.status_code == 404
    r = d.request("GET", "/v1/media/email/..%2f..%2fetc%2fpasswd", token=d.agent_token())
    assert r.status_code in (400, 404)


def test_missing_password_is_a_startup_error(tmp_path):
    from conftest import Daemon
    with pytest.raises(RuntimeError) as e:
        Daemon(tmp_path / "d", {"email.imap_url": "imap://127.0.0.1:1/INBOX",
                                "email.username": SUPPORT, "email.address": SUPPORT})
    assert "email.password" in str(e.value)
