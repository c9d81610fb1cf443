"""test_line.py - the LINE connector against a running omnihubd: every
documented webhook event posted with X-Line-Signature and found field by field
in the history, the connectivity check, redeliveries, rejections, and agent
replies through a stand-in push API (path, bearer, retry key, body, retries)."""
import json
import os
import re
import time

import pytest

from conftest import ctl, sign_b64
from fixtures import expectations, fixture_paths, reply, status_of, subset, wait_for
from fixtures import load as fx_load, normalize as fx_normalize

SECRET = "line-channel-secret"
TOKEN = "line-channel-access-token"
DEST = "Uc0a1f2e3d4b5a69788796a5b4c3d2e1f"
USER = "U4af4980629a1b2c3d4e5f60718293a4b"


def fixtures():
    return fixture_paths("line")


def normalize(body):
    return fx_normalize("line", body)


def config(**extra):
    cfg = {"line.channel_secret": SECRET, "line.access_token": TOKEN}
    cfg.update(extra)
    return cfg


def post(d, body, secret=SECRET, sig=None):
    h = {"Content-Type": "application/json"}
    if sig is not None:
        h["X-Line-Signature"] = sig
    elif secret is not None:
        h["X-Line-Signature"] = sign_b64(secret, body)
    return d.request("POST", "/webhooks/line", body, headers=h)


def load(name):
    return fx_load("line", name)


# ---- inbound ----

def test_every_fixture_through_normalize():
    for path in fixtures():
        with open(path, "rb") as f:
            got = normalize(f.read())
        want = expectations(path)
        assert len(got) == len(want), os.path.basename(path)
        subset(want, got, os.path.basename(path))
    r = ctl("normalize", "--channel", "line", input=b'{"destination":"U1"}')
    assert r.returncode == 2 and b"events" in r.stderr


def test_every_fixture_posted_signed_lands_once_in_history(omnihub):
    d = omnihub(config=config())
    for path in fixtures():
        name = os.path.basename(path)
        if "redelivery" in name:
            continue  # the same event as message_text: checked below
        body = open(path, "rb").read()
        r = post(d, body)
        assert r.status_code == 200, (name, r.text)
        assert post(d, body).status_code == 200  # a second delivery of the same events
        want = expectations(path)
        got = normalize(body)
        assert len(got) == len(want), name
        for exp, ev in zip(want, got):
            conv = ev["subject"]
            stored = wait_for(d, conv, lambda e, i=ev["id"]: e["id"] == i)
            subset(exp, stored, name)
            assert stored["source"] == "/omnihub/line/" + DEST
            assert stored["data"]["conversation_id"] == conv == stored["subject"]
            assert isinstance(stored["seq"], int) and stored["epoch"]
            assert [e["id"] for e in d.history(conv)].count(ev["id"]) == 1, name
    convs = {c["contact"]["id"]: c["conversation_id"] for c in d.conversations()}
    assert USER in convs and "Ca56f94637cc4347f90a25382909b24b9" in convs
    assert all(USER not in c for c in convs.values())
    # follow and unfollow are events of the user's conversation
    second = convs["U49585cd0d5b6c7d8e9f0a1b2c3d4e5f6"]
    kinds = [(e["data"]["kind"], e["data"].get("event")) for e in d.history(second)]
    assert kinds == [("unsupported", "follow"), ("unsupported", "unfollow")]


def test_redelivery_is_stored_once(omnihub):
    d = omnihub(config=config())
    first, again = load("message_text"), load("message_text_redelivery")
    assert post(d, first).status_code == 200
    conv = normalize(first)[0]["subject"]
    d.wait_history(conv, 1)
    assert post(d, again).status_code == 200
    time.sleep(1.0)
    events = d.history(conv)
    assert len(events) == 1
    assert events[0]["id"] == normalize(again)[0]["id"]
    assert d.metric("omnihub_webhook_redeliveries_total", {"channel": "line"}) == 1


def test_connectivity_check_answers_200_and_stores_nothing(omnihub):
    d = omnihub(config=config())
    body = load("connectivity_check")
    r = post(d, body)
    assert r.status_code == 200
    time.sleep(0.3)
    assert d.conversations() == []


def test_bad_or_missing_signature_is_401_and_stores_nothing(omnihub):
    d = omnihub(config=config())
    body = load("message_text")
    assert post(d, body, secret=None).status_code == 401
    assert post(d, body, sig="").status_code == 401
    assert post(d, body, secret="not-the-secret").status_code == 401
    assert post(d, body, sig="sha256=" + sign_b64(SECRET, body)).status_code == 401
    resigned = json.dumps(json.loads(body)).encode()
    assert post(d, resigned, sig=sign_b64(SECRET, body)).status_code == 401
    assert post(d, b'{"destination":"U1","events":{}}').status_code == 400
    time.sleep(0.5)
    assert d.conversations() == []
    assert d.metric("omnihub_signature_failures_total", {"channel": "line"}) == 5


