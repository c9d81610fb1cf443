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

    def leader(self, topic, partition, broker):
        return self.command(f"leader {topic} {partition} {broker}")

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


def assignment(d):
    """The partitions a sync process holds now, from its log."""
    held = set()
    for line in d.logs().splitlines():
        if "partition(s) revoked" in line:
            held = set()
        elif "assigned, resuming" in line:
            held.add(int(line.split("partition ")[1].split(" ")[0]))
    return held


def group_lines(d):
    """D's log lines about its group membership, for a failure message."""
    return [line for line in d.logs().splitlines()
            if "revoked" in line or "assigned, resuming" in line or "rebalance" in line.lower()]


def wait_assigned(members, timeout=None):
    """Waits until MEMBERS share every partition, each holding some.

    The mock cluster's coordinator gives a rebalance session.timeout.ms - 1 s
    (9 s here) for every member to rejoin, and a member that misses that
    window (a loaded machine, an ASan build) starts another round: two
    members get three rounds."""
    timeout = timeout or (30 if len(members) == 1 else 60)
    deadline = time.time() + timeout
    while time.time() < deadline:
        held = [assignment(m) for m in members]
        if all(held) and set().union(*held) == set(range(PARTITIONS)) and \
                sum(map(len, held)) == PARTITIONS:
            return held
        time.sleep(0.1)
    tails = "\n".join(f"{m.tmp.name}: " + "\n  ".join(group_lines(m)[-12:]) for m in members)
    raise AssertionError(f"partitions not spread in {timeout} s: "
                         f"{[assignment(m) for m in members]}\n{tails}")


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
    wait_assigned([s1, s2])
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
    # each consuming role exports its group's lag per partition
    for d, group, topic in ((s1, "omnihub-sync", "events"), (s2, "omnihub-sync", "events"),
                            (disp, "omnihub-dispatch", "timeline")):
        text = d.metrics_text()
        for p in range(PARTITIONS):
            series = f'group="{group}",topic="{topic}",partition="{p}"'
            assert f"omnihub_consumer_lag{{{series}}} " in text, (group, p)
            assert f"omnihub_consumer_lag_seconds{{{series}}} " in text, (group, p)


def test_rebalance_and_kill9_of_a_sync_member_mid_stream(cluster):
    gw = cluster.start("gateway", "gateway")
    s1 = cluster.start("sync", "sync1")
    wait_assigned([s1])
    writers = Writers(gw, [f"kill{i}" for i in range(24)], threads=8, prefix="k")
    try:
        time.sleep(1)
        # a second member joins while events flow: s1 gives up half its partitions
        s2 = cluster.start("sync", "sync2")
        held = wait_assigned([s1, s2])
        joined_at = len(writers.acked)
        time.sleep(1.5)
        before = s2.metric("omnihub_sync_materialized_total")
        s2.kill9()
        killed_at = len(writers.acked)
        time.sleep(3)
    finally:
        writers.stop()
    assert not writers.failed, writers.failed[:3]
    assert before > 0, "the killed member had materialized its partitions"
    assert len(writers.acked) > killed_at + 50, "ingest went on after the kill"
    t0 = time.time()
    check_histories(gw, writers.acked, timeout=60)
    print(f"\n{len(writers.acked)} acknowledged ({joined_at} when sync2 joined, {killed_at} "
          f"at its kill -9); the survivor caught up {time.time() - t0:.1f} s after the posts "
          "stopped")
    assert assignment(s1) == set(range(PARTITIONS)), "the survivor took over " + str(held[1])


