"""Webchat as a connector (connectors/webchat/): the account of customers'
conversations comes from webchat.account, and with webchat.receipts agents'
replies get delivery states like other channels:

- `delivered` once the reply was queued to one of the customer's connected
  WebSocket devices: pushed live, or replayed by a subscribe (a customer who
  is offline when the agent answers gets it when a device catches up);
- `read` once one of the customer's read cursors (REST POST .../read or the
  WebSocket `read`) reaches the reply's seq; read implies delivered, so a
  reply read before any device received it gets `delivered` then `read`.

Each state is recorded once and never moves backwards. An agent's cursor
changes nothing."""
import asyncio
import base64
import hashlib
import time

from conftest import validate_event
from test_webchat import Client, run

RECEIPTS = {"webchat.receipts": "true"}


def conversation_id(channel, account, contact):
    """oh_conversation_id(): length-prefixed parts, SHA-256, 24 bytes base64url."""
    h = hashlib.sha256()
    for part in ("conversation", channel, account, contact):
        b = part.encode()
        h.update(len(b).to_bytes(4, "big") + b)
    return "c_" + base64.urlsafe_b64encode(h.digest()[:24]).decode().rstrip("=")


def statuses(d, conv):
    """(message_id, state) of every status event of CONV, in seq order."""
    out = []
    for ev in d.history(conv):
        validate_event(ev)
        if ev["type"] == "omnihub.message.status":
            assert ev["data"]["channel"] == "webchat"
            assert ev["data"]["author"] == {"kind": "system", "id": "omnihub"}
            out.append((ev["data"]["status"]["message_id"], ev["data"]["status"]["state"]))
    return out


def wait_statuses(d, conv, want, timeout=20):
    deadline = time.time() + timeout
    got = []
    while time.time() < deadline:
        got = statuses(d, conv)
        if all(w in got for w in want):
            return got
        time.sleep(0.1)
    raise AssertionError(f"statuses {got}, expected {want}")


def reply(d, conv, key, text="hello"):
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": text, "client_msg_id": key}, token=d.agent_token())
    assert r.status_code == 202, r.text
    return r.json()["event_id"]


def seq_of(d, conv, event_id):
    return next(e["seq"] for e in d.history(conv) if e["id"] == event_id)


async def open_conversation(c):
    await c.send({"type": "send", "conversation": "new", "client_msg_id": "hi", "text": "hi"})
    ack = await c.until(lambda f: f["type"] in ("ack", "error"))
    assert ack["type"] == "ack", ack
    return ack["conversation_id"]


def test_account_from_config_changes_the_conversation_id(omnihub):
    ids = {}
    for account in ("default", "shop-eu"):
        config = {} if account == "default" else {"webchat.account": account}
        d = omnihub(config, name=account)
        tok = d.customer_token("alice")

        async def scenario():
            async with Client(d, tok) as c:
                return await open_conversation(c)

        conv = run(scenario())
        assert conv == conversation_id("webchat", account, "alice")
        ev = d.wait_history(conv, 1)[0]
        assert ev["data"]["account"] == account and ev["data"]["channel"] == "webchat"
        assert ev["source"] == f"/omnihub/webchat/{account}"
        ids[account] = conv
        # the customer owns the conversation of this account, and no other
        assert d.request("GET", f"/v1/conversations/{conv}/events", token=tok).status_code == 200
        other = conversation_id("webchat", "default" if account != "default" else "x", "alice")
        assert d.request("GET", f"/v1/conversations/{other}/events",
                         token=tok).status_code == 403
    assert ids["default"] != ids["shop-eu"]


