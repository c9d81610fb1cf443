"""test_telegram.py - the Telegram connector against a running omnihubd:
every documented update posted with the secret token and found field by
field in the history, rejections, and agent replies through a stand-in Bot
API (path with the bot token, body, retries, permanent errors, files)."""
import json
import os
import time

import pytest

from conftest import ctl
from fixtures import expectations, fixture_paths, reply, status_of, subset, wait_for
from fixtures import load as fx_load, normalize as fx_normalize

SECRET = "tg-Secret_Token-42"
BOT_ID = "123456"
BOT_TOKEN = BOT_ID + ":ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
CHAT = 1111111


def fixtures():
    return fixture_paths("telegram")


def normalize(body, account=BOT_ID):
    return fx_normalize("telegram", body, account)


def config(**extra):
    cfg = {"telegram.secret_token": SECRET, "telegram.bot_token": BOT_TOKEN}
    cfg.update(extra)
    return cfg


def post(d, body, token=SECRET):
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["X-Telegram-Bot-Api-Secret-Token"] = token
    return d.request("POST", "/webhooks/telegram", body, headers=h)


def load(name):
    return fx_load("telegram", name)


# ---- inbound ----

def test_every_fixture_through_normalize():
    for path in fixtures():
        with open(path, "rb") as f:
            body = f.read()
        name = os.path.basename(path)
        got = normalize(body, account=None)
        want = expectations(path)
        assert len(got) == len(want), name
        subset(want, got, name)
        assert all(e["data"]["account"] == "bot" for e in got)
    r = ctl("normalize", "--channel", "telegram", input=b'{"message":{}}')
    assert r.returncode == 2 and b"update_id" in r.stderr


def test_every_fixture_posted_lands_once_in_history(omnihub):
    d = omnihub(config=config())
    for path in fixtures():
        body = open(path, "rb").read()
        name = os.path.basename(path)
        r = post(d, body)
        assert r.status_code == 200, (name, r.text)
        assert post(d, body).status_code == 200  # Telegram's retry of the same update
        want = expectations(path)
        got = normalize(body)
        assert len(got) == len(want), name
        for exp, ev in zip(want, got):
            conv = ev["subject"]
            stored = wait_for(d, conv, lambda e, i=ev["id"]: e["id"] == i)
            subset(exp, stored, name)
            assert stored["data"]["account"] == BOT_ID
            assert stored["source"] == "/omnihub/telegram/" + BOT_ID
            assert stored["data"]["conversation_id"] == conv == stored["subject"]
            assert isinstance(stored["seq"], int) and stored["epoch"]
            assert [e["id"] for e in d.history(conv)].count(ev["id"]) == 1, name
    # one private chat is one conversation: messages, the edit and button presses
    convs = {c["contact"]["id"]: c for c in d.conversations()}
    assert set(convs) == {str(CHAT), "-1001234567890"}
    private = convs[str(CHAT)]["conversation_id"]
    assert "1111111" not in private
    events = d.history(private)
    edit = [e for e in events if e["data"].get("edit_of")]
    assert len(edit) == 1 and edit[0]["data"]["edit_of"] == "1111111:1365"
    assert edit[0]["data"]["text"] == "Edited text"
    original = [e for e in events if e["data"]["message_id"] == "1111111:1365"]
    assert len(original) == 1 and original[0]["data"]["text"] == "/start"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))


