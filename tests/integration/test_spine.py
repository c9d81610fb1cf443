"""The spine end to end on the embedded default: inbound -> durable log ->
sequenced history -> agent reply -> dispatcher -> signed delivery -> status."""
import concurrent.futures
import hashlib
import hmac
import json
import subprocess
import threading
import time

import requests

from conftest import INBOUND_SECRET, OMNIHUBD, ROOT, ctl, sign_hex, to_yaml


def msg(mid, contact="u1", text=None, channel="api:shop", account="acme"):
    return {"channel": channel, "account": account,
            "contact": {"id": contact, "name": "Ann"}, "message_id": mid,
            "text": text if text is not None else f"text {mid}",
            "sent_at": "2026-01-02T03:04:05Z"}


def test_first_message_gets_seq_1(omnihub):
    d = omnihub()
    r = d.post_inbound(msg("m1"))
    assert r.status_code == 202, r.text
    body = r.json()
    events = d.wait_history(body["conversation_id"], 1)
    assert len(events) == 1
    ev = events[0]
    assert ev["seq"] == 1 and ev["id"] == body["event_id"]
    assert ev["type"] == "omnihub.message.inbound"
    assert ev["source"] == "/omnihub/api:shop/acme"
    assert ev["data"]["text"] == "text m1"
    assert ev["data"]["contact"] == {"id": "u1", "name": "Ann"}
    assert ev["data"]["sent_at"] == "2026-01-02T03:04:05.000Z"
    assert "u1" not in body["conversation_id"]
    ready = d.request("GET", "/readyz").json()
    assert ev["epoch"] == ready["epoch"]
    assert ready["log"]["backend"] == "local" and ready["store"]["backend"] == "sqlite"


def test_answers_of_every_size_on_one_connection(omnihub):
    """Answers go out as headers + body in one send when they fit the header
    buffer: sizes on both sides of that edge, one keep-alive connection."""
    d = omnihub()
    convs = []
    for n in range(0, 420, 3):
        r = d.post_inbound(msg(f"s{n}", contact=f"size{n}", text="x" * n))
        assert r.status_code == 202, r.text
        convs.append((n, r.json()["conversation_id"]))
    sizes = set()
    for n, conv in convs:
        events = d.wait_history(conv, 1)
        assert events[0]["data"]["text"] == "x" * n
        r = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=10",
                      token=d.agent_token())
        assert r.status_code == 200 and len(r.content) == int(r.headers["content-length"])
        sizes.add(len(r.content))
    assert min(sizes) < 800 and max(sizes) > 1100  # the edge is near 930 bytes


def test_concurrent_posts_are_dense(omnihub):
    d = omnihub()
    n = 200

    def post(i):
        return d.post_inbound(msg(f"c{i}", contact="burst"))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(post, range(n)))
    assert all(r.status_code == 202 for r in results)
    conv = results[0].json()["conversation_id"]
    events = d.wait_history(conv, n)
    assert [e["seq"] for e in events] == list(range(1, n + 1))
    assert len({e["id"] for e in events}) == n


