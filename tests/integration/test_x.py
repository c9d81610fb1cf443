"""test_x.py - the X connector against a running omnihubd: the CRC
challenge, every documented direct_message_events delivery posted signed and
found field by field in the history, rejections, and agent replies through a
stand-in X API (path, bearer, body, retries, permanent errors, echoes)."""
import base64
import hashlib
import hmac
import json
import os
import time

import pytest

from conftest import ctl
from fixtures import expectations, fixture_paths, reply, status_of, subset, wait_for
from fixtures import load as fx_load, normalize as fx_normalize

SECRET = "x-consumer-secret"
TOKEN = "x-user-access-token"
ME = "4337869213"
THEM = "3001969357"


def sign(body, secret=SECRET):
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def fixtures():
    return fixture_paths("x")


def normalize(body):
    return fx_normalize("x", body)


def config(**extra):
    cfg = {"x.consumer_secret": SECRET, "x.access_token": TOKEN}
    cfg.update(extra)
    return cfg


def post(d, body, sig=None, signed=True):
    h = {"Content-Type": "application/json"}
    if sig is not None:
        h["x-twitter-webhooks-signature"] = sig
    elif signed:
        h["x-twitter-webhooks-signature"] = sign(body)
    return d.request("POST", "/webhooks/x", body, headers=h)


def load(name):
    return fx_load("x", name)


def test_crc_challenge(omnihub):
    d = omnihub(config=config())
    token = "9b4507b3-9040-4669-9ac4-6e3ef5cd3a29"
    r = d.request("GET", "/webhooks/x?crc_token=" + token)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    mac = hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()
    assert r.json() == {"response_token": "sha256=" + base64.b64encode(mac).decode()}
    assert d.request("GET", "/webhooks/x").status_code == 400


# ---- inbound ----

def test_every_fixture_through_normalize():
    for path in fixtures():
        with open(path, "rb") as f:
            got = normalize(f.read())
        want = expectations(path)
        assert len(got) == len(want), os.path.basename(path)
        subset(want, got, os.path.basename(path))
    r = ctl("normalize", "--channel", "x", input=b'{"direct_message_events":[]}')
    assert r.returncode == 2 and b"for_user_id" in r.stderr


def test_every_fixture_posted_signed_lands_once_in_history(omnihub):
    d = omnihub(config=config())
    for path in fixtures():
        name = os.path.basename(path)
        body = open(path, "rb").read()
        r = post(d, body)
        assert r.status_code == 200, (name, r.text)
        assert post(d, body).status_code == 200  # X's retry of the same delivery
        want = expectations(path)
        got = normalize(body)
        assert len(got) == len(want), name
        for exp, ev in zip(want, got):
            conv = ev["subject"]
            stored = wait_for(d, conv, lambda e, i=ev["id"]: e["id"] == i)
            subset(exp, stored, name)
            assert stored["source"] == "/omnihub/x/" + ME
            assert stored["data"]["conversation_id"] == conv == stored["subject"]
            assert isinstance(stored["seq"], int) and stored["epoch"]
            assert [e["id"] for e in d.history(conv)].count(ev["id"]) == 1, name
    # the customer's DMs and the account's own answer share one conversation
    convs = d.conversations()
    assert len(convs) == 1 and convs[0]["contact"]["id"] == THEM
    events = d.history(convs[0]["conversation_id"])
    assert [e["type"] for e in events].count("omnihub.message.outbound") == 1
    # the read receipt names the DM it covers
    read = [e for e in events if e["type"] == "omnihub.message.status"]
    assert [e["data"]["status"]["state"] for e in read] == ["read"]
    assert THEM not in convs[0]["conversation_id"]


def test_bad_or_missing_signature_is_401_and_stores_nothing(omnihub):
    d = omnihub(config=config())
    body = load("dm_inbound")
    assert post(d, body, signed=False).status_code == 401
    assert post(d, body, sig="").status_code == 401
    assert post(d, body, sig=sign(body, "not-the-secret")).status_code == 401
    assert post(d, body, sig=sign(body)[len("sha256="):]).status_code == 401
    resigned = json.dumps(json.loads(body)).encode()
    assert post(d, resigned, sig=sign(body)).status_code == 401
    assert post(d, b'{"direct_message_events":[]}').status_code == 400
    time.sleep(0.5)
    assert d.conversations() == []
    assert d.metric("omnihub_signature_failures_total", {"channel": "x"}) == 5


