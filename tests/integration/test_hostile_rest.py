"""Hostile input on the REST and WebSocket send paths and history pages
(issue 14, items 3, 5 and 7), on every backend: the embedded local log +
SQLite, PostgreSQL (tests/pg_server.py) and Kafka (librdkafka's mock
cluster in the daemon)."""
import asyncio
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path

import pytest
import websockets

from test_kafka import KafkaMock
from conftest import validate_event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_server import PgServer  # noqa: E402

BACKENDS = ["embedded", "postgres", "kafka"]


@pytest.fixture(scope="module")
def pg_server():
    servers = []

    def get():
        if not servers:
            servers.append(PgServer().__enter__())
        return servers[0]

    yield get
    for s in servers:
        s.__exit__(None, None, None)


_dbs = iter(range(1, 1000))


@pytest.fixture(params=BACKENDS)
def daemon(request, omnihub, pg_server, tmp_path):
    """Starts omnihubd on the backend under test with CONFIG on top. Kafka
    is a mock cluster in a process of its own, so that it outlives a
    restart of the daemon as a real cluster would (an in-process one is a
    new, empty log at every start, which the daemon refuses to follow)."""
    mock, started = [], []

    def start(config=None, env=None):
        cfg = {}
        if request.param == "postgres":
            cfg = {"store.backend": "postgres",
                   "store.postgres.dsn": pg_server().createdb("ohrest%d" % next(_dbs))}
        elif request.param == "kafka":
            if not mock:
                mock.append(KafkaMock(tmp_path, brokers=1, partitions=2))
            cfg = {"log.backend": "kafka", "kafka.brokers": mock[0].bootstrap,
                   "kafka.partitions": "2"}
        cfg.update(config or {})
        d = omnihub(cfg, env=env)
        started.append(d)
        return d

    start.backend = request.param
    yield start
    for d in started:
        if d.proc:
            d.stop()
    for m in mock:
        m.stop()


def send(d, conv, token, key, **fields):
    return d.request("POST", f"/v1/conversations/{conv}/messages",
                     {"client_msg_id": key, **fields}, token=token)


async def ws_call(d, token, msg, timeout=15):
    """One WebSocket send; returns the ack or error frame for it."""
    async with websockets.connect(d.url.replace("http", "ws") + "/v1/ws",
                                  extra_headers={"Authorization": "Bearer " + token}) as ws:
        await ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.time())))
            if f["type"] in ("ack", "error"):
                return f


def ws_send(d, token, msg):
    return asyncio.run(ws_call(d, token, {"type": "send", **msg}))


def vm(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


# ---- item 3: history pages have a byte budget ----

def hoard(daemon, env=None):
    """A customer's conversation of 150 messages of 20 KB (librdkafka's mock
    cluster keeps only 5 MB per partition)."""
    d = daemon(env=env)
    cust = d.customer_token("hoarder")
    text = "x" * 20000
    r = send(d, "new", cust, "m0", text=text)
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        rs = list(pool.map(lambda i: send(d, conv, cust, f"m{i}", text=text), range(1, 150)))
    assert all(r.status_code == 202 for r in rs), [r.text for r in rs if r.status_code != 202]
    d.wait_history(conv, 150, timeout=60, token=cust)
    return d, cust, conv


def test_history_pages_are_bounded_in_bytes(daemon):
    # http.max_page through the environment: a daemon without the key ignores it
    d, cust, conv = hoard(daemon, {"OMNIHUB_HTTP_MAX_PAGE": "256k"})
    r = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=1000", token=cust)
    assert r.status_code == 200
    page = r.json()
    assert 1 <= len(page["events"]) < 150
    # at most the budget plus the page's head
    assert len(r.content) <= 256 * 1024 + 1024
    assert page["next_after"] == page["events"][-1]["seq"] and page["head"] == 150
    # next_after carries the rest: every event exactly once, in order
    seqs, after = [], 0
    while after < 150:
        r = d.request("GET", f"/v1/conversations/{conv}/events?after={after}&limit=1000",
                      token=cust)
        p = r.json()
        assert len(r.content) <= 256 * 1024 + 1024 and p["events"]
        for ev in p["events"]:
            validate_event(ev)
        seqs += [e["seq"] for e in p["events"]]
        after = p["next_after"]
    assert seqs == list(range(1, 151))


def test_parallel_full_pages_keep_memory_bounded(daemon):
    # ASan's quarantine keeps freed memory resident; RSS should show live memory
    d, cust, conv = hoard(daemon, {
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1",
        "OMNIHUB_HTTP_MAX_PAGE": "256k"})
    pid = d.proc.pid
    base = vm(pid, "VmRSS")

    def pull(_):
        for _ in range(3):
            r = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=1000",
                          token=cust)
            assert r.status_code == 200
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(pull, range(8)))
    peak = vm(pid, "VmHWM")
    # the whole conversation is 3 MB; an unbounded page held it twice per request
    # (8 requests: +55 MB), a bounded one a page of 256 KiB (+5 MB)
    assert peak - base < 30 * 1024 * 1024, (base, peak)