def test_retries_are_deduplicated(omnihub):
    d = omnihub()
    answers = [d.post_inbound(msg("same")) for _ in range(3)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    conv = answers[0].json()["conversation_id"]
    d.post_inbound(msg("after"))  # a later message proves the repeats were processed
    events = d.wait_history(conv, 2)
    time.sleep(0.3)
    events = d.history(conv)
    assert [e["data"]["message_id"] for e in events] == ["same", "after"]
    assert d.metric("omnihub_sync_duplicates_total") >= 2


def test_a_message_id_reused_by_another_contact_is_dropped_loudly(omnihub):
    """The contract's dedup key is (channel, account, message_id): the same
    id from a second contact is the first message again. It is not stored
    twice, and the drop is logged and counted rather than silent."""
    d = omnihub()
    first = d.post_inbound(msg("shared", contact="ann"))
    again = d.post_inbound(msg("shared", contact="ann"))
    other = d.post_inbound(msg("shared", contact="bob", text="from bob"))
    assert {first.status_code, again.status_code, other.status_code} == {202}
    conv = first.json()["conversation_id"]
    assert other.json()["event_id"] == first.json()["event_id"]
    assert other.json()["conversation_id"] != conv
    d.post_inbound(msg("later", contact="ann"))  # processed after the repeats
    assert [e["data"]["message_id"] for e in d.wait_history(conv, 2)] == ["shared", "later"]
    deadline = time.monotonic() + 10  # counted just after the commit that shows "later"
    while d.metric("omnihub_sync_conflicting_repeats_total") != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.metric("omnihub_sync_conflicting_repeats_total") == 1
    assert d.metric("omnihub_sync_duplicates_total") == 2  # the retry is not a conflict
    assert "stored for another conversation" in d.logs()
    r = d.request("GET", f"/v1/conversations/{other.json()['conversation_id']}/events",
                  token=d.agent_token())
    assert r.status_code == 404


def test_restart_keeps_history_and_epoch(omnihub):
    d = omnihub()
    conv = d.post_inbound(msg("r1")).json()["conversation_id"]
    before = d.wait_history(conv, 1)
    d.restart()
    after = d.history(conv)
    assert after == before
    d.post_inbound(msg("r2"))
    events = d.wait_history(conv, 2)
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1]["epoch"] == before[0]["epoch"]


def test_kill9_loses_no_acknowledged_message(omnihub):
    d = omnihub()
    acked, stop = [], threading.Event()
    lock = threading.Lock()

    def writer(w):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            raw = json.dumps(msg(f"k{w}-{i}", contact="kill")).encode()
            try:
                r = s.post(d.url + "/v1/inbound", data=raw, timeout=5,
                           headers={"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, raw)})
            except requests.RequestException:
                return
            if r.status_code == 202:
                with lock:
                    acked.append((f"k{w}-{i}", r.json()["conversation_id"]))
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    d.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 50
    d.start()
    conv = acked[0][1]
    events = d.wait_history(conv, len(acked))
    ids = [e["data"]["message_id"] for e in events]
    assert len(ids) == len(set(ids)), "a message was stored twice"
    missing = {m for m, _ in acked} - set(ids)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_agent_reply_is_delivered_signed(omnihub, http_stub):
    stub = http_stub()
    d = omnihub({"api.outbound_url": stub.url + "/hook"})
    conv = d.post_inbound(msg("q1")).json()["conversation_id"]
    d.wait_history(conv, 1)
    tok = d.agent_token()
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "We are on it", "client_msg_id": "a1"}, token=tok)
    assert r.status_code == 202, r.text
    again = d.request("POST", f"/v1/conversations/{conv}/messages",
                      {"text": "We are on it", "client_msg_id": "a1"}, token=tok)
    assert again.status_code == 202 and again.json() == r.json()
    stub.wait_requests(1)
    req = stub.requests[0]
    assert req.path == "/hook"
    expect = "sha256=" + hmac.new(INBOUND_SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-omnihub-signature"] == expect
    assert req.headers["idempotency-key"] == r.json()["event_id"]
    sent = req.json()
    assert sent["type"] == "omnihub.message.outbound" and sent["data"]["text"] == "We are on it"
    events = d.wait_history(conv, 3)
    assert [e["type"] for e in events] == ["omnihub.message.inbound", "omnihub.message.outbound",
                                           "omnihub.message.status"]
    st = events[2]["data"]["status"]
    assert st["state"] == "sent" and st["message_id"] == events[1]["data"]["message_id"]
    time.sleep(0.3)
    assert len(stub.requests) == 1  # the repeated client_msg_id was not sent again
    assert len(d.history(conv)) == 3


def test_receiver_failing_twice_then_succeeding(omnihub, http_stub):
    stub = http_stub()
    stub.queue(500, {"error": "down"})
    stub.queue(503, {"error": "still down"})
    d = omnihub({"api.outbound_url": stub.url + "/hook"})
    conv = d.post_inbound(msg("f1")).json()["conversation_id"]
    d.wait_history(conv, 1)
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "retry me", "client_msg_id": "b1"}, token=d.agent_token())
    assert r.status_code == 202
    events = d.wait_history(conv, 3)
    statuses = [e for e in events if e["type"] == "omnihub.message.status"]
    assert len(statuses) == 1 and statuses[0]["data"]["status"]["state"] == "sent"
    assert len(stub.requests) == 3
    assert len({q.headers["idempotency-key"] for q in stub.requests}) == 1
    assert d.metric("omnihub_outbound_attempts_total", {"channel": "api"}) == 3
    assert d.metric("omnihub_outbound_total", {"channel": "api", "result": "retry"}) == 2
    assert d.metric("omnihub_outbound_total", {"channel": "api", "result": "sent"}) == 1


