"""The desk's conversation object (CONTRACT part 2): GET /v1/conversations/{id}."""
import contextlib
import json
import sqlite3
import threading
import time

from conftest import validate_event  # noqa: F401


def msg(mid, contact="u1", text="hello", channel="api:shop", account="acme"):
    return {"channel": channel, "account": account, "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


def test_get_one_conversation(omnihub):
    d = omnihub()
    r = d.post_inbound(msg("m1"))
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1)
    agent = d.agent_token()
    r = d.request("GET", f"/v1/conversations/{conv}", token=agent)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["conversation_id"] == conv and c["channel"] == "api:shop" and c["head"] == 1
    assert c["status"] == "open" and c["priority"] == "normal"
    assert c["assignee"] is None and c["team"] is None and c["labels"] == []
    assert c["unread"] == 1
    r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": 1}, token=agent)
    assert r.status_code in (200, 204), r.text
    assert d.request("GET", f"/v1/conversations/{conv}", token=agent).json()["unread"] == 0
    # unknown, foreign, malformed
    assert d.request("GET", "/v1/conversations/nope", token=agent).status_code == 404
    stranger = d.customer_token("someone-else")
    assert d.request("GET", f"/v1/conversations/{conv}", token=stranger).status_code == 403
    assert d.request("GET", f"/v1/conversations/{conv}").status_code == 401
    assert d.request("DELETE", f"/v1/conversations/{conv}", token=agent).status_code == 405


def test_state_changes_as_a_customer_and_the_agent_list_see_them(omnihub):
    """After the merge of state and visibility: a customer sees a claim and a
    priority change as placeholders, a resolve reduced to its status, and can
    change nothing; GET /v1/agents counts the claimed conversation."""
    from test_desk_signals import customer_conversation, raw_history
    d = omnihub()
    cust = d.customer_token("hank")
    conv = customer_conversation(d, cust)
    agent = d.agent_token("agent-zq9x")
    assert d.request("POST", f"/v1/conversations/{conv}/claim", token=agent).status_code == 200
    r = d.request("PATCH", f"/v1/conversations/{conv}", {"priority": "high"}, token=agent)
    assert r.status_code == 200 and r.json()["priority"] == "high", r.text
    assert d.request("PATCH", f"/v1/conversations/{conv}", {"status": "pending"},
                     token=cust).status_code == 403
    assert d.request("POST", f"/v1/conversations/{conv}/claim", token=cust).status_code == 403
    # GET /v1/agents lists agents that connected over WebSocket; open_assigned
    # comes from the store, so it is checked on the one who claimed if listed
    r = d.request("GET", "/v1/agents", token=agent)
    assert r.status_code == 200, r.text
    for a in r.json()["agents"]:
        if a["id"] == "agent-zq9x":
            assert a["open_assigned"] == 1
    r = d.request("PATCH", f"/v1/conversations/{conv}", {"status": "resolved"}, token=agent)
    assert r.status_code == 200, r.text
    head = r.json()["head"]
    raw, events = raw_history(d, conv, cust)
    assert [e["seq"] for e in events] == list(range(1, head + 1))
    types = [e["type"] for e in events]
    assert types[1:3] == ["omnihub.internal", "omnihub.internal"], types
    last = events[-1]
    assert last["type"] == "omnihub.conversation.updated"
    assert last["data"]["state"] == {"status": "resolved"}
    assert b"agent-zq9x" not in raw and b"\"high\"" not in raw
    for e in events:
        validate_event(e)
    # the agent sees them whole
    full = d.history(conv, token=agent)
    assert full[1]["data"]["state"]["assignee"] == "agent-zq9x"


