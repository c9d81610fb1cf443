"""WebSocket replay on subscribe: the server frames whole pages of stored events and
writes them raw in large slices. Each event must still arrive as one text frame holding
one JSON object (every length form: 16-bit and 64-bit), in seq order, exactly once,
across page boundaries, for a reader that lags, and followed by live events."""
import json
import time

from test_hostile import frame, ws_open, ws_read
from test_spine import msg


def fill(d, n, big=()):
    """N messages in one conversation; those in BIG carry a 70 KB text."""
    conv = None
    for i in range(n):
        text = ("x" * 70000 + f" {i}") if i in big else f"text {i} " + "é" * (i % 7)
        r = d.post_inbound(msg(f"m{i}", contact="replay", text=text))
        assert r.status_code == 202, r.text
        conv = r.json()["conversation_id"]
    return conv, d.wait_history(conv, n)


def read_json(s, timeout=10):
    f = ws_read(s, timeout=timeout)
    assert f is not None, "closed"
    op, payload = f
    assert op == 1, f"opcode {op}: {payload[:80]!r}"
    return json.loads(payload.decode("utf-8")), len(payload)


def subscribe(s, conv, after=0, epoch=None):
    m = {"type": "subscribe", "conversation": conv, "after": after}
    if epoch:
        m["epoch"] = epoch
    s.sendall(frame(1, json.dumps(m).encode()))
    sub, _ = read_json(s)
    assert sub["type"] == "subscribed", sub
    return sub


def test_replay_pages_every_frame_length_in_order_once(omnihub):
    # a small queue makes small pages: 64 KiB each, a 70 KB event ends one
    d = omnihub({"ws.max_queue": "256k"})
    n, big = 150, {3, 31, 149}
    conv, history = fill(d, n, big)
    s = ws_open(d, d.agent_token())
    sub = subscribe(s, conv)
    assert sub["head"] == n and sub["recovered"] is True
    sizes = []
    for want in history:
        m, size = read_json(s)
        assert m["type"] == "event", m
        assert m["event"] == want  # byte for byte the stored event, in order
        sizes.append(size)
    assert max(sizes) >= 65536 and min(sizes) < 65536  # both extended length forms

    # then live: a new event once, nothing replayed twice
    r = d.post_inbound(msg("live", contact="replay"))
    assert r.status_code == 202
    m, _ = read_json(s)
    assert m["type"] == "event" and m["event"]["seq"] == n + 1, m
    s.sendall(frame(1, json.dumps({"type": "ping"}).encode()))
    m, _ = read_json(s)
    assert m == {"type": "pong"}, m  # nothing else was queued before it

    # a resume from the middle with the current epoch: exactly the rest
    s2 = ws_open(d, d.agent_token())
    sub2 = subscribe(s2, conv, after=40, epoch=sub["epoch"])
    assert sub2["recovered"] is True
    got = [read_json(s2)[0]["event"]["seq"] for _ in range(n + 1 - 40)]
    assert got == list(range(41, n + 2))
    assert d.metric("omnihub_ws_slow_closes_total") == 0


def test_a_lagging_reader_gets_the_whole_replay(omnihub):
    # pages wait while the client's queue is over half of ws.max_queue; a reader that
    # does not read for a while is neither closed as slow nor missing events
    d = omnihub({"ws.max_queue": "128k"})
    n = 400
    conv, history = fill(d, n, big={200})
    s = ws_open(d, d.agent_token())
    s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": conv,
                                   "after": 0}).encode()))
    time.sleep(1.5)
    sub, _ = read_json(s)
    assert sub["type"] == "subscribed"
    seqs = [read_json(s)[0]["event"]["seq"] for _ in range(n)]
    assert seqs == [e["seq"] for e in history] == list(range(1, n + 1))
    assert d.metric("omnihub_ws_slow_closes_total") == 0