def test_receiver_down_longer_than_any_fixed_count(omnihub, http_stub):
    """CONTRACT part 1: api outbound is retried with backoff until a 2xx, so a
    receiver that fails 12 times (more than the old cap of 8 attempts) still
    gets the message, once, and the status is sent, never failed."""
    stub = http_stub()
    for i in range(12):
        stub.queue(503 if i % 2 else 500, {"error": "down"})
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.backoff_ms": "5",
                 "dispatch.backoff_max_ms": "40"})
    conv = d.post_inbound(msg("g1")).json()["conversation_id"]
    d.wait_history(conv, 1)
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "keep trying", "client_msg_id": "c1"}, token=d.agent_token())
    assert r.status_code == 202
    events = d.wait_history(conv, 3, timeout=30)
    statuses = [e["data"]["status"]["state"] for e in events
                if e["type"] == "omnihub.message.status"]
    assert statuses == ["sent"]
    assert len(stub.requests) == 13
    assert len({q.headers["idempotency-key"] for q in stub.requests}) == 1


def test_many_replies_through_an_outage(omnihub, http_stub):
    """Twenty replies queued through 60 failed attempts (the dispatcher's
    queue holds them all, retried by due time): each is delivered exactly
    once, under its own Idempotency-Key, and recorded sent."""
    stub = http_stub()
    for _ in range(60):
        stub.queue(503, {"error": "down"})
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.backoff_ms": "5",
                 "dispatch.backoff_max_ms": "40"})
    agent = d.agent_token()
    convs = []
    for i in range(20):
        conv = d.post_inbound(msg(f"o{i}", contact=f"out{i}")).json()["conversation_id"]
        convs.append(conv)
        r = d.request("POST", f"/v1/conversations/{conv}/messages",
                      {"text": f"reply {i}", "client_msg_id": f"o{i}"}, token=agent)
        assert r.status_code == 202, r.text
    for conv in convs:
        events = d.wait_history(conv, 3, timeout=60)
        assert [e["data"]["status"]["state"] for e in events
                if e["type"] == "omnihub.message.status"] == ["sent"]
    keys = [q.headers["idempotency-key"] for q in stub.requests[60:]]  # answered 200
    assert len(keys) == 20 and len(set(keys)) == 20
    assert len(stub.requests) == 80


def test_a_conversations_replies_go_out_one_at_a_time_in_order(omnihub, http_stub):
    """Four send workers: two conversations' replies are sent side by side,
    but each conversation's one at a time, in the order the agent wrote
    them, and a reply backing off after a failure holds back the next."""
    stub = http_stub()
    lock = threading.Lock()
    state = {"now": {}, "most": {}, "both": 0}

    def slow(req):  # 0.3 s per send; counts the sends in flight by conversation
        conv = req.json()["subject"]
        with lock:
            state["now"][conv] = state["now"].get(conv, 0) + 1
            state["most"][conv] = max(state["most"].get(conv, 0), state["now"][conv])
            state["both"] = max(state["both"], len([c for c, k in state["now"].items() if k]))
        time.sleep(0.3)
        with lock:
            state["now"][conv] -= 1
        return b"{}"
    stub.queue(503, {"error": "busy"})  # the first send fails once and backs off
    stub.set_default(200, slow)
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.workers": "4",
                 "dispatch.backoff_ms": "300", "dispatch.backoff_max_ms": "300"})
    tok = d.agent_token()
    convs = []
    for c in ("ord-a", "ord-b"):
        conv = d.post_inbound(msg(c + "-in", contact=c)).json()["conversation_id"]
        d.wait_history(conv, 1)
        convs.append(conv)
    for i in range(5):
        for conv in convs:
            r = d.request("POST", f"/v1/conversations/{conv}/messages",
                          {"text": f"reply {i}", "client_msg_id": f"r{i}"}, token=tok)
            assert r.status_code == 202, r.text
    stub.wait_requests(11, timeout=30)
    for conv in convs:
        events = d.wait_history(conv, 11, timeout=30)
        assert [e["data"]["status"]["state"] for e in events
                if e["type"] == "omnihub.message.status"] == ["sent"] * 5
        sent = [q.json()["data"]["text"] for q in stub.requests
                if q.json()["subject"] == conv]
        assert sent[-5:] == [f"reply {i}" for i in range(5)], sent
    assert state["most"] == {convs[0]: 1, convs[1]: 1}, state
    assert state["both"] == 2, state  # not one conversation after the other


