"""In-app chat over WebSocket: resume on any device with no gap and no
duplicate, read cursors across devices, refusals."""
import asyncio
import concurrent.futures
import json
import threading
import time

import pytest
import websockets
import websockets.exceptions

from conftest import validate_event


class Client:
    """A WebSocket client of one device; events land in .events by seq."""

    def __init__(self, d, token):
        self.d, self.token = d, token
        self.frames = []
        self.validate = True

    async def __aenter__(self):
        self.ws = await websockets.connect(
            self.d.url.replace("http", "ws") + "/v1/ws",
            extra_headers={"Authorization": "Bearer " + self.token}, max_size=2 ** 22)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout=10):
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        if frame["type"] == "event" and self.validate:
            validate_event(frame["event"])
        return frame

    async def until(self, pred, timeout=15):
        deadline = time.time() + timeout
        while True:
            f = await self.recv(max(0.1, deadline - time.time()))
            if pred(f):
                return f

    async def subscribe(self, conv, after=0, epoch=None):
        msg = {"type": "subscribe", "conversation": conv, "after": after}
        if epoch:
            msg["epoch"] = epoch
        await self.send(msg)
        return await self.until(lambda f: f["type"] in ("subscribed", "error"))

    async def events(self, n, timeout=15):
        got = []
        while len(got) < n:
            f = await self.recv(timeout)
            if f["type"] == "event":
                got.append(f["event"])
        return got

    async def quiet(self, seconds=0.5):
        """Frames that arrive within SECONDS (there should be none)."""
        extra = []
        try:
            while True:
                extra.append(await self.recv(seconds))
        except asyncio.TimeoutError:
            return extra


def run(coro):
    return asyncio.run(coro)


def test_resume_on_another_device(omnihub):
    d = omnihub()
    a_tok = d.customer_token("alice", "phone")
    b_tok = d.customer_token("alice", "desktop")
    agent = d.agent_token()

    async def scenario():
        async with Client(d, a_tok) as a:
            acks = []
            for key, text in [("k1", "one"), ("k2", "two"), ("k2", "two"), ("k3", "three")]:
                await a.send({"type": "send", "conversation": "new", "client_msg_id": key,
                              "text": text})
                acks.append(await a.until(lambda f: f["type"] in ("ack", "error")))
            assert all(x["type"] == "ack" for x in acks)
            assert acks[1]["event_id"] == acks[2]["event_id"]
            conv = acks[0]["conversation_id"]
            d.wait_history(conv, 3)
            for i in range(5):
                r = d.request("POST", f"/v1/conversations/{conv}/messages",
                              {"text": f"agent {i}", "client_msg_id": f"r{i}"}, token=agent)
                assert r.status_code == 202
            d.wait_history(conv, 8)
            async with Client(d, b_tok) as b:
                sub = await b.subscribe(conv, 0)
                assert sub["type"] == "subscribed" and sub["head"] == 8
                got = await b.events(8)
                assert [e["seq"] for e in got] == list(range(1, 9))
                assert [e["data"]["text"] for e in got[:3]] == ["one", "two", "three"]
                epoch = sub["epoch"]
                sub_a = await a.subscribe(conv, 3, epoch)
                assert sub_a["recovered"] is True
                got_a = await a.events(5)
                assert [e["seq"] for e in got_a] == [4, 5, 6, 7, 8]
                r = d.request("POST", f"/v1/conversations/{conv}/messages",
                              {"text": "live", "client_msg_id": "live1"}, token=agent)
                assert r.status_code == 202
                live_a = await a.events(1)
                live_b = await b.events(1)
                assert live_a[0]["seq"] == live_b[0]["seq"] == 9
                assert not [f for f in await a.quiet() if f["type"] == "event"]
                assert not [f for f in await b.quiet() if f["type"] == "event"]
                # read cursor fans out to the other device
                await a.send({"type": "read", "conversation": conv, "seq": 8})
                rd = await b.until(lambda f: f["type"] == "read")
                assert rd == {"type": "read", "conversation": conv, "seq": 8, "device": "phone"}
            return conv, epoch

    conv, epoch = run(scenario())
    d.restart()

    async def after_restart():
        async with Client(d, b_tok) as b:
            sub = await b.subscribe(conv, 9, epoch)
            assert sub["recovered"] is True and sub["head"] == 9
            assert not [f for f in await b.quiet() if f["type"] == "event"]
            stale = await b.subscribe(conv, 5, "not-the-epoch")
            assert stale["recovered"] is False
            got = await b.events(9)
            assert [e["seq"] for e in got] == list(range(1, 10))

    run(after_restart())
    store_cursor = d.metric("omnihub_ws_events_replayed_total")
    assert store_cursor >= 9