def test_one_event_over_the_budget_still_pages(omnihub):
    d = omnihub(env={"OMNIHUB_HTTP_MAX_PAGE": "16k"})
    cust = d.customer_token("big")
    conv = None
    for i in range(3):
        r = send(d, conv or "new", cust, f"b{i}", text="y" * 40000)
        assert r.status_code == 202
        conv = r.json()["conversation_id"]
    d.wait_history(conv, 3, token=cust)
    after, seqs = 0, []
    for _ in range(3):
        p = d.request("GET", f"/v1/conversations/{conv}/events?after={after}&limit=100",
                      token=cust).json()
        assert len(p["events"]) == 1  # each event alone is over the budget
        seqs.append(p["events"][0]["seq"])
        after = p["next_after"]
    assert seqs == [1, 2, 3]


# ---- item 5: client_msg_id is per author ----

def test_client_msg_id_is_per_author(daemon):
    d = daemon()
    cust = d.customer_token("ann")
    a1, a2 = d.agent_token("agent-1"), d.agent_token("agent-2")
    r = send(d, "new", cust, "reply-1", text="where is my refund?")
    assert r.status_code == 202
    conv, cust_id = r.json()["conversation_id"], r.json()["event_id"]
    d.wait_history(conv, 1)
    r1 = send(d, conv, a1, "reply-1", text="your refund was approved")
    assert r1.status_code == 202, r1.text
    assert r1.json()["event_id"] != cust_id
    r2 = send(d, conv, a2, "reply-1", text="second agent, same counter")
    assert r2.status_code == 202 and r2.json()["event_id"] not in (cust_id, r1.json()["event_id"])
    # the same author, key and body again: the same answer, no second event
    again = send(d, conv, a1, "reply-1", text="your refund was approved")
    assert again.status_code == 202 and again.json() == r1.json()
    events = d.wait_history(conv, 3)
    time.sleep(0.5)
    events = d.history(conv)
    assert [e["data"]["text"] for e in events] == [
        "where is my refund?", "your refund was approved", "second agent, same counter"]
    assert [e["data"]["author"] for e in events] == [
        {"kind": "customer", "id": "ann"}, {"kind": "agent", "id": "agent-1"},
        {"kind": "agent", "id": "agent-2"}]
    # WebSocket send: the customer's key does not swallow the agent's message either
    ack = ws_send(d, cust, {"conversation": conv, "client_msg_id": "ws-1", "text": "via ws"})
    assert ack["type"] == "ack"
    ack2 = ws_send(d, a1, {"conversation": conv, "client_msg_id": "ws-1", "text": "agent ws"})
    assert ack2["type"] == "ack" and ack2["event_id"] != ack["event_id"]
    events = d.wait_history(conv, 5)
    assert [e["data"]["text"] for e in events][3:] == ["via ws", "agent ws"]