def replies_in_one_conversation(d, contact, n):
    """A conversation of CONTACT with N agent replies "reply 0".. posted."""
    tok = d.agent_token()
    conv = d.post_inbound(msg(contact + "-in", contact=contact)).json()["conversation_id"]
    d.wait_history(conv, 1)
    for i in range(n):
        r = d.request("POST", f"/v1/conversations/{conv}/messages",
                      {"text": f"reply {i}", "client_msg_id": f"{contact}{i}"}, token=tok)
        assert r.status_code == 202, r.text
    return conv


def test_replies_reuse_the_receivers_connection(omnihub, http_stub):
    """Each send thread keeps its connection to the receiver: a TCP (and,
    to a provider, TLS) handshake per message costs more than the send."""
    stub = http_stub()
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.workers": "2"})
    conv = replies_in_one_conversation(d, "reuse", 8)
    events = d.wait_history(conv, 17, timeout=30)
    assert [e["data"]["status"]["state"] for e in events
            if e["type"] == "omnihub.message.status"] == ["sent"] * 8
    assert len(stub.requests) == 8
    assert len({q.peer for q in stub.requests}) <= 2  # one connection per send thread


def self_signed(tmp_path, name):
    """A certificate for 127.0.0.1 and its key: (cert, key) paths."""
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def test_https_replies_trust_http_ca_file_alone(omnihub, http_stub, tmp_path):
    """Outbound HTTPS verifies the receiver against http.ca_file, read once
    at start: a receiver it signed gets the replies over kept connections; one
    it did not gets none (the api channel retries); an unreadable file stops
    the start."""
    ours, theirs = self_signed(tmp_path, "ours"), self_signed(tmp_path, "theirs")
    good, bad = http_stub(tls=ours), http_stub(tls=theirs)
    d = omnihub({"api.outbound_url": good.url + "/hook", "http.ca_file": ours[0],
                 "dispatch.workers": "2"})
    conv = replies_in_one_conversation(d, "tls", 4)
    events = d.wait_history(conv, 9, timeout=30)
    assert [e["data"]["status"]["state"] for e in events
            if e["type"] == "omnihub.message.status"] == ["sent"] * 4
    assert len({q.peer for q in good.requests}) <= 2
    d.stop()
    d = omnihub({"api.outbound_url": bad.url + "/hook", "http.ca_file": ours[0],
                 "dispatch.backoff_ms": "100", "dispatch.backoff_max_ms": "200"})
    replies_in_one_conversation(d, "untrusted", 1)
    deadline = time.monotonic() + 15
    while d.metric("omnihub_outbound_total", {"channel": "api", "result": "retry"}) < 2:
        assert time.monotonic() < deadline, d.logs()[-2000:]
        time.sleep(0.1)
    assert bad.requests == [] and d.metric("omnihub_outbound_total",
                                           {"channel": "api", "result": "sent"}) == 0
    d.stop()
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cfg = tmp_path / "check.yaml"
    cfg.write_text(to_yaml({"http.ca_file": str(tmp_path / "junk.pem"),
                            "auth.jwt_secret": "s" * 32, "api.inbound_secret": "t" * 32}))
    r = subprocess.run([str(OMNIHUBD), "--check-config", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "http.ca_file" in r.stderr, r.stderr


def test_an_outage_logs_a_retry_line_a_second_not_one_per_retry(omnihub, http_stub):
    """A receiver down makes every pending reply retry; the log says so
    about once a second, with how many retries it did not list."""
    stub = http_stub()
    stub.set_default(503, {"error": "down"})
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.backoff_ms": "40",
                 "dispatch.backoff_max_ms": "80"})
    began = time.monotonic()
    for i in range(10):
        replies_in_one_conversation(d, f"outage{i}", 1)
    deadline = time.monotonic() + 30
    while d.metric("omnihub_outbound_total", {"channel": "api", "result": "retry"}) < 200:
        assert time.monotonic() < deadline, d.logs()[-2000:]
        time.sleep(0.1)
    time.sleep(1.5)  # past a second after the first line: the next one counts the rest
    retries = d.metric("omnihub_outbound_total", {"channel": "api", "result": "retry"})
    lines = [ln for ln in d.logs().splitlines() if "retrying in" in ln]
    seconds = time.monotonic() - began
    assert 1 <= len(lines) <= seconds + 2 and retries >= 200, (len(lines), retries, seconds)
    assert any("other retries since the last such line" in ln for ln in lines), lines[-3:]