def test_customer_gets_no_internal_state_of_their_conversation(omnihub):
    """The desk's state is internal (its changes reach a customer's history
    only as placeholders, a resolve as its status): GET of the conversation
    by its customer leaves it out too, and shows pending as open."""
    from test_desk_signals import customer_conversation
    d = omnihub()
    cust = d.customer_token("ivy")
    conv = customer_conversation(d, cust)
    agent = d.agent_token("agent-k7")
    r = d.request("PATCH", f"/v1/conversations/{conv}",
                  {"assignee": "agent-k7", "team": "fraud-desk", "priority": "urgent",
                   "labels": ["fraud-suspect"], "status": "pending"}, token=agent)
    assert r.status_code == 200, r.text
    r = d.request("GET", f"/v1/conversations/{conv}", token=cust)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["conversation_id"] == conv and c["head"] >= 2 and c["status"] == "open", c
    for k in ("assignee", "team", "priority", "labels", "contact_id", "snoozed_until", "sla",
              "unread", "episode"):
        assert k not in c, (k, c)
    assert b"fraud" not in r.content and b"agent-k7" not in r.content and b"urgent" not in r.content
    # the agent's view is whole; a resolve shows to the customer
    a = d.request("GET", f"/v1/conversations/{conv}", token=agent).json()
    assert a["labels"] == ["fraud-suspect"] and a["status"] == "pending" and "sla" in a
    r = d.request("PATCH", f"/v1/conversations/{conv}", {"status": "resolved"}, token=agent)
    assert r.status_code == 200, r.text
    assert d.request("GET", f"/v1/conversations/{conv}", token=cust).json()["status"] == "resolved"


def test_conversation_usable_right_after_the_inbound_202(omnihub):
    """The 202 of /v1/inbound comes once the event is durable in the log;
    sync stores the conversation a moment later. An agent acting on the id at
    once (read it, its history, claim it, answer it) must not get 404 in
    between: about one request in four did before the gateway waited for
    sync on conversations it had just appended to."""
    d = omnihub()
    agent = d.agent_token()
    calls = [
        lambda c, i: d.request("GET", f"/v1/conversations/{c}", token=agent),
        lambda c, i: d.request("GET", f"/v1/conversations/{c}/events?after=0", token=agent),
        lambda c, i: d.request("POST", f"/v1/conversations/{c}/claim", token=agent),
        lambda c, i: d.request("POST", f"/v1/conversations/{c}/messages",
                               {"text": "on it", "client_msg_id": f"r{i}"}, token=agent),
        lambda c, i: d.request("PATCH", f"/v1/conversations/{c}", {"priority": "high"},
                               token=agent),
    ]
    failures = []
    for i in range(40):
        r = d.post_inbound(msg(f"fresh{i}", contact=f"fresh{i}"))
        assert r.status_code == 202, r.text
        conv = r.json()["conversation_id"]
        r = calls[i % len(calls)](conv, i)
        if r.status_code not in (200, 202):
            failures.append((i, r.status_code, r.text))
    assert failures == []
    # a conversation nobody appended to is still 404 at once
    t0 = time.monotonic()
    assert d.request("GET", "/v1/conversations/c_never_seen", token=agent).status_code == 404
    assert time.monotonic() - t0 < 1


def test_history_right_after_the_202_shows_the_event(omnihub):
    """Read your writes: the 202 comes once the event is durable in the log,
    sync stores it a moment later. A GET of the history or of the
    conversation right after the 202, by the same client, without polling,
    must already show it (the gateway waits for sync's stored position to
    pass its own append). Before, the page often ended one message short."""
    d = omnihub()
    agent = d.agent_token()
    stale = []
    conv = None
    for i in range(30):
        r = d.post_inbound(msg(f"ryw{i}", contact="ryw", text=f"hello {i}"))
        assert r.status_code == 202, r.text
        conv, eid = r.json()["conversation_id"], r.json()["event_id"]
        if i % 2:
            page = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=1000",
                             token=agent).json()
            if eid not in {e["id"] for e in page["events"]}:
                stale.append((i, "events"))
        else:
            one = d.request("GET", f"/v1/conversations/{conv}", token=agent).json()
            if (one.get("last_message") or {}).get("text") != f"hello {i}":
                stale.append((i, "conversation"))
    assert stale == []


