"""Every authenticated endpoint against every kind of bad credential, in
one table: bearer-token routes x (no token, bad signature, expired, alg
none, another alg, unknown role, wrong role, another customer), and every
signed webhook x (missing, wrong secret, tampered body, wrong scheme).
Adding an endpoint or a connector is one row in ENDPOINTS or WEBHOOKS."""
import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
import websockets

from conftest import INBOUND_SECRET, JWT_SECRET, sign_b64, sign_hex

DATA = Path(__file__).resolve().parents[1] / "data"


# ---- tokens, minted here so that every malformation is possible ----

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims, secret=JWT_SECRET, alg="HS256", header=None):
    head = b64url(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return f"{head}.{body}.{b64url(hmac.new(secret.encode(), signing, digest).digest())}"


def claims(sub, role="customer", device="d1", ttl=3600):
    return {"sub": sub, "role": role, "device": device, "exp": int(time.time()) + ttl}


OWNER, OTHER, AGENT = "cust-a", "cust-b", "agent-1"

# case -> token (None: no Authorization at all)
TOKENS = {
    "no token": lambda: None,
    "garbage": lambda: "not.a.token",
    "bad signature": lambda: jwt(claims(OWNER), secret="some-other-secret"),
    "expired": lambda: jwt(claims(OWNER, ttl=-60)),
    "no exp": lambda: jwt({"sub": OWNER, "role": "customer"}),
    "alg none": lambda: jwt(claims(OWNER), alg="none"),
    "alg none, agent": lambda: jwt(claims(AGENT, "agent"), alg="none"),
    "another alg (HS512)": lambda: jwt(claims(OWNER), alg="HS512"),
    "header says HS256, signed HS512": lambda: jwt(claims(OWNER), alg="HS512",
                                                    header={"alg": "HS256", "typ": "JWT"}),
    # ("admin" is a role since the desk: CONTRACT part 2)
    "unknown role": lambda: jwt(claims(OWNER, role="root")),
    "no sub": lambda: jwt({"role": "agent", "exp": int(time.time()) + 60}),
    "owner": lambda: jwt(claims(OWNER)),
    "another customer": lambda: jwt(claims(OTHER)),
    "agent": lambda: jwt(claims(AGENT, "agent", "desk")),
    "admin": lambda: jwt(claims("boss", "admin", "console")),
}
UNAUTHENTICATED = ["no token", "garbage", "bad signature", "expired", "no exp", "alg none",
                   "alg none, agent", "another alg (HS512)", "header says HS256, signed HS512",
                   "unknown role", "no sub"]


def expect(ok, owner=None, other=403, agent=None, admin=None):
    """The row of one endpoint: 401 for every unauthenticated case; an
    admin answered as an agent unless said otherwise."""
    row = {case: 401 for case in UNAUTHENTICATED}
    row.update({"owner": owner if owner is not None else ok, "another customer": other,
                "agent": agent if agent is not None else ok})
    row["admin"] = admin if admin is not None else row["agent"]
    return row


def desk_only(ok, **kw):
    """A row of the desk's routes: customers 403, their own conversation too."""
    return expect(ok, **dict({"owner": 403, "other": 403}, **kw))


# ---- bearer-token endpoints: (name, call(d, ctx, token) -> outcome, expected) ----

def rest(method, path, body=None):
    def call(d, ctx, token):
        r = d.request(method, path.format(**ctx), body, token=token)
        if r.status_code >= 400:
            err = r.json()["error"]  # every refusal is the contract's error object
            assert err["code"] and "message" in err, r.text
        return r.status_code
    return call


def ws_call(d, ctx, token):
    """101 then the answer to a subscribe of the owner's conversation
    ("subscribed" or the error code), or the refused upgrade's status."""
    async def run():
        headers = {"Authorization": "Bearer " + token} if token else {}
        try:
            ws = await websockets.connect(d.url.replace("http", "ws") + "/v1/ws",
                                          extra_headers=headers, open_timeout=10)
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
        try:
            await ws.send(json.dumps({"type": "subscribe", "conversation": ctx["conv"],
                                      "after": 0}))
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return msg["type"] if msg["type"] == "subscribed" else msg["code"]
        finally:
            await ws.close()
    return asyncio.run(run())


def ws_star_call(d, ctx, token):
    """The answer to a subscribe of "*" (every conversation: agents only)."""
    return ws_call(d, dict(ctx, conv="*"), token)


def ws_query_call(d, ctx, token):
    """The documented ?access_token= form of the same upgrade."""
    async def run():
        url = d.url.replace("http", "ws") + "/v1/ws" + (f"?access_token={token}" if token else "")
        try:
            ws = await websockets.connect(url, open_timeout=10)
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
        await ws.close()
        return 101
    return asyncio.run(run())


ENDPOINTS = [
    ("GET /v1/conversations", rest("GET", "/v1/conversations"),
     expect(200, owner=403, other=403)),
    ("GET /v1/conversations/{id}/events", rest("GET", "/v1/conversations/{conv}/events"),
     expect(200)),
    ("POST /v1/conversations/{id}/messages",
     rest("POST", "/v1/conversations/{conv}/messages", {"text": "hi", "client_msg_id": "k1"}),
     expect(202)),
    ("POST /v1/conversations/{id}/read",
     rest("POST", "/v1/conversations/{conv}/read", {"seq": 1}), expect(200)),
    ("POST /v1/conversations/new/messages (customer's first message)",
     rest("POST", "/v1/conversations/new/messages", {"text": "hi", "client_msg_id": "k2"}),
     expect(202, other=202, agent=404)),
    ("GET /v1/conversations/{api conv}/events", rest("GET", "/v1/conversations/{api}/events"),
     expect(200, owner=403, other=403)),
    ("GET /v1/conversations/{id}/events?access_token= (URL tokens are WebSocket-only)",
     lambda d, ctx, token: d.request(
         "GET", f"/v1/conversations/{ctx['conv']}/events" +
         (f"?access_token={token}" if token else "")).status_code,
     expect(401, other=401)),
    ("GET /v1/ws + subscribe", ws_call,
     expect("subscribed", other="forbidden")),
    ("GET /v1/ws?access_token=", ws_query_call, expect(101, other=101)),
    ("GET /v1/ws + subscribe \"*\"", ws_star_call,
     desk_only("subscribed", owner="forbidden", other="forbidden")),
    # the desk's routes (CONTRACT part 2)
    ("GET /v1/conversations/{id}", rest("GET", "/v1/conversations/{conv}"), expect(200)),
    ("PATCH /v1/conversations/{id}",
     rest("PATCH", "/v1/conversations/{conv}", {"priority": "low"}), desk_only(200)),
    ("POST /v1/conversations/{id}/claim", rest("POST", "/v1/conversations/{conv}/claim"),
     desk_only(200, admin=409)),
    ("GET /v1/conversations/{id}/suggestions",
     rest("GET", "/v1/conversations/{conv}/suggestions"), desk_only(200)),
    ("GET /v1/agents", rest("GET", "/v1/agents"), desk_only(200)),
    ("GET /v1/contacts?identifier=", rest("GET", "/v1/contacts?identifier=email:ann@example.org"),
     desk_only(200)),
    ("GET /v1/contacts/{id}", rest("GET", "/v1/contacts/p_nobody"), desk_only(404)),
    ("POST /v1/contacts/{id}/merge", rest("POST", "/v1/contacts/p_nobody/merge",
                                          {"other": "p_else"}), desk_only(404)),
    ("DELETE /v1/contacts/{id} (admins only)", rest("DELETE", "/v1/contacts/p_nobody"),
     desk_only(403, admin=404)),
    ("GET /v1/kb/search", rest("GET", "/v1/kb/search?q=refund"), desk_only(200)),
    ("GET /v1/kb/articles/{id}", rest("GET", "/v1/kb/articles/none"), desk_only(404)),
    ("PUT /v1/kb/articles/{id} (admins only)",
     rest("PUT", "/v1/kb/articles/auth-matrix", {"title": "T", "body": "B"}),
     desk_only(403, admin=200)),
    ("DELETE /v1/kb/articles/{id} (admins only)", rest("DELETE", "/v1/kb/articles/none"),
     desk_only(403, admin=404)),
    ("GET /v1/canned", rest("GET", "/v1/canned"), desk_only(200)),
    ("GET /v1/reports/kpis", rest("GET", "/v1/reports/kpis"), desk_only(200)),
    ("GET /v1/reports/bot", rest("GET", "/v1/reports/bot"), desk_only(200)),
]


def open_hub(tmp, config, owner, agent):
    """A daemon with the owner's webchat conversation and an api one."""
    from conftest import Daemon
    d = Daemon(tmp, dict(config, **{"contacts.enabled": "true"}))
    r = d.request("POST", "/v1/conversations/new/messages", {"text": "open",
                                                            "client_msg_id": "open"}, token=owner)
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1, token=agent)
    r = d.post_inbound({"channel": "api:shop", "account": "acme", "message_id": "m1",
                        "contact": {"id": "u1", "name": "Ann"}, "text": "hello"})
    assert r.status_code == 202, r.text
    api = r.json()["conversation_id"]
    d.wait_history(api, 1, token=agent)
    return d, {"conv": conv, "api": api}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    d, ctx = open_hub(tmp_path_factory.mktemp("authz"), WEBHOOK_CONFIG, TOKENS["owner"](),
                      TOKENS["agent"]())
    yield d, ctx
    d.stop()


