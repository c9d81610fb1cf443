"""The desk's roles, visibility and signals (CONTRACT part 2): the admin role
and the name/teams claims, private notes (stored for agents, a placeholder
for customers, never dispatched), typing, presence, a customer's read
receipt forwarded to agents, GET /v1/agents."""
import asyncio
import sqlite3
import subprocess
import time

import pytest

from conftest import ctl, JWT_SECRET
from test_auth_matrix import claims, jwt
from test_store_pg import newdb, pg  # noqa: F401 (the module's PostgreSQL server)
from test_webchat import Client, run

NOTE = "secret-note-7f3a: the customer is a known fraudster"


def api_msg(mid, contact="u1", text="hello"):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


def token(sub, role, *extra, device="d1"):
    out = ctl("token", "--secret", JWT_SECRET, "--sub", sub, "--role", role, "--device", device,
              *extra, check=True)
    return out.stdout.decode().strip()


def customer_conversation(d, cust):
    """A webchat conversation opened by customer CUST's first message."""
    async def go():
        async with Client(d, cust) as c:
            await c.send({"type": "send", "conversation": "new", "client_msg_id": "c1",
                          "text": "hi, I need help"})
            return (await c.until(lambda f: f["type"] == "ack"))["conversation_id"]
    conv = run(go())
    d.wait_history(conv, 1)
    return conv


def raw_history(d, conv, tok):
    r = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=1000", token=tok)
    assert r.status_code == 200, r.text
    return r.content, r.json()["events"]


# ---- roles and claims ----

def test_admin_token_works_where_an_agent_does_and_bad_claims_are_401(omnihub):
    d = omnihub()
    conv = d.post_inbound(api_msg("m1")).json()["conversation_id"]
    d.wait_history(conv, 1)
    admin = token("boss", "admin", "--name", "Bea Boss", "--team", "billing", "--team", "vip")
    assert d.request("GET", "/v1/conversations", token=admin).status_code == 200
    assert d.request("GET", f"/v1/conversations/{conv}", token=admin).status_code == 200
    assert len(d.history(conv, token=admin)) == 1
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "admin reply", "client_msg_id": "a1"}, token=admin)
    assert r.status_code == 202, r.text
    events = d.wait_history(conv, 2)
    assert events[1]["data"]["author"] == {"kind": "agent", "id": "boss"}

    async def ws():
        async with Client(d, admin) as c:
            sub = await c.subscribe("*")
            assert sub["type"] == "subscribed", sub
            return await c.subscribe(conv)
    assert run(ws())["type"] == "subscribed"
    r = d.request("GET", "/v1/agents", token=admin)
    assert r.status_code == 200, r.text
    boss = [a for a in r.json()["agents"] if a["id"] == "boss"]
    assert boss and boss[0]["name"] == "Bea Boss" and boss[0]["teams"] == ["billing", "vip"]

    now = int(time.time())
    good = dict(claims("ag", "agent"), name="Ann", teams=["t1"])
    assert d.request("GET", "/v1/conversations", token=jwt(good)).status_code == 200
    cust = dict(claims("cu"), email="Ann@Example.org", phone="+4915112345678")
    assert d.request("GET", f"/v1/conversations/{conv}", token=jwt(cust)).status_code == 403
    bad = [{"name": 7}, {"name": ""}, {"name": "x" * 200}, {"teams": "t1"}, {"teams": [1]},
           {"teams": ["t%d" % i for i in range(17)]}, {"teams": ["x" * 100]},
           {"email": "no-at-sign"}, {"email": 5}, {"phone": "12345"}, {"phone": "+12ab"},
           {"role": "superuser"}]
    for extra in bad:
        c = dict(claims("ag", "agent"), **extra)
        assert c["exp"] > now
        r = d.request("GET", "/v1/conversations", token=jwt(c))
        assert r.status_code == 401, (extra, r.text)
    assert ctl("token", "--secret", "s", "--sub", "x", "--role", "root").returncode == 2


# ---- private notes and visibility ----

