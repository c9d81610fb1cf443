"""Messenger and Instagram against a running omnihubd: every documented
fixture posted signed and found in the history, signature and challenge
checks, and agent replies through a local stand-in for the Graph Send API."""
import base64
import json
import pathlib
import time
from urllib.parse import parse_qs

import pytest

from conftest import ctl, sign_hex
from fixtures import subset

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
CHANNELS = ["messenger", "instagram"]
SECRET = {"messenger": "ms-app-secret", "instagram": "ig-app-secret"}
TOKEN = {"messenger": "EAAms+token/1", "instagram": "EAAig+token/2"}
PAGE = {"messenger": "107362418731042", "instagram": "17841405793187218"}
OBJECT = {"messenger": "page", "instagram": "instagram"}


def config(api=None, app_id=None):
    cfg = {}
    for ch in CHANNELS:
        cfg[f"{ch}.app_secret"] = SECRET[ch]
        cfg[f"{ch}.verify_token"] = f"{ch}-verify"
        cfg[f"{ch}.access_token"] = TOKEN[ch]
        if api:
            cfg[f"{ch}.api_base_url"] = api + "/v19.0"
        if app_id:
            cfg[f"{ch}.app_id"] = app_id
    return cfg


def fixtures(channel):
    for p in sorted((DATA / channel).glob("*.json")):
        if p.name.endswith(".expect.json"):
            continue
        expect = json.loads(p.with_name(p.stem + ".expect.json").read_text())
        yield p.stem, p.read_bytes(), expect if isinstance(expect, list) else [expect]


def post(d, channel, body, sig="good"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if sig == "good":
        headers["X-Hub-Signature-256"] = sign_hex(SECRET[channel], body)
    elif sig is not None:
        headers["X-Hub-Signature-256"] = sig
    return d.request("POST", f"/webhooks/{channel}", body, headers=headers)


def wait_for(d, conv, pred, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            events = d.history(conv)
        except Exception:  # the conversation may not exist yet
            events = []
        hit = [e for e in events if pred(e)]
        if hit or time.time() > deadline:
            return hit, events
        time.sleep(0.1)


@pytest.mark.parametrize("channel", CHANNELS)
def test_fixtures_signed_into_history(omnihub, channel):
    d = omnihub(config=config())
    cases = 0
    for name, body, expect in fixtures(channel):
        # omnihubctl normalize gives the documented fields
        out = ctl("normalize", "--channel", channel, input=body)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        normalized = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        assert len(normalized) == len(expect), name
        for e, a in zip(expect, normalized):
            subset(e, a, f"{name}(normalize)")
        # posted signed, twice (a platform retry): each event once in the history
        for _ in range(2):
            r = post(d, channel, body)
            assert r.status_code == 200, f"{name}: {r.status_code} {r.text}"
        for e, a in zip(expect, normalized):
            hit, events = wait_for(d, a["subject"], lambda ev, i=a["id"]: ev["id"] == i)
            assert len(hit) == 1, f"{name}: {a['id']} in history {len(hit)} times: {events}"
            subset(e, hit[0], f"{name}(history)")
            assert hit[0]["data"]["conversation_id"] == a["subject"]
            assert isinstance(hit[0]["seq"], int) and hit[0]["seq"] >= 1
        cases += 1
    assert cases >= 10


@pytest.mark.parametrize("channel", CHANNELS)
def test_bad_and_missing_signatures_store_nothing(omnihub, channel):
    d = omnihub(config=config())
    body = (DATA / channel / "text.json").read_bytes()
    assert post(d, channel, body, sig=None).status_code == 401
    assert post(d, channel, body, sig="sha256=" + "0" * 64).status_code == 401
    assert post(d, channel, body, sig=sign_hex("not-the-secret", body)).status_code == 401
    tampered = body.replace(b"2", b"3", 1)
    assert post(d, channel, tampered, sig=sign_hex(SECRET[channel], body)).status_code == 401
    # the other platform's secret does not open this endpoint either
    other = "instagram" if channel == "messenger" else "messenger"
    assert post(d, channel, body, sig=sign_hex(SECRET[other], body)).status_code == 401
    time.sleep(0.5)
    assert d.conversations() == []
    # the same body, signed right, is accepted and is the only thing stored
    assert post(d, channel, body).status_code == 200
    deadline = time.time() + 10
    while not d.conversations() and time.time() < deadline:
        time.sleep(0.1)
    convs = d.conversations()
    assert len(convs) == 1
    assert len(d.wait_history(convs[0]["conversation_id"], 1)) == 1


@pytest.mark.parametrize("channel", CHANNELS)
def test_subscription_challenge(omnihub, channel):
    d = omnihub(config=config())
    ok = d.request(
        "GET",
        f"/webhooks/{channel}?hub.mode=subscribe&hub.verify_token={channel}-verify"
        "&hub.challenge=1158201444",
    )
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")
    assert ok.text == "1158201444"
    bad = d.request(
        "GET", f"/webhooks/{channel}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
    )
    assert bad.status_code == 403
    assert "1158201444" not in bad.text


def test_wrong_object_is_rejected(omnihub):
    d = omnihub(config=config())
    body = (DATA / "instagram" / "text.json").read_bytes()
    r = post(d, "messenger", body, sig=sign_hex(SECRET["messenger"], body))
    assert r.status_code == 400
    assert d.conversations() == []


def test_page_notices_without_sender_are_acknowledged(omnihub):
    """messaging_policy_enforcement and app_roles items name only the page
    (recipient), no sender: answered 200 and the customer message batched
    with them is stored (they once failed the whole delivery with 400, and
    Meta retries a refused delivery, message included)."""
    d = omnihub(config=config())
    page, psid = PAGE["messenger"], "6842011249205377"
    msg = {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1458692752478,
           "message": {"mid": "m_beside_notice", "text": "still here 👋"}}
    body = {"object": "page", "entry": [{"id": page, "time": 1458692752478, "messaging": [
        {"recipient": {"id": page}, "timestamp": 1458692752478,
         "policy_enforcement": {"action": "block", "reason": "The bot violated our "
                                "Platform Policies."}},
        {"recipient": {"id": page}, "timestamp": 1458692752478,
         "app_roles": {"123456789": ["primary_receiver"]}},
        msg]}]}
    r = post(d, "messenger", body)
    assert r.status_code == 200, r.text
    out = ctl("normalize", "--channel", "messenger", input=json.dumps(body).encode())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1
    conv = json.loads(lines[0])["subject"]
    events = d.wait_history(conv, 1)
    assert [(e["data"]["message_id"], e["data"]["text"]) for e in events] == [
        ("m_beside_notice", "still here 👋")]


# ---- replies through the Send API stand-in ---------------------------------

def inbound_now(channel, psid, mid, text="hi", age_ms=0):
    ts = int(time.time() * 1000) - age_ms
    page = PAGE[channel]
    return {
        "object": OBJECT[channel],
        "entry": [{"id": page, "time": ts, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": ts,
            "message": {"mid": mid, "text": text}}]}],
    }