def test_bad_or_missing_secret_is_401_and_stores_nothing(omnihub):
    d = omnihub(config=config())
    body = load("message_text")
    assert post(d, body, token=None).status_code == 401
    assert post(d, body, token="").status_code == 401
    assert post(d, body, token=SECRET[:-1]).status_code == 401
    assert post(d, body, token=SECRET + "x").status_code == 401
    assert post(d, body, token=SECRET.upper()).status_code == 401
    assert post(d, body[: len(body) // 2]).status_code == 400
    time.sleep(0.5)
    assert d.conversations() == []
    assert d.metric("omnihub_signature_failures_total", {"channel": "telegram"}) == 5


# ---- outbound ----

def tg_ok(message_id, chat=CHAT, text="x"):
    return {"ok": True, "result": {"message_id": message_id, "date": int(time.time()),
                                   "from": {"id": int(BOT_ID), "is_bot": True,
                                            "first_name": "Omnihub"},
                                   "chat": {"id": chat, "type": "private",
                                            "first_name": "Test Firstname"},
                                   "text": text}}


def open_chat(d):
    body = load("message_text")
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    return conv


def test_reply_through_send_message(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"telegram.api_base_url": g.url}))
    conv = open_chat(d)
    g.queue(200, tg_ok(1400))
    ev = reply(d, conv, {"text": "How can we help?", "client_msg_id": "t1",
                         "reply_to": "1111111:1365"})
    g.wait_requests(1)
    rq = g.requests[0]
    assert rq.method == "POST"
    assert rq.path == f"/bot{BOT_TOKEN}/sendMessage"  # the token is the auth
    assert rq.headers["content-type"].startswith("application/json")
    assert rq.json() == {"chat_id": CHAT, "text": "How can we help?",
                         "reply_parameters": {"message_id": 1365}}
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    sent = status_of(d, conv, ours)
    assert sent["data"]["status"]["provider_message_id"] == "1111111:1400"
    # without reply_to there are no reply_parameters; a photo goes through sendPhoto
    g.queue(200, tg_ok(1401))
    g.queue(200, tg_ok(1402))
    reply(d, conv, {"text": "plain", "client_msg_id": "t2"})
    g.wait_requests(2)
    assert g.requests[1].json() == {"chat_id": CHAT, "text": "plain"}


def test_retry_on_5xx_and_429_not_on_4xx(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"telegram.api_base_url": g.url, "dispatch.backoff_ms": "50"}))
    conv = open_chat(d)
    g.queue(502, b"<html>Bad Gateway</html>")
    g.queue(429, {"ok": False, "error_code": 429,
                  "description": "Too Many Requests: retry after 1",
                  "parameters": {"retry_after": 1}})
    g.queue(200, tg_ok(1500))
    t0 = time.time()
    ev = reply(d, conv, {"text": "retry me", "client_msg_id": "r1"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    sent = status_of(d, conv, ours)
    assert sent["data"]["status"]["provider_message_id"] == "1111111:1500"
    assert len(g.requests) == 3
    assert g.requests[0].json() == g.requests[1].json() == g.requests[2].json()
    assert time.time() - t0 >= 0.9  # retry_after was honoured

    g.queue(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    ev = reply(d, conv, {"text": "to nowhere", "client_msg_id": "r2"})
    ours = wait_for(d, conv, lambda e: e["id"] == ev)["data"]["message_id"]
    failed = status_of(d, conv, ours, "failed")
    assert failed["data"]["status"]["error"]["code"] == "400"
    assert "chat not found" in json.dumps(failed["data"]["status"]["error"])
    time.sleep(0.5)
    assert len(g.requests) == 4


def test_file_download_through_get_file(omnihub, http_stub):
    g = http_stub()
    d = omnihub(config=config(**{"telegram.api_base_url": g.url}))
    body = load("message_document")
    assert post(d, body).status_code == 200
    conv = normalize(body)[0]["subject"]
    d.wait_history(conv, 1)
    file_id = "AwADBAADbXXXXXXXXXXXGBdhD2l6_XZ"
    blob = b"%PDF-1.4\n" + bytes(range(256)) * 40
    g.queue(200, {"ok": True, "result": {"file_id": file_id, "file_unique_id": "u1",
                                         "file_size": len(blob),
                                         "file_path": "documents/file_7.pdf"}})
    g.queue(200, blob, headers={"Content-Type": "application/octet-stream"})
    r = d.request("GET", f"/v1/media/telegram/{file_id}", token=d.agent_token())
    assert r.status_code == 200, r.text
    assert r.content == blob
    assert r.headers["Content-Type"] == "application/pdf"
    assert [q.path for q in g.requests] == [f"/bot{BOT_TOKEN}/getFile",
                                            f"/file/bot{BOT_TOKEN}/documents/file_7.pdf"]
    assert g.requests[0].json() == {"file_id": file_id}
    g.queue(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"})
    assert d.request("GET", "/v1/media/telegram/nope", token=d.agent_token()).status_code == 404


def test_start_fails_without_a_secret(omnihub):
    for cfg, missing in (({"telegram.secret_token": SECRET}, "telegram.bot_token"), ({"telegram.bot_token": BOT_TOKEN}, "telegram.secret_token")):
        with pytest.raises(RuntimeError) as e:
            omnihub(config=cfg)
        assert missing in str(e.value)
