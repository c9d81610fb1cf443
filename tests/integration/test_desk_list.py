"""The agent inbox (CONTRACT part 2, issue 16): GET /v1/conversations with filters, full-text
q, cursor paging that returns each conversation once while conversations change, unread and
last_message; and the WebSocket "*" subscription resumed from a cursor. SQLite and
PostgreSQL (two shards, so pages are merged) and one Kafka-mode case.

The state filters (status, assignee, team, priority, label) are tested at the store level:
nothing on this branch writes the state columns yet (desk-state's materialize does), so the
test writes them straight into the store (SQLite file or psql) and checks the list's SQL."""
import concurrent.futures
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from test_hostile import frame, ws_open, ws_read
from test_kafka import cluster  # noqa: F401  (fixture; it takes pg from here)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_server import PgServer  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


def msg(mid, contact, text="hello", channel="api:shop"):
    return {"channel": channel, "account": "acme", "contact": {"id": contact, "name": "N"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


class Store:
    """The daemon under test and direct writes to its store's state columns."""

    def __init__(self, omnihub, pg, backend):
        self.backend = backend
        if backend == "sqlite":
            self.d = omnihub()
            self.dsns = []
        else:
            self.dsns = [pg.createdb("dl" + uuid.uuid4().hex[:10]) for _ in range(2)]
            self.d = omnihub({"store.backend": "postgres", "store.postgres.shards": self.dsns})

    def set_state(self, conv, **cols):
        sets = ", ".join(f"{k} = ?" for k in cols)
        vals = [json.dumps(v) if k == "labels" else v for k, v in cols.items()]
        if self.backend == "sqlite":
            db = sqlite3.connect(self.d.data_dir / "store.db", timeout=30)
            with db:
                db.execute(f"UPDATE conversations SET {sets} WHERE id = ?", vals + [conv])
            db.close()
            return
        lit = ", ".join(f"{k} = " + ("'%s'" % v.replace("'", "''") if isinstance(v, str)
                                     else str(v)) + ("::jsonb" if k == "labels" else "")
                        for k, v in zip(cols, vals))
        for dsn in self.dsns:  # the row lives on one shard; the others update nothing
            subprocess.run(["psql", "-q", "-c", f"UPDATE conversations SET {lit} "
                            f"WHERE id = '{conv}'", dsn], check=True, capture_output=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, omnihub):
    pgs = request.getfixturevalue("pg") if request.param == "postgres" else None
    return Store(omnihub, pgs, request.param)


def post_all(d, payloads):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(d.post_inbound, payloads))
    assert all(r.status_code == 202 for r in rs), [r.text for r in rs if r.status_code != 202]
    return [r.json()["conversation_id"] for r in rs]


def listing(d, token, query=""):
    r = d.request("GET", "/v1/conversations" + ("?" + query if query else ""), token=token)
    assert r.status_code == 200, (query, r.text)
    return r.json()


def ids(d, token, query):
    return {c["conversation_id"] for c in listing(d, token, query)["conversations"]}


def wait_heads(d, token, want, timeout=30):
    """Waits until every conversation in WANT (id -> head) has at least that head."""
    deadline = time.time() + timeout
    while True:
        got = {}
        cur = None
        while True:
            page = listing(d, token, "limit=1000" + (f"&cursor={cur}" if cur else ""))
            got.update({c["conversation_id"]: c["head"] for c in page["conversations"]})
            cur = page["next_cursor"]
            if not cur:
                break
        if all(got.get(c, 0) >= h for c, h in want.items()):
            return got
        assert time.time() < deadline, "materialization did not catch up"
        time.sleep(0.1)


def test_filters_search_unread_last_message(store):
    d = store.d
    a, b, c = post_all(d, [msg("a1", "ann", "the red umbrella"),
                           msg("b1", "bob", "blue kettle"),
                           msg("c1", "cat", "red kettle", channel="api:other")])
    me = d.agent_token("agent-1")
    wait_heads(d, me, {a: 1, b: 1, c: 1})
    store.set_state(a, status="pending", assignee="agent-1", team="sales", priority="high",
                    labels=["vip", "x"])
    store.set_state(b, status="open", assignee="agent-2", team="", priority="low", labels=["x"])
    store.set_state(c, status="resolved", assignee="", team="support", priority="normal",
                    labels=[])
    cases = {"status=pending": {a}, "status=open": {b}, "assignee=me": {a},
             "assignee=none": {c}, "assignee=agent-2": {b}, "team=sales": {a},
             "team=none": {b}, "priority=low": {b}, "priority=high": {a}, "label=vip": {a},
             "label=x": {a, b}, "channel=api:other": {c}, "contact_id=bob": {b},
             "q=red": {a, c}, "q=RED+kettle": {c}, "q=umbrella": {a}, "q=nothing": set(),
             "q=%22red%22+(*+-": {a, c},  # what looks like query syntax is only words
             "q=": {a, b, c}, "status=open&channel=api:shop": {b},
             "status=open&channel=api:other": set(), "": {a, b, c}}
    for query, want in cases.items():
        assert ids(d, me, query) == want, query
    # updated_after keeps working
    assert ids(d, me, "updated_after=2999-01-01T00:00:00Z") == set()
    assert ids(d, me, "updated_after=2000-01-01T00:00:00Z") == {a, b, c}
    # bad input: 400 and nothing else
    for bad in ("bogus=1", "Status=open", "status=open&status=open", "status=closed",
                "priority=top", "cursor=zzz", "cursor=", "cursor=MTIz", "cursor=%ff",
                "limit=0", "limit=1001", "label=", "updated_after=yesterday"):
        r = d.request("GET", "/v1/conversations?" + bad, token=me)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "bad_request"
    # last_message (a preview of at most 200 characters) and unread for the caller
    long = "é" * 150 + "ü" * 150
    r = d.post_inbound(msg("a2", "ann", long))
    assert r.status_code == 202
    r = d.request("POST", f"/v1/conversations/{a}/messages",
                  {"text": "an answer", "client_msg_id": "k1"}, token=me)
    assert r.status_code == 202, r.text
    wait_heads(d, me, {a: 3})
    # (the answer's delivery status may follow as seq 4: a status is no last message)
    row = listing(d, me, "contact_id=ann")["conversations"][0]
    assert row["head"] >= 3 and row["unread"] == row["head"]
    assert row["last_message"]["seq"] == 3 and row["last_message"]["direction"] == "outbound"
    assert row["last_message"]["text"] == "an answer"
    assert d.request("POST", f"/v1/conversations/{a}/read", {"seq": 2},
                     token=me).status_code == 200
    row = listing(d, me, "contact_id=ann")["conversations"][0]
    assert row["unread"] == row["head"] - 2
    other = d.agent_token("agent-9")
    row = listing(d, other, "contact_id=ann")["conversations"][0]
    assert row["unread"] == row["head"]
    one = d.request("GET", f"/v1/conversations/{a}", token=me).json()
    assert one["unread"] == one["head"] - 2
    r = d.post_inbound(msg("a3", "ann", long))
    deadline = time.time() + 30
    while not [e for e in d.history(a) if e["data"].get("message_id") == "a3"]:
        assert time.time() < deadline
        time.sleep(0.05)
    seq = next(e["seq"] for e in d.history(a) if e["data"].get("message_id") == "a3")
    wait_heads(d, me, {a: seq})
    lm = listing(d, me, "contact_id=ann")["conversations"][0]["last_message"]
    assert lm == {"seq": seq, "direction": "inbound", "kind": "text", "text": long[:200],
                  "time": "2026-12-03T10:00:00.000Z"}
    # the list's rows are the conversation object of GET one
    one = d.request("GET", f"/v1/conversations/{b}", token=me).json()
    assert listing(d, me, "contact_id=bob")["conversations"] == [one]


def test_paging_while_conversations_change_returns_each_once(store):
    d = store.d
    me = d.agent_token("agent-1")
    convs = post_all(d, [msg(f"p{i}", f"pc{i}") for i in range(300)])
    assert len(set(convs)) == 300
    wait_heads(d, me, {c: 1 for c in convs})
    changing = convs[::3][:100]  # spread over the whole order
    seen, cur, pages, k = [], None, 0, 0
    while True:
        page = listing(d, me, "limit=40" + (f"&cursor={cur}" if cur else ""))
        assert len(page["conversations"]) <= 40
        updated = [c["updated_at"] for c in page["conversations"]]
        assert updated == sorted(updated, reverse=True)  # within a page: last updated first
        seen += [c["conversation_id"] for c in page["conversations"]]
        pages += 1
        # between pages: 13 of the 100 get a new message, and a new conversation appears
        batch = changing[k:k + 13]
        k += 13
        post_all(d, [msg(f"p{convs.index(c)}-x", f"pc{convs.index(c)}") for c in batch] +
                 [msg(f"new{pages}", f"new{pages}")])
        cur = page["next_cursor"]
        if not cur:
            break
        assert pages < 20
    assert k >= 100
    assert len(seen) == len(set(seen)), "a conversation came twice"
    missing = set(convs) - set(seen)
    assert not missing, f"{len(missing)} conversations never came"
    # the ones that changed did change, and the last page had no next_cursor
    heads = wait_heads(d, me, {c: 2 for c in changing})
    assert all(heads[c] == 2 for c in changing)


def test_q_pages_each_once_whichever_plan(store):
    """q finds a page among the newest conversations, or looks a rare word up
    first, or (PostgreSQL, 2,000 messages or more) walks the whole list: each
    way, paging returns every match once."""
    d = store.d
    me = d.agent_token("agent-1")
    convs = post_all(d, [msg(f"q{i}", f"qc{i}", "common words" + (" scarce" if i % 10 == 0 else ""))
                         for i in range(30)])
    wait_heads(d, me, {c: 1 for c in convs})

    def pages(query):
        seen, cur = [], None
        for _ in range(40):
            page = listing(d, me, query + (f"&cursor={cur}" if cur else ""))
            assert len(page["conversations"]) <= 6
            seen += [c["conversation_id"] for c in page["conversations"]]
            cur = page["next_cursor"]
            if not cur:
                return seen
        raise AssertionError("paging did not end")

    everyone = pages("q=common&limit=6")
    assert len(everyone) == len(set(everyone)) == 30 and set(everyone) == set(convs)
    assert sorted(pages("q=scarce&limit=6")) == sorted(convs[::10])
    if store.backend == "postgres":  # a word in 2,000 messages of an old conversation only
        first = pages("limit=6")[-1]  # an old one (the last page)
        for dsn in store.dsns:
            subprocess.run(["psql", "-q", "-c", "INSERT INTO search (conversation_id, seq, tsv) "
                            "SELECT id, 100000 + g, to_tsvector('simple', 'bulky') FROM "
                            f"conversations, generate_series(1, 2000) g WHERE id = '{first}'",
                            dsn], check=True, capture_output=True)
        assert pages("q=bulky&limit=6") == [first]
        assert pages("q=bulky&status=open&limit=6") == [first]
        assert pages("q=bulky+scarce&limit=6") == []  # the words of one message: none has both


def read_json(s, timeout=15):
    f = ws_read(s, timeout=timeout)
    assert f is not None, "closed"
    return json.loads(f[1].decode())


def resume(d, token, cursor):
    """Subscribes to "*" from CURSOR: (the conversation frames, the subscribed frame, socket)."""
    s = ws_open(d, token)
    s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": "*",
                                   "cursor": cursor}).encode()))
    convs = []
    while True:
        m = read_json(s)
        if m["type"] == "conversation":
            convs.append(m["conversation"])
            continue
        assert m["type"] == "subscribed", m
        return convs, m, s