def test_pending_replies_resume_in_order_after_a_restart(omnihub, http_stub):
    """Replies still pending at a stop (the receiver down) are taken from the
    store at the next start, which lists them in key order: they still go
    out in the order the agent wrote them."""
    stub = http_stub()
    stub.set_default(503, {"error": "down"})
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.backoff_ms": "50",
                 "dispatch.backoff_max_ms": "200"})
    conv = replies_in_one_conversation(d, "pend", 8)
    d.wait_history(conv, 9)
    stub.wait_requests(2)  # the first is retrying; the others wait behind it
    d.stop()
    delivered = []

    def up(req):
        delivered.append(req.json()["data"]["text"])
        time.sleep(0.05)
        return b"{}"
    stub.set_default(200, up)
    d.start()
    events = d.wait_history(conv, 17, timeout=30)
    assert [e["data"]["status"]["state"] for e in events
            if e["type"] == "omnihub.message.status"] == ["sent"] * 8
    assert delivered == [f"reply {i}" for i in range(8)], delivered


def test_bad_input_is_refused_and_counted(omnihub):
    d = omnihub({"http.max_body": "4k"})
    good = json.dumps(msg("ok1")).encode()
    conv = d.post_inbound(msg("ok1")).json()["conversation_id"]
    d.wait_history(conv, 1)

    def post(raw, sig=True):
        h = {"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, raw)} if sig else {}
        return d.request("POST", "/v1/inbound", raw, h)

    cases = [
        (post(b"{not json"), 400),
        (post(json.dumps({"channel": "api:shop"}).encode()), 400),
        (post(json.dumps(dict(msg("t1"), text=5)).encode()), 400),
        (post(json.dumps(dict(msg("t2"), channel="whatsapp")).encode()), 400),
        (post(b'{"channel":"api:shop","account":"acme","contact":{"id":"u1"},'
              b'"message_id":"u8","text":"\xff\xfe"}'), 400),
        (post(json.dumps(dict(msg("big"), text="x" * 8000)).encode()), 413),
        (post(good, sig=False), 401),
        (d.request("POST", "/v1/inbound", good, {"X-Omnihub-Signature": "sha256=" + "0" * 64}),
         401),
    ]
    for resp, status in cases:
        assert resp.status_code == status, (resp.status_code, resp.text)
        assert resp.json()["error"]["code"]
    tok = d.agent_token()
    assert d.request("GET", "/v1/conversations/c_nope/events", token=tok).status_code == 404
    assert d.request("GET", f"/v1/conversations/{conv}/events").status_code == 401
    assert d.request("GET", f"/v1/conversations/{conv}/events", token="x.y.z").status_code == 401
    expired = d.token("agent-1", "agent", ttl=-5)
    assert d.request("GET", f"/v1/conversations/{conv}/events", token=expired).status_code == 401
    carol = d.customer_token("carol")
    assert d.request("GET", f"/v1/conversations/{conv}/events", token=carol).status_code == 403
    assert d.request("GET", "/v1/conversations", token=carol).status_code == 403
    assert d.request("POST", f"/v1/conversations/{conv}/messages", {"client_msg_id": "z"},
                     token=tok).status_code == 400
    assert d.request("POST", f"/v1/conversations/{conv}/messages", b"[]",
                     token=tok).status_code == 400
    assert d.request("GET", "/nope").status_code == 404
    time.sleep(0.3)
    assert len(d.history(conv)) == 1  # nothing changed
    assert d.metric("omnihub_signature_failures_total", {"channel": "api"}) == 2
    assert d.metric("omnihub_ingest_total", {"channel": "api", "result": "rejected"}) >= 7
    assert d.metric("omnihub_http_errors_total", {"code": "401"}) >= 5


def test_conversation_list_and_read_cursor(omnihub):
    d = omnihub()
    c1 = d.post_inbound(msg("l1", contact="a")).json()["conversation_id"]
    d.wait_history(c1, 1)
    time.sleep(0.05)
    mark = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".999Z"
    time.sleep(1.1)
    c2 = d.post_inbound(msg("l2", contact="b")).json()["conversation_id"]
    d.wait_history(c2, 1)
    convs = d.conversations()
    assert [c["conversation_id"] for c in convs][:2] == [c2, c1]
    assert convs[0]["channel"] == "api:shop" and convs[0]["head"] == 1
    recent = d.conversations(updated_after=mark)
    assert [c["conversation_id"] for c in recent] == [c2]
    tok = d.agent_token()
    r = d.request("POST", f"/v1/conversations/{c1}/read", {"seq": 1}, token=tok)
    assert r.status_code == 200 and r.json()["seq"] == 1
    assert d.request("POST", f"/v1/conversations/{c1}/read", {"seq": 9},
                     token=tok).status_code == 400
    assert d.request("POST", f"/v1/conversations/{c1}/read", {"seq": "x"},
                     token=tok).status_code == 400


def test_check_config_and_help(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("http:\n  listen: 127.0.0.1:1\n  bogus: 2\n")
    r = subprocess.run([str(OMNIHUBD), "--check-config", "-c", str(bad)], capture_output=True)
    assert r.returncode == 2
    assert f"{bad}:3:" in r.stderr.decode() and "http.bogus" in r.stderr.decode()
    good = tmp_path / "good.yaml"
    good.write_text(to_yaml({"http.listen": "127.0.0.1:1", "log.backend": "local",
                             "auth.jwt_secret": "s"}))
    assert subprocess.run([str(OMNIHUBD), "--check-config", "-c", str(good)]).returncode == 0
    # the examples take their secrets from the environment, as they say
    secrets = {"OMNIHUB_AUTH_JWT_SECRET": "s", "OMNIHUB_API_INBOUND_SECRET": "s",
               "OMNIHUB_STORE_POSTGRES_DSN": "host=db dbname=omnihub", "PATH": "/usr/bin"}
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        r = subprocess.run([str(OMNIHUBD), "--check-config", "-c", str(example)],
                           capture_output=True, text=True, env=secrets)
        assert r.returncode == 0, (example, r.stderr)
    h = subprocess.run([str(OMNIHUBD), "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and "--check-config" in h.stdout
    r = subprocess.run([str(OMNIHUBD)], capture_output=True, text=True, timeout=20,
                       env={"OMNIHUB_HTTP_LISTEN": "127.0.0.1:1", "PATH": "/usr/bin",
                            "OMNIHUB_DATA_DIR": str(tmp_path / "d")})
    assert r.returncode != 0 and "auth.jwt_secret" in r.stderr


def test_ctl_normalize_sign_token():
    raw = json.dumps(msg("n1")).encode()
    r = ctl("normalize", "--channel", "api:shop", input=raw)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout.decode().splitlines()[0])
    assert ev["data"]["message_id"] == "n1" and ev["type"] == "omnihub.message.inbound"
    bad = ctl("normalize", "--channel", "api:shop", input=b"{")
    assert bad.returncode == 2 and len(bad.stderr.decode().strip().splitlines()) == 1
    assert ctl("sign", "--secret", "k", input=b"abc").stdout.decode().strip() == \
        sign_hex("k", b"abc")