@pytest.mark.parametrize("name,call,row", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_token_matrix(hub, name, call, row):
    d, ctx = hub
    got = {case: call(d, ctx, TOKENS[case]()) for case in row}
    wrong = {case: (got[case], want) for case, want in row.items() if got[case] != want}
    assert not wrong, f"{name}: case -> (got, expected): {wrong}"
    assert d.proc.poll() is None


def test_every_endpoint_checks_issuer_and_audience(tmp_path_factory):
    """With auth.issuer and auth.audience set, every row's agent answer
    needs both in the token: a token for another audience or issuer, or
    with neither, is 401 on every REST route and WebSocket upgrade."""
    iss, aud = "https://login.example", "omnihub-desk"

    def agent(**claim):
        given = dict(claims(AGENT, "agent", "desk"), **dict({"iss": iss, "aud": aud}, **claim))
        return jwt({k: v for k, v in given.items() if v is not None})
    d, ctx = open_hub(tmp_path_factory.mktemp("authz-aud"),
                      {"auth.issuer": iss, "auth.audience": aud},
                      jwt(dict(claims(OWNER), iss=iss, aud=aud)), agent())
    try:
        refused = {"another audience": agent(aud="someone-else"),
                   "another issuer": agent(iss="https://evil.example"),
                   "no audience": agent(aud=None), "no issuer": agent(iss=None)}
        wrong = {}
        for name, call, row in ENDPOINTS:
            got = {case: call(d, ctx, tok) for case, tok in refused.items()}
            got["right audience (an array)"] = call(d, ctx, agent(aud=["x", aud]))
            want = dict({case: 401 for case in refused}, **{"right audience (an array)":
                                                             row["agent"]})
            bad = {c: (got[c], w) for c, w in want.items() if got[c] != w}
            if bad:
                wrong[name] = bad
        assert not wrong, f"endpoint -> case -> (got, expected): {wrong}"
    finally:
        d.stop()


# ---- signed webhooks ----

def first_fixture(channel):
    return next(p for p in sorted((DATA / channel).glob("*.json"))
                if not p.name.endswith(".expect.json")).read_bytes()


def hub_sig(secret):
    return lambda body: {"X-Hub-Signature-256": sign_hex(secret, body)}


def x_sig(secret):
    return lambda body: {"x-twitter-webhooks-signature": "sha256=" + sign_b64(secret, body)}


# name -> path, config, sign(secret)(body) -> headers, the secret, a valid body,
# and a header set in the wrong scheme
WEBHOOKS = {
    "api": ("/v1/inbound", {}, lambda s: lambda b: {"X-Omnihub-Signature": sign_hex(s, b)},
            INBOUND_SECRET,
            json.dumps({"channel": "api:shop", "account": "acme", "message_id": "wh1",
                        "contact": {"id": "u9", "name": "Bo"}, "text": "hi"}).encode(),
            lambda b: {"X-Omnihub-Signature": sign_b64(INBOUND_SECRET, b)}),
    "whatsapp": ("/webhooks/whatsapp", {"whatsapp.app_secret": "wa-secret",
                                        "whatsapp.verify_token": "wa-verify",
                                        "whatsapp.access_token": "wa-token"},
                 hub_sig, "wa-secret", None,
                 lambda b: {"X-Hub-Signature": "sha1=" + hmac.new(b"wa-secret", b,
                                                                   hashlib.sha1).hexdigest()}),
    "messenger": ("/webhooks/messenger", {"messenger.app_secret": "ms-secret",
                                          "messenger.verify_token": "ms-verify",
                                          "messenger.access_token": "ms-token"},
                  hub_sig, "ms-secret", None,
                  lambda b: {"X-Hub-Signature-256": sign_b64("ms-secret", b)}),
    "instagram": ("/webhooks/instagram", {"instagram.app_secret": "ig-secret",
                                          "instagram.verify_token": "ig-verify",
                                          "instagram.access_token": "ig-token"},
                  hub_sig, "ig-secret", None,
                  lambda b: {"X-Hub-Signature-256": sign_hex("ms-secret", b)}),
    "telegram": ("/webhooks/telegram", {"telegram.secret_token": "tg-secret",
                                        "telegram.bot_token": "123:tg"},
                 lambda s: lambda b: {"X-Telegram-Bot-Api-Secret-Token": s}, "tg-secret", None,
                 lambda b: {"X-Telegram-Bot-Api-Secret-Token": sign_hex("tg-secret", b)}),
    "line": ("/webhooks/line", {"line.channel_secret": "line-secret",
                                "line.access_token": "line-token"},
             lambda s: lambda b: {"X-Line-Signature": sign_b64(s, b)}, "line-secret", None,
             lambda b: {"X-Line-Signature": sign_hex("line-secret", b)}),
    "x": ("/webhooks/x", {"x.consumer_secret": "x-secret", "x.access_token": "x-token"},
          x_sig, "x-secret", None,
          lambda b: {"x-twitter-webhooks-signature": sign_hex("x-secret", b)}),
}
WEBHOOK_CONFIG = {k: v for w in WEBHOOKS.values() for k, v in w[1].items()}
# telegram authenticates with a shared header, not a signature over the body
BODY_UNSIGNED = {"telegram"}


def webhook_body(name):
    return WEBHOOKS[name][4] or first_fixture(name)


def webhook_cases(name):
    path, _, signer, secret, _, wrong_scheme = WEBHOOKS[name]
    body = webhook_body(name)
    tampered = body.replace(b"}", b" }", 1)
    cases = {
        "missing": (body, {}, 401),
        "wrong secret": (body, signer("not-the-secret")(body), 401),
        "other channel's secret": (body, signer("x-secret" if name != "x" else "wa-secret")(body),
                                   401),
        "wrong scheme": (body, wrong_scheme(body), 401),
        "empty header": (body, {k: "" for k in signer(secret)(body)}, 401),
        "tampered body": (tampered, signer(secret)(body),
                          200 if name in BODY_UNSIGNED else 401),
        "valid": (body, signer(secret)(body), 200),
    }
    return path, cases


@pytest.mark.parametrize("name", sorted(WEBHOOKS))
def test_webhook_signature_matrix(hub, name):
    d, _ = hub
    path, cases = webhook_cases(name)
    got = {}
    for case, (body, headers, want) in cases.items():
        r = d.request("POST", path, body, headers=headers)
        got[case] = (r.status_code, want)
    # 2xx of either kind (200 for webhooks, 202 for /v1/inbound) is success
    wrong = {c: g for c, g in got.items()
             if not (g[0] == g[1] or (g[1] == 200 and g[0] in (200, 202)))}
    assert not wrong, f"{path}: case -> (got, expected): {wrong}"
    fails = d.metric("omnihub_signature_failures_total", {"channel": name})
    assert fails >= 4, f"{name}: signature failures not counted ({fails})"


@pytest.mark.parametrize("name", ["whatsapp", "messenger", "instagram"])
def test_meta_verification_challenge(hub, name):
    d, _ = hub
    path = WEBHOOKS[name][0]
    right = WEBHOOKS[name][1][f"{name}.verify_token"]
    q = "hub.mode=subscribe&hub.challenge=4711&hub.verify_token="
    r = d.request("GET", f"{path}?{q}wrong")
    assert r.status_code == 403, r.text
    r = d.request("GET", f"{path}?{q}")
    assert r.status_code == 403, r.text
    r = d.request("GET", f"{path}?{q}{right}")
    assert r.status_code == 200 and r.text == "4711"


def test_refusals_do_not_echo_secrets(hub):
    """The error bodies and the daemon's log never contain a token or a secret."""
    d, ctx = hub
    tok = TOKENS["bad signature"]()
    r = d.request("GET", f"/v1/conversations/{ctx['conv']}/events", token=tok)
    assert r.status_code == 401 and tok not in r.text
    logs = d.logs()
    for secret in [JWT_SECRET, INBOUND_SECRET, tok] + [w[3] for w in WEBHOOKS.values()]:
        assert secret not in logs, "a secret appears in the daemon's log"


def test_numeric_dates_may_have_fractions(hub):
    """RFC 7519 2: a NumericDate is any JSON number, so exp, nbf and iat
    written as time.time() + 3600 (a fraction, as PyJWT and jose encode a
    float) count like their whole seconds: valid, expired or not yet valid."""
    d, ctx = hub
    now = time.time()
    path = f"/v1/conversations/{ctx['conv']}/events"
    cases = {
        "exp in an hour": ({"exp": now + 3600.5}, 200),
        "iat now": ({"exp": now + 3600.5, "iat": now}, 200),
        "exp a minute ago": ({"exp": now - 60.5}, 401),
        "nbf in ten minutes": ({"exp": now + 3600.5, "nbf": now + 600.5}, 401),
    }
    got = {}
    for case, (times, want) in cases.items():
        token = jwt(dict({"sub": OWNER, "role": "customer", "device": "d1"}, **times))
        got[case] = (d.request("GET", path, token=token).status_code, want)
    wrong = {c: g for c, g in got.items() if g[0] != g[1]}
    assert not wrong, f"case -> (got, expected): {wrong}"
