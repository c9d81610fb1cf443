"""Scale-out (issue 24): two gateways (`--role gateway`) on one Kafka mock
cluster and one PostgreSQL store, behind Debian's nginx running
examples/nginx/omnihub.conf. Signals (typing, read receipts, presence, the
router's view of presence) cross from one gateway to the other over the
signals topic; webhooks and REST spread over both gateways; WebSocket
clients of a gateway killed -9 reconnect through nginx and resume with no
gap and no duplicate."""
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import websockets

from conftest import INBOUND_SECRET, ROOT, Daemon, free_port, sign_hex
from test_kafka import KafkaMock
from test_store_pg import pg  # noqa: F401 (the module's PostgreSQL server)
from test_desk_signals import customer_conversation
from test_webchat import Client, run

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REFRESH_MS = 500  # signals.presence_refresh_ms: a dead gateway's agents go in 1.5 s

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def api_msg(mid, contact, text=None):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact},
            "message_id": mid, "text": text or f"text {mid}"}


class Nginx:
    """nginx in the foreground with examples/nginx/omnihub.conf, its
    upstream servers and listener replaced by GATEWAYS' and a free port."""

    def __init__(self, tmp, gateways):
        self.port = free_port()
        conf = (ROOT / "examples" / "nginx" / "omnihub.conf").read_text()
        servers = [m for m in re.finditer(r"^\s*server 127\.0\.0\.1:(\d+)(.*);$", conf, re.M)]
        assert len(servers) == 2, "the example's upstream lists two gateways"
        lines = "".join(f"    server 127.0.0.1:{g.port}{servers[0].group(2)};\n"
                        for g in gateways)
        conf = conf[:servers[0].start()] + "\n" + lines + conf[servers[-1].end() + 1:]
        conf, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{self.port};", conf)
        assert n == 1
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "omnihub.conf").write_text(conf)
        temps = "".join(f"    {k}_temp_path {tmp}/{k};\n"
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        main = (f"daemon off;\nworker_processes 1;\nuser root;\npid {tmp}/nginx.pid;\n"
                f"error_log {tmp}/error.log warn;\nevents {{ worker_connections 1024; }}\n"
                f"http {{\n    access_log {tmp}/access.log;\n{temps}"
                f"    include {tmp}/omnihub.conf;\n}}\n")
        (tmp / "nginx.conf").write_text(main)
        self.tmp = tmp
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                                      "-e", str(tmp / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            assert self.proc.poll() is None, (tmp / "error.log").read_text()
            try:
                requests.get(self.url + "/healthz", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen: " + (tmp / "error.log").read_text())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def lb(tmp_path_factory, pg):  # noqa: F811
    """Kafka mock, PostgreSQL, two gateways, one sync member, nginx."""
    tmp = tmp_path_factory.mktemp("lb")
    mock = KafkaMock(tmp, partitions=3)
    config = {
        "log.backend": "kafka",
        "kafka.brokers": mock.bootstrap,
        "store.backend": "postgres",
        "store.postgres.dsn": pg.createdb("lb" + uuid.uuid4().hex[:12]),
        "signals.presence_refresh_ms": str(REFRESH_MS),
    }
    daemons = []

    def start(role, name, extra=None):
        cfg = dict(config)
        cfg.update(extra or {})
        d = Daemon(tmp / name, cfg, args=["--role", role])
        daemons.append(d)
        return d

    class LB:
        pass

    c = LB()
    c.start = start
    try:
        c.gw = [start("gateway", "gw1"), start("gateway", "gw2")]
        c.sync = start("sync", "sync")
        c.nginx = Nginx(tmp / "nginx", c.gw)
        yield c
    finally:
        if getattr(c, "nginx", None):
            c.nginx.stop()
        for d in daemons:
            if d.proc:
                d.stop()
        mock.stop()


def agents(d):
    r = d.request("GET", "/v1/agents", token=d.agent_token("viewer", "v"))
    assert r.status_code == 200, r.text
    return {a["id"]: a for a in r.json()["agents"]}


def wait_for(pred, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_signals_cross_gateways_and_reach_the_router(lb):
    gw1, gw2 = lb.gw
    cust = gw2.customer_token("dora")
    conv = customer_conversation(gw2, cust)
    heard_before = gw1.metric("omnihub_signals_total", {"direction": "in"})

    async def go():
        async with Client(gw2, cust) as c, Client(gw1, gw1.agent_token("a1")) as a, \
                Client(gw1, gw1.agent_token("a2", "desk2")) as inbox, \
                Client(gw1, gw1.customer_token("dora", "d2")) as own:
            assert (await a.subscribe(conv))["type"] == "subscribed"
            await a.events(1)
            assert (await inbox.subscribe("*"))["type"] == "subscribed"
            assert (await c.subscribe(conv))["type"] == "subscribed"
            await c.events(1)
            # typing: customer on gw2 -> agents on gw1, and back
            await c.send({"type": "typing", "conversation": conv, "state": "start"})
            want = {"type": "typing", "conversation": conv,
                    "from": {"role": "customer", "id": "dora"}, "state": "start"}
            assert await a.until(lambda f: f["type"] == "typing") == want
            assert await inbox.until(lambda f: f["type"] == "typing") == want
            await a.send({"type": "typing", "conversation": conv, "state": "stop"})
            f = await c.until(lambda f: f["type"] == "typing")
            assert f == {"type": "typing", "conversation": conv,
                         "from": {"role": "agent", "id": "a1"}, "state": "stop"}
            # read receipt: to the agents on gw1 and the customer's own
            # other device there
            await c.send({"type": "read", "conversation": conv, "seq": 1})
            want = {"type": "read", "conversation": conv, "seq": 1, "device": "d1",
                    "from": {"role": "customer", "id": "dora"}}
            assert await a.until(lambda f: f["type"] == "read") == want
            assert await inbox.until(lambda f: f["type"] == "read") == want
            f = await own.until(lambda f: f["type"] == "read")
            assert f == {"type": "read", "conversation": conv, "seq": 1, "device": "d1"}
            # the sender hears nothing of its own signals coming back
            assert not [x for x in await c.quiet(0.5) if x["type"] in ("typing", "read")]
            # presence: an agent on gw2, seen on gw1's inbox and /v1/agents
            bob = await Client(gw2, gw2.token("bob", "agent", "laptop")).__aenter__()
            await bob.send({"type": "presence", "status": "online"})
            f = await inbox.until(lambda f: f["type"] == "presence" and f["agent"] == "bob")
            assert f["status"] == "online"
            assert agents(gw1)["bob"]["presence"] == "online"
            # online here too (gw1's own device), then gone from gw2: still online
            bob1 = await Client(gw1, gw1.token("bob", "agent", "phone")).__aenter__()
            await bob1.send({"type": "presence", "status": "online"})
            await bob.__aexit__(None, None, None)
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.5)
            await loop.run_in_executor(None, wait_for,
                                       lambda: agents(gw2)["bob"]["presence"] == "online",
                                       "bob online on gw2 through gw1 alone")
            await bob1.__aexit__(None, None, None)
            f = await inbox.until(lambda f: f["type"] == "presence" and f["agent"] == "bob")
            assert f["status"] == "offline"
            assert wait_for(lambda: agents(gw2)["bob"]["presence"] == "offline",
                            "bob offline on gw2")
    run(go())
    assert gw1.metric("omnihub_signals_total", {"direction": "in"}) > heard_before
    # never stored
    assert [e["type"] for e in gw1.history(conv)] == ["omnihub.message.inbound"]

    # the router runs on its own: it knows who is online only from the
    # gateways' signals, and hands a new conversation to the agent on gw2
    router = lb.start("router", "router", {"routing.enabled": "true"})
    try:
        async def online():
            tok = gw2.token("rita", "agent", "desk")
            async with Client(gw2, tok) as rita:
                await rita.send({"type": "presence", "status": "online"})
                await rita.send({"type": "ping"})
                await rita.until(lambda f: f["type"] == "pong")
                await asyncio.sleep(2 * REFRESH_MS / 1000)
                r = gw1.post_inbound(api_msg("route-1", "routed-contact"))
                assert r.status_code == 202, r.text
                conv = r.json()["conversation_id"]

                def assigned():
                    ev = gw1.history(conv)
                    return [e for e in ev if e["type"] == "omnihub.conversation.updated" and
                            (e["data"].get("state") or {}).get("assignee") == "rita"]
                # waited off the event loop: rita's connection keeps answering pings
                return await asyncio.get_running_loop().run_in_executor(
                    None, lambda: wait_for(assigned, "the router's assignment to rita", timeout=30))
        assert run(online())
    finally:
        router.stop()


async def follow(url, token, conv, out, stop, reconnects):
    """Keeps CONV's events in OUT (seq -> event id) through nginx; on a
    lost connection reconnects and resumes after the last seq seen."""
    epoch = None
    while not stop.is_set():
        try:
            async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + token},
                                          open_timeout=5) as ws:
                last = max(out) if out else 0
                sub = {"type": "subscribe", "conversation": conv, "after": last}
                if epoch:
                    sub["epoch"] = epoch
                await ws.send(json.dumps(sub))
                while not stop.is_set():
                    try:
                        f = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                    except asyncio.TimeoutError:
                        continue
                    if f["type"] == "subscribed":
                        assert f["recovered"] or not epoch, f
                        epoch = f["epoch"]
                    elif f["type"] == "event":
                        seq = f["event"]["seq"]
                        assert seq not in out, f"seq {seq} delivered twice"
                        assert seq == (max(out) if out else 0) + 1, \
                            f"gap: seq {seq} after {max(out) if out else 0}"
                        out[seq] = f["event"]["id"]
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
            reconnects.append(time.time())
            await asyncio.sleep(0.2)


def test_balanced_spread_and_websocket_failover(lb):
    gw1, gw2 = lb.gw
    nginx = lb.nginx
    s = requests.Session()
    before = [g.metric("omnihub_http_requests_total") for g in lb.gw]
    hooks_before = [g.metric("omnihub_ingest_total") for g in lb.gw]

    def post(mid, contact):
        raw = json.dumps(api_msg(mid, contact)).encode()
        for _ in range(50):  # a provider retries a failed delivery
            try:
                r = s.post(nginx.url + "/v1/inbound", data=raw, timeout=10,
                           headers={"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, raw)})
                if r.status_code == 202:
                    return r.json()["conversation_id"]
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{mid} never accepted")

    # webhooks and REST through the balancer land on both gateways
    conv = post("lb-0", "lb-contact")
    for i in range(1, 12):
        assert post(f"lb-{i}", "lb-contact") == conv
    tok = gw1.agent_token("lb-agent")
    for _ in range(12):
        r = s.get(nginx.url + "/v1/conversations", headers={"Authorization": "Bearer " + tok},
                  timeout=10)
        assert r.status_code == 200, r.text
    after = [g.metric("omnihub_http_requests_total") for g in lb.gw]
    hooks = [g.metric("omnihub_ingest_total") - b for g, b in zip(lb.gw, hooks_before)]
    assert all(a - b >= 5 for a, b in zip(after, before)), (before, after)
    assert all(h >= 2 for h in hooks), hooks
    gw1.wait_history(conv, 12)

    # WebSocket clients through nginx, on both gateways
    url = nginx.url.replace("http", "ws") + "/v1/ws"
    outs = [dict() for _ in range(4)]
    reconnects = []

    async def scenario():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(follow(url, tok, conv, o, stop, reconnects)) for o in outs]
        loop = asyncio.get_running_loop()

        def placed():
            return [g.metric("omnihub_ws_connections") for g in lb.gw]
        deadline = time.time() + 20
        while time.time() < deadline and not (sum(placed()) == 4 and all(
                len(o) == 12 for o in outs)):
            await asyncio.sleep(0.1)
        where = placed()
        assert sum(where) == 4 and all(n >= 1 for n in where), where
        victim, survivor = (gw1, gw2) if where[0] >= where[1] else (gw2, gw1)
        # an agent online on the victim only: the survivor forgets it once
        # the victim's word on it runs out
        carol = await Client(victim, victim.token("carol", "agent", "c")).__aenter__()
        await carol.send({"type": "presence", "status": "online"})
        await loop.run_in_executor(None, wait_for,
                                   lambda: agents(survivor).get("carol", {}).get("presence") ==
                                   "online", "carol online on the survivor")
        # messages before, during and after the kill
        n = 12
        for i in range(n, n + 10):
            await loop.run_in_executor(None, post, f"lb-{i}", "lb-contact")
        n += 10
        victim.kill9()
        try:
            await carol.__aexit__(None, None, None)
        except Exception:
            pass
        for i in range(n, n + 20):
            await loop.run_in_executor(None, post, f"lb-{i}", "lb-contact")
        n += 20
        deadline = time.time() + 30
        while time.time() < deadline and not all(len(o) == n for o in outs):
            await asyncio.sleep(0.1)
        await loop.run_in_executor(None, wait_for,
                                   lambda: agents(survivor).get("carol", {}).get("presence") ==
                                   "offline", "carol offline once the victim is gone")
        stop.set()
        await asyncio.gather(*tasks)
        return n, where

    n, where = run(scenario())
    history = lb.gw[0 if lb.gw[0].proc else 1].wait_history(conv, n)
    assert len(history) == n
    for o in outs:  # every client: every event once, in order, as stored
        assert o == {e["seq"]: e["id"] for e in history}
    # the clients of the victim reconnected through the balancer
    assert len(reconnects) >= min(where), (reconnects, where)
