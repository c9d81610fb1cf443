"""test_whatsapp.py - the WhatsApp connector against a running omnihubd:
every documented payload posted signed and found field by field in the
history, rejections, agent replies through a stand-in Graph API, status
correlation, the 24-hour window and media downloads."""
import json
import os
import time

import pytest

from conftest import sign_hex
from fixtures import expectations, fixture_paths, reply, subset, wait_for
from fixtures import normalize as fx_normalize, status_of as sent_status

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "whatsapp")
SECRET = "wa-app-secret"
VERIFY = "wa-verify-token"
TOKEN = "EAAGraphTestToken"
PNID = "106540352242922"
WAID = "16505551234"


def fixtures():
    return fixture_paths("whatsapp")


def normalize(body):
    return fx_normalize("whatsapp", body)


def config(**extra):
    cfg = {"whatsapp.app_secret": SECRET, "whatsapp.verify_token": VERIFY,
           "whatsapp.access_token": TOKEN}
    cfg.update(extra)
    return cfg


def post(d, body, secret=SECRET, headers=None):
    h = {"Content-Type": "application/json"}
    if secret is not None:
        h["X-Hub-Signature-256"] = sign_hex(secret, body)
    h.update(headers or {})
    return d.request("POST", "/webhooks/whatsapp", body, headers=h)


def text_delivery(wamid, text, ts=None, wa_id=WAID, pnid=PNID):
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(ts or int(time.time())),
                          "type": "text", "text": {"body": text}}]}}]}]}).encode()


def status_delivery(wamid, state, wa_id=WAID, errors=None):
    st = {"id": wamid, "status": state, "timestamp": str(int(time.time())),
          "recipient_id": wa_id}
    if errors:
        st["errors"] = errors
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
            "statuses": [st]}}]}]}).encode()


def statuses(d, conv):
    return [e for e in d.history(conv) if e["type"] == "omnihub.message.status"]


# ---- inbound ----

def test_every_fixture_through_normalize():
    for path in fixtures():
        with open(path, "rb") as f:
            got = normalize(f.read())
        want = expectations(path)
        assert len(got) == len(want), os.path.basename(path)
        subset(want, got, os.path.basename(path))


def test_every_fixture_posted_signed_lands_once_in_history(omnihub):
    d = omnihub(config=config())
    for path in fixtures():
        with open(path, "rb") as f:
            body = f.read()
        name = os.path.basename(path)
        r = post(d, body)
        assert r.status_code == 200, (name, r.text)
        assert post(d, body).status_code == 200  # Meta's retry of the same delivery
        want = expectations(path)
        got = normalize(body)
        assert len(got) == len(want), name
        for exp, ev in zip(want, got):
            conv = ev["subject"]
            events = d.wait_history(conv, 1)
            stored = wait_for(d, conv, lambda e, i=ev["id"]: e["id"] == i)
            subset(exp, stored, name)
            assert stored["data"]["conversation_id"] == conv
            assert isinstance(stored["seq"], int) and stored["epoch"]
            events = d.history(conv)
            assert [e["id"] for e in events].count(ev["id"]) == 1, name
            if exp["type"] == "omnihub.message.inbound":
                assert stored["data"]["contact"]["id"] in stored["data"]["author"]["id"]
    # the same customer on the same number is one conversation; another number is another
    convs = {(c["account"], c["contact"]["id"]): c["conversation_id"] for c in d.conversations()}
    assert (PNID, WAID) in convs and ("107651234567890", WAID) in convs
    assert convs[(PNID, WAID)] != convs[("107651234567890", WAID)]
    assert all(WAID not in c for c in convs.values())
    assert d.metric("omnihub_whatsapp_account_errors_total") >= 1


def test_username_user_without_phone_number(omnihub):
    """A WhatsApp user with a username may write without a phone number: no
    "from", a contact with only user_id (Meta's business-scoped user ids,
    2026). The message is stored under that id, and a status of a message
    sent to the id (recipient_user_id, no recipient_id) lands beside it;
    both were skipped as malformed while Meta got its 200."""
    d = omnihub(config=config())
    for name in ("text_username.json", "status_read_username.json"):
        with open(os.path.join(DATA, name), "rb") as f:
            assert post(d, f.read()).status_code == 200, name
    bsuid = "US.13491208655302741918"
    deadline = time.time() + 10
    convs = []
    while not convs and time.time() < deadline:
        convs = [c for c in d.conversations() if c["contact"]["id"] == bsuid]
        time.sleep(0.1)
    assert len(convs) == 1, d.conversations()
    events = d.wait_history(convs[0]["conversation_id"], 2)
    assert [(e["type"], e["data"]["author"]["kind"]) for e in events] == [
        ("omnihub.message.inbound", "customer"), ("omnihub.message.status", "system")]
    assert events[0]["data"]["text"] == "Hi, it's me \u2013 without a number \U0001F642"
    assert events[0]["data"]["contact"] == {"id": bsuid, "name": "Sheena Nelson"}
    assert events[1]["data"]["status"]["state"] == "read"
    assert d.metric("omnihub_webhook_errors_total") == 0