def test_refusals(omnihub):
    d = omnihub()
    alice, carol = d.customer_token("alice"), d.customer_token("carol")
    expired = d.token("alice", ttl=-10)

    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with Client(d, expired):
                pass
        assert e.value.status_code == 401
        url = d.url.replace("http", "ws") + "/v1/ws?access_token=" + alice
        async with websockets.connect(url) as q:  # the documented query-string token
            await q.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(q.recv(), 5)) == {"type": "pong"}
        async with Client(d, alice) as a:
            await a.send({"type": "send", "conversation": "new", "client_msg_id": "x",
                          "text": "hi"})
            ack = await a.until(lambda f: f["type"] == "ack")
            conv = ack["conversation_id"]
        async with Client(d, carol) as c:
            for msg in [{"type": "subscribe", "conversation": conv, "after": 0},
                        {"type": "send", "conversation": conv, "client_msg_id": "y", "text": "x"},
                        {"type": "read", "conversation": conv, "seq": 1},
                        {"type": "subscribe", "conversation": "*"}]:
                await c.send(msg)
                f = await c.until(lambda f: f["type"] == "error")
                assert f["code"] == "forbidden"
            await c.ws.send("{broken")
            assert (await c.until(lambda f: f["type"] == "error"))["code"] == "bad_request"
            await c.send({"type": "launch"})
            assert (await c.until(lambda f: f["type"] == "error"))["code"] == "bad_request"
            await c.ws.send(b"\x00\x01binary")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await c.recv(5)
            assert closed.value.code == 1003
        return conv

    conv = run(scenario())
    d.wait_history(conv, 1)
    time.sleep(0.3)
    assert len(d.history(conv)) == 1


def test_oversized_frame_and_flood(omnihub):
    d = omnihub({"ws.max_frame": "1k", "ws.rate": "5"})
    tok = d.customer_token("dave")

    async def scenario():
        async with Client(d, tok) as c:
            for i in range(30):
                await c.send({"type": "ping"})
            frames = []
            try:
                while True:
                    frames.append(await c.recv(1))
            except asyncio.TimeoutError:
                pass
            codes = [f.get("code") for f in frames if f["type"] == "error"]
            assert "rate_limited" in codes
            assert sum(1 for f in frames if f["type"] == "pong") <= 11
            # a send refused for the rate names its client_msg_id: the client
            # knows which to send again (and none of them is acknowledged twice)
            for i in range(30):
                await c.send({"type": "send", "conversation": "new", "client_msg_id": f"k{i}",
                              "text": "hi"})
            frames, refused, acked = [], [], []
            while len(refused) + len(acked) < 30:
                frames.append(await c.recv(15))
                f = frames[-1]
                if f["type"] == "error" and f["code"] == "rate_limited":
                    refused.append(f["client_msg_id"])
                elif f["type"] == "ack":
                    acked.append(f["client_msg_id"])
            assert refused and not set(refused) & set(acked), frames
            assert sorted(refused + acked) == sorted(f"k{i}" for i in range(30)), frames
        async with Client(d, tok) as c:
            await c.ws.send("x" * 5000)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await c.recv(5)
            assert closed.value.code == 1009

    run(scenario())
    assert d.metric("omnihub_ws_rate_limited_total") >= 1