def test_same_key_other_body_is_a_conflict(daemon):
    d = daemon()
    cust = d.customer_token("bob")
    agent = d.agent_token("agent-9")
    r = send(d, "new", cust, "k1", text="first")
    assert r.status_code == 202
    conv, first = r.json()["conversation_id"], r.json()
    # at once, before the first is materialized
    r = send(d, conv, cust, "k1", text="second")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
    f = ws_send(d, cust, {"conversation": conv, "client_msg_id": "k1", "text": "third"})
    assert f["type"] == "error" and f["code"] == "conflict" and f["client_msg_id"] == "k1"
    d.wait_history(conv, 1)
    assert send(d, conv, agent, "a1", text="agent says").status_code == 202
    d.wait_history(conv, 2)
    # after a restart only the store knows the first body
    d.restart()
    r = send(d, conv, cust, "k1", text="fourth")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert send(d, conv, agent, "a1", text="agent changed").status_code == 409
    f = ws_send(d, agent, {"conversation": conv, "client_msg_id": "a1", "text": "changed"})
    assert f["type"] == "error" and f["code"] == "conflict"
    # the same body is still the same answer
    same = send(d, conv, cust, "k1", text="first")
    assert same.status_code == 202 and same.json() == first
    ack = ws_send(d, agent, {"conversation": conv, "client_msg_id": "a1", "text": "agent says"})
    assert ack["type"] == "ack"
    time.sleep(0.5)
    assert [e["data"]["text"] for e in d.history(conv)] == ["first", "agent says"]


# ---- item 7: what a customer supplies is validated ----

BAD_CUSTOMER_BODIES = [
    (400, {"text": "hi", "attachments": [{"kind": "pwned"}]}),
    (400, {"text": "hi", "attachments": [1, "two", None]}),
    (400, {"attachments": [{"kind": "image", "extra": "x"}]}),
    (400, {"attachments": [{"mime_type": "image/png"}]}),
    (400, {"attachments": [{"kind": "image", "size": -1}]}),
    (400, {"attachments": [{"kind": "image", "size": "10"}]}),
    (400, {"attachments": [{"kind": "image", "mime_type": "image/png; x=<script>"}]}),
    (400, {"attachments": [{"kind": "document", "filename": "f" * 256}]}),
    (400, {"attachments": [{"kind": "image"}] * 11}),
    (400, {"attachments": [{"kind": "document", "filename": "a" * 900000}]}),
    (403, {"text": "hi", "attachments": [{"kind": "image", "media_ref": "https://evil.example/x"}]}),
    (403, {"text": "hi", "attachments": [{"kind": "image", "url": "https://evil.example/x.png"}]}),
    (403, {"text": "hi", "template": {"name": "pay_now"}}),
    (400, {"text": "hi", "reply_to": "e_doesnotexist"}),
    (400, {"text": "hi", "reply_to": ""}),
    (400, {"text": "hi", "reply_to": 5}),
]