def test_broker_down_and_up_during_ingest_loses_nothing(cluster):
    gw = cluster.start("gateway", "gateway")
    wait_assigned([cluster.start("sync", "sync1"), cluster.start("sync", "sync2")])
    writers = Writers(gw, [f"down{i}" for i in range(24)], threads=8, prefix="b")
    try:
        time.sleep(1)
        at_down = len(writers.acked)
        cluster.mock.down(2)
        time.sleep(3)
        at_up, t_up = len(writers.acked), time.time()
        cluster.mock.up(2)
        # requests for partitions led by broker 2 wait for it (no leader change
        # on the mock); once the producer has reconnected ingest goes on
        while len(writers.acked) < at_up + 200 and time.time() < t_up + 20:
            time.sleep(0.1)
        resumed = time.time() - t_up
    finally:
        writers.stop()
    assert not writers.failed, writers.failed[:3]
    assert len(writers.acked) >= at_up + 200, "ingest did not resume after the broker came back"
    by_conv = check_histories(gw, writers.acked, timeout=60)
    print(f"\n{len(writers.acked)} acknowledged over {len(by_conv)} conversations; broker 2 "
          f"down 3 s ({at_down} before, {at_up - at_down} while down), 200 more "
          f"{resumed:.1f} s after it came back; none lost")


def kcat(bootstrap, topic):
    out = subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-C", "-e", "-J", "-q"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def metadata(bootstrap):
    """The cluster's metadata as kcat -L -J prints it: brokers, and topics
    with their partitions and leaders."""
    out = subprocess.run(["kcat", "-b", bootstrap, "-L", "-J"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return json.loads(out)


async def ws_live(gw, conv, head, epoch, token, post):
    """Subscribes to CONV after HEAD, calls POST, returns the events up to
    the first live one."""
    url = gw.url.replace("http", "ws") + "/v1/ws"
    async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + token}) as ws:
        await ws.send(json.dumps({"type": "subscribe", "conversation": conv, "after": head,
                                  "epoch": epoch}))
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if f["type"] in ("subscribed", "error"):
                break
        assert f["type"] == "subscribed", f
        assert f["head"] == head and f["recovered"] is True, f
        await asyncio.get_running_loop().run_in_executor(None, post)
        got = []
        while not got or got[-1]["seq"] <= head:
            f = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if f["type"] == "event":
                got.append(f["event"])
        return got


def test_kcat_reads_cloudevents_and_websocket_gets_live_events(cluster):
    gw = cluster.start("gateway", "gateway")
    cluster.start("sync", "sync1")
    acked = []
    for i in range(12):
        r = gw.post_inbound(msg(f"c{i}", f"kc{i % 4}"))
        assert r.status_code == 202
        acked.append((f"c{i}", r.json()["conversation_id"]))
    check_histories(gw, acked)
    # both topics hold structured CloudEvents keyed by the conversation id
    for topic in ("omnihub.events", "omnihub.timeline"):
        recs = kcat(cluster.mock.bootstrap, topic)
        assert len(recs) == 12, (topic, len(recs))
        parts = {}
        for rec in recs:
            ev = json.loads(rec["payload"])
            validate_event(ev)
            assert rec["key"] == ev["subject"]
            # structured mode: the contract's header first; the routing metadata
            # (ce_type, ce_subject, ce_seq, ce_authorkind) follows it
            assert rec["headers"][:2] == ["content-type", "application/cloudevents+json"]
            assert ("seq" in ev) == (topic == "omnihub.timeline")
            parts.setdefault(rec["key"], set()).add(rec["partition"])
        assert all(len(p) == 1 for p in parts.values()), "a conversation spans partitions"
        assert {m for m, _ in acked} == {json.loads(r["payload"])["data"]["message_id"]
                                         for r in recs}
    # a WebSocket client of the gateway gets what the sync process materialized
    conv = acked[0][1]
    epoch = gw.history(conv)[0]["epoch"]
    got = asyncio.run(ws_live(gw, conv, 3, epoch, gw.agent_token(),
                              lambda: gw.post_inbound(msg("live1", "kc0"))))
    assert len(got) == 1, [(e["seq"], e["data"]["message_id"]) for e in got]
    ev = got[0]
    validate_event(ev)
    assert ev["data"]["message_id"] == "live1" and ev["seq"] == 4
    assert gw.history(conv)[-1] == ev