def test_delivered_when_pushed_read_when_the_cursor_passes(omnihub):
    d = omnihub(RECEIPTS)
    phone = d.customer_token("bea", "phone")

    async def scenario():
        async with Client(d, phone) as c:
            conv = await open_conversation(c)
            d.wait_history(conv, 1)
            # the customer's device is connected but not subscribed: nothing
            # reaches it, so the reply is not delivered
            r1 = reply(d, conv, "r1")
            d.wait_history(conv, 2)
            await asyncio.sleep(1.5)
            assert statuses(d, conv) == []
            # a subscribe replays it: delivered
            sub = await c.subscribe(conv, 0)
            assert sub["type"] == "subscribed"
            wait_statuses(d, conv, [(r1, "delivered")])
            # a live push: delivered
            r2 = reply(d, conv, "r2")
            wait_statuses(d, conv, [(r2, "delivered")])
            assert (r2, "read") not in statuses(d, conv)
            # the customer's cursor passes r1 only (REST)
            s1 = seq_of(d, conv, r1)
            r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": s1}, token=phone)
            assert r.status_code == 200
            wait_statuses(d, conv, [(r1, "read")])
            await asyncio.sleep(1)
            assert (r2, "read") not in statuses(d, conv)
            # then past r2 (WebSocket)
            await c.send({"type": "read", "conversation": conv, "seq": seq_of(d, conv, r2)})
            wait_statuses(d, conv, [(r2, "read")])
            # the statuses reached the subscribed device live, valid events
            got = await c.until(lambda f: f["type"] == "event" and
                                f["event"]["type"] == "omnihub.message.status" and
                                f["event"]["data"]["status"]["message_id"] == r2 and
                                f["event"]["data"]["status"]["state"] == "read")
            validate_event(got["event"])
            return conv, r1, r2

    conv, r1, r2 = run(scenario())

    # another device replays everything and reads again: nothing new
    async def again():
        async with Client(d, d.customer_token("bea", "tablet")) as t:
            sub = await t.subscribe(conv, 0)
            await t.events(sub["head"])
            await t.send({"type": "read", "conversation": conv, "seq": sub["head"]})
            await asyncio.sleep(1.5)

    run(again())
    got = statuses(d, conv)
    assert got == [(r1, "delivered"), (r2, "delivered"), (r1, "read"), (r2, "read")], got


def test_read_before_any_device_received_it(omnihub):
    """A reply read (REST) while no device of the customer is subscribed:
    delivered then read, in that order; a later replay adds nothing."""
    d = omnihub(RECEIPTS)
    tok = d.customer_token("cid")

    async def opened():
        async with Client(d, tok) as c:
            return await open_conversation(c)

    conv = run(opened())
    r1 = reply(d, conv, "r1")
    d.wait_history(conv, 2)
    r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": 2}, token=tok)
    assert r.status_code == 200
    wait_statuses(d, conv, [(r1, "delivered"), (r1, "read")])

    async def replay():
        async with Client(d, tok) as c:
            sub = await c.subscribe(conv, 0)
            await c.events(sub["head"])
            await asyncio.sleep(1.5)

    run(replay())
    assert statuses(d, conv) == [(r1, "delivered"), (r1, "read")]


def test_agents_and_default_config_record_nothing(omnihub):
    """Receipts are on by default and off with webchat.receipts: false; an
    agent's cursor never marks a reply read."""
    for config in ({"webchat.receipts": "false"}, {"webchat.receipts": None}):
        on = config["webchat.receipts"] is None
        d = omnihub(config, name="on" if on else "off")
        tok = d.customer_token("dan")

        async def scenario():
            async with Client(d, tok) as c:
                conv = await open_conversation(c)
                await c.subscribe(conv, 0)
                r1 = reply(d, conv, "r1")
                await c.until(lambda f: f["type"] == "event" and f["event"]["id"] == r1)
                r = d.request("POST", f"/v1/conversations/{conv}/read", {"seq": 2},
                              token=d.agent_token())
                assert r.status_code == 200
                await asyncio.sleep(1.5)
                return conv, r1

        conv, r1 = run(scenario())
        assert statuses(d, conv) == ([(r1, "delivered")] if on else [])