def start_conversation(d, channel, psid, age_ms=0):
    mid = f"m_{psid}_{age_ms}"
    assert post(d, channel, inbound_now(channel, psid, mid, age_ms=age_ms)).status_code == 200
    out = ctl("normalize", "--channel", channel,
              input=json.dumps(inbound_now(channel, psid, mid)).encode())
    conv = json.loads(out.stdout.splitlines()[0])["subject"]
    d.wait_history(conv, 1)
    return conv, mid


def reply(d, conv, text, key, reply_to=None):
    body = {"text": text, "client_msg_id": key}
    if reply_to:
        body["reply_to"] = reply_to
    r = d.request("POST", f"/v1/conversations/{conv}/messages", body, token=d.agent_token())
    assert r.status_code == 202, r.text
    return r.json()["event_id"]


def status_of(d, conv, state, timeout=15):
    hit, events = wait_for(
        d, conv,
        lambda e: e["type"] == "omnihub.message.status" and e["data"]["status"]["state"] == state
        and e["data"]["author"]["kind"] == "system" and e["data"]["author"].get("id") == "omnihub",
        timeout)
    assert hit, f"no {state} status in {events}"
    return hit[0]


@pytest.mark.parametrize("channel", CHANNELS)
def test_reply_sent_through_graph(omnihub, http_stub, channel):
    graph = http_stub()
    graph.queue(200, {"recipient_id": "6842011249205377", "message_id": "m_sent_1"})
    d = omnihub(config=config(api=graph.url))
    conv, mid = start_conversation(d, channel, "6842011249205377")
    reply(d, conv, "Hello from omnihub", "k1")
    sent = status_of(d, conv, "sent")
    assert sent["data"]["status"]["provider_message_id"] == "m_sent_1"
    req = graph.wait_requests(1)[0]
    assert req.method == "POST"
    assert req.path == "/v19.0/me/messages"
    # the documented authentication: the access token as a query parameter
    assert parse_qs(req.query) == {"access_token": [TOKEN[channel]]}
    assert req.json() == {"recipient": {"id": "6842011249205377"}, "messaging_type": "RESPONSE",
                          "message": {"text": "Hello from omnihub"}}
    assert req.headers["content-type"].startswith("application/json")

    # the platform's echo of our own send is not recorded a second time
    page = PAGE[channel]
    echo = {"object": OBJECT[channel], "entry": [{"id": page, "time": 1, "messaging": [{
        "sender": {"id": page}, "recipient": {"id": "6842011249205377"},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": "m_sent_1", "is_echo": True, "text": "Hello from omnihub"}}]}]}
    assert post(d, channel, echo).status_code == 200
    # a delivery receipt for it becomes a delivered status of our message
    delivery = {"object": OBJECT[channel], "entry": [{"id": page, "time": 1, "messaging": [{
        "sender": {"id": "6842011249205377"}, "recipient": {"id": page},
        "timestamp": int(time.time() * 1000),
        "delivery": {"mids": ["m_sent_1"], "watermark": int(time.time() * 1000)}}]}]}
    assert post(d, channel, delivery).status_code == 200
    hit, events = wait_for(
        d, conv, lambda e: e["type"] == "omnihub.message.status"
        and e["data"]["status"]["state"] == "delivered")
    assert hit, events
    assert hit[0]["data"]["status"]["provider_message_id"] == "m_sent_1"
    outbound = [e for e in events if e["type"] == "omnihub.message.outbound"]
    assert len(outbound) == 1, outbound  # ours only; the echo was dropped
    assert outbound[0]["data"]["text"] == "Hello from omnihub"
    # the receipt names our message (the core maps the mid back to it)
    assert hit[0]["data"]["status"]["message_id"] == outbound[0]["data"]["message_id"]


def test_reply_to_and_attachment(omnihub, http_stub):
    graph = http_stub()
    graph.queue(200, {"recipient_id": "555", "message_id": "m_sent_text"})
    graph.queue(200, {"recipient_id": "555", "message_id": "m_sent_image"})
    d = omnihub(config=config(api=graph.url))
    conv, mid = start_conversation(d, "messenger", "555")
    body = {"text": "About that", "client_msg_id": "k-rt", "reply_to": mid,
            "attachments": [{"kind": "image", "url": "https://example.org/catalog.png"}]}
    r = d.request("POST", f"/v1/conversations/{conv}/messages", body, token=d.agent_token())
    assert r.status_code == 202, r.text
    sent = status_of(d, conv, "sent")
    assert sent["data"]["status"]["provider_message_id"] == "m_sent_text"
    text, image = [q.json() for q in graph.wait_requests(2)]
    assert text == {"recipient": {"id": "555"}, "messaging_type": "RESPONSE",
                    "message": {"text": "About that"}, "reply_to": {"mid": mid}}
    assert image == {"recipient": {"id": "555"}, "messaging_type": "RESPONSE",
                     "message": {"attachment": {"type": "image", "payload": {
                         "url": "https://example.org/catalog.png", "is_reusable": False}}}}


@pytest.mark.parametrize("channel", CHANNELS)
def test_graph_5xx_is_retried(omnihub, http_stub, channel):
    graph = http_stub()
    graph.queue(503, {"error": {"message": "Service temporarily unavailable", "code": 2}})
    graph.queue(200, {"recipient_id": "777", "message_id": "m_after_retry"})
    d = omnihub(config=config(api=graph.url))
    conv, _ = start_conversation(d, channel, "777")
    reply(d, conv, "retry me", "k2")
    sent = status_of(d, conv, "sent")
    assert sent["data"]["status"]["provider_message_id"] == "m_after_retry"
    reqs = graph.wait_requests(2)
    assert len(reqs) == 2
    assert reqs[0].json() == reqs[1].json()


@pytest.mark.parametrize("channel", CHANNELS)
def test_graph_4xx_is_not_retried(omnihub, http_stub, channel):
    graph = http_stub()
    graph.queue(400, {"error": {"message": "(#100) No matching user found", "type":
                                "OAuthException", "code": 100, "error_subcode": 2018001,
                                "fbtrace_id": "AbCdEf"}})
    d = omnihub(config=config(api=graph.url))
    conv, _ = start_conversation(d, channel, "888")
    reply(d, conv, "nobody there", "k3")
    failed = status_of(d, conv, "failed")
    err = failed["data"]["status"]["error"]
    assert err["code"] == "100"
    assert "No matching user found" in err["message"]
    time.sleep(1.0)
    assert len(graph.requests) == 1


@pytest.mark.parametrize("channel", CHANNELS)
def test_outside_24h_window_is_refused_without_calling(omnihub, http_stub, channel):
    graph = http_stub()
    d = omnihub(config=config(api=graph.url))
    conv, _ = start_conversation(d, channel, "999", age_ms=25 * 3600 * 1000)
    reply(d, conv, "too late", "k4")
    failed = status_of(d, conv, "failed")
    assert failed["data"]["status"]["error"]["code"] == "outside_window"
    time.sleep(0.5)
    assert graph.requests == []


def test_echo_of_our_app_id_is_dropped_other_apps_recorded(omnihub):
    d = omnihub(config=config(app_id="1517776481860111"))
    page, psid = PAGE["messenger"], "6842011249205377"

    def echo(mid, app_id):
        return {"object": "page", "entry": [{"id": page, "time": 1, "messaging": [{
            "sender": {"id": page}, "recipient": {"id": psid}, "timestamp": 1457764197627,
            "message": {"is_echo": True, "app_id": app_id, "mid": mid, "text": mid}}]}]}

    assert post(d, "messenger", echo("m_ours", 1517776481860111)).status_code == 200
    assert post(d, "messenger", echo("m_inbox", 263902037430900)).status_code == 200
    out = ctl("normalize", "--channel", "messenger",
              input=json.dumps(echo("m_inbox", 263902037430900)).encode())
    conv = json.loads(out.stdout.splitlines()[0])["subject"]
    events = d.wait_history(conv, 1)
    time.sleep(0.5)
    events = d.history(conv)
    assert [e["data"]["message_id"] for e in events] == ["m_inbox"]
    assert events[0]["type"] == "omnihub.message.outbound"
    assert events[0]["data"]["author"] == {"kind": "page", "id": page}


@pytest.mark.parametrize("channel", CHANNELS)
def test_attachment_fetched_through_media_route(omnihub, http_stub, channel):
    cdn = http_stub()  # stands in for the platform's CDN (same origin as api_base_url)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    cdn.queue(200, jpeg, headers={"Content-Type": "image/jpeg"})
    d = omnihub(config=config(api=cdn.url))
    page, ts = PAGE[channel], int(time.time() * 1000)
    url = cdn.url + "/cdn/v/t1.15752-9/photo.jpg?_nc_cat=1&oh=abc"
    payload = {"object": OBJECT[channel], "entry": [{"id": page, "time": ts, "messaging": [{
        "sender": {"id": "4242"}, "recipient": {"id": page}, "timestamp": ts,
        "message": {"mid": "m_photo", "attachments": [{"type": "image", "payload": {"url": url}}]}}]}]}
    assert post(d, channel, payload).status_code == 200
    out = ctl("normalize", "--channel", channel, input=json.dumps(payload).encode())
    conv = json.loads(out.stdout.splitlines()[0])["subject"]
    ev = d.wait_history(conv, 1)[0]
    att = ev["data"]["attachments"][0]
    assert ev["data"]["kind"] == "image" and att["url"] == url
    r = d.request("GET", f"/v1/media/{channel}/{att['media_ref']}", token=d.agent_token())
    assert r.status_code == 200, r.text
    assert r.content == jpeg
    assert r.headers["content-type"] == "image/jpeg"
    req = cdn.wait_requests(1)[0]
    assert req.method == "GET" and req.path == "/cdn/v/t1.15752-9/photo.jpg"
    # a customer is not an agent; a ref to a host that is not Meta's is refused
    r = d.request("GET", f"/v1/media/{channel}/{att['media_ref']}",
                  token=d.customer_token("someone"))
    assert r.status_code == 403
    evil = base64.urlsafe_b64encode(b"http://169.254.169.254/latest/meta-data").decode().rstrip("=")
    r = d.request("GET", f"/v1/media/{channel}/{evil}", token=d.agent_token())
    assert r.status_code == 404
