"""Hostile callers of two unauthenticated or thinly authorized paths:
X's CRC endpoint used as a signing oracle to forge deliveries, and
/v1/media asked by a customer for media that is not theirs (or does not
exist), which must be refused before the platform is ever called."""
import base64
import hashlib
import hmac
import json
import os
import time
from urllib.parse import quote

from fixtures import normalize

SECRET = "x-consumer-secret"
ME = "4337869213"
DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def x_config():
    return {"x.consumer_secret": SECRET, "x.access_token": "x-user-access-token"}


def x_sign(body):
    return "sha256=" + base64.b64encode(
        hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def crc(d, token):
    return d.request("GET", "/webhooks/x?crc_token=" + quote(token, safe=""))


def post_x(d, body, sig):
    return d.request("POST", "/webhooks/x", body,
                     headers={"Content-Type": "application/json",
                              "x-twitter-webhooks-signature": sig})


def dm(event_id, sender, text):
    return json.dumps({"for_user_id": ME, "direct_message_events": [{
        "type": "message_create", "id": event_id, "created_timestamp": str(int(time.time() * 1000)),
        "message_create": {"target": {"recipient_id": ME}, "sender_id": sender,
                           "message_data": {"text": text}}}]},
        separators=(",", ":")).encode()


def settle(d):
    """A genuine signed delivery, waited for: the local log is consumed in
    order, so anything accepted before it is in the store once it is."""
    body = dm("990000000000000001", "1111111111", "barrier")
    assert post_x(d, body, x_sign(body)).status_code == 200
    d.wait_history(normalize("x", body)[0]["subject"], 1)


# ---- X: the CRC answer is never a delivery signature ----

def test_x_crc_cannot_sign_a_forged_delivery(omnihub):
    d = omnihub(config=x_config())
    forged = dm("990000000000000666", "3001969357", "FORGED: reset your password at evil.example")
    conv = normalize("x", forged)[0]["subject"]
    # the attack as reported: the forged delivery as crc_token, its answer
    # as the signature of a POST of the same bytes
    r = crc(d, forged.decode())
    if r.status_code == 200:
        post_x(d, forged, r.json()["response_token"])
    settle(d)
    assert d.history(conv) == [], "a delivery X never signed was stored"
    assert r.status_code == 400, r.text
    assert "response_token" not in r.text


def test_x_crc_answers_only_short_url_safe_tokens(omnihub):
    d = omnihub(config=x_config())
    for token in ["9b4507b3-9040-4669-9ac4-6e3ef5cd3a29", "abc+123/x==", "A" * 256,
                  "a.b_c~d"]:
        r = crc(d, token)
        assert r.status_code == 200, (token, r.text)
        assert r.json() == {"response_token": x_sign(token.encode())}
    for token in ["A" * 257, "A" * 511, '{"a":1}', " {}", "{", "a b", "\tabc",
                  "[1]", '"s"', "a,b", "caf\u00e9"]:
        r = crc(d, token)
        assert r.status_code == 400, (token, r.status_code, r.text)
        assert r.json()["error"]["code"] == "bad_request"
        assert "sha256=" not in r.text
    assert d.request("GET", "/webhooks/x").status_code == 400


def test_x_delivery_must_be_a_json_object(omnihub):
    """Even a signature the CRC legitimately gave out (for a safe token)
    signs no delivery: a POST body that is not a JSON object is refused."""
    d = omnihub(config=x_config())
    for token in ["abc", "123", "true", "null"]:
        r = crc(d, token)
        assert r.status_code == 200
        got = post_x(d, token.encode(), r.json()["response_token"])
        assert got.status_code == 400, (token, got.status_code, got.text)
    for body in [b'["x"]', b'"text"', b"42", b"", b" \n"]:
        got = post_x(d, body, x_sign(body))
        assert got.status_code == 400, (body, got.status_code, got.text)
    # a genuine delivery, leading JSON whitespace and all, still lands
    body = b" \r\n\t" + dm("990000000000000002", "2222222222", "genuine")
    assert post_x(d, body, x_sign(body)).status_code == 200
    d.wait_history(normalize("x", body)[0]["subject"], 1)


# ---- /v1/media: authorize before any outbound call, no existence oracle ----

UPSTREAM_TEXT = "Upstream-Only-Diagnostic (#100) Unsupported get request"


def media_daemon(omnihub, stub):
    cfg = {"whatsapp.app_secret": "wa-secret", "whatsapp.verify_token": "wa-verify",
           "whatsapp.access_token": "wa-token", "whatsapp.api_base_url": stub.url + "/v21.0",
           "telegram.secret_token": "tg-secret", "telegram.bot_token": "123:tg-bot",
           "telegram.api_base_url": stub.url,
           "line.channel_secret": "line-secret", "line.access_token": "line-token",
           "line.api_base_url": stub.url, "line.api_data_base_url": stub.url}
    # every platform call the stand-in gets fails with text only it knows
    stub.set_default(404, {"ok": False, "error_code": 400, "description": UPSTREAM_TEXT,
                           "error": {"message": UPSTREAM_TEXT, "code": 100},
                           "message": UPSTREAM_TEXT})
    return omnihub(config=cfg)


def wa_image(d):
    """Delivers the WhatsApp image fixture (signed); returns its media id
    and conversation once stored."""
    with open(os.path.join(DATA, "whatsapp", "image.json"), "rb") as f:
        body = f.read()
    sig = "sha256=" + hmac.new(b"wa-secret", body, hashlib.sha256).hexdigest()
    r = d.request("POST", "/webhooks/whatsapp", body,
                  headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig})
    assert r.status_code == 200, r.text
    ev = normalize("whatsapp", body)[0]
    d.wait_history(ev["subject"], 1)
    return ev["data"]["attachments"][0]["media_ref"], ev["subject"]


def test_media_refused_to_customers_before_any_platform_call(omnihub, http_stub):
    stub = http_stub()
    d = media_daemon(omnihub, stub)
    media_id, _ = wa_image(d)
    customer = d.customer_token("cust-media")
    answers = {}
    for path in [f"/v1/media/whatsapp/{media_id}",  # exists, someone else's conversation
                 "/v1/media/whatsapp/1234567890123456",  # unknown to everyone
                 "/v1/media/telegram/AgADBAADr6cxG-known-or-not",
                 "/v1/media/line/354718705033693859", "/v1/media/line/1"]:
        r = d.request("GET", path, token=customer)
        answers[path] = (r.status_code, r.json())
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "Upstream-Only" not in r.text and "Unsupported" not in r.text, r.text
    assert stub.requests == [], [(q.method, q.path) for q in stub.requests]
    # the same answer whether the media exists or not: no existence oracle
    assert len({json.dumps(a, sort_keys=True) for a in answers.values()}) == 1, answers

    # agents still fetch anything: the platform is asked (the stand-in is wired)
    r = d.request("GET", "/v1/media/whatsapp/1234567890123456", token=d.agent_token())
    assert r.status_code == 404, r.text
    assert [q.path for q in stub.requests] == ["/v21.0/1234567890123456"]
