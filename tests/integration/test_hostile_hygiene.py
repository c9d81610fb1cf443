"""HTTP/1.1 protocol hygiene (issue 14, item 13): malformed or ambiguous
header blocks get a 4xx and the connection closed, never silence, a hang or
a first-wins reading. Each case runs over a raw socket with a well-behaved
client alongside (test_hostile.Bystander); the daemon must still serve new
clients afterwards and stop cleanly on SIGTERM (the omnihub fixture)."""
import json
import re
import time

import pytest

from conftest import INBOUND_SECRET, sign_hex
from test_auth_matrix import claims, jwt
from test_hostile import (connect, exchange, frame, message, statuses, target,  # noqa: F401
                          ws_close_code, ws_open, ws_send_all)

H = b"Host: x\r\n"
GET = b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n"


def signed(body=None, extra=b"", sig=None, host=H):
    """A signed POST /v1/inbound: (raw bytes, body); EXTRA goes after the
    signature header."""
    raw = json.dumps(body or message("hyg-1")).encode()
    sig = sig if sig is not None else sign_hex(INBOUND_SECRET, raw).encode()
    return (b"POST /v1/inbound HTTP/1.1\r\n" + host + b"X-Omnihub-Signature: " + sig + b"\r\n" +
            extra + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(raw) +
            raw), raw


def refused(d, raw, want=(400,), timeout=4):
    """Sends RAW: exactly one answer with a status in WANT, a JSON error
    body, and the connection closed; never a hang or silence."""
    out, closed = exchange(d, raw, timeout=timeout)
    got = statuses(out)
    assert got and got[0] in want, f"answered {got}: {out[:300]!r}"
    assert len(got) == 1, f"more than one answer {got}: {out[:400]!r}"
    assert closed, f"connection left open after {got}"
    body = out.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["error"]["code"], body
    return out


def served_after(d):
    out, _ = exchange(d, GET, timeout=5)
    assert statuses(out) == [200], out[:200]


def stored(d, conv):
    r = d.session.get(d.url + f"/v1/conversations/{conv}/events",
                      headers={"Authorization": "Bearer " + jwt(claims("agent-1", "agent",
                                                                       "desk"))}, timeout=10)
    return r.json()["events"]


# ---- 1. whitespace between a field name and its colon (RFC 9112 section 5.1) ----

WHITESPACE_BEFORE_COLON = {
    "Transfer-Encoding : chunked + pipelined GET":
        b"POST /v1/inbound HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n"
        b"Content-Length: 4\r\n\r\n0\r\n\r\n" + GET,
    "Transfer-Encoding\t: chunked":
        b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" + GET,
    "Content-Length : 5": b"POST /x HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
    "X-Omnihub-Signature : (signed)": None,  # built below
    "unknown header with a space": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Foo : bar\r\n\r\n",
    # lws 4.1.6 reads a name that begins a longer one it knows (x-real-ip)
    # up to the next colon, swallowing the next line: refused, not guessed
    "X-Real: (a prefix of X-Real-IP) then a header":
        b"GET /healthz HTTP/1.1\r\n" + H + b"X-Real: a\r\nX-Foo: b\r\n\r\n",
    "obs-fold line with a colon": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Foo: a\r\n b: c\r\n\r\n",
}


@pytest.mark.parametrize("name", list(WHITESPACE_BEFORE_COLON))
def test_whitespace_before_the_colon_is_400(target, name):
    d, conv, agent, bystander = target()
    raw = WHITESPACE_BEFORE_COLON[name]
    if raw is None:
        raw, _ = signed(message("ws-colon"))
        raw = raw.replace(b"X-Omnihub-Signature:", b"X-Omnihub-Signature :")
    with bystander:
        out = refused(d, raw)
        assert b'"status":"ok"' not in out, "the pipelined request was served"
        served_after(d)
    d.stop()


# ---- 2. NUL in a header value ----

def test_nul_in_a_header_value_is_400(target):
    d, conv, agent, bystander = target()
    raw, body = signed(message("nul-sig", text="nul"))
    sig = sign_hex(INBOUND_SECRET, body).encode()
    cases = {
        "signature + NUL + junk": raw.replace(sig, sig + b"\x00junk"),
        "NUL in Authorization": b"GET /v1/conversations HTTP/1.1\r\n" + H +
                                b"Authorization: Bearer " + agent.encode() + b"\x00junk\r\n\r\n",
        "NUL in Host": b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        "NUL in an unknown header": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Foo: a\x00b\r\n\r\n",
        "NUL in a header name": b"GET /healthz HTTP/1.1\r\n" + H + b"X-F\x00oo: ab\r\n\r\n",
    }
    with bystander:
        for name, raw in cases.items():
            try:
                refused(d, raw)
            except AssertionError as e:
                raise AssertionError(f"{name}: {e}") from None
        served_after(d)
    assert not any(e.get("text") == "nul" for e in stored(d, conv)), "the message was stored"