def test_customer_fields_are_validated(daemon):
    d = daemon()
    cust = d.customer_token("carl")
    agent = d.agent_token()
    r = send(d, "new", cust, "ok0", text="hello")
    assert r.status_code == 202
    conv, first = r.json()["conversation_id"], r.json()["event_id"]
    d.wait_history(conv, 1)
    for i, (status, body) in enumerate(BAD_CUSTOMER_BODIES):
        r = send(d, conv, cust, f"bad{i}", **body)
        assert r.status_code == status, (body if len(str(body)) < 300 else i, r.text)
        if len(json.dumps(body)) > 60000:
            continue  # over ws.max_frame: the WebSocket closes before parsing
        f = ws_send(d, cust, {"conversation": conv, "client_msg_id": f"wsbad{i}", **body})
        assert f["type"] == "error" and f["code"] == (
            "forbidden" if status == 403 else "bad_request"), (i, f)
    # the whole list is bounded too (an agent's can be the longest: urls and refs)
    many = [{"kind": "document", "filename": "n" * 250, "url": "https://cdn.example/" + "u" * 1900,
             "media_ref": "r" * 500}] * 10
    r = send(d, conv, agent, "big", attachments=many)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    # what is accepted is normalized and valid
    ok = send(d, conv, cust, "ok1", text="a photo",
              attachments=[{"kind": "image", "mime_type": "image/jpeg", "filename": "p.jpg",
                            "size": 1234}], reply_to=first)
    assert ok.status_code == 202, ok.text
    d.wait_history(conv, 2)  # a reply names a message the sender has seen
    ack = ws_send(d, cust, {"conversation": conv, "client_msg_id": "ok2", "text": "ws",
                            "attachments": [{"kind": "document"}],
                            "reply_to": ok.json()["event_id"]})
    assert ack["type"] == "ack", ack
    # an agent may refer to media and send templates, and reply to a customer's message
    r = send(d, conv, agent, "ag1", text="here",
             attachments=[{"kind": "image", "url": "https://cdn.example/a.png",
                           "media_ref": "m-1"}], template={"name": "hello", "language": "en"},
             reply_to=first)
    assert r.status_code == 202, r.text
    events = d.wait_history(conv, 4)
    time.sleep(0.5)
    events = d.history(conv)
    for ev in events:
        validate_event(ev)
    assert len(events) == 4
    assert events[1]["data"]["kind"] == "image" and events[1]["data"]["reply_to"] == first
    assert events[1]["data"]["attachments"] == [
        {"kind": "image", "mime_type": "image/jpeg", "filename": "p.jpg", "size": 1234}]
    assert events[2]["data"]["kind"] == "document"
    assert events[3]["data"]["template"] == {"name": "hello", "language": "en"}
    assert "media_ref" not in json.dumps([e["data"] for e in events[:3]])
    # reply_to must be a message of this conversation, not another one's
    other = send(d, "new", d.customer_token("dora"), "o1", text="other")
    assert other.status_code == 202
    d.wait_history(other.json()["conversation_id"], 1)
    r = send(d, conv, agent, "ag2", text="x", reply_to=other.json()["event_id"])
    assert r.status_code == 400


def with_a_conversation(omnihub):
    """A daemon (contacts on) holding one conversation: (daemon, its id, an
    agent's token)."""
    d = omnihub({"contacts.enabled": "true"})
    conv = d.post_inbound({"channel": "api:shop", "account": "acme", "message_id": "q1",
                           "contact": {"id": "u1", "name": "Ann"}, "text": "hi"}).json()[
        "conversation_id"]
    d.wait_history(conv, 1)
    return d, conv, d.agent_token()


def test_overlong_query_parameters_are_refused_not_ignored(omnihub):
    """A query parameter longer than the route reads was taken for an
    absent one: the history from seq 0, the whole inbox, every locale, the
    whole KPI range. Each is a 400 now, like any value the route does not
    accept; the same values written short are served."""
    d, conv, agent = with_a_conversation(omnihub)
    zeros, events = "0" * 400, f"/v1/conversations/{conv}/events"
    cases = {
        f"{events}?after={zeros}1": f"{events}?after=1",
        f"{events}?limit={zeros}5": f"{events}?limit=5",
        f"/v1/conversations?limit={zeros}5": "/v1/conversations?limit=5",
        f"/v1/conversations?updated_after=2026-01-01T00:00:00.{zeros}Z":
            "/v1/conversations?updated_after=2026-01-01T00:00:00.000Z",
        f"/v1/reports/kpis?from=2026-01-01T00:00:00.{zeros}Z":
            "/v1/reports/kpis?from=2026-01-01T00:00:00.000Z",
        f"/v1/reports/kpis?to=2030-01-01T00:00:00.{zeros}Z":
            "/v1/reports/kpis?to=2030-01-01T00:00:00.000Z",
        "/v1/reports/kpis?group_by=" + "agent" * 40: "/v1/reports/kpis?group_by=agent",
        f"/v1/kb/search?q=refund&limit={zeros}7": "/v1/kb/search?q=refund&limit=7",
        "/v1/kb/search?q=refund&locale=" + "en" * 100: "/v1/kb/search?q=refund&locale=en",
        f"/v1/contacts/p_nobody/events?limit={zeros}5": None,
    }
    got = {}
    for long, short in cases.items():
        got[long.replace(zeros, "0...")] = (d.request("GET", long, token=agent).status_code, 400)
        if short:
            got[short] = (d.request("GET", short, token=agent).status_code, 200)
    wrong = {path: g for path, g in got.items() if g[0] != g[1]}
    assert not wrong, f"path -> (got, expected): {wrong}"


