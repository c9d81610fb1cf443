"""Hostile input over raw sockets: request smuggling, slowloris, 10,000
idle connections, header floods, deep JSON, invalid UTF-8 and NUL bytes,
WebSocket frame abuse, rate limits. Each test runs a well-behaved client
alongside and asserts it was answered quickly throughout, and that the
daemon is alive at the end."""
import base64
import json
import os
import re
import resource
import select
import socket
import statistics
import struct
import threading
import time

import pytest
import requests

from conftest import INBOUND_SECRET, sign_hex
from test_auth_matrix import WEBHOOK_CONFIG, WEBHOOKS, jwt, claims

# A well-behaved request under attack may take this many times the bystander's
# own median latency measured just before the attack, and never less than
# FLOOR seconds: a loaded CI machine slows both alike (5 s was exceeded on an
# ASan build at load average 12), while a frozen daemon
FACTOR = 20
FLOOR = 9.0


class Bystander:
    """A well-behaved client polling /healthz and an authenticated history
    page while a test attacks; every answer must come quickly compared
    with its own pace before the attack (self.bound)."""

    def __init__(self, d, conv, token):
        self.d, self.conv, self.token = d, conv, token
        self.stop = threading.Event()
        self.latencies, self.failures = [], []
        self.bound = None
        self.floor = FLOOR
        self.session = requests.Session()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def round(self):
        """One request to each path; their latencies."""
        out = []
        for path, auth in (("/healthz", None), (f"/v1/conversations/{self.conv}/events", 1)):
            t = time.monotonic()
            try:
                h = {"Authorization": "Bearer " + self.token} if auth else {}
                # a wait past the bound is judged by __exit__ against it
                wait = 2 * self.bound if self.bound else 30
                r = self.session.get(self.d.url + path, headers=h, timeout=wait)
                if r.status_code != 200:
                    self.failures.append(f"{path}: {r.status_code}")
            except requests.RequestException as e:
                self.failures.append(f"{path}: {e!r}")
            out.append(time.monotonic() - t)
        return out

    def run(self):
        while not self.stop.is_set():
            self.latencies.extend(self.round())
            time.sleep(0.05)

    def __enter__(self):
        baseline = []
        for _ in range(10):
            baseline.extend(self.round())
        assert not self.failures, f"well-behaved client failed before the attack: {self.failures}"
        self.bound = max(self.floor, FACTOR * statistics.median(baseline))
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        if exc[0]:
            return False
        assert not self.failures, f"well-behaved client failed: {self.failures[:5]}"
        assert self.latencies, "well-behaved client made no request"
        worst = max(self.latencies)
        assert worst < self.bound, (f"well-behaved client waited {worst:.2f}s "
                                    f"(bound {self.bound:.2f}s)")
        assert self.d.proc.poll() is None, "omnihubd died"
        return False


def message(mid, text="hello", contact="u1"):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text}


@pytest.fixture
def target(omnihub):
    """A daemon with every webhook configured, one conversation, a bystander."""
    def start(**config):
        cfg = dict(WEBHOOK_CONFIG)
        cfg.update({"http.timeout": "2", "ws.max_frame": "16k"})
        cfg.update(config)
        d = omnihub(config=cfg)
        r = d.post_inbound(message("seed"))
        assert r.status_code == 202, r.text
        conv = r.json()["conversation_id"]
        d.wait_history(conv, 1)
        agent = jwt(claims("agent-1", "agent", "desk"))
        return d, conv, agent, Bystander(d, conv, agent)
    return start


def connect(d, timeout=5):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def exchange(d, data, timeout=5, pause=0.3):
    """Sends DATA (bytes, or a list of chunks PAUSE s apart), reads until
    the server closes or TIMEOUT; the bytes read and whether the server
    closed."""
    s = connect(d, timeout)
    out, closed = b"", False
    try:
        for i, chunk in enumerate([data] if isinstance(data, bytes) else data):
            if i:
                time.sleep(pause)
            s.sendall(chunk)
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        s.close()
    return out, closed


def statuses(raw):
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


# ---- request smuggling ----

