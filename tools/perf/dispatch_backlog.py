"""dispatch_backlog.py - what the dispatcher costs through a receiver's
outage (docs/performance.md, "The dispatcher through an outage"): a daemon
(OMNIHUB_BUILD, defaults, SQLite) whose api channel's receiver answers every
send with 503; CONVS conversations get REPLIES agent replies each, so every
conversation has a reply backing off and the others held behind it. Over
SECONDS once all are held, the daemon's CPU (utime + stime from /proc) and
the send attempts the receiver saw. With INGEST set, that many inbound
messages (8 threads) are timed before the outage's replies and again during
it: what the retries cost everyone else. BACKLOG_RECEIVER=up: the receiver
answers 200 instead, and the replies' daemon CPU and the time until all are
sent are printed (no outage), with the daemon's fdatasync calls meanwhile
when `perf` can count the syscalls tracepoint (root).

usage: OMNIHUB_BUILD=build python3 -m pytest -q -s -p no:cacheprovider \
         tools/perf/dispatch_backlog.py  [BACKLOG_CONVS=2000 BACKLOG_REPLIES=3
         BACKLOG_SECONDS=10 BACKLOG_INGEST=0]
(a pytest module so it reuses tests/integration/conftest.py's daemon)"""
import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration"))
from conftest import http_stub, omnihub  # noqa: E402,F401 (the fixtures)
from contacts_workload import cpu_s  # noqa: E402 (this folder's: user + system CPU seconds)

CONVS = int(os.environ.get("BACKLOG_CONVS", "2000"))
REPLIES = int(os.environ.get("BACKLOG_REPLIES", "3"))
SECONDS = float(os.environ.get("BACKLOG_SECONDS", "10"))
INGEST = int(os.environ.get("BACKLOG_INGEST", "0"))
UP = os.environ.get("BACKLOG_RECEIVER") == "up"


def test_dispatch_backlog(omnihub, http_stub):  # noqa: F811
    stub = http_stub()
    stub.set_default(*((200, {}) if UP else (503, {"error": "down"})))
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.workers": "4",
                 "dispatch.backoff_ms": "5000", "dispatch.backoff_max_ms": "5000",
                 "dispatch.max_attempts": "0"})
    tok = d.agent_token()

    def conversation(i):
        r = d.post_inbound({"channel": "api:shop", "account": "acme",
                            "contact": {"id": f"b{i}"}, "message_id": f"b{i}", "text": "hi"})
        assert r.status_code == 202, r.text
        return r.json()["conversation_id"]

    def replies(conv):
        for k in range(REPLIES):
            r = d.request("POST", f"/v1/conversations/{conv}/messages",
                          {"text": f"reply {k}", "client_msg_id": f"k{k}"}, token=tok)
            assert r.status_code == 202, r.text

    def ingest(tag):
        """INGEST inbound messages, 8 at a time: messages per second."""
        def one(i):
            r = d.post_inbound({"channel": "api:shop", "account": "acme",
                                "contact": {"id": f"{tag}{i % 100}"}, "message_id": f"{tag}{i}",
                                "text": "where is my order"})
            assert r.status_code == 202, r.text
        t = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(INGEST)))
        return INGEST / (time.time() - t)

    quiet = ingest("q") if INGEST else 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        convs = list(pool.map(conversation, range(CONVS)))
        d.wait_history(convs[-1], 1, timeout=120)
        syncs = subprocess.Popen(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_fdatasync",
                                  "-p", str(d.proc.pid)], stderr=subprocess.PIPE, text=True) \
            if UP else None
        c0, t0 = cpu_s(d.proc.pid), time.time()
        list(pool.map(replies, convs))
    want = CONVS * REPLIES
    if UP:
        t1 = time.time()
        sent = {"channel": "api", "result": "sent"}
        while d.metric("omnihub_outbound_total", sent) < want and time.time() < t1 + 300:
            time.sleep(0.1)
        assert d.metric("omnihub_outbound_total", sent) == want
        t2, c2 = time.time(), cpu_s(d.proc.pid)
        syncs.send_signal(signal.SIGINT)
        count = syncs.communicate(timeout=30)[1].strip().split(",")[0]
        print(f"\nBACKLOG up: {want} replies posted in {t1 - t0:.1f} s, all sent "
              f"{t2 - t1:.2f} s after the last post, daemon CPU "
              f"{1e6 * (c2 - c0) / want:.0f} us per reply (posting included), "
              f"fdatasync calls {count}")
        return
    deadline = time.time() + 300
    while d.metric("omnihub_dispatch_queue_depth") < want and time.time() < deadline:
        time.sleep(0.5)
    assert d.metric("omnihub_dispatch_queue_depth") >= want
    time.sleep(2)  # the first attempts of the last replies' conversations
    pid = d.proc.pid
    c0, n0, t0 = cpu_s(pid), len(stub.requests), time.time()
    time.sleep(SECONDS)
    c1, n1, t1 = cpu_s(pid), len(stub.requests), time.time()
    wall = t1 - t0
    print(f"\nBACKLOG convs={CONVS} replies={REPLIES} held={want}: daemon CPU "
          f"{(c1 - c0) / wall:.3f} s/s over {wall:.1f} s, {(n1 - n0) / wall:.0f} attempts/s, "
          f"{1e6 * (c1 - c0) / max(n1 - n0, 1):.0f} us of CPU per attempt")
    if INGEST:
        print(f"BACKLOG ingest of {INGEST}: {quiet:.0f} msg/s before the outage, "
              f"{ingest('o'):.0f} msg/s during it")