def test_a_repeated_query_parameter_is_refused_not_first_wins(omnihub):
    """A parameter a route reads, given twice (?after=1&after=2), has no
    single value: the history, KB search and contacts took the first one
    while the inbox and the KPI report answered 400. Each is a 400 now;
    parameters a route does not read are still ignored there, repeated or
    not (clients add their own), and the same requests without the repeat
    are served."""
    d, conv, agent = with_a_conversation(omnihub)
    events = f"/v1/conversations/{conv}/events"
    cases = {
        f"{events}?after=1&after=2": ("after", f"{events}?after=1&x=1&x=2"),
        f"{events}?limit=5&after=0&limit=1": ("limit", f"{events}?limit=5&after=0"),
        f"{events}?after&after=0": ("after", f"{events}?after=0"),
        "/v1/conversations?status=open&limit=5&status=open": ("status",
                                                                "/v1/conversations?status=open"),
        "/v1/reports/kpis?group_by=agent&group_by=team": ("group_by",
                                                           "/v1/reports/kpis?group_by=agent"),
        "/v1/kb/search?q=refund&q=shipping": ("q", "/v1/kb/search?q=refund&token=a&token=b"),
        "/v1/kb/search?q=refund&locale=en&locale=es": ("locale", "/v1/kb/search?q=refund"),
        "/v1/contacts?identifier=email:a@x.org&identifier=email:b@x.org": (
            "identifier", "/v1/contacts?identifier=email:a@x.org"),
        "/v1/contacts/p_nobody/events?limit=1&limit=2": ("limit", None),
    }
    got, want = {}, {}
    for twice, (name, once) in cases.items():
        r = d.request("GET", twice, token=agent)
        got[twice] = (r.status_code, r.json())
        want[twice] = (400, {"error": {"code": "bad_request",
                                       "message": f'parameter "{name}" given twice'}})
        if once:
            got[once], want[once] = d.request("GET", once, token=agent).status_code, 200
    assert got == want


def test_an_unknown_parameter_is_refused_where_the_route_lists_its_own(omnihub):
    """The inbox (so the contract says) and the KPI report answer 400 to a
    parameter they do not know, so a typo never widens a filter or the
    range; the other routes ignore one, as the test above shows."""
    d, _, agent = with_a_conversation(omnihub)
    cases = {"/v1/conversations?stauts=open": "stauts",
             "/v1/conversations?limit=5&access_token=x": "access_token",
             "/v1/reports/kpis?group_by=agent&form=2026-01-01T00:00:00Z": "form",
             "/v1/reports/kpis?=agent": ""}
    got, want = {}, {}
    for path, name in cases.items():
        r = d.request("GET", path, token=agent)
        got[path] = (r.status_code, r.json())
        want[path] = (400, {"error": {"code": "bad_request",
                                      "message": f'unknown parameter "{name}"'}})
    assert got == want