@contextlib.contextmanager
def sync_stalled(d):
    """Sync cannot store while this holds the store's write lock (another
    process's transaction; reads go on)."""
    lock = sqlite3.connect(str(d.data_dir / "store.db"), timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.rollback()
        lock.close()


def new_conversations(d, prefix, n):
    """Posts one inbound message from each of N new contacts PREFIX0,
    PREFIX1, ...; returns their conversation ids (in that order)."""
    convs = []
    for i in range(n):
        r = d.post_inbound(msg(f"{prefix}{i}", contact=f"{prefix}{i}"))
        assert r.status_code == 202, r.text
        convs.append(r.json()["conversation_id"])
    return convs


def listed_among(d, token, threads):
    """Starts THREADS (requests that will wait), asks for a list once they
    are on the pool, joins them; returns when the list was answered."""
    for t in threads:
        t.start()
    time.sleep(0.3)  # the waiting requests are on the pool
    r = d.request("GET", "/v1/conversations?limit=5", token=token)
    listed = time.monotonic()
    assert r.status_code == 200, r.text
    for t in threads:
        t.join()
    return listed


def test_reads_waiting_for_a_stalled_sync_leave_the_pool_to_others(omnihub):
    """Read your writes holds no worker: with sync stalled (another process
    holds the store's write lock), eight GETs of conversations just written
    to wait for it (1 s, then served as they stand), and a list asked for
    after them is answered first. Before, each waiting read held one of the
    gateway's four pool workers for its second, so the list waited behind
    them."""
    d = omnihub({"routing.enabled": "false", "triage.enabled": "false"})
    agent = d.agent_token()
    convs = new_conversations(d, "stall", 8)
    for c in convs:
        d.wait_history(c, 1, token=agent)
    with sync_stalled(d):
        for i, c in enumerate(convs):
            r = d.post_inbound(msg(f"stall{i}b", contact=f"stall{i}", text="again"))
            assert r.status_code == 202 and r.json()["conversation_id"] == c, r.text
        done = {}

        def get(c):
            t0 = time.monotonic()
            r = d.request("GET", f"/v1/conversations/{c}", token=agent)
            done[c] = (t0, time.monotonic(), r.status_code)

        listed = listed_among(d, agent, [threading.Thread(target=get, args=(c,)) for c in convs])
    assert all(status == 200 for _, _, status in done.values()), done
    # each read waited for sync (it was stalled: none could be served sooner)...
    assert min(end - start for start, end, _ in done.values()) >= 0.9, done
    # ...and the list, asked for after them, did not wait behind them
    assert listed < min(end for _, end, _ in done.values()), (listed, done)
    # sync goes on once the lock is gone, and the reads show the new message
    for c in convs:
        d.wait_history(c, 2, token=agent)
        one = d.request("GET", f"/v1/conversations/{c}", token=agent).json()
        assert one["last_message"]["text"] == "again"


def test_requests_waiting_for_a_new_conversation_leave_the_pool_to_others(omnihub):
    """A conversation whose first event is durable (202) but not stored yet,
    sync being stalled: a request for it looks again for 3 s, then answers
    as for an unknown id. Eight REST requests (claim, PATCH, a read cursor,
    an agent's message, suggestions) and eight WebSocket ones (subscribe,
    read, send) waiting so at once hold none of the gateway's four pool
    workers: a list asked for after them is answered first. Before, each
    held a worker for its 3 s, and the list waited behind them."""
    from test_hostile import frame, ws_open, ws_read
    d = omnihub({"routing.enabled": "false", "triage.enabled": "false"})
    agent = d.agent_token()
    with sync_stalled(d):
        convs = new_conversations(d, "new", 8)
        rest = [("POST", f"/v1/conversations/{convs[0]}/claim", None),
                ("PATCH", f"/v1/conversations/{convs[1]}", {"priority": "high"}),
                ("POST", f"/v1/conversations/{convs[2]}/read", {"seq": 1}),
                ("POST", f"/v1/conversations/{convs[3]}/messages",
                 {"text": "hi", "client_msg_id": "r3"}),
                ("GET", f"/v1/conversations/{convs[4]}/suggestions", None),
                ("POST", f"/v1/conversations/{convs[5]}/claim", None),
                ("PATCH", f"/v1/conversations/{convs[6]}", {"status": "pending"}),
                ("POST", f"/v1/conversations/{convs[7]}/messages",
                 {"text": "hi", "client_msg_id": "r7"})]
        ws = [{"type": "subscribe", "conversation": convs[0], "after": 0},
              {"type": "subscribe", "conversation": convs[1], "after": 0},
              {"type": "subscribe", "conversation": convs[2], "after": 0},
              {"type": "read", "conversation": convs[3], "seq": 1},
              {"type": "read", "conversation": convs[4], "seq": 1},
              {"type": "read", "conversation": convs[5], "seq": 1},
              {"type": "send", "conversation": convs[6], "client_msg_id": "w6", "text": "hi"},
              {"type": "send", "conversation": convs[7], "client_msg_id": "w7", "text": "hi"}]
        done, frames = {}, []

        def call(i, method, path, body):
            t0 = time.monotonic()
            r = d.request(method, path, body, token=agent)
            done[i] = (t0, time.monotonic(), r.status_code, method, path)

        s = ws_open(d, agent)
        sent = time.monotonic()
        for m in ws:
            s.sendall(frame(1, json.dumps(m).encode()))

        def read_ws():
            for _ in ws:
                f = ws_read(s, timeout=30)
                frames.append((time.monotonic(), json.loads(f[1]) if f else None))

        threads = [threading.Thread(target=call, args=(i, *c)) for i, c in enumerate(rest)]
        listed = listed_among(d, agent, threads + [threading.Thread(target=read_ws)])
        s.close()
    # each waited its 3 s for sync (stalled: the conversations stayed
    # unknown), then answered as for any unknown id, as it did before
    assert sorted(status for _, _, status, _, _ in done.values()) == [404] * 8, done
    assert min(end - start for start, end, *_ in done.values()) >= 2.9, done
    assert [m and (m["type"], m["code"]) for _, m in frames] == [("error", "not_found")] * 8, frames
    assert min(at for at, _ in frames) - sent >= 2.9, frames
    # ...and the list, asked for after them, did not wait behind them
    assert listed < min(end for _, end, *_ in done.values()), (listed, done)
    assert listed < min(at for at, _ in frames), (listed, frames)
    # sync goes on once the lock is gone, and the conversations are there
    for c in convs:
        d.wait_history(c, 1, token=agent)
    r = d.request("POST", f"/v1/conversations/{convs[0]}/claim", token=agent)
    assert r.status_code == 200 and r.json()["assignee"] == "agent-1", r.text


def test_a_wait_for_sync_ends_when_its_client_leaves(omnihub):
    """Requests waiting for sync are counted (omnihub_gateway_sync_waits),
    and one whose client went away stops waiting at its next look instead of
    polling the store until its time is up: four GETs of new conversations
    (3 s each while sync is stalled) and four WebSocket subscribes, their
    clients gone after the gauge shows them, leave it at 0 well before 3 s.
    Before, each went on looking every 5 ms for its whole 3 s."""
    from test_hostile import connect, frame, ws_open
    d = omnihub({"routing.enabled": "false", "triage.enabled": "false"})
    agent = d.agent_token()
    assert d.metric("omnihub_gateway_sync_waits") == 0
    with sync_stalled(d):
        convs = new_conversations(d, "gone", 8)
        started = time.monotonic()
        socks = []
        for c in convs[:4]:
            s = connect(d)
            s.sendall(f"GET /v1/conversations/{c} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {agent}\r\n\r\n".encode())
            socks.append(s)
        ws = ws_open(d, agent)
        for c in convs[4:]:
            ws.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": c,
                                            "after": 0}).encode()))
        socks.append(ws)
        while d.metric("omnihub_gateway_sync_waits") < 8:
            assert time.monotonic() - started < 2, d.metric("omnihub_gateway_sync_waits")
            time.sleep(0.02)
        for s in socks:
            s.close()
        while d.metric("omnihub_gateway_sync_waits") > 0:
            # the waits would end by themselves 3 s after they began
            assert time.monotonic() - started < 2.5, d.metric("omnihub_gateway_sync_waits")
            time.sleep(0.02)
    # the gateway goes on serving, and sync stores the conversations
    for c in convs:
        d.wait_history(c, 1, token=agent)
    assert d.metric("omnihub_gateway_sync_waits") == 0