# ---- outbound ----

def open_chat(d):
    body = load("dm_inbound")
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    return conv


def dm_ok(event_id):
    return {"data": {"dm_conversation_id": f"{THEM}-{ME}", "dm_event_id": event_id}}


def echo(event_id, text):
    return json.dumps({"for_user_id": ME, "direct_message_events": [{
        "type": "message_create", "id": event_id, "created_timestamp": str(int(time.time() * 1000)),
        "message_create": {"target": {"recipient_id": THEM}, "sender_id": ME,
                           "source_app_id": "555", "message_data": {"text": text}}}],
        "apps": {"555": {"id": "555", "name": "omnihub"}}}).encode()


def test_reply_as_dm_and_its_echo_is_not_stored_twice(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"x.api_base_url": g.url}))
    conv = open_chat(d)
    g.queue(201, dm_ok("1582838499983564806"))
    ev = reply(d, conv, {"text": "Hi Jordan, happy to help.", "client_msg_id": "x1"})
    g.wait_requests(1)
    rq = g.requests[0]
    assert rq.method == "POST" and rq.path == f"/2/dm_conversations/with/{THEM}/messages"
    assert rq.headers["authorization"] == "Bearer " + TOKEN
    assert rq.headers["content-type"].startswith("application/json")
    assert rq.json() == {"text": "Hi Jordan, happy to help."}
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    sent = status_of(d, conv, ours)
    assert sent["data"]["status"]["provider_message_id"] == "1582838499983564806"
    n = len(d.history(conv))
    # X echoes the DM we just sent to the webhook: it is already in the history
    assert post(d, echo("1582838499983564806", "Hi Jordan, happy to help.")).status_code == 200
    # one typed in the X app by a colleague is new: an outbound event
    assert post(d, echo("1582838499983564999", "typed in the app")).status_code == 200
    typed = wait_for(d, conv, lambda e: e["data"].get("message_id") == "1582838499983564999")
    assert typed["type"] == "omnihub.message.outbound"
    assert typed["data"]["direction"] == "outbound"
    assert typed["data"]["author"] == {"kind": "page", "id": ME}
    time.sleep(0.5)
    assert len(d.history(conv)) == n + 1
    # the customer reads our reply: a read status on our own message
    mark = json.dumps({"for_user_id": ME, "direct_message_mark_read_events": [{
        "created_timestamp": str(int(time.time() * 1000)), "sender_id": THEM,
        "target": {"recipient_id": ME}, "last_read_event_id": "1582838499983564806"}]}).encode()
    assert post(d, mark).status_code == 200
    read = status_of(d, conv, ours, "read")
    assert read["data"]["status"]["provider_message_id"] == "1582838499983564806"
    assert read["subject"] == conv


def test_retry_on_5xx_not_on_4xx(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"x.api_base_url": g.url, "dispatch.backoff_ms": "50"}))
    conv = open_chat(d)
    g.queue(503, {"title": "Service Unavailable", "detail": "Service Unavailable",
                  "type": "about:blank", "status": 503})
    g.queue(201, dm_ok("1582838499983564807"))
    ev = reply(d, conv, {"text": "retry me", "client_msg_id": "x2"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    assert status_of(d, conv, ours)["data"]["status"]["provider_message_id"] == \
        "1582838499983564807"
    assert len(g.requests) == 2
    assert g.requests[0].json() == g.requests[1].json()

    g.queue(403, {"title": "Forbidden", "type": "about:blank", "status": 403,
                  "detail": "You are not permitted to send a DM to this user."})
    ev = reply(d, conv, {"text": "not allowed", "client_msg_id": "x3"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    failed = status_of(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "403"
    assert "not permitted" in json.dumps(failed["data"]["status"]["error"])
    time.sleep(0.5)
    assert len(g.requests) == 3


def test_start_fails_without_a_secret(omnihub):
    for cfg, missing in (({"x.consumer_secret": SECRET}, "x.access_token"), ({"x.access_token": TOKEN}, "x.consumer_secret")):
        with pytest.raises(RuntimeError) as e:
            omnihub(config=cfg)
        assert missing in str(e.value)