def note_scenario(d):
    """A webchat conversation with a customer message, a note, a reply."""
    cust = d.customer_token("carol")
    agent = d.agent_token()
    conv = customer_conversation(d, cust)

    async def live():
        async with Client(d, cust) as c:
            sub = await c.subscribe(conv)
            assert sub["type"] == "subscribed"
            await c.events(1)
            r = d.request("POST", f"/v1/conversations/{conv}/messages",
                          {"text": NOTE, "client_msg_id": "n1", "internal": True}, token=agent)
            assert r.status_code == 202, r.text
            r = d.request("POST", f"/v1/conversations/{conv}/messages",
                          {"text": "We are looking into it", "client_msg_id": "r1"},
                          token=agent)
            assert r.status_code == 202, r.text
            return await c.events(2), c.frames
    live_events, frames = run(live())
    # the customer's live events: a placeholder in the note's place, seq dense
    assert [e["seq"] for e in live_events] == [2, 3]
    assert live_events[0]["type"] == "omnihub.internal"
    assert set(live_events[0]) == {"specversion", "id", "type", "time", "subject", "seq", "epoch"}
    assert live_events[1]["data"]["text"] == "We are looking into it"
    assert NOTE not in repr(frames)
    events = d.wait_history(conv, 3)
    # agents see the note whole
    assert events[1]["type"] == "omnihub.message.outbound"
    assert events[1]["data"]["internal"] is True and events[1]["data"]["text"] == NOTE
    # the customer's history page and a replay on a new device: placeholders
    body, page = raw_history(d, conv, cust)
    assert NOTE.encode() not in body and b'"internal"' not in body
    assert [e["seq"] for e in page] == list(range(1, len(page) + 1))
    assert page[1]["type"] == "omnihub.internal" and page[1]["id"] == events[1]["id"]

    async def replay():
        async with Client(d, d.customer_token("carol", "tablet")) as c:
            await c.subscribe(conv)
            return await c.events(3), c.frames
    got, frames = run(replay())
    assert [e["seq"] for e in got] == [1, 2, 3] and got[1]["type"] == "omnihub.internal"
    assert NOTE not in repr(frames)
    # webchat records delivery of what reached the customer: never of a note
    time.sleep(0.5)
    note_id = events[1]["data"]["message_id"]
    assert not [e for e in d.history(conv) if e["type"] == "omnihub.message.status" and
                e["data"]["status"]["message_id"] == note_id]
    # a customer cannot write a note
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "x", "client_msg_id": "c9", "internal": True}, token=cust)
    assert r.status_code == 403, r.text
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "x", "client_msg_id": "a9", "internal": "yes"}, token=agent)
    assert r.status_code == 400, r.text
    return conv


def api_note_not_dispatched(d, stub):
    conv = d.post_inbound(api_msg("q1")).json()["conversation_id"]
    d.wait_history(conv, 1)
    agent = d.agent_token()
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": NOTE, "client_msg_id": "n1", "internal": True}, token=agent)
    assert r.status_code == 202, r.text
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "a real reply", "client_msg_id": "r1"}, token=agent)
    assert r.status_code == 202, r.text
    stub.wait_requests(1)
    events = d.wait_history(conv, 4)  # inbound, note, reply, the reply's "sent"
    time.sleep(0.5)
    assert len(stub.requests) == 1 and stub.requests[0].json()["data"]["text"] == "a real reply"
    assert all(NOTE.encode() not in q.body for q in stub.requests)
    statuses = [e for e in events if e["type"] == "omnihub.message.status"]
    assert len(statuses) == 1
    assert statuses[0]["data"]["status"]["message_id"] == events[2]["data"]["message_id"]


def set_assignee(d, backend, dsn, conv, agent):
    sql = f"UPDATE conversations SET status = 'open', assignee = '{agent}' WHERE id = '{conv}'"
    if backend == "postgres":
        subprocess.run(["psql", "-Atc", sql, dsn], check=True, capture_output=True)
    else:
        db = sqlite3.connect(str(d.data_dir / "store.db"), timeout=30)
        db.execute(sql)
        db.commit()
        db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_private_note_placeholder_for_customers_never_dispatched(omnihub, http_stub, request,
                                                                 backend):
    stub = http_stub()
    cfg = {"api.outbound_url": stub.url + "/hook", "routing.capacity": "7"}
    dsn = None
    if backend == "postgres":
        dsn = newdb(request.getfixturevalue("pg"))
        cfg.update({"store.backend": "postgres", "store.postgres.dsn": dsn})
    d = omnihub(cfg)
    conv = note_scenario(d)
    api_note_not_dispatched(d, stub)
    # GET /v1/agents: open_assigned counts the store's open conversations
    # assigned to the agent (written here directly: nothing assigns yet)
    agent = d.agent_token("agent-x")

    async def connect():
        async with Client(d, agent) as c:
            await c.send({"type": "presence", "status": "online"})
            await c.send({"type": "ping"})
            await c.until(lambda f: f["type"] == "pong")
            set_assignee(d, backend, dsn, conv, "agent-x")
            r = d.request("GET", "/v1/agents", token=agent)
            assert r.status_code == 200, r.text
            return r.json()["agents"]
    agents = run(connect())
    me = [a for a in agents if a["id"] == "agent-x"][0]
    assert me["presence"] == "online" and me["capacity"] == 7 and me["open_assigned"] == 1
    assert me["name"] is None and me["teams"] == []
    cust = d.customer_token("carol")
    assert d.request("GET", "/v1/agents", token=cust).status_code == 403
    assert d.request("GET", "/v1/agents").status_code == 401
    assert d.request("POST", "/v1/agents", token=agent).status_code == 405