def test_a_read_waits_3_s_in_all_for_a_new_conversation(omnihub):
    """A read of a conversation whose first event is durable but not stored
    (sync stalled) waits for sync's position (read your writes, 1 s) and
    then for the conversation: 3 s in all, as long as a claim that waits for
    the conversation alone, measured beside it. Before, the read's 3 s began
    after its 1 s: 4 s."""
    d = omnihub({"routing.enabled": "false", "triage.enabled": "false"})
    agent = d.agent_token()
    took = {}

    def timed(name, method, path):
        t0 = time.monotonic()
        r = d.request(method, path, token=agent)
        took[name] = (time.monotonic() - t0, r.status_code)

    with sync_stalled(d):
        convs = new_conversations(d, "both", 2)
        threads = [threading.Thread(target=timed, args=("read", "GET",
                                                         f"/v1/conversations/{convs[0]}")),
                   threading.Thread(target=timed, args=("claim", "POST",
                                                        f"/v1/conversations/{convs[1]}/claim"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert took["read"][1] == 404 and took["claim"][1] == 404, took
    assert took["claim"][0] >= 2.9, took
    assert took["read"][0] < took["claim"][0] + 0.5, took


def test_agents_lists_holders_of_open_conversations_and_the_caller(omnihub):
    """GET /v1/agents: an agent who claimed over HTTP and never opened a
    WebSocket is listed with their load (offline, name unknown), and the
    caller is listed with their token's claims. Before, only agents seen over
    a WebSocket were listed, so neither was."""
    from test_auth_matrix import claims, jwt
    d = omnihub({"routing.enabled": "false"})
    convs = []
    for i in range(2):
        r = d.post_inbound(msg(f"load{i}", contact=f"load{i}"))
        assert r.status_code == 202, r.text
        convs.append(r.json()["conversation_id"])
    holder = d.agent_token("holder-q7")
    for c in convs:
        assert d.request("POST", f"/v1/conversations/{c}/claim", token=holder).status_code == 200
    viewer = jwt(dict(claims("viewer-k2", "agent"), name="Vi", teams=["billing"]))
    r = d.request("GET", "/v1/agents", token=viewer)
    assert r.status_code == 200, r.text
    agents = {a["id"]: a for a in r.json()["agents"]}
    assert agents["holder-q7"]["open_assigned"] == 2
    assert agents["holder-q7"]["presence"] == "offline" and agents["holder-q7"]["name"] is None
    assert agents["viewer-k2"]["name"] == "Vi" and agents["viewer-k2"]["teams"] == ["billing"]
    assert agents["viewer-k2"]["open_assigned"] == 0
    assert [a["id"] for a in r.json()["agents"]] == ["holder-q7", "viewer-k2"]  # by id
    # a resolved conversation is no load; the holder of none left is not listed
    for c in convs:
        r = d.request("PATCH", f"/v1/conversations/{c}", {"status": "resolved"}, token=holder)
        assert r.status_code == 200, r.text
    agents = {a["id"]: a for a in d.request("GET", "/v1/agents", token=viewer).json()["agents"]}
    assert set(agents) == {"viewer-k2"}