def test_undeliverable_append_answers_503_and_is_counted(cluster):
    gw = cluster.start("gateway", "gateway", {"kafka.message_timeout_ms": "2000"})
    cluster.start("sync", "sync1")
    conv = gw.post_inbound(msg("before", "outage")).json()["conversation_id"]
    gw.wait_history(conv, 1)
    for b in (1, 2, 3):
        cluster.mock.down(b)
    t0 = time.time()
    r = gw.post_inbound(msg("during", "outage"))
    took = time.time() - t0
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "unavailable"
    assert 1.5 < took < 25, took  # kafka.message_timeout_ms, not the default 60 s
    assert gw.metric("omnihub_ingest_total", {"channel": "api", "result": "failed"}) == 1
    assert gw.request("GET", "/readyz").status_code == 503
    for b in (1, 2, 3):
        cluster.mock.up(b)
    deadline = time.time() + 30
    while time.time() < deadline:
        r = gw.post_inbound(msg("after", "outage"))
        if r.status_code == 202:
            break
        time.sleep(0.5)
    assert r.status_code == 202, r.text
    events = gw.wait_history(conv, 2)
    ids = [e["data"]["message_id"] for e in events]
    assert ids[0] == "before" and ids[-1] == "after" and len(ids) == len(set(ids))
    print(f"\n503 after {took:.1f} s with every broker down; accepted again once back")


def test_desk_command_the_log_refuses_answers_503_and_outlives_its_report(cluster):
    # a PATCH whose command cannot be appended: answered 503 either by the
    # log's refusal (its timeout before the wait's 10 s) or by the wait's
    # deadline, with the log's refusal arriving after the request is gone
    fast = cluster.start("gateway", "gateway", {"kafka.message_timeout_ms": "2000"})
    slow = cluster.start("gateway", "gw-slow", {"kafka.message_timeout_ms": "13000"})
    cluster.start("sync", "sync1")
    conv = fast.post_inbound(msg("before", "desk-outage")).json()["conversation_id"]
    fast.wait_history(conv, 1)
    for b in (1, 2, 3):
        cluster.mock.down(b)
    try:
        r = fast.request("PATCH", f"/v1/conversations/{conv}", {"priority": "urgent"},
                         token=fast.agent_token())
        assert r.status_code == 503, r.text
        # usually the log's refusal (2 s); the wait's deadline when the
        # command was in flight to a broker as it went down (librdkafka
        # fails an in-flight request at the request's timeout, after the 10 s)
        assert any(m in r.json()["error"]["message"] for m in (
            "could not be made durable", "not decided in time")), r.text
        assert r.headers["Retry-After"] == "1"
        t0 = time.time()
        r = slow.request("PATCH", f"/v1/conversations/{conv}", {"priority": "high"},
                         token=slow.agent_token())
        assert r.status_code == 503, r.text
        assert "not decided in time" in r.json()["error"]["message"], r.text
        # the log reports the refusal at 13 s, to a request answered at 10
        time.sleep(max(0.0, 16 - (time.time() - t0)))
        assert slow.proc.poll() is None, "omnihubd died on the late report"
        assert slow.request("GET", "/healthz").status_code == 200
    finally:
        for b in (1, 2, 3):
            cluster.mock.up(b)
    assert fast.request("GET", f"/v1/conversations/{conv}",
                        token=fast.agent_token()).json()["priority"] == "normal"