def test_kafka_note_not_dispatched_and_placeholder(omnihub, http_stub):
    stub = http_stub()
    d = omnihub({"log.backend": "kafka", "kafka.mock_brokers": "1", "kafka.partitions": "2",
                 "api.outbound_url": stub.url + "/hook"})
    note_scenario(d)
    api_note_not_dispatched(d, stub)


# ---- typing, presence, read ----

def test_a_held_start_goes_with_its_sender(omnihub):
    """A "start" held by the one-per-second window is dropped when its
    sender's connection closes: nothing would ever turn that indicator off.
    Before, it was forwarded at the next tick, after the sender had left."""
    d = omnihub()
    cust = d.customer_token("tom")
    conv = customer_conversation(d, cust)

    async def go():
        async with Client(d, d.agent_token("a1")) as a:
            assert (await a.subscribe(conv))["type"] == "subscribed"
            await a.events(1)
            async with Client(d, cust) as c:
                await c.send({"type": "typing", "conversation": conv, "state": "stop"})
                assert (await a.until(lambda f: f["type"] == "typing"))["state"] == "stop"
                await c.send({"type": "typing", "conversation": conv, "state": "start"})
                await c.send({"type": "ping"})
                await c.until(lambda f: f["type"] == "pong")  # the start was handled: held
            seen = [f["state"] for f in await a.quiet(3.0) if f["type"] == "typing"]
            assert seen == [], seen
    run(go())


def test_typing_is_forwarded_and_rate_limited(omnihub):
    d = omnihub()
    cust = d.customer_token("dora")
    conv = customer_conversation(d, cust)
    other = customer_conversation(d, d.customer_token("eve"))

    async def go():
        async with Client(d, cust) as c, Client(d, d.agent_token("a1")) as a, \
                Client(d, d.agent_token("a2", "desk2")) as inbox:
            assert (await a.subscribe(conv))["type"] == "subscribed"
            await a.events(1)
            assert (await inbox.subscribe("*"))["type"] == "subscribed"
            assert (await c.subscribe(conv))["type"] == "subscribed"
            await c.events(1)
            t0 = time.time()
            for _ in range(10):
                await c.send({"type": "typing", "conversation": conv, "state": "start"})
            burst = time.time() - t0
            await c.send({"type": "ping"})
            await c.until(lambda f: f["type"] == "pong")  # all ten were handled
            typed = [f for f in await a.quiet(0.5) if f["type"] == "typing"]
            seen = [f for f in await inbox.quiet(0.3) if f["type"] == "typing"]
            # one per second per sender and conversation: the burst took
            # BURST seconds, so at most 1 + BURST of them
            assert 1 <= len(typed) <= 1 + int(burst), (typed, burst)
            assert typed[0] == {"type": "typing", "conversation": conv,
                                "from": {"role": "customer", "id": "dora"}, "state": "start"}
            assert 1 <= len(seen) <= 1 + int(burst) and seen[0] == typed[0]
            # never back to the sender; an agent's typing reaches the customer
            await a.send({"type": "typing", "conversation": conv, "state": "start"})
            f = await c.until(lambda f: f["type"] == "typing")
            assert f["from"] == {"role": "agent", "id": "a1"}
            assert not [x for x in await c.quiet(0.3) if x["type"] == "typing"]
            # refusals
            await c.send({"type": "typing", "conversation": other, "state": "start"})
            assert (await c.until(lambda f: f["type"] == "error"))["code"] == "forbidden"
            await c.send({"type": "typing", "conversation": conv, "state": "dancing"})
            assert (await c.until(lambda f: f["type"] == "error"))["code"] == "bad_request"
    run(go())
    # never stored
    assert [e["type"] for e in d.history(conv)] == ["omnihub.message.inbound"]


