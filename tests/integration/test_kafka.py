"""The conversation stream on Kafka with the services scaled out: a 3-broker
mock cluster hosted by `omnihubctl kafka-mock`, PostgreSQL as the store, and
separate gateway, sync (two) and dispatch processes."""
import asyncio
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
import websockets

from conftest import (INBOUND_SECRET, OMNIHUBCTL, ROOT, sign_hex, validate_event)

sys.path.insert(0, str(ROOT / "tests"))
from pg_server import PgServer  # noqa: E402

PARTITIONS = 6


class KafkaMock:
    """`omnihubctl kafka-mock` in its own process; brokers go down and up
    through its stdin."""

    def __init__(self, tmp, brokers=3, partitions=PARTITIONS):
        self.errlog = open(tmp / "kafka-mock.log", "wb")
        self.proc = subprocess.Popen(
            [str(OMNIHUBCTL), "kafka-mock", "--brokers", str(brokers), "--partitions",
             str(partitions)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errlog, text=True, bufsize=1)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert self.bootstrap.count(",") == brokers - 1, self.bootstrap
        self.lock = threading.Lock()

    def command(self, line):
        with self.lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        assert answer == "ok " + line, answer
        return answer

    def down(self, broker):
        return self.command(f"down {broker}")

    def up(self, broker):
        return self.command(f"up {broker}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.errlog.close()


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture
def cluster(tmp_path, pg, omnihub, http_stub):
    """Starts kafka-mock, then processes by role on one PostgreSQL database."""
    mock = KafkaMock(tmp_path)
    stub = http_stub()
    dsn = pg.createdb("k" + uuid.uuid4().hex[:12])

    class Cluster:
        def __init__(self):
            self.mock, self.stub, self.dsn = mock, stub, dsn
            self.config = {
                "log.backend": "kafka",
                "kafka.brokers": mock.bootstrap,
                "store.backend": "postgres",
                "store.postgres.dsn": dsn,
                "api.outbound_url": stub.url + "/hook",
                "sync.batch": "64",
            }
            self.daemons = []

        def start(self, role, name, extra=None):
            cfg = dict(self.config)
            cfg.update(extra or {})
            d = omnihub(cfg, args=["--role", role], name=name)
            self.daemons.append(d)
            return d

    c = Cluster()
    yield c
    for d in c.daemons:  # before the cluster goes away
        if d.proc:
            d.stop()
    mock.stop()


def msg(mid, contact, text=None):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact},
            "message_id": mid, "text": text or f"text {mid}"}


class Writers:
    """Threads posting inbound messages round-robin over CONTACTS until
    stopped; .acked holds (message_id, conversation_id) of every 202."""

    def __init__(self, gw, contacts, threads=8, prefix="w", timeout=30):
        self.gw, self.contacts, self.prefix, self.timeout = gw, contacts, prefix, timeout
        self.acked, self.failed = [], []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, w):
        s = requests.Session()
        i = 0
        while not self.stop_flag.is_set():
            mid = f"{self.prefix}{w}-{i}"
            raw = json.dumps(msg(mid, self.contacts[(w + i) % len(self.contacts)])).encode()
            try:
                r = s.post(self.gw.url + "/v1/inbound", data=raw, timeout=self.timeout,
                           headers={"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, raw)})
            except requests.RequestException as e:
                with self.lock:
                    self.failed.append((mid, str(e)))
                i += 1
                continue
            with self.lock:
                if r.status_code == 202:
                    self.acked.append((mid, r.json()["conversation_id"]))
                else:
                    self.failed.append((mid, r.status_code))
            i += 1

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()


def check_histories(gw, acked, timeout=60):
    """Every acknowledged message is in its conversation's history exactly
    once, and each history's seqs are 1..n."""
    by_conv = {}
    for mid, conv in acked:
        by_conv.setdefault(conv, set()).add(mid)
    deadline = time.time() + timeout
    for conv, mids in by_conv.items():
        while True:
            events = gw.history(conv)
            ids = [e["data"]["message_id"] for e in events]
            if mids <= set(ids) or time.time() > deadline:
                break
            time.sleep(0.2)
        missing = mids - set(ids)
        assert not missing, f"{conv}: {len(missing)} acknowledged messages missing"
        assert len(ids) == len(set(ids)), f"{conv}: a message stored twice"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), \
            f"{conv}: seqs not dense"
    return by_conv


def test_roles_concurrent_posts_complete_and_dense(cluster):
    gw = cluster.start("gateway", "gateway")
    s1 = cluster.start("sync", "sync1")
    s2 = cluster.start("sync", "sync2")
    disp = cluster.start("dispatch", "dispatch")
    ready = gw.request("GET", "/readyz").json()
    assert ready["log"] == {"backend": "kafka", "bootstrap": cluster.mock.bootstrap}
    assert ready["store"]["backend"] == "postgres" and ready["role"] == "gateway"
    contacts = [f"dense{i}" for i in range(24)]
    n = 600

    def post(i):
        return gw.post_inbound(msg(f"d{i}", contacts[i % len(contacts)]))

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(n)))
    took = time.time() - t0
    assert [a.status_code for a in answers] == [202] * n
    acked = [(f"d{i}", a.json()["conversation_id"]) for i, a in enumerate(answers)]
    by_conv = check_histories(gw, acked)
    assert len(by_conv) == len(contacts)
    assert all(len(m) == n // len(contacts) for m in by_conv.values())
    print(f"\n{n} posts over {len(contacts)} conversations in {took:.2f} s "
          f"({n / took:.0f}/s) through gateway -> Kafka -> 2 sync -> PostgreSQL")
    # both sync members did work: the partitions were spread between them
    assert s1.metric("omnihub_sync_materialized_total") > 0
    assert s2.metric("omnihub_sync_materialized_total") > 0
    assert (s1.metric("omnihub_sync_materialized_total") +
            s2.metric("omnihub_sync_materialized_total")) == n
    # the dispatch process sends an agent's reply and records its status
    conv = acked[0][1]
    r = gw.request("POST", f"/v1/conversations/{conv}/messages",
                   {"text": "on it", "client_msg_id": "k1"}, token=gw.agent_token())
    assert r.status_code == 202, r.text
    cluster.stub.wait_requests(1)
    assert cluster.stub.requests[0].json()["data"]["text"] == "on it"
    events = gw.wait_history(conv, n // len(contacts) + 2)
    assert events[-1]["type"] == "omnihub.message.status"
    assert events[-1]["data"]["status"]["state"] == "sent"
    assert disp.metric("omnihub_outbound_total", {"channel": "api", "result": "sent"}) == 1