def test_star_resumes_from_a_cursor(store):
    d = store.d
    me = d.agent_token("agent-1")
    convs = post_all(d, [msg(f"w{i}", f"wc{i}") for i in range(300)])
    wait_heads(d, me, {c: 1 for c in convs})
    got, sub, s = resume(d, me, "")
    assert got == [] and sub["conversation"] == "*" and sub["recovered"] is True
    c0 = sub["cursor"]
    s.close()
    # disconnected: 40 conversations change, 5 are new
    changed = convs[::7][:40]
    new = post_all(d, [msg(f"w{convs.index(c)}-b", f"wc{convs.index(c)}") for c in changed] +
                   [msg(f"wn{i}", f"wn{i}") for i in range(5)])[40:]
    wait_heads(d, me, {**{c: 2 for c in changed}, **{c: 1 for c in new}})
    got, sub, s = resume(d, me, c0)
    by_id = {}
    for c in got:
        by_id[c["conversation_id"]] = c
    assert set(by_id) == set(changed) | set(new)
    assert all(by_id[c]["head"] == 2 and by_id[c]["last_message"]["seq"] == 2 for c in changed)
    assert all(by_id[c]["unread"] == by_id[c]["head"] for c in by_id)
    c1 = sub["cursor"]
    assert c1 != c0
    # then live events
    r = d.post_inbound(msg("live", "wc1"))
    m = read_json(s)
    assert m["type"] == "event" and m["event"]["data"]["message_id"] == "live", m
    s.close()
    # from C1: only what changed since (the live one)
    got, sub, s = resume(d, me, c1)
    assert [c["conversation_id"] for c in got] == [convs[1]]
    s.close()
    # the beginning of this store ("r0"), in several batches: every conversation once or more
    epoch = sub["epoch"]
    got, sub, s = resume(d, me, f"{epoch}~r0")
    assert {c["conversation_id"] for c in got} == set(convs) | set(new)
    s.close()
    # another store's cursor: everything, recovered false; a malformed one: an error
    got, sub, s = resume(d, me, "someotherepoch~r5")
    assert sub["recovered"] is False and len({c["conversation_id"] for c in got}) == 305
    s.close()
    for bad in (f"{epoch}~bogus", f"{epoch}~r1.2.3.4", 7):
        s = ws_open(d, me)
        s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": "*",
                                       "cursor": bad}).encode()))
        m = read_json(s)
        assert m["type"] == "error" and m["code"] == "bad_request", (bad, m)
        s.close()
    # a customer may not
    s = ws_open(d, d.customer_token("x"))
    s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": "*",
                                   "cursor": ""}).encode()))
    assert read_json(s)["type"] == "error"
    s.close()