# ---- outbound ----

def open_chat(d):
    body = load("message_text")
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    return conv


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_reply_through_push(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"line.api_base_url": g.url}))
    conv = open_chat(d)
    g.queue(200, {"sentMessages": [{"id": "461230966842064897",
                                    "quoteToken": "IStG5h1Tz7b"}]})
    ev = reply(d, conv, {"text": "Thanks for your message!", "client_msg_id": "l1"})
    g.wait_requests(1)
    rq = g.requests[0]
    assert rq.method == "POST" and rq.path == "/v2/bot/message/push"
    assert rq.headers["authorization"] == "Bearer " + TOKEN
    assert rq.headers["content-type"].startswith("application/json")
    assert UUID.match(rq.headers["x-line-retry-key"])
    assert rq.json() == {"to": USER, "messages": [{"type": "text",
                                                   "text": "Thanks for your message!"}]}
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    sent = status_of(d, conv, ours)
    assert sent["data"]["status"]["provider_message_id"] == "461230966842064897"
    # a reply to the customer's message quotes it with the message's quoteToken
    g.queue(200, {"sentMessages": [{"id": "461230966842064900", "quoteToken": "q2"}]})
    reply(d, conv, {"text": "About that:", "client_msg_id": "l1q",
                    "reply_to": "444573844083572737"})
    g.wait_requests(2)
    assert g.requests[1].json() == {"to": USER, "messages": [{
        "type": "text", "text": "About that:", "quoteToken": "q3Plxr4AgKd-2lHs2pBp4m6pKmA"}]}
    assert g.requests[1].headers["x-line-retry-key"] != rq.headers["x-line-retry-key"]


def test_retry_on_5xx_with_the_same_retry_key_not_on_4xx(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"line.api_base_url": g.url, "dispatch.backoff_ms": "50"}))
    conv = open_chat(d)
    g.queue(500, {"message": "An error occurred in the backend"})
    g.queue(200, {"sentMessages": [{"id": "461230966842064898", "quoteToken": "q"}]})
    ev = reply(d, conv, {"text": "retry me", "client_msg_id": "l2"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    assert status_of(d, conv, ours)["data"]["status"]["provider_message_id"] == \
        "461230966842064898"
    assert len(g.requests) == 2
    assert g.requests[0].json() == g.requests[1].json()
    # every attempt of one message carries one retry key: LINE delivers it once
    assert g.requests[0].headers["x-line-retry-key"] == g.requests[1].headers["x-line-retry-key"]

    # 409: the key was accepted before (an earlier answer was lost): sent
    g.queue(409, {"message": "The retry key is already accepted",
                  "sentMessages": [{"id": "461230966842064899", "quoteToken": "q"}]})
    ev = reply(d, conv, {"text": "lost answer", "client_msg_id": "l3"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    assert status_of(d, conv, ours)["data"]["status"]["provider_message_id"] == \
        "461230966842064899"

    g.queue(400, {"message": "The request body has 1 error(s)",
                  "details": [{"message": "May not be empty", "property": "messages[0].text"}]})
    ev = reply(d, conv, {"text": "refused", "client_msg_id": "l4"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    failed = status_of(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "400"
    assert "May not be empty" in json.dumps(failed["data"]["status"]["error"])
    time.sleep(0.5)
    assert len(g.requests) == 4


def test_content_download(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"line.api_data_base_url": g.url}))
    body = load("message_image")
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    blob = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 50
    g.queue(200, blob, headers={"Content-Type": "image/jpeg"})
    r = d.request("GET", "/v1/media/line/354718705033693859", token=d.agent_token())
    assert r.status_code == 200, r.text
    assert r.content == blob and r.headers["Content-Type"] == "image/jpeg"
    assert g.requests[0].path == "/v2/bot/message/354718705033693859/content"
    assert g.requests[0].headers["authorization"] == "Bearer " + TOKEN
    g.queue(404, {"message": "Not found"})
    assert d.request("GET", "/v1/media/line/1", token=d.agent_token()).status_code == 404


def test_start_fails_without_a_secret(omnihub):
    for cfg, missing in (({"line.channel_secret": SECRET}, "line.access_token"), ({"line.access_token": TOKEN}, "line.channel_secret")):
        with pytest.raises(RuntimeError) as e:
            omnihub(config=cfg)
        assert missing in str(e.value)