def test_a_stop_right_after_a_start_still_arrives(omnihub):
    """Typing is limited to one signal per sender and conversation per
    second, but the state it ends in is not lost: a "stop" sent right after
    a "start" reaches the agent once the second is over (before, it was
    dropped and the agent's "typing..." stayed on). A start, stop, start
    within the second ends where it began: nothing more is sent."""
    d = omnihub()
    cust = d.customer_token("tess")
    conv = customer_conversation(d, cust)

    async def go():
        async with Client(d, cust) as c, Client(d, d.agent_token("a1")) as a:
            assert (await a.subscribe(conv))["type"] == "subscribed"
            await a.events(1)
            await c.send({"type": "typing", "conversation": conv, "state": "start"})
            await c.send({"type": "typing", "conversation": conv, "state": "stop"})
            first = await a.until(lambda f: f["type"] == "typing")
            t_first = time.monotonic()
            assert first["state"] == "start", first
            last = await a.until(lambda f: f["type"] == "typing", timeout=10)
            assert last["state"] == "stop" and last["from"] == {"role": "customer", "id": "tess"}
            assert time.monotonic() - t_first >= 0.7  # still one per second (client-side gap)
            assert not [f for f in await c.quiet(0.3) if f["type"] == "typing"]  # not to the sender
            # start, stop, start within the window: the agent saw "start" last
            await asyncio.sleep(1.1)
            for state in ("start", "stop", "start"):
                await c.send({"type": "typing", "conversation": conv, "state": state})
            seen = [f["state"] for f in await a.quiet(3.0) if f["type"] == "typing"]
            assert seen == ["start"], seen
    run(go())


def test_presence_and_close_seen_on_the_inbox(omnihub):
    d = omnihub()
    cust = d.customer_token("fred")

    async def go():
        async with Client(d, d.agent_token("watcher", "w")) as w:
            assert (await w.subscribe("*"))["type"] == "subscribed"

            async def status():
                f = await w.until(lambda f: f["type"] == "presence" and f["agent"] == "bob")
                return f["status"]
            b1 = await Client(d, d.token("bob", "agent", "laptop")).__aenter__()
            await b1.send({"type": "presence", "status": "online"})
            assert await status() == "online"
            await b1.send({"type": "presence", "status": "away"})
            assert await status() == "away"
            b2 = await Client(d, d.token("bob", "agent", "phone")).__aenter__()
            await b2.send({"type": "presence", "status": "online"})
            assert await status() == "online"
            r = d.request("GET", "/v1/agents", token=d.agent_token())
            bob = [a for a in r.json()["agents"] if a["id"] == "bob"][0]
            assert bob["presence"] == "online" and bob["capacity"] == 5
            await b2.__aexit__(None, None, None)  # online device gone: away again
            assert await status() == "away"
            await b1.__aexit__(None, None, None)  # last device closed: offline
            assert await status() == "offline"
            r = d.request("GET", "/v1/agents", token=d.agent_token())
            bob = [a for a in r.json()["agents"] if a["id"] == "bob"][0]
            assert bob["presence"] == "offline"
            async with Client(d, cust) as c:
                await c.send({"type": "presence", "status": "online"})
                assert (await c.until(lambda f: f["type"] == "error"))["code"] == "forbidden"
            async with Client(d, d.agent_token("bad")) as b:
                await b.send({"type": "presence", "status": "busy"})
                assert (await b.until(lambda f: f["type"] == "error"))["code"] == "bad_request"
    run(go())