def test_verification_challenge(omnihub):
    d = omnihub(config=config())
    q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + VERIFY
    r = d.request("GET", "/webhooks/whatsapp?" + q)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == "1158201444"
    r = d.request("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=no")
    assert r.status_code == 403
    assert d.metric("omnihub_webhook_rejected_total",
                    {"channel": "whatsapp", "reason": "verify_token"}) == 1


def test_rejections_store_nothing_and_are_counted(omnihub):
    d = omnihub(config=config(**{"http.max_body": "64k"}))
    with open(os.path.join(DATA, "text.json"), "rb") as f:
        body = f.read()
    assert post(d, body, secret=None).status_code == 401
    assert post(d, body, secret="not-the-secret").status_code == 401
    # a re-serialized body no longer matches the signature taken over the raw bytes
    resigned = json.dumps(json.loads(body)).encode()
    r = d.request("POST", "/webhooks/whatsapp", resigned,
                  headers={"X-Hub-Signature-256": sign_hex(SECRET, body)})
    assert r.status_code == 401
    assert post(d, body[: len(body) // 2]).status_code == 400
    assert post(d, b'{"object":"page","entry":[]}').status_code == 400
    big = text_delivery("wamid.BIG", "x" * (70 * 1024))
    assert post(d, big).status_code == 413
    time.sleep(0.5)
    assert d.conversations() == []
    m = lambda reason: d.metric("omnihub_webhook_rejected_total",
                                {"channel": "whatsapp", "reason": reason})
    assert m("signature_missing") == 1
    assert m("signature_bad") == 2
    assert m("bad_json") == 1
    assert m("bad_payload") == 1
    assert d.metric("omnihub_signature_failures_total", {"channel": "whatsapp"}) == 3
    assert d.metric("omnihub_http_errors_total", {"code": "413"}) >= 1


# ---- outbound ----

def graph_ok(wamid):
    return {"messaging_product": "whatsapp", "contacts": [{"input": WAID, "wa_id": WAID}],
            "messages": [{"id": wamid, "message_status": "accepted"}]}


def open_window(d, wamid="wamid.IN1"):
    """An inbound message of now: the 24-hour window is open. Returns the conv."""
    assert post(d, text_delivery(wamid, "Hi, where is my order?")).status_code == 200
    conv = normalize(text_delivery(wamid, "x"))[0]["subject"]
    d.wait_history(conv, 1)
    return conv


def outbound_of(d, conv, event_id):
    return wait_for(d, conv, lambda e: e["id"] == event_id)


def test_text_reply_and_status_correlation(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"whatsapp.api_base_url": g.url + "/v21.0"}))
    conv = open_window(d)
    g.queue(200, graph_ok("wamid.OUT1"))
    ev_id = reply(d, conv, {"text": "It ships tomorrow.", "client_msg_id": "k1",
                            "reply_to": "wamid.IN1"})
    g.wait_requests(1)
    rq = g.requests[0]
    assert rq.method == "POST" and rq.path == f"/v21.0/{PNID}/messages"
    assert rq.headers["authorization"] == "Bearer " + TOKEN
    assert rq.headers["content-type"].startswith("application/json")
    assert rq.json() == {"messaging_product": "whatsapp", "recipient_type": "individual",
                         "to": WAID, "type": "text",
                         "text": {"preview_url": False, "body": "It ships tomorrow."},
                         "context": {"message_id": "wamid.IN1"}}
    ours = outbound_of(d, conv, ev_id)["data"]["message_id"]
    sent = sent_status(d, conv, ours)
    assert sent["data"]["status"]["provider_message_id"] == "wamid.OUT1"

    # Meta's statuses, out of order (read before delivered), one retried
    for state in ("read", "delivered", "read"):
        assert post(d, status_delivery("wamid.OUT1", state)).status_code == 200
    read = sent_status(d, conv, ours, "read")
    delivered = sent_status(d, conv, ours, "delivered")
    assert read["seq"] < delivered["seq"]  # recorded as they came
    for ev in (read, delivered):
        assert ev["data"]["status"]["provider_message_id"] == "wamid.OUT1"
        assert ev["subject"] == conv
    mine = [e for e in statuses(d, conv) if e["data"]["status"]["message_id"] == ours]
    assert sorted(e["data"]["status"]["state"] for e in mine) == ["delivered", "read", "sent"]

    # a failed status from Meta carries its error
    g.queue(200, graph_ok("wamid.OUT2"))
    ev2 = reply(d, conv, {"text": "And a coupon.", "client_msg_id": "k2"})
    ours2 = outbound_of(d, conv, ev2)["data"]["message_id"]
    sent_status(d, conv, ours2)
    err = [{"code": 131026, "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."}}]
    assert post(d, status_delivery("wamid.OUT2", "failed", errors=err)).status_code == 200
    failed = sent_status(d, conv, ours2, "failed")
    assert failed["data"]["status"]["error"]["code"] == "131026"
    assert failed["data"]["status"]["error"]["title"] == "Message undeliverable"