def test_in_process_mock_cluster_and_kafka_mock_commands(omnihub, tmp_path):
    # kafka.mock_brokers: the whole spine in one process, bootstrap in /readyz
    d = omnihub({"log.backend": "kafka", "kafka.mock_brokers": "3", "kafka.partitions": "4"})
    ready = d.request("GET", "/readyz").json()
    assert ready["log"]["backend"] == "kafka"
    boot = ready["log"]["bootstrap"]
    assert len(boot.split(",")) == 3 and all(b.startswith("127.0.0.1:") for b in boot.split(","))
    conv = d.post_inbound(msg("m1", "inproc")).json()["conversation_id"]
    assert d.wait_history(conv, 1)[0]["seq"] == 1
    meta = metadata(boot)
    topics = {t["topic"]: len(t["partitions"]) for t in meta["topics"]}
    assert topics["omnihub.events"] == 4 and topics["omnihub.timeline"] == 4
    assert len(meta["brokers"]) == 3
    # omnihubctl kafka-mock refuses what it does not know, one answer a line
    mock = KafkaMock(tmp_path, brokers=2, partitions=3)
    try:
        for line, answer in (("down 3", "error down 3: invalid input"),
                             ("sideways 1", 'error unknown command "sideways 1" '
                              '(down ID | up ID | leader TOPIC PARTITION ID | rtt ID MS)'),
                             ("leader omnihub.events 0", 'error unknown command "leader '
                              'omnihub.events 0" (down ID | up ID | leader TOPIC PARTITION ID | '
                              'rtt ID MS)'),
                             ("rtt 1 -5", "error rtt 1 -5: invalid input"),
                             ("rtt 1 50", "ok rtt 1 50"), ("rtt 1 0", "ok rtt 1 0"),
                             ("leader omnihub.events 0 3",
                              "error leader omnihub.events 0 3: invalid input"),
                             ("leader omnihub.events 0 2", "ok leader omnihub.events 0 2"),
                             ("down 1", "ok down 1"), ("up 1", "ok up 1")):
            with mock.lock:
                mock.proc.stdin.write(line + "\n")
                mock.proc.stdin.flush()
                assert mock.proc.stdout.readline().strip() == answer
    finally:
        mock.stop()
    assert mock.proc.returncode == 0
    bad = subprocess.run([str(OMNIHUBCTL), "kafka-mock", "--brokers", "0"], capture_output=True,
                         text=True, timeout=10)
    assert bad.returncode == 2 and "usage: omnihubctl kafka-mock" in bad.stderr


def test_timeline_outage_longer_than_the_timeout_is_forwarded_after(cluster):
    """Sync stores an event but cannot forward it (the leader of its timeline
    partition is down past kafka.message_timeout_ms): it keeps trying, and
    the event reaches the timeline and live clients once the broker is back."""
    # the mock places leaders at random: every timeline partition is put on
    # another broker than the same events partition, so the outage below
    # leaves the gateway's appends alone whatever the conversation hashes to
    meta = metadata(cluster.mock.bootstrap)
    for t in meta["topics"]:
        if t["topic"] == "omnihub.events":
            for p in t["partitions"]:
                cluster.mock.leader("omnihub.timeline", p["partition"], p["leader"] % 3 + 1)
    gw = cluster.start("gateway", "gateway")
    cluster.start("sync", "sync1", {"kafka.message_timeout_ms": "1500"})
    convs = {}
    for i in range(12):
        r = gw.post_inbound(msg(f"f{i}", f"fwd{i}"))
        convs[r.json()["conversation_id"]] = f"fwd{i}"
    for conv in convs:
        gw.wait_history(conv, 1)
    part = {r["key"]: r["partition"] for r in kcat(cluster.mock.bootstrap, "omnihub.events")}
    meta = metadata(cluster.mock.bootstrap)
    leader = {(t["topic"], p["partition"]): p["leader"] for t in meta["topics"]
              for p in t["partitions"]}
    assert all(leader[("omnihub.timeline", p)] != leader[("omnihub.events", p)]
               for p in part.values()), leader
    conv = next(iter(convs))
    broker = leader[("omnihub.timeline", part[conv])]
    epoch = gw.history(conv)[0]["epoch"]

    def outage():
        cluster.mock.down(broker)
        r = gw.post_inbound(msg("late", convs[conv]))
        assert r.status_code == 202, r.text
        gw.wait_history(conv, 2)  # stored, not yet forwarded
        time.sleep(4)
        cluster.mock.up(broker)

    got = asyncio.run(ws_live(gw, conv, 1, epoch, gw.agent_token(), outage))
    assert [e["data"]["message_id"] for e in got] == ["late"] and got[0]["seq"] == 2
    timeline = [json.loads(r["payload"]) for r in kcat(cluster.mock.bootstrap,
                                                       "omnihub.timeline") if r["key"] == conv]
    assert [(e["data"]["message_id"], e["seq"]) for e in timeline] == [("f%d" % int(
        convs[conv][3:]), 1), ("late", 2)]