def smuggling_requests(agent):
    inner = (b"GET /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
             agent.encode() + b"\r\n\r\n")
    chunked = b"0\r\n\r\n" + inner
    return {
        "CL.TE": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" % len(chunked) + chunked,
        "TE.CL": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 3\r\n\r\n" + chunked,
        "TE obfuscated": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                         b"Transfer-Encoding: xchunked\r\n\r\n" % len(chunked) + chunked,
        "two Content-Lengths": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               b"Content-Length: 0\r\n\r\nhello" + inner,
        "Content-Length list": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 5, 0\r\n\r\nhello" + inner,
        "negative Content-Length": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: -5\r\n\r\nhello" + inner,
        "signed Content-Length": b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: +5\r\n\r\nhello" + inner,
    }


def test_request_smuggling_is_refused_and_never_answers_the_inner_request(target):
    d, conv, agent, bystander = target()
    with bystander:
        for name, raw in smuggling_requests(agent).items():
            out, closed = exchange(d, raw, timeout=3)
            got = statuses(out)
            # one refusal, then the connection is closed: the smuggled GET is never served
            assert got in ([400], []), f"{name}: answered {got}: {out[:300]!r}"
            assert b"conversations\":[" not in out, f"{name}: the inner request was served"
            assert closed, f"{name}: connection left open after an ambiguous body"
    # plain pipelining still works
    out, _ = exchange(d, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2, timeout=3)
    assert statuses(out) == [200, 200], out


# ---- slowloris ----

