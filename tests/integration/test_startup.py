"""Start-up (CONTRACT part 1, health): omnihubd listens from the moment its
configuration is checked. While the log and the store open, /healthz
answers 200, /readyz 503 "starting", every other route and WebSocket
upgrade 503; a start that fails still exits 1 with its reason, and SIGTERM
stops a start promptly."""
import contextlib
import json
import signal
import socket
import time

import pytest
import requests

from conftest import Daemon, free_port, sign_hex, INBOUND_SECRET


MESSAGE = {"channel": "api:shop", "account": "acme", "contact": {"id": "u1"},
           "message_id": "m1", "text": "hello", "sent_at": "2026-01-02T03:04:05Z"}


class Starting(Daemon):
    """A daemon launched without waiting for /readyz: it may never be ready."""

    def start(self, timeout=30):
        self.launch()


@contextlib.contextmanager
def launched(tmp, config):
    """A Starting daemon for the body of the with; killed after it if it runs."""
    d = Starting(tmp, config)
    try:
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.proc.wait()
        d.log.close()


def unreachable(backend):
    """A configuration whose store (postgres) or log (kafka) does not answer:
    at a loopback port nothing listens on (free_port() closed its socket)."""
    if backend == "postgres":
        return {"store.backend": "postgres",
                "store.postgres.dsn": f"host=127.0.0.1 port={free_port()} dbname=x user=x"}
    return {"log.backend": "kafka", "kafka.brokers": f"127.0.0.1:{free_port()}"}


def wait_listening(d, url, timeout=10):
    """The first answer of URL + /healthz; fails when none comes in TIMEOUT s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert d.proc.poll() is None, f"omnihubd exited with {d.proc.returncode}: {d.logs()}"
        try:
            return requests.get(url + "/healthz", timeout=1)
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answered on {url} within {timeout} s: {d.logs()[-2000:]}")


def upgrade_status(port, token=""):
    """The status line (and head) a WebSocket upgrade to /v1/ws gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET /v1/ws?access_token={token} HTTP/1.1\r\n".encode() +
                  b"Host: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: omnihub\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n", 1)[0], head


def test_probes_answer_while_the_store_does_not(tmp_path):
    """PostgreSQL refuses: the daemon answers as starting for the ~13 s its
    connects retry, then exits 1 with the reason, and stops listening."""
    with launched(tmp_path, unreachable("postgres")) as d:
        r = wait_listening(d, d.url)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = requests.get(d.url + "/readyz", timeout=5)
        assert r.status_code == 503, r.text
        assert r.json() == {"status": "starting", "log": {"backend": "local"},
                            "store": {"backend": "postgres"}, "role": "all"}
        body = json.dumps(MESSAGE).encode()
        r = requests.post(d.url + "/v1/inbound", data=body, timeout=5,
                          headers={"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, body)})
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
        assert r.headers["Retry-After"] == "1"
        r = requests.get(d.url + "/v1/conversations", timeout=5)
        assert r.status_code == 503, r.text
        status, head = upgrade_status(d.port)
        assert b" 503 " in status and b"unavailable" in head, head
        r = requests.get(d.url + "/metrics", timeout=5)
        assert r.status_code == 200 and "omnihub_build_info" in r.text
        code = d.proc.wait(timeout=90)
    logs = d.logs()
    assert code == 1, logs[-3000:]
    errors = [json.loads(line) for line in logs.splitlines()
              if line.startswith("{") and '"level":"error"' in line]
    assert any(e["component"] == "main" and "Connection refused" in e["msg"] for e in errors), logs
    with pytest.raises(requests.ConnectionError):
        requests.get(d.url + "/healthz", timeout=2)


@pytest.mark.parametrize("backend", ["postgres", "kafka"])
def test_sigterm_stops_a_start_that_waits(tmp_path, backend):
    """SIGTERM while the store's connects retry (or Kafka's bootstrap does
    not answer): a clean stop (exit 0) within seconds, not at the end of
    the retries. With an admin listener, /readyz says "starting" there."""
    admin = f"127.0.0.1:{free_port()}"
    with launched(tmp_path, {**unreachable(backend), "http.admin_listen": admin}) as d:
        assert wait_listening(d, d.url).status_code == 200
        assert wait_listening(d, "http://" + admin).status_code == 200
        r = requests.get(f"http://{admin}/readyz", timeout=5)
        assert r.status_code == 503 and r.json()["status"] == "starting", r.text
        assert requests.get(d.url + "/readyz", timeout=5).status_code == 404
        time.sleep(0.5)
        t0 = time.time()
        d.proc.send_signal(signal.SIGTERM)
        code = d.proc.wait(timeout=30)
        took = time.time() - t0
    logs = d.logs()
    assert code == 0, logs[-3000:]
    assert took < 10, f"the stop took {took:.1f} s"
    assert "stopping (signal 15)" in logs


def test_a_normal_start_is_ready_and_serves(omnihub):
    """The listener comes first, the rest as before: ready, and serving."""
    d = omnihub()
    r = requests.get(d.url + "/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    r = d.post_inbound(MESSAGE)
    assert r.status_code == 202, r.text
    assert d.wait_history(r.json()["conversation_id"], 1)[0]["data"]["text"] == "hello"
    status, _ = upgrade_status(d.port, d.agent_token())
    assert b" 101 " in status, status
    logs = d.logs()
    assert logs.index("listening on http://") < logs.index(" ready: role all")
