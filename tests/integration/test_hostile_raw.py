"""Request heads libwebsockets 4.1.6 used to drop without a word (issue 14,
item 13): "%00" in the target gets 400, a head over the gateway's limits
431 (414 for the request line), whether the head comes first on its
connection, after an answered request (keep-alive), pipelined behind
another one (lws then takes it from its own stash of bytes), or behind a
request with a body. broker/gateway/http_guard.c reads the heads before
lws; heads within the limits are served as before."""
import json
from pathlib import Path

import pytest

from conftest import INBOUND_SECRET, sign_hex
from test_hostile import exchange, message, statuses, target  # noqa: F401

H = b"Host: x\r\n"
GET = b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n"
NUL = b"GET /healthz%00x HTTP/1.1\r\n" + H + b"\r\n"
HEAD_MAX = 8192  # GW_HEAD_MAX
FIELDS = 88      # GW_HEAD_FIELDS


def with_header_of(n, path=b"/healthz"):
    """A GET whose head is N bytes long, one X-Pad header filling it."""
    start = b"GET " + path + b" HTTP/1.1\r\n" + H + b"X-Pad: "
    return start + b"p" * (n - len(start) - 4) + b"\r\n\r\n"


def answers(d, raw, want, timeout=6):
    """RAW (bytes, or chunks sent 0.3 s apart) gets exactly the statuses
    WANT, the last one a JSON error, and the connection closed."""
    out, closed = exchange(d, raw, timeout=timeout)
    got = statuses(out)
    assert got == want, f"answered {got}: {out[:400]!r}"
    assert closed, f"connection left open after {got}"
    last = out.rsplit(b"HTTP/1.1 ", 1)[1]
    assert json.loads(last.split(b"\r\n\r\n", 1)[1])["error"]["code"], last
    return out


def served(d, raw, want=(200,)):
    out, _ = exchange(d, raw, timeout=6)
    assert tuple(statuses(out)) == tuple(want), out[:300]


# ---- %00 ----

def test_percent_00_first_on_its_connection_is_400(target):
    d, conv, agent, bystander = target()
    with bystander:
        out = answers(d, NUL, [400])
        assert b"NUL in the request path" in out
        answers(d, b"GET /v1/conversations?x=a%00b HTTP/1.1\r\n" + H + b"\r\n", [400])
        answers(d, b"GET /a%2F%00 HTTP/1.1\r\n" + H + b"\r\n", [400])
        # the head arriving in pieces
        answers(d, [b"GET /healthz%0", b"0 HTTP/1.1\r\n", H + b"\r\n"], [400])
        served(d, GET)
        # "%2500" is a percent sign and "00": no NUL
        served(d, b"GET /healthz%2500 HTTP/1.1\r\n" + H + b"\r\n", [404])
    d.stop()


def test_percent_00_after_an_answered_request_is_400(target):
    d, conv, agent, bystander = target()
    with bystander:
        answers(d, [GET, NUL], [200, 400])          # keep-alive, bytes read later
        answers(d, GET + GET + NUL, [200, 200, 400])  # pipelined: from lws's stash
    d.stop()


def test_percent_00_pipelined_behind_a_request_with_a_body_is_400(target):
    d, conv, agent, bystander = target()
    raw = json.dumps(message("raw-nul", text="before the NUL")).encode()
    post = (b"POST /v1/inbound HTTP/1.1\r\n" + H + b"X-Omnihub-Signature: " +
            sign_hex(INBOUND_SECRET, raw).encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
    with bystander:
        out, closed = exchange(d, post + NUL, timeout=6)
        got = statuses(out)
        assert len(got) == 2 and 200 <= got[0] < 300 and got[1] == 400, out[:400]
        assert closed
    d.stop()


# ---- heads over the limits ----

def test_a_head_just_over_the_limit_is_431_and_just_under_is_served(target):
    d, conv, agent, bystander = target()
    with bystander:
        served(d, with_header_of(HEAD_MAX))
        # read whole by lws (its buffer is larger), refused by the gateway
        out = answers(d, with_header_of(HEAD_MAX + 1), [431])
        assert b"Request Header Fields Too Large" in out.split(b"\r\n", 1)[0]
        answers(d, with_header_of(HEAD_MAX + 1500), [431])
        # more than lws's buffer: refused before lws drops it
        answers(d, with_header_of(30_000), [431])
        answers(d, GET + with_header_of(30_000), [200, 431])
        answers(d, [GET, with_header_of(12_000)], [200, 431])
        served(d, GET)
    d.stop()


def test_too_many_header_lines_is_431(target):
    d, conv, agent, bystander = target()

    def lines(n, line=b"Accept: a\r\n"):
        return b"GET /healthz HTTP/1.1\r\n" + H + line * (n - 1) + b"\r\n"
    with bystander:
        served(d, lines(FIELDS))
        served(d, lines(FIELDS, b"X-Other: a\r\n"))
        # lws keeps a known header's every line in one of its 95 fragments:
        # 100 "Accept" lines (1 KB) used to drop the connection silently
        answers(d, lines(100), [431])
        answers(d, lines(FIELDS + 1, b"X-Other: a\r\n"), [431])
        answers(d, GET + lines(100), [200, 431])
    d.stop()


def test_an_overlong_request_line_is_414(target):
    d, conv, agent, bystander = target()
    with bystander:
        answers(d, b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", [414])
        answers(d, b"GET /v1/conversations/" + b"a" * 200_000 + b" HTTP/1.1\r\n" + H + b"\r\n",
                [414])
        # query parameters take lws fragments too
        answers(d, b"GET /healthz?" + b"a=b&" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", [414])
        served(d, b"GET /healthz?" + b"a=b&" * 40 + b" HTTP/1.1\r\n" + H + b"\r\n")
    d.stop()


@pytest.mark.parametrize("raw", [
    b"GET /healthz%zz HTTP/1.1\r\n" + H + b"\r\n",           # lws's own 403
    b"BREW /healthz%00 HTTP/1.1\r\n" + H + b"\r\n",          # an unknown method
], ids=["bad escape", "unknown method"])
def test_what_lws_answers_itself_is_answered_once(target, raw):
    d, conv, agent, bystander = target()
    with bystander:
        out, _ = exchange(d, raw, timeout=6)
        assert out.count(b"HTTP/1.") <= 1, out[:400]
        served(d, GET)
    d.stop()


def test_static_files_pipelined_keep_every_answer_in_place(target):
    """lws serves the static mount itself (no LWS_CALLBACK_HTTP to count):
    the guard stops following such a connection rather than pin a verdict
    on the wrong request."""
    root = Path(__file__).resolve().parents[2] / "examples" / "webchat"
    d, conv, agent, bystander = target(**{"http.static_dir": str(root)})
    static = b"GET /app/index.html HTTP/1.1\r\n" + H + b"\r\n"
    encoded = b"GET /%61pp/index.html HTTP/1.1\r\n" + H + b"\r\n"
    with bystander:
        for first in (static, encoded):
            out, _ = exchange(d, first + with_header_of(HEAD_MAX + 500) + GET, timeout=6)
            got = statuses(out)
            assert got[:1] == [200] and 431 not in got[2:], out[:600]
        served(d, GET)
        answers(d, NUL, [400])  # other connections are followed
    d.stop()