def drip(d, head, step, seconds):
    """Sends HEAD, then one more byte of STEP every 0.25 s; the seconds until
    the server closed (None if it did not within SECONDS)."""
    s = connect(d)
    t = time.monotonic()
    try:
        s.sendall(head)
        s.settimeout(0.25)
        i = 0
        while time.monotonic() - t < seconds:
            try:
                if not s.recv(65536):
                    return time.monotonic() - t
            except socket.timeout:
                pass
            try:
                if step:
                    s.sendall(step[i % len(step):i % len(step) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t
            i += 1
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - t
    finally:
        s.close()
    return None


def test_slowloris_headers_and_bodies_time_out(target):
    d, conv, agent, bystander = target(**{"http.timeout": "2"})
    results = {}

    def slow(name, head, step):
        results[name] = drip(d, head, step, 15)

    attacks = [
        ("slow headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: a\r\n"),
        ("slow body", b"POST /v1/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
         b"x"),
        ("silent", b"", b""),
    ]
    with bystander:
        threads = [threading.Thread(target=slow, args=a) for a in attacks for _ in range(20)]
        for i, t in enumerate(threads):
            t.name = attacks[i // 20][0]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for name, _, _ in attacks:
        took = results[name]
        assert took is not None, f"{name}: still open after 15 s with http.timeout 2"
        assert took < 6, f"{name}: closed only after {took:.1f}s (http.timeout 2)"


# ---- many idle connections ----

def test_ten_thousand_idle_connections(target):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 10_000 + 200
    if hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        d, conv, agent, bystander = target(**{"http.timeout": "300"})
        # while the daemon works through 10,000 handshakes at once, a
        # bystander's request waited 9.1 s at load average 15 with the
        # daemon healthy (the same with the previous binary); a frozen
        # daemon still never answers
        bystander.floor = 30.0
        socks = []
        with bystander:
            for _ in range(10_000):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", d.port))
                socks.append(s)
            # every handshake completes (a SYN beyond the listen backlog is
            # retried by the kernel after 1, 3, 7 s: a slow accept loop on a
            # loaded machine is not a closed connection)
            fd_index = {s.fileno(): i for i, s in enumerate(socks)}
            pending = set(range(len(socks)))
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                poller = select.poll()
                for i in pending:
                    poller.register(socks[i], select.POLLOUT)
                for fd, ev in poller.poll(1000):
                    pending.discard(fd_index[fd])
            assert not pending, f"{len(pending)} of 10,000 connections never completed"
            # a new client is still served, with every idle connection open
            t = time.monotonic()
            r = requests.get(d.url + f"/v1/conversations/{conv}/events",
                             headers={"Authorization": "Bearer " + agent}, timeout=10)
            assert r.status_code == 200 and len(r.json()["events"]) == 1
            assert time.monotonic() - t < bystander.bound
            r = d.post_inbound(message("during-idle"))
            assert r.status_code == 202, r.text
            # sampled idle connections were kept: each still answers a request
            answered = 0
            for s in socks[:: 100]:
                s.setblocking(True)
                s.settimeout(30)
                try:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        answered += 1
                except OSError:
                    pass
            assert answered == 100, f"only {answered}/100 sampled idle connections answered"
            for s in socks:
                s.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---- header floods ----

def test_header_floods(target):
    d, conv, agent, bystander = target()
    floods = {
        "one 100 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100_000 +
                             b"\r\n\r\n",
        "5,000 headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                         b"".join(b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n",
        "huge URL": b"GET /v1/conversations/" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "huge query": b"GET /healthz?" + b"a=b&" * 50_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "huge Authorization": b"GET /v1/conversations HTTP/1.1\r\nHost: x\r\n"
                              b"Authorization: Bearer " + b"e" * 60_000 + b"\r\n\r\n",
        "endless header line": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 2_000_000,
    }
    with bystander:
        def flood(raw):
            for _ in range(10):
                out, closed = exchange(d, raw, timeout=5)
                got = statuses(out)
                assert all(400 <= s < 500 for s in got), got
                assert closed or got, "neither refused nor closed"
        threads = [threading.Thread(target=flood, args=(raw,)) for raw in floods.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# ---- hostile bodies ----

HOSTILE_BODIES = {
    "deep arrays": b"[" * 200_000 + b"]" * 200_000,
    "deep objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep inside a message": b'{"channel":"api:x","account":"a","message_id":"m",'
                             b'"contact":{"id":"c"},"text":"t","attachments":' +
                             b"[" * 50_000 + b"]" * 50_000 + b"}",
    "invalid UTF-8": b'{"channel":"api:x","account":"a","message_id":"m","contact":{"id":"c"},'
                     b'"text":"\xff\xfe\xc3\x28 \xed\xa0\x80"}',
    "overlong UTF-8": b'{"channel":"api:x","account":"a","message_id":"m","contact":{"id":"c"},'
                      b'"text":"\xc0\xaf"}',
    "NUL escape": b'{"channel":"api:x","account":"a","message_id":"m\\u0000x",'
                  b'"contact":{"id":"c"},"text":"a\\u0000b"}',
    "raw NUL bytes": b'{"channel":"api:x",\x00"account":"a"}\x00\x00',
    "lone surrogate escape": b'{"channel":"api:x","account":"a","message_id":"m",'
                             b'"contact":{"id":"c"},"text":"\\ud800"}',
    "huge number": b'{"channel":"api:x","account":"a","message_id":' + b"9" * 5000 +
                   b',"contact":{"id":"c"},"text":"t"}',
    "wrong types": b'{"channel":["api:x"],"account":{},"message_id":1.5,"contact":"c",'
                   b'"text":null,"attachments":"no","sent_at":12}',
    "duplicate keys": b'{"channel":"api:x","channel":"api:y","account":"a","message_id":"m",'
                      b'"contact":{"id":"c"},"text":"t"}',
    "not JSON": b"\x00\x01\x02\xff" * 1000,
    "empty": b"",
    "top-level string": b'"hello"',
    "long strings": b'{"channel":"api:' + b"x" * 300_000 + b'","account":"' + b"a" * 300_000 +
                    b'","message_id":"m","contact":{"id":"c"},"text":"t"}',
}


def test_hostile_bodies_to_every_signed_endpoint(target):
    """Signed garbage to /v1/inbound and every webhook: a 4xx each time, and
    nothing stored."""
    d, conv, agent, bystander = target()
    before = d.conversations(token=agent)
    with bystander:
        for name, (path, _, signer, secret, _, _) in sorted(WEBHOOKS.items()):
            for case, body in HOSTILE_BODIES.items():
                r = d.request("POST", path, body, headers=signer(secret)(body))
                assert 400 <= r.status_code < 500, f"{name} / {case}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"], r.text
    after = d.conversations(token=agent)
    assert [c["conversation_id"] for c in after] == [c["conversation_id"] for c in before]
    assert [c["head"] for c in after] == [c["head"] for c in before]


def test_hostile_bodies_to_the_rest_api(target):
    d, conv, agent, bystander = target()
    customer = jwt(claims("cust-h"))
    with bystander:
        for case, body in HOSTILE_BODIES.items():
            for path, tok in ((f"/v1/conversations/{conv}/messages", agent),
                              ("/v1/conversations/new/messages", customer),
                              (f"/v1/conversations/{conv}/read", agent)):
                r = d.request("POST", path, body, token=tok)
                assert r.status_code in (400, 413), f"{path} / {case}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"] in ("bad_request", "too_large"), r.text
        # hostile paths and query strings
        for path in ["/v1/conversations/%00/events", "/v1/conversations/%ff%fe/events",
                     "/v1/conversations/" + "a" * 300 + "/events",
                     f"/v1/conversations/{conv}/events?after=-1",
                     f"/v1/conversations/{conv}/events?limit=%00",
                     "/v1/conversations?updated_after=%ff", "/v1/conversations/../../etc/passwd",
                     "/v1/media/email/../../../etc/passwd", "/v1/media/%2e%2e/x"]:
            try:
                r = d.request("GET", path, token=agent)
            except requests.ConnectionError:
                continue  # lws drops a request whose arguments hold %00
            assert r.status_code in (400, 403, 404), f"{path}: {r.status_code}"
        # an out-of-range cursor is refused, not wrapped around
        r = d.request("GET", f"/v1/conversations/{conv}/events?after=" + "9" * 30, token=agent)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert len(d.history(conv, token=agent)) == 1


# ---- WebSocket frame abuse ----

def ws_open(d, token):
    s = connect(d)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        assert b, "closed during the upgrade"
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def ws_read(s, timeout=5):
    """Next frame from the server: (opcode, payload), or None when closed."""
    s.settimeout(timeout)

    def need(n):
        buf = b""
        while len(buf) < n:
            b = s.recv(n - len(buf))
            if not b:
                raise ConnectionResetError
            buf += b
        return buf
    try:
        b0, b1 = need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", need(8))[0]
        return b0 & 0x0F, need(n)
    except (ConnectionResetError, BrokenPipeError):
        return None


def ws_close_code(s, timeout=5):
    """Reads until the server's close frame (its status code) or EOF (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            f = ws_read(s, timeout=max(0.1, deadline - time.monotonic()))
        except socket.timeout:
            return "open"
        if f is None:
            return None
        if f[0] == 8:
            return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
    return "open"


def ws_send_all(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_websocket_fragmentation_abuse(target):
    d, conv, agent, bystander = target(**{"ws.max_frame": "16k", "ws.rate": "100000"})
    ping = json.dumps({"type": "ping"}).encode()
    with bystander:
        # a legal fragmented message with a control frame in the middle is served
        s = ws_open(d, agent)
        s.sendall(frame(1, ping[:3], fin=False) + frame(0, ping[3:8], fin=False) +
                  frame(9, b"hb") + frame(0, ping[8:], fin=True))
        got = [ws_read(s), ws_read(s)]
        assert (10, b"hb") in got, got
        assert (1, b'{"type":"pong"}') in got, got
        s.close()

        abuses = {
            # many tiny fragments adding up past ws.max_frame: 1009 message too big
            "tiny fragments past max_frame": (
                frame(1, b"[", fin=False) + b"".join(frame(0, b" ", fin=False)
                                                     for _ in range(20_000)), {1009}),
            "continuation without a start": (frame(0, ping), {1002}),
            "new text frame inside a fragmented one": (
                frame(1, b"{", fin=False) + frame(1, ping), {1002}),
            "fragmented control frame": (frame(9, b"x", fin=False), {1002}),
            "oversized control frame": (frame(9, b"x" * 200), {1002}),
            "reserved bits": (frame(1, ping, rsv=3), {1002}),
            "reserved opcode": (frame(3, ping), {1002}),
            # lws 4.1 tolerates unmasked client frames: refused or served, never a crash
            "unmasked client frame": (frame(1, ping, mask=False), {1002, "open"}),
            "invalid UTF-8 split across fragments": (
                frame(1, b'{"type":"\xe2\x82', fin=False) + frame(0, b'\x28"}'), {1007}),
            "binary frame": (frame(2, b"\x00\x01"), {1003}),
            "length of 2^62": (frame(1, b"", length=1 << 62)[:10] + b"mask" + b"a" * 20_000,
                               {1009, 1002}),
            "one oversized frame": (frame(1, b"a" * 20_000), {1009}),
            "deep JSON": (frame(1, b"[" * 16_000), None),
            "NUL bytes in a text frame": (frame(1, b'{"type":"send\x00"}'), None),
        }
        for name, (payload, codes) in abuses.items():
            s = ws_open(d, agent)
            ws_send_all(s, payload)
            if codes is None:
                # refused politely: an error message, and the connection stays usable
                f = ws_read(s)
                assert f and f[0] == 1, f"{name}: {f}"
                assert json.loads(f[1])["code"] == "bad_request", f"{name}: {f}"
                s.sendall(frame(1, ping))
                assert ws_read(s) == (1, b'{"type":"pong"}'), name
            else:
                code = ws_close_code(s)
                assert code in codes or code is None, f"{name}: closed with {code}"
            s.close()
    assert d.proc.poll() is None


# ---- rate limits ----

def burst(d, n, path="/v1/conversations", token=None, headers=None):
    s = requests.Session()
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    return [s.get(d.url + path, headers=h, timeout=10) for _ in range(n)]


def test_rate_limit_per_client_address(omnihub):
    # 1 request/s with bursts of 2: a loaded machine that takes seconds over
    # the burst still sees most of it limited
    d = omnihub(config={"http.rate_limit": "1"})
    agent = jwt(claims("agent-1", "agent", "desk"))
    answers = burst(d, 40, token=agent)
    codes = [r.status_code for r in answers]
    assert codes[:2] == [200] * 2, codes  # the burst allowance
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) >= 20, codes
    r = limited[0]
    assert r.json()["error"]["code"] == "rate_limited"
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 2
    # health probes are not limited, so an orchestrator keeps seeing the process
    assert all(x.status_code == 200 for x in burst(d, 20, path="/healthz"))
    # every route counts against the address, signed posts included
    assert any(d.post_inbound(message(f"limited-{i}")).status_code == 429 for i in range(4))
    time.sleep(wait)
    assert burst(d, 1, token=agent)[0].status_code == 200
    time.sleep(2)  # /metrics counts against the address too
    assert d.metric("omnihub_http_rate_limited_total", {"scope": "address"}) >= 20


def test_rate_limit_per_token(omnihub):
    d = omnihub(config={"http.rate_limit_token": "3"})
    a = jwt(claims("agent-1", "agent", "desk"))
    b = jwt(claims("agent-2", "agent", "desk"))
    codes = [r.status_code for r in burst(d, 30, token=a)]
    assert codes.count(429) >= 15, codes
    # another token from the same address is not affected
    assert [r.status_code for r in burst(d, 5, token=b)] == [200] * 5
    # nor are requests without a token (the per-address limit is off)
    assert all(r.status_code == 200 for r in burst(d, 30, path="/healthz"))
    assert all(r.status_code == 401 for r in burst(d, 10))
    # the WebSocket upgrade with a limited token is refused with 429 too: the
    # token's bucket emptied again just before (the checks above take long
    # enough under load for it to refill; a few tries, one must be refused)
    heads = []
    for _ in range(5):
        assert 429 in [r.status_code for r in burst(d, 10, token=a)]
        s = connect(d)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /v1/ws?access_token={a} HTTP/1.1\r\nHost: x\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        heads.append(s.recv(4096))
        s.close()
        if heads[-1].startswith(b"HTTP/1.1 429"):
            break
    head = heads[-1]
    assert head.startswith(b"HTTP/1.1 429"), heads
    assert b"retry-after:" in head.lower() and b"rate_limited" in head
    assert d.metric("omnihub_http_rate_limited_total", {"scope": "token"}) >= 15


def test_rate_limit_table_is_bounded_under_many_tokens(omnihub):
    """A flood of distinct tokens (each over its own limit once) neither grows
    the daemon without bound nor stops limiting a token that keeps going."""
    from test_hostile_ws import asan_env  # freed memory in ASan's quarantine is not growth
    d = omnihub(config={"http.rate_limit_token": "2"}, env=asan_env())
    rss = lambda: int(open(f"/proc/{d.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
    s = requests.Session()
    hot = jwt(claims("agent-hot", "agent", "desk"))
    before = rss()
    limited = 0
    for i in range(3000):
        tok = f"junk.{i}.token"
        s.get(d.url + "/v1/conversations", headers={"Authorization": "Bearer " + tok}, timeout=10)
        if i % 100 == 0:
            limited += s.get(d.url + "/v1/conversations",
                             headers={"Authorization": "Bearer " + hot},
                             timeout=10).status_code == 429
    grown_kb = rss() - before
    assert grown_kb < 64 * 1024, f"daemon grew by {grown_kb} KiB"
    codes = [r.status_code for r in burst(d, 10, token=hot)]
    assert 429 in codes, codes