def test_template_and_media_replies(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"whatsapp.api_base_url": g.url}))
    conv = open_window(d)
    g.queue(200, graph_ok("wamid.T1"))
    reply(d, conv, {"text": "Order update", "client_msg_id": "t1",
                    "template": {"name": "order_update", "language": "en_US",
                                 "parameters": ["Sheena", "#4521"]}})
    g.queue(200, graph_ok("wamid.M1"))
    ev = reply(d, conv, {"text": "Your invoice", "client_msg_id": "m1",
                         "attachments": [{"kind": "document", "url": "https://files.example/i.pdf",
                                          "filename": "invoice.pdf"}]})
    g.wait_requests(2)
    t, m = g.requests[0].json(), g.requests[1].json()
    assert g.requests[0].path == f"/{PNID}/messages"
    assert t["type"] == "template" and t["to"] == WAID
    assert t["template"] == {"name": "order_update", "language": {"code": "en_US"},
                             "components": [{"type": "body", "parameters": [
                                 {"type": "text", "text": "Sheena"},
                                 {"type": "text", "text": "#4521"}]}]}
    assert m["type"] == "document"
    assert m["document"] == {"link": "https://files.example/i.pdf", "caption": "Your invoice",
                             "filename": "invoice.pdf"}
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    assert sent_status(d, conv, ours)["data"]["status"]["provider_message_id"] == "wamid.M1"


def test_retry_on_500_and_permanent_errors(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"whatsapp.api_base_url": g.url, "dispatch.backoff_ms": "50"}))
    conv = open_window(d)
    g.queue(500, {"error": {"message": "An unknown error occurred", "code": 1,
                            "type": "OAuthException"}})
    g.queue(200, graph_ok("wamid.R1"))
    ev = reply(d, conv, {"text": "retry me", "client_msg_id": "r1"})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    assert sent_status(d, conv, ours)["data"]["status"]["provider_message_id"] == "wamid.R1"
    assert len(g.requests) == 2
    assert g.requests[0].json() == g.requests[1].json()

    # 429 (Graph's throttling) is retried too, after Retry-After
    g.queue(429, {"error": {"message": "(#130429) Rate limit hit", "code": 130429}},
            headers={"Retry-After": "1"})
    g.queue(200, graph_ok("wamid.R2"))
    t0 = time.time()
    ev = reply(d, conv, {"text": "throttled", "client_msg_id": "r1b"})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    assert sent_status(d, conv, ours)["data"]["status"]["provider_message_id"] == "wamid.R2"
    assert time.time() - t0 >= 0.9
    assert len(g.requests) == 4

    # 131047 from Graph: failed, reason outside_window, not retried
    g.queue(400, {"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
                            "code": 131047, "error_data": {
                                "messaging_product": "whatsapp",
                                "details": "Message failed to send because more than 24 hours "
                                           "have passed since the customer last replied to "
                                           "this number."},
                            "fbtrace_id": "AbCdEf"}})
    ev = reply(d, conv, {"text": "too late?", "client_msg_id": "r2"})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    failed = sent_status(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "outside_window"
    assert "24-hour" in failed["data"]["status"]["error"]["message"]
    # another 4xx: failed with Graph's code, not retried
    g.queue(400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException",
                            "code": 100}})
    ev = reply(d, conv, {"text": "bad one", "client_msg_id": "r3"})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    failed = sent_status(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "100"
    assert "Invalid parameter" in failed["data"]["status"]["error"]["message"]
    time.sleep(0.5)
    assert len(g.requests) == 6

    # over 4,096 characters: refused before Graph is called
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "x" * 4097, "client_msg_id": "r4"}, token=d.agent_token())
    if r.status_code == 202:
        ours = outbound_of(d, conv, r.json()["event_id"])["data"]["message_id"]
        failed = sent_status(d, conv, ours, "failed")
        assert failed["data"]["status"]["error"]["code"] == "text_too_long"
        assert "4096" in failed["data"]["status"]["error"]["message"]
    else:
        assert r.status_code in (400, 413)
    time.sleep(0.3)
    assert len(g.requests) == 6