def test_an_event_too_large_for_the_log_is_413_and_every_acknowledged_one_is_forwarded(omnihub):
    """Records the log cannot take: an event over omnihub's own bound is 413
    on any log, and so is one over what a lowered kafka.message_max_bytes
    leaves once the timeline copy's room (seq, epoch, metadata) is kept:
    every event acknowledged can be forwarded, so live readers and services
    (dispatch) never miss one. A limit too small for that room is refused
    at start."""
    limit = 200_000
    cfg = {"log.backend": "kafka", "kafka.mock_brokers": "1", "kafka.partitions": "1",
           "triage.enabled": "false", "http.max_body": "2m"}
    d = omnihub(cfg | {"kafka.message_max_bytes": str(limit)})
    tok = d.agent_token()

    def post(mid, text):
        return d.post_inbound(dict(msg(mid, "big"), text=text))

    r = post("huge", "x" * 970_000)  # over the hub's bound on any log
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    r = post("over", "x" * (limit - 20_000))  # under the producer's limit, not under the room
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    assert f"over {limit - 40_000} bytes" in r.json()["error"]["message"], r.text
    # the longest text taken, found by halving: each acknowledged one is
    # stored and on the timeline
    acked, lo, hi, i = [], 1000, limit, 0
    while hi - lo > 1:
        mid, i = (lo + hi) // 2, i + 1
        r = post(f"b{i}", "x" * mid)
        assert r.status_code in (202, 413), r.text
        if r.status_code == 202:
            acked.append(f"b{i}")
            conv = r.json()["conversation_id"]
            lo = mid
        else:
            hi = mid
    assert limit - 41_000 < lo < limit - 40_000, lo
    r = post("after", "after the big ones")
    assert r.status_code == 202, r.text
    acked.append("after")
    events = d.wait_history(conv, len(acked), timeout=60, token=tok)
    assert [e["data"]["message_id"] for e in events] == acked
    boot = d.request("GET", "/readyz").json()["log"]["bootstrap"]
    deadline = time.time() + 30
    while True:
        timeline = [json.loads(r["payload"])["data"]["message_id"]
                    for r in kcat(boot, "omnihub.timeline") if r["key"] == conv]
        if timeline == acked or time.time() > deadline:
            break
        time.sleep(0.2)
    assert timeline == acked
    assert d.metric("omnihub_sync_forward_too_large_total") == 0
    d.stop()
    # a limit that leaves no room: refused with a reason
    with pytest.raises(RuntimeError, match="kafka.message_max_bytes: at least 100000"):
        omnihub(cfg | {"kafka.message_max_bytes": "50000"}, name="small")


def test_an_event_stored_under_a_higher_limit_never_holds_up_sync(tmp_path, omnihub):
    """An event the log took under a higher kafka.message_max_bytes, read by a
    sync whose producer now has a lower one: its timeline copy no longer
    fits. It stays in the history, is logged and counted, and sync goes on
    forwarding what comes after it (it retried that append for ever before,
    every later event of the partition stuck behind it)."""
    mock = KafkaMock(tmp_path, brokers=1, partitions=1)
    try:
        cfg = {"log.backend": "kafka", "kafka.brokers": mock.bootstrap, "triage.enabled": "false",
               "http.max_body": "2m"}
        gw = omnihub(cfg | {"kafka.message_max_bytes": "400000"}, args=["--role", "gateway"],
                     name="gw")
        r = gw.post_inbound(dict(msg("big", "older"), text="x" * 300_000))
        assert r.status_code == 202, r.text
        conv = r.json()["conversation_id"]
        gw.stop()
        d = omnihub(cfg | {"kafka.message_max_bytes": "200000"}, name="spine")
        r = d.post_inbound(msg("after", "older"))
        assert r.status_code == 202 and r.json()["conversation_id"] == conv, r.text
        events = d.wait_history(conv, 2, timeout=60, token=d.agent_token())
        assert [e["data"]["message_id"] for e in events] == ["big", "after"]
        deadline = time.time() + 30
        while True:
            timeline = [json.loads(r["payload"])["data"]["message_id"]
                        for r in kcat(mock.bootstrap, "omnihub.timeline") if r["key"] == conv]
            if timeline == ["after"] or time.time() > deadline:
                break
            time.sleep(0.2)
        assert timeline == ["after"]
        assert d.metric("omnihub_sync_forward_too_large_total") >= 1
        assert "larger than the log takes were not forwarded" in d.logs()
        d.stop()
    finally:
        mock.stop()