def test_customer_read_reaches_agents(omnihub):
    d = omnihub()
    cust = d.customer_token("gina")
    conv = customer_conversation(d, cust)
    agent = d.agent_token("a1")
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "hello Gina", "client_msg_id": "r1"}, token=agent)
    assert r.status_code == 202
    d.wait_history(conv, 2)

    async def go():
        async with Client(d, cust) as c, Client(d, agent) as a, \
                Client(d, d.agent_token("a2", "desk2")) as inbox, \
                Client(d, d.customer_token("gina", "d2")) as own:
            await a.subscribe(conv)
            await a.events(2)
            await inbox.subscribe("*")
            await c.send({"type": "read", "conversation": conv, "seq": 2})
            # part 1's read frame (the reader's device) and who read
            want = {"type": "read", "conversation": conv, "seq": 2, "device": "d1",
                    "from": {"role": "customer", "id": "gina"}}
            assert await a.until(lambda f: f["type"] == "read") == want
            assert await inbox.until(lambda f: f["type"] == "read") == want
            # the customer's own other device: today's notice, unchanged
            f = await own.until(lambda f: f["type"] == "read")
            assert f == {"type": "read", "conversation": conv, "seq": 2, "device": "d1"}
            r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": 1},
                          token=d.customer_token("gina", "d3"))
            assert r.status_code == 200, r.text
            f = await a.until(lambda f: f["type"] == "read")
            assert f["seq"] == 1 and f["from"] == {"role": "customer", "id": "gina"}
            assert f["device"] == "d3"
            assert (await inbox.until(lambda f: f["type"] == "read"))["seq"] == 1
            # an agent's read is not forwarded to the other agents
            await a.send({"type": "read", "conversation": conv, "seq": 2})
            assert not [x for x in await inbox.quiet(0.5) if x["type"] == "read"]
    run(go())


def test_customers_get_messages_without_the_desks_members(omnihub):
    """A bot message's data.bot (its confidence, the knowledge base's
    article ids, whether an LLM wrote it) and the data.suggestion of an
    agent's reply made from a suggestion are the desk's: agents see them,
    the customer gets the message without them, live, replayed and in a
    history page, and the reply still gets its delivery states."""
    d = omnihub({"bot.enabled": "true", "webchat.receipts": "true"})
    admin = token("boss", "admin")
    r = d.request("PUT", "/v1/kb/articles/refund-policy-internal",
                  {"title": "Refunds", "body": "Refunds are paid within five business days "
                                                "after the returned item arrives."}, token=admin)
    assert r.status_code == 200, r.text
    cust, agent = d.customer_token("hana"), d.agent_token("a1")

    def desk(page):
        return [e for e in page if {"bot", "suggestion"} & set(e.get("data", {}))]

    async def live():
        async with Client(d, cust) as c:
            await c.send({"type": "send", "conversation": "new", "client_msg_id": "c1",
                          "text": "how long does a refund take after I return the item?"})
            conv = (await c.until(lambda f: f["type"] == "ack"))["conversation_id"]
            await c.subscribe(conv)
            bot = await c.until(lambda f: f["type"] == "event" and
                                f["event"].get("data", {}).get("author", {}).get("kind") == "bot")
            r = d.request("GET", f"/v1/conversations/{conv}/suggestions", token=agent)
            assert r.status_code == 200, r.text
            sid = r.json()["replies"][0]["suggestion_id"]
            r = d.request("POST", f"/v1/conversations/{conv}/messages",
                          {"text": "Five business days.", "client_msg_id": "a1",
                           "suggestion": {"id": sid, "source": "kb"}}, token=agent)
            assert r.status_code == 202, r.text
            reply = await c.until(lambda f: f["type"] == "event" and
                                  f["event"].get("data", {}).get("client_msg_id") == "a1")
            return conv, [bot["event"], reply["event"]]
    conv, got = run(live())
    assert not desk(got), got
    assert got[1]["data"]["text"] == "Five business days."
    # agents see both whole; read after the customer's page, as events
    # (a delivery state, triage) may still be coming: the page is a prefix
    body, page = raw_history(d, conv, cust)
    events = d.history(conv, token=agent)
    assert len(desk(events)) == 2, events
    bot = desk(events)[0]
    assert bot["data"]["bot"]["in_reply_to"] == events[0]["id"]
    assert [e["id"] for e in page] == [e["id"] for e in events][:len(page)], (page, events)
    assert not desk(page) and b"refund-policy-internal" not in body and b"confidence" not in body
    shown = {e["id"]: e for e in page}
    for e in desk(events):
        trimmed = dict(e, data={k: v for k, v in e["data"].items()
                                if k not in ("bot", "suggestion")})
        assert shown[e["id"]] == trimmed

    async def replay():
        async with Client(d, d.customer_token("hana", "tablet")) as c:
            await c.subscribe(conv)
            return await c.events(len(page))
    assert not desk(run(replay()))
    # the reply reached the customer: webchat records its delivery
    reply_id = desk(events)[1]["data"]["message_id"]
    deadline = time.time() + 10
    while not [e for e in d.history(conv) if e["type"] == "omnihub.message.status" and
               e["data"]["status"]["message_id"] == reply_id]:
        assert time.time() < deadline, "no delivery state for the suggested reply"
        time.sleep(0.1)