# ---- 3. Host: missing or repeated on HTTP/1.1 (RFC 9112 section 3.2) ----

def test_missing_or_repeated_host_is_400(target):
    d, conv, agent, bystander = target()
    with bystander:
        refused(d, b"GET /healthz HTTP/1.1\r\n\r\n")
        refused(d, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        refused(d, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
        # HTTP/1.0 needs no Host
        out, _ = exchange(d, b"GET /healthz HTTP/1.0\r\n\r\n", timeout=4)
        assert out.startswith(b"HTTP/1.0 200 "), out[:200]
        served_after(d)


# ---- 4. a repeated header the daemon relies on ----

def test_repeated_signature_and_auth_headers_are_400(target):
    d, conv, agent, bystander = target()
    raw, body = signed(message("dup-sig", text="dup"))
    good = sign_hex(INBOUND_SECRET, body).encode()
    other = agent.encode()
    cases = {
        "good signature first": signed(message("dup-sig", text="dup"),
                                       extra=b"X-Omnihub-Signature: " + b"0" * 64 + b"\r\n")[0],
        "good signature second": signed(message("dup-sig", text="dup"), sig=b"0" * 64,
                                        extra=b"X-Omnihub-Signature: " + good + b"\r\n")[0],
        "two Authorization": b"GET /v1/conversations HTTP/1.1\r\n" + H +
                             b"Authorization: Bearer " + other + b"\r\n"
                             b"Authorization: Bearer x\r\n\r\n",
        "two Content-Length": b"POST /x HTTP/1.1\r\n" + H +
                              b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "two X-Hub-Signature-256": b"POST /webhooks/messenger HTTP/1.1\r\n" + H +
                                   b"X-Hub-Signature-256: sha256=aa\r\n"
                                   b"X-Hub-Signature-256: sha256=bb\r\n"
                                   b"Content-Length: 2\r\n\r\n{}",
        "two X-Line-Signature, different case": b"POST /webhooks/line HTTP/1.1\r\n" + H +
                                                b"X-Line-Signature: a\r\n"
                                                b"x-line-signature: b\r\n"
                                                b"Content-Length: 2\r\n\r\n{}",
    }
    with bystander:
        for name, raw in cases.items():
            try:
                refused(d, raw)
            except AssertionError as e:
                raise AssertionError(f"{name}: {e}") from None
        # a repeated header nobody relies on is still fine
        out, _ = exchange(d, b"GET /healthz HTTP/1.1\r\n" + H + b"Accept: a\r\nAccept: b\r\n"
                          b"X-Other: 1\r\nX-Other: 2\r\n\r\n", timeout=4)
        assert statuses(out) == [200], out[:200]
        served_after(d)
    assert not any(e.get("text") == "dup" for e in stored(d, conv)), "the message was stored"


# ---- 5. Upgrade: h2c ----

def test_h2c_upgrade_is_ignored_and_answered_over_http11(target):
    d, conv, agent, bystander = target()
    raw = (b"GET /healthz HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    with bystander:
        out, _ = exchange(d, raw + GET, timeout=4)
        assert statuses(out) == [200, 200], out[:400]
        assert b"101" not in out.split(b"\r\n", 1)[0]
        served_after(d)


# ---- 6. %00 in the path ----

def test_percent_00_in_the_path_is_400(target):
    d, conv, agent, bystander = target()
    with bystander:
        refused(d, b"GET /healthz%00x HTTP/1.1\r\n" + H + b"\r\n")
        refused(d, b"GET /v1/conversations/a%00b/events HTTP/1.1\r\n" + H +
                b"Authorization: Bearer " + agent.encode() + b"\r\n\r\n")
        served_after(d)


# ---- 7. a bearer token over 4 KB ----

def test_a_long_bearer_token_is_401_not_a_dropped_connection(target):
    d, conv, agent, bystander = target()
    with bystander:
        for n in (4200, 5000, 7000):
            out, _ = exchange(d, b"GET /v1/conversations HTTP/1.1\r\n" + H +
                              b"Authorization: Bearer " + b"e" * n + b"\r\n\r\n", timeout=4)
            assert statuses(out) == [401], f"{n}-byte token: {out[:300]!r}"
            assert json.loads(out.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "unauthorized"
        served_after(d)


# ---- 9. header floods: 431 before the close (broker/gateway/http_guard.c) ----

FLOODS = {
    "a 60 KB bearer token": (b"GET /v1/conversations HTTP/1.1\r\n" + H +
                             b"Authorization: Bearer " + b"e" * 60_000 + b"\r\n\r\n"),
    "one 100 KB header": (b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: " + b"a" * 100_000 +
                          b"\r\n\r\n"),
    "5,000 small headers": (b"GET /healthz HTTP/1.1\r\n" + H +
                            b"".join(b"X-%d: v\r\n" % i for i in range(5000)) + b"\r\n"),
}


@pytest.mark.parametrize("name", list(FLOODS))
def test_oversized_header_blocks_get_431(target, name):
    d, conv, agent, bystander = target()
    with bystander:
        refused(d, FLOODS[name], want=(431,))
        served_after(d)


# ---- 8. unmasked client WebSocket frames (RFC 6455 section 5.1) ----

def test_unmasked_client_frame_closes_with_1002(target):
    d, conv, agent, bystander = target()
    ping = json.dumps({"type": "ping"}).encode()
    with bystander:
        s = ws_open(d, agent)
        ws_send_all(s, frame(1, ping, mask=False))
        assert ws_close_code(s) == 1002
        s.close()
        # masked frames are still served
        s = ws_open(d, agent)
        s.sendall(frame(1, ping))
        assert ws_close_code(s, timeout=1) == "open"
        s.close()


@pytest.mark.parametrize("where", ["after_long_frames", "control_frame", "continuation",
                                   "same_segment"])
def test_unmasked_frame_is_found_behind_masked_ones(target, where):
    """The guard follows frame boundaries (7-, 16- and 64-bit lengths,
    fragments, control frames) to the first frame without a mask."""
    d, conv, agent, bystander = target(**{"ws.max_frame": "256k", "ws.rate": "100000"})
    msg = json.dumps({"type": "ping", "pad": "x" * 200}).encode()
    big = json.dumps({"type": "ping", "pad": "y" * 70000}).encode()  # 64-bit length
    ping = json.dumps({"type": "ping"}).encode()
    masked = frame(1, msg) + frame(1, big) + frame(9, b"hi") + frame(1, ping[:4], fin=False) + \
        frame(0, ping[4:])
    bad = {"after_long_frames": frame(1, ping, mask=False),
           "control_frame": frame(9, b"hi", mask=False),
           "continuation": frame(1, ping[:4], fin=False) + frame(0, ping[4:], mask=False),
           "same_segment": frame(1, ping, mask=False)}[where]
    with bystander:
        s = ws_open(d, agent)
        if where == "same_segment":
            ws_send_all(s, masked + bad)
        else:
            s.sendall(masked)
            time.sleep(0.3)  # lws reads the masked frames first
            ws_send_all(s, bad)
        assert ws_close_code(s, timeout=10) == 1002
        s.close()
        # the same masked traffic alone is served and stays open
        s = ws_open(d, agent)
        s.sendall(masked * 3)
        assert ws_close_code(s, timeout=1) == "open"
        s.close()


def test_a_burst_of_masked_frames_larger_than_a_peek_stays_open(target):
    """Bursts of small masked frames many times the guard's peek, answered
    while the client does not read (lws stops and resumes reading): never
    taken for an unmasked frame."""
    d, conv, agent, bystander = target(**{"ws.rate": "1000000"})
    ping = frame(1, json.dumps({"type": "ping", "pad": "p" * 24}).encode())
    with bystander:
        s = ws_open(d, agent)
        for _ in range(3):
            s.sendall(ping * (3 * 65536 // len(ping)))  # ~192 KiB of ~60-byte frames
            time.sleep(0.2)
        assert ws_close_code(s, timeout=3) == "open"
        s.close()


# ---- 10. a body-bearing method without a length ----

@pytest.mark.parametrize("method", [b"POST", b"PUT", b"PATCH"])
def test_body_without_a_length_is_411_at_once(target, method):
    d, conv, agent, bystander = target(**{"http.timeout": "30"})
    with bystander:
        out = refused(d, method + b" /v1/inbound HTTP/1.1\r\n" + H + b"\r\nhello", want=(411,),
                      timeout=10)
        assert re.search(rb"length", out, re.I), out[:300]
        served_after(d)
