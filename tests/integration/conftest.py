"""Fixtures shared by the integration tests: a real omnihubd on a free
loopback port, a recording HTTP stand-in for outside APIs, signing and
token helpers. Run with /usr/bin/python3 -m pytest.

`tools/dev test` runs the modules in parallel (pytest-xdist, --dist loadfile:
each module on one worker, its tests in order). Every daemon, stub and
server here takes a free port and a directory of its own; what lives once
per checkout (tests/browser/node_modules, workspace/dist) is touched only
under checkout_lock()."""
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("OMNIHUB_BUILD", ROOT / "build"))
OMNIHUBD = BUILD / "broker" / "omnihubd"
OMNIHUBCTL = BUILD / "tools" / "omnihubctl"
SCHEMA = json.loads((ROOT / "schemas" / "event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# tools/dev valgrind: the daemon runs under memcheck; a leak or invalid access
# makes its exit code non-zero, which fails the clean stop below
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"] \
    if os.environ.get("OMNIHUB_VALGRIND") == "1" else []

JWT_SECRET = "test-jwt-secret"
INBOUND_SECRET = "test-inbound-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def checkout_lock(name):
    """Holds the lock NAME of this checkout (a flock on a file in the temp
    directory) for the body of the with: two test workers that would install
    into, or rebuild, the same directory of the repository take turns."""
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"omnihub-tests-{key}-{name}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sign_hex(secret, body):
    if isinstance(body, str):
        body = body.encode()
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_b64(secret, body):
    if isinstance(body, str):
        body = body.encode()
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# Daemon.token's cache: (sub, role, device, ttl) -> (token, minted at);
# every daemon of the suite checks tokens with JWT_SECRET
TOKENS = {}


def ctl(*args, input=b"", check=False, timeout=60):
    return subprocess.run([str(OMNIHUBCTL), *map(str, args)], input=input, capture_output=True,
                          check=check, timeout=timeout)


def validate_event(ev):
    """Every event the project emits must match schemas/event.schema.json."""
    errors = sorted(VALIDATOR.iter_errors(ev), key=lambda e: e.path)
    assert not errors, f"event does not match the schema: {errors[0].message} in {ev}"


def to_yaml(config):
    """Dotted keys -> flat YAML lines ("a.b: v" is not YAML nesting, so nest)."""
    tree = {}
    for key, value in config.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value

    def emit(node, indent):
        lines = []
        for k, v in node.items():
            if isinstance(v, dict):
                lines.append(" " * indent + f"{k}:")
                lines.extend(emit(v, indent + 2))
            elif isinstance(v, list):
                lines.append(" " * indent + f"{k}:")
                lines.extend(" " * (indent + 2) + "- " + json.dumps(str(i)) for i in v)
            else:
                if isinstance(v, bool):
                    v = "true" if v else "false"
                lines.append(" " * indent + f"{k}: {json.dumps(str(v))}")
        return lines

    return "\n".join(emit(tree, 0)) + "\n"


class Daemon:
    def __init__(self, tmp, config, env=None, args=None):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data_dir = self.tmp / "data"
        self.config = {
            "http.listen": f"127.0.0.1:{self.port}",
            "data_dir": str(self.data_dir),
            "auth.jwt_secret": JWT_SECRET,
            "api.inbound_secret": INBOUND_SECRET,
            "dispatch.backoff_ms": "50",
            "contacts.enabled": "false",
            # the router and the SLA clocks sequence events of their own:
            # off for the tests that count seqs, on in their own tests
            "routing.enabled": "false",
            "sla.enabled": "false",
            "dispatch.backoff_max_ms": "400",
            # services that add events to histories are on by default; the
            # tests written before them count events, so they are off here
            # unless a test turns them on (None: the daemon's own default)
            "webchat.receipts": "false",
            "triage.enabled": "false",
        }
        self.config.update(config or {})
        self.config = {k: v for k, v in self.config.items() if v is not None}
        self.config_path = self.tmp / "omnihub.yaml"
        self.config_path.write_text(to_yaml(self.config))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.args = args or []
        self.url = f"http://127.0.0.1:{self.port}"
        # /readyz and /metrics: on http.admin_listen when the test sets one
        admin = self.config.get("http.admin_listen")
        self.ops_url = f"http://{admin}" if admin else self.url
        self.proc = None
        self.session = requests.Session()
        self.start()

    def launch(self):
        """Runs omnihubd, without waiting for anything."""
        self.log = open(self.tmp / "omnihubd.log", "ab")
        self.proc = subprocess.Popen([*VALGRIND, str(OMNIHUBD), "-c", str(self.config_path),
                                      *self.args],
                                     stdout=self.log, stderr=self.log, env=self.env)

    def start(self, timeout=30):
        self.launch()
        timeout *= 10 if VALGRIND else 1
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"omnihubd exited with {self.proc.returncode}: "
                                   f"{self.logs()[-2000:]}")
            try:
                if requests.get(self.ops_url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("omnihubd did not become ready: " + self.logs()[-2000:])

    def logs(self):
        return (self.tmp / "omnihubd.log").read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=300 if VALGRIND else 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = "hung on SIGTERM"
            self.proc = None
            self.log.close()
            # a clean stop exits 0; sanitizers report leaks and errors by failing it
            assert code == 0, f"omnihubd stopped with {code}: {self.logs()[-3000:]}"
            return
        self.proc = None
        self.log.close()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()

    def restart(self):
        self.stop()
        self.start()

    # --- HTTP ---
    def request(self, method, path, body=None, headers=None, token=None, timeout=30):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        return self.session.request(method, self.url + path, data=data, headers=h,
                                    timeout=timeout)

    def post_inbound(self, payload, secret=INBOUND_SECRET):
        raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        return self.request("POST", "/v1/inbound", raw,
                            {"X-Omnihub-Signature": sign_hex(secret, raw)})

    def token(self, sub, role="customer", device="d1", ttl=3600):
        """A token from `omnihubctl token`. Long-lived ones are minted once
        per half their life and reused: history polls ask for one each time,
        and a process start is 0.1 s under ASan. Short ones (expiry tests)
        are always fresh."""
        key = (sub, role, device, int(ttl))
        hit = TOKENS.get(key)
        if hit and time.time() - hit[1] < int(ttl) / 2:
            return hit[0]
        out = ctl("token", "--secret", JWT_SECRET, "--sub", sub, "--role", role, "--device",
                  device, "--ttl", ttl, check=True)
        tok = out.stdout.decode().strip()
        if int(ttl) >= 600:
            TOKENS[key] = (tok, time.time())
        return tok

    def agent_token(self, sub="agent-1", device="desk"):
        return self.token(sub, "agent", device)

    def customer_token(self, sub, device="d1"):
        return self.token(sub, "customer", device)

    def history(self, conv, token=None, after=0, limit=1000):
        token = token or self.agent_token()
        events = []
        while True:
            r = self.request("GET", f"/v1/conversations/{conv}/events?after={after}&limit={limit}",
                             token=token)
            if r.status_code == 404:
                return events
            assert r.status_code == 200, r.text
            page = r.json()
            for ev in page["events"]:
                validate_event(ev)
            events.extend(page["events"])
            # pages are bounded in bytes too (http.max_page): the end is the head
            if not page["events"] or page["next_after"] >= page["head"]:
                return events
            after = page["next_after"]

    def wait_history(self, conv, n, timeout=15, token=None):
        deadline = time.time() + timeout
        events = []
        while time.time() < deadline:
            events = self.history(conv, token=token)
            if len(events) >= n:
                return events
            time.sleep(0.05)
        raise AssertionError(f"conversation {conv} has {len(events)} events, expected {n}")

    def conversations(self, token=None, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        r = self.request("GET", "/v1/conversations" + ("?" + q if q else ""),
                         token=token or self.agent_token())
        assert r.status_code == 200, r.text
        return r.json()["conversations"]

    def metrics_text(self):
        return requests.get(self.ops_url + "/metrics", timeout=5).text

    def metric(self, name, labels=None):
        want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            if series == name or (series.startswith(name + "{") and
                                  all(p in series for p in want.split(",") if p)):
                if series == name and want:
                    continue
                total += float(value)
        return total


@pytest.fixture
def omnihub(tmp_path):
    daemons = []

    def start(config=None, env=None, args=None, name=None):
        d = Daemon(tmp_path / (name or f"d{len(daemons)}"), config, env, args)
        daemons.append(d)
        return d

    yield start
    for d in daemons:
        if d.proc:
            d.stop()


class StubRequest:
    def __init__(self, method, path, query, headers, body, peer=None):
        self.method, self.path, self.query, self.headers, self.body = (method, path, query,
                                                                      headers, body)
        self.peer = peer  # the client's (address, port): one per connection

    def json(self):
        return json.loads(self.body)


class HttpStub:
    """A local HTTP server standing in for an outside API: records every
    request, answers from a FIFO queue, then with a default answer. TLS:
    (certificate file, key file) to answer HTTPS instead."""

    def __init__(self, tls=None):
        self.requests = []
        self.answers = []
        self.default = (200, b"{}", {})
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # the head and the body are two writes: without this, a kept-alive
            # connection's body waits for the client's delayed ACK (40 ms)
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                req = StubRequest(self.command, parts.path, parts.query,
                                  {k.lower(): v for k, v in self.headers.items()}, body,
                                  self.client_address)
                with stub.lock:
                    stub.requests.append(req)
                    status, payload, headers = (stub.answers.pop(0) if stub.answers
                                                else stub.default)
                if callable(payload):
                    payload = payload(req)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                self.send_response(status)
                ctype = "application/json"
                for k, v in (headers or {}).items():
                    if k.lower() == "content-type":
                        ctype = v
                    else:
                        self.send_header(k, v)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def queue(self, status, body=None, headers=None):
        with self.lock:
            self.answers.append((status, body if body is not None else {}, headers or {}))

    def set_default(self, status, body=None, headers=None):
        self.default = (status, body if body is not None else {}, headers or {})

    def wait_requests(self, n, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.requests) >= n:
                return self.requests
            time.sleep(0.02)
        raise AssertionError(f"stub got {len(self.requests)} requests, expected {n}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_stub():
    """Starts HttpStubs (each call one; tls=(cert, key) for HTTPS)."""
    stubs = []

    def start(tls=None):
        s = HttpStub(tls)
        stubs.append(s)
        return s

    yield start
    for s in stubs:
        s.close()