def test_agent_inbox_sees_every_channel(omnihub):
    d = omnihub()

    async def scenario():
        async with Client(d, d.agent_token()) as ag:
            sub = await ag.subscribe("*")
            assert sub["type"] == "subscribed"
            r = d.post_inbound({"channel": "api:shop", "account": "a", "contact": {"id": "z"},
                                "message_id": "inbox1", "text": "from api"})
            assert r.status_code == 202
            async with Client(d, d.customer_token("erin")) as e:
                await e.send({"type": "send", "conversation": "new", "client_msg_id": "q",
                              "text": "from webchat"})
                await e.until(lambda f: f["type"] == "ack")
            got = await ag.events(2)
            assert sorted(x["data"]["channel"] for x in got) == ["api:shop", "webchat"]

    run(scenario())


def test_replay_during_concurrent_posts(omnihub):
    """A resume of >= 10,000 events while new messages keep arriving: every
    event exactly once, in order."""
    d = omnihub()
    total_before = 10000
    batch = [{"channel": "api:shop", "account": "big", "contact": {"id": "heavy"},
              "message_id": f"h{i}", "text": f"m{i}"} for i in range(total_before)]

    def post(i):
        return d.post_inbound(batch[i]).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert set(pool.map(post, range(total_before))) == {202}
    conv = d.post_inbound(batch[0]).json()["conversation_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        r = d.request("GET", f"/v1/conversations/{conv}/events?after={total_before - 1}",
                      token=d.agent_token()).json()
        if r["head"] >= total_before:
            break
        time.sleep(0.2)
    extra = 300
    stop = threading.Event()

    def writer():
        for i in range(extra):
            d.post_inbound({"channel": "api:shop", "account": "big", "contact": {"id": "heavy"},
                            "message_id": f"late{i}", "text": f"late {i}"})
        stop.set()

    async def scenario():
        async with Client(d, d.agent_token()) as c:
            t = threading.Thread(target=writer)
            t.start()
            sub = await c.subscribe(conv, 0)
            assert sub["type"] == "subscribed"
            got = await c.events(total_before + extra, timeout=60)
            t.join()
            seqs = [e["seq"] for e in got]
            assert seqs == list(range(1, total_before + extra + 1))
            assert not [f for f in await c.quiet(0.5) if f["type"] == "event"]

    run(scenario())


def _raw_ws(d, token, rcvbuf=4096):
    """A WebSocket client that never reads: a tiny receive buffer, by hand."""
    import base64
    import os
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", d.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _frame(obj):
    import os
    payload = json.dumps(obj).encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


def test_slow_client_is_closed_and_others_keep_up(omnihub):
    d = omnihub({"ws.max_queue": "2m"})
    conv = d.post_inbound({"channel": "api:shop", "account": "slow", "contact": {"id": "s"},
                           "message_id": "s0", "text": "start"}).json()["conversation_id"]
    d.wait_history(conv, 1)
    agent = d.agent_token()
    slow = _raw_ws(d, agent)
    slow.sendall(_frame({"type": "subscribe", "conversation": conv, "after": 0}))
    n = 6000  # 6 MB: far past the 2 MB bound for a reader that never reads
    text = "x" * 1000

    async def scenario():
        async with Client(d, agent) as good:
            good.validate = False  # keep this reader fast: it stands for a healthy client
            await good.subscribe(conv, 0)
            await good.events(1)

            def post_all():
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda i: d.post_inbound(
                        {"channel": "api:shop", "account": "slow", "contact": {"id": "s"},
                         "message_id": f"s{i + 1}", "text": text}), range(n)))

            loop = asyncio.get_running_loop()
            posting = loop.run_in_executor(None, post_all)
            got = await good.events(n, timeout=120)
            await posting
            assert [e["seq"] for e in got] == list(range(2, n + 2))

    run(scenario())
    deadline = time.time() + 20
    while time.time() < deadline and d.metric("omnihub_ws_slow_closes_total") < 1:
        time.sleep(0.1)
    assert d.metric("omnihub_ws_slow_closes_total") >= 1
    slow.close()