def test_window_closed_refuses_free_form_but_not_templates(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"whatsapp.api_base_url": g.url}))
    old = int(time.time()) - 25 * 3600
    assert post(d, text_delivery("wamid.OLD", "yesterday's question", ts=old)).status_code == 200
    conv = normalize(text_delivery("wamid.OLD", "x"))[0]["subject"]
    d.wait_history(conv, 1)
    ev = reply(d, conv, {"text": "sorry for the delay", "client_msg_id": "w1"})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    failed = sent_status(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "outside_window"
    assert "template" in failed["data"]["status"]["error"]["message"]
    assert g.requests == []
    g.queue(200, graph_ok("wamid.T9"))
    ev = reply(d, conv, {"text": "follow-up", "client_msg_id": "w2",
                         "template": {"name": "follow_up", "language": {"code": "en"}}})
    ours = outbound_of(d, conv, ev)["data"]["message_id"]
    assert sent_status(d, conv, ours)["data"]["status"]["provider_message_id"] == "wamid.T9"
    assert g.requests[0].json()["template"] == {"name": "follow_up", "language": {"code": "en"}}


# ---- media ----

def test_media_download_through_the_hub(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"whatsapp.api_base_url": g.url + "/v21.0"}))
    with open(os.path.join(DATA, "image.json"), "rb") as f:
        body = f.read()
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    media_id = "1003383421387256"
    blob = bytes(range(256)) * 300
    g.queue(200, {"messaging_product": "whatsapp", "url": g.url + "/lookaside/img?ext=1",
                  "mime_type": "image/jpeg", "sha256": "x", "file_size": len(blob),
                  "id": media_id})
    g.queue(200, blob, headers={"Content-Type": "image/jpeg"})
    r = d.request("GET", f"/v1/media/whatsapp/{media_id}", token=d.agent_token())
    assert r.status_code == 200, r.text
    assert r.content == blob
    assert r.headers["Content-Type"] == "image/jpeg"
    assert [q.path for q in g.requests] == [f"/v21.0/{media_id}", "/lookaside/img"]
    assert all(q.headers["authorization"] == "Bearer " + TOKEN for q in g.requests)

    # the hub's own auth: no token, a customer who does not own it
    assert d.request("GET", f"/v1/media/whatsapp/{media_id}").status_code == 401
    n = len(g.requests)
    r = d.request("GET", f"/v1/media/whatsapp/{media_id}", token=d.customer_token("someone"))
    assert r.status_code == 403
    assert len(g.requests) == n  # refused before Graph is asked
    # over the size limit: refused without downloading
    g.queue(200, {"url": g.url + "/lookaside/huge", "mime_type": "video/mp4",
                  "file_size": 1 << 40, "id": "999"})
    r = d.request("GET", "/v1/media/whatsapp/999", token=d.agent_token())
    assert r.status_code == 413
    assert [q.path for q in g.requests[n:]] == ["/v21.0/999"]
    # Graph does not know it
    g.queue(404, {"error": {"message": "Unsupported get request", "code": 100}})
    assert d.request("GET", "/v1/media/whatsapp/12345",
                     token=d.agent_token()).status_code == 404


def test_configured_business_numbers(omnihub):
    d = omnihub(config=config(**{"whatsapp.phone_number_ids": [PNID, "109999999999999"]}))
    with open(os.path.join(DATA, "batch.json"), "rb") as f:
        body = f.read()
    assert post(d, body).status_code == 200
    events = normalize(body)
    for ev in events[:4]:  # the configured number's messages and status
        wait_for(d, ev["subject"], lambda e, i=ev["id"]: e["id"] == i)
    time.sleep(0.3)
    assert d.history(events[4]["subject"]) == []  # another app's number
    assert {c["account"] for c in d.conversations()} == {PNID}
    assert d.metric("omnihub_whatsapp_ignored_total", {"what": "other_number"}) == 1
