"""WebSocket keep-alive on the gateway's libev loop: server pings (ws.ping_interval),
closes for silence (ws.idle_timeout) and for unanswered pings, each with a close frame
sent from the writable callback; a SIGTERM with hundreds of clients attached exits 0."""
import json
import socket
import time

from test_hostile import frame, ws_close_code, ws_open, ws_read


def test_idle_timeout_closes_with_going_away(omnihub):
    d = omnihub({"ws.idle_timeout": "2"})
    s = ws_open(d, d.agent_token())
    assert ws_close_code(s, timeout=6) == 1001


def test_pings_answered_keep_the_connection_unanswered_close_it(omnihub):
    d = omnihub({"ws.ping_interval": "1"})
    mute = ws_open(d, d.agent_token())
    polite = ws_open(d, d.agent_token())
    f = ws_read(mute, timeout=4)
    assert f is not None and f[0] == 9 and f[1], f  # a ping, with a payload to echo
    # polite echoes every ping; mute never does: closed after 2 * 1 + 10 s of silence
    pings = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            f = ws_read(polite, timeout=0.5)
        except socket.timeout:
            continue
        assert f is not None and f[0] == 9, f
        pings += 1
        polite.sendall(frame(10, f[1]))
    assert pings >= 5
    assert ws_close_code(mute, timeout=3) == 1001
    polite.sendall(frame(1, json.dumps({"type": "ping"}).encode()))
    for _ in range(5):
        f = ws_read(polite, timeout=3)
        assert f is not None, "the answering client was closed"
        if f[0] == 1:
            break
    assert f == (1, b'{"type":"pong"}'), f


def test_sigterm_with_many_clients_attached(omnihub):
    d = omnihub()
    socks = []
    for _ in range(300):
        s = ws_open(d, d.agent_token())
        s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": "*"}).encode()))
        socks.append(s)
    time.sleep(1)
    d.stop()  # asserts exit status 0 (and no sanitizer report)
    for s in socks:
        s.close()