def test_kafka_roles_list_search_subject_and_resume(cluster):
    """Kafka mode, gateway and sync in separate processes: the list (q over a text and an
    email subject; the subject event is produced onto the events topic as the email
    connector would), and "*" resumed on the gateway from what sync materialized."""
    gw = cluster.start("gateway", "gateway")
    cluster.start("sync", "sync1")
    me = gw.agent_token("agent-1")
    convs = post_all(gw, [msg(f"k{i}", f"kc{i}", f"parcel number {i}") for i in range(6)])
    wait_heads(gw, me, {c: 1 for c in convs})
    _, sub, s = resume(gw, me, "")
    s.close()
    conv = "conv-email-desk-list"
    ev = {"specversion": "1.0", "id": "e_desk_list_email_1", "source": "omnihub/email",
          "type": "omnihub.message.inbound", "time": "2026-12-03T10:00:00Z", "subject": conv,
          "datacontenttype": "application/json",
          "data": {"conversation_id": conv, "channel": "email", "account": "support@acme.test",
                   "direction": "inbound", "contact": {"id": "ann@example.test", "name": "Ann"},
                   "message_id": "<m1@example.test>", "kind": "email",
                   "subject": "Quarterly invoice overdue", "text": "see the attachment"}}
    subprocess.run(["kcat", "-b", cluster.mock.bootstrap, "-t", "omnihub.events", "-P",
                    "-k", conv, "-H", "ce_type=omnihub.message.inbound", "-H",
                    f"ce_subject={conv}"], input=json.dumps(ev).encode(), check=True,
                   timeout=60)
    assert post_all(gw, [msg("k0-b", "kc0", "second")]) == [convs[0]]
    wait_heads(gw, me, {conv: 1, convs[0]: 2})
    assert ids(gw, me, "q=invoice") == {conv}  # the subject
    assert ids(gw, me, "q=attachment") == {conv}  # the text
    assert ids(gw, me, "q=parcel+3") == {convs[3]}
    assert ids(gw, me, "q=invoice&channel=api:shop") == set()
    page = listing(gw, me, "limit=4")
    rest = listing(gw, me, f"limit=4&cursor={page['next_cursor']}")
    assert rest["next_cursor"] is None
    both = [c["conversation_id"] for c in page["conversations"] + rest["conversations"]]
    assert sorted(both) == sorted(convs + [conv])
    got, _, s = resume(gw, me, sub["cursor"])
    assert {c["conversation_id"] for c in got} == {conv, convs[0]}
    s.close()
