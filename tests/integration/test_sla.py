"""SLA clocks (CONTRACT part 2, SLA and KPIs) with short targets: a breach
is a conversation.updated sequenced within about a second of the deadline,
an agent's reply in time stops the clock, pending pauses it, a next
response clock follows a reply, and a breach due while the daemon was
killed is recorded once after the restart, never twice, also when the
clocks were saved long before the kill (coalesced saves), and a reply read
late after a restart still stops its clock."""
import json
import time

import pytest

from conftest import ctl
from test_routing import api_msg, store_config
from test_store_pg import pg  # noqa: F401 (the module's PostgreSQL server)

SLA = {"sla.enabled": "true", "sla.frt_s.normal": "2", "sla.nrt_s.normal": "2",
       "sla.frt_s.urgent": "1"}


def parse_time(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def breaches(d, conv, tok):
    return [e for e in d.history(conv, token=tok)
            if e["type"] == "omnihub.conversation.updated"
            and e["data"]["reason"].startswith("sla_breach:")]


def wait_breaches(d, conv, tok, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = breaches(d, conv, tok)
        if len(got) >= n:
            return got
        time.sleep(0.05)
    return breaches(d, conv, tok)


def post(d, contact, mid=None):
    r = d.post_inbound(api_msg(contact, mid=mid or f"m-{contact}"))
    assert r.status_code in (200, 202), r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1)
    return conv


def reply(d, conv, tok, cid):
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": "on it", "client_msg_id": cid}, token=tok)
    assert r.status_code == 202, r.text


def test_breach_timing_reply_in_time_and_pause(omnihub):
    d = omnihub(SLA)
    tok = d.agent_token("ann")
    t0 = time.time()
    late = post(d, "late")
    answered = post(d, "answered")
    paused = post(d, "paused")
    reply(d, answered, tok, "r1")
    assert d.request("PATCH", f"/v1/conversations/{paused}", {"status": "pending"},
                     token=tok).status_code == 200
    # the deadline is visible before it passes, once the clocks are saved
    # (every sla.save_ms, 200 by default)
    deadline = time.time() + 5
    while True:
        sla = d.request("GET", f"/v1/conversations/{late}", token=tok).json()["sla"]
        if sla["first_response_due"] is not None or time.time() > deadline:
            break
        time.sleep(0.02)
    assert sla["breached"] == [] and sla["next_response_due"] is None
    due = parse_time(sla["first_response_due"])
    assert t0 + 1.5 < due < time.time() + 2.5, (t0, due)
    got = wait_breaches(d, late, tok, 1)
    assert len(got) == 1, got
    ev = got[0]
    assert ev["data"]["reason"] == "sla_breach:frt"
    assert ev["data"]["author"] == {"kind": "system", "id": "sla"}
    assert ev["data"]["changes"]["sla"]["breached"] == ["frt"]
    lateness = parse_time(ev["time"]) - due
    assert -0.05 <= lateness <= 1.0, lateness
    # the object's clocks follow the event (the service marks the clock when
    # the event comes back on the timeline, a batch later: docs/routing.md)
    deadline = time.time() + 5
    while True:
        listed = {c["conversation_id"]: c for c in d.conversations(token=tok)}
        if listed[late]["sla"]["breached"] == ["frt"] or time.time() > deadline:
            break
        time.sleep(0.02)
    assert listed[late]["sla"]["breached"] == ["frt"]
    # a customer sees no clocks
    cust = d.customer_token("late")
    assert "sla" not in d.request("GET", f"/v1/conversations/{late}", token=cust).json()
    # pending: the clock stands still; open again: it runs on
    time.sleep(max(0, due + 0.7 - time.time()))
    assert breaches(d, paused, tok) == [] and breaches(d, answered, tok) == []
    # a paused clock shows no deadline; an answered one neither
    for conv in (paused, answered):
        sla = d.request("GET", f"/v1/conversations/{conv}", token=tok).json()["sla"]
        assert sla == {"first_response_due": None, "next_response_due": None, "breached": []}
    assert d.request("PATCH", f"/v1/conversations/{paused}", {"status": "open"},
                     token=tok).status_code == 200
    assert wait_breaches(d, paused, tok, 1)[0]["data"]["reason"] == "sla_breach:frt"
    assert breaches(d, answered, tok) == []


def test_a_private_note_is_no_reply(omnihub):
    """A note in time leaves the first-response clock running (the SLA
    service reads the timeline's internal flag, not the body, once the
    clocks are in memory); the agent's reply after it stops the next one."""
    d = omnihub(SLA)
    tok = d.agent_token("ann")
    noted = post(d, "noted")
    r = d.request("POST", f"/v1/conversations/{noted}/messages",
                  {"text": "customer sounds upset", "client_msg_id": "n1", "internal": True},
                  token=tok)
    assert r.status_code == 202, r.text
    got = wait_breaches(d, noted, tok, 1)
    assert [e["data"]["reason"] for e in got] == ["sla_breach:frt"], got
    # a reply now is late but stops the clock: no next-response breach follows
    reply(d, noted, tok, "r1")
    d.wait_history(noted, 4)
    time.sleep(2.8)
    assert [e["data"]["reason"] for e in breaches(d, noted, tok)] == ["sla_breach:frt"]


def test_next_response_clock_and_priority(omnihub):
    d = omnihub(SLA)
    tok = d.agent_token("ann")
    conv = post(d, "nrt")
    reply(d, conv, tok, "r1")
    r = d.post_inbound(api_msg("nrt", mid="m-nrt-2", text="still there?"))
    assert r.status_code in (200, 202)
    d.wait_history(conv, 3)
    got = wait_breaches(d, conv, tok, 1)
    assert [e["data"]["reason"] for e in got] == ["sla_breach:nrt"], got
    # urgent has the shorter target
    urgent = post(d, "urgent")
    t = time.time()
    assert d.request("PATCH", f"/v1/conversations/{urgent}", {"priority": "urgent"},
                     token=tok).status_code == 200
    assert wait_breaches(d, urgent, tok, 1, timeout=5)
    assert time.time() - t < 1.9  # before the normal target
    # the clocks' group follows the timeline and has caught up
    deadline = time.time() + 10
    while True:
        out = ctl("lag", "-c", d.config_path, "--group", "omnihub-sla", "--json", "--samples", 1)
        [g] = json.loads(out.stdout)["groups"]
        assert g["topic"] == "timeline", g
        if sum(p["lag"] for p in g["partitions"]) == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert sum(p["lag"] for p in g["partitions"]) == 0, g


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_breach_across_kill9_recorded_once(omnihub, request, backend):
    d = omnihub(dict(SLA, **store_config(request, backend)))
    tok = d.agent_token("ann")
    before = post(d, "before")
    assert len(wait_breaches(d, before, tok, 1)) == 1
    during = post(d, "during")
    d.kill9()  # its deadline passes while the daemon is down
    time.sleep(2.2)
    d.start()
    got = wait_breaches(d, during, tok, 1)
    assert len(got) == 1, got
    time.sleep(1.5)  # room for a second one, which must not come
    assert len(breaches(d, during, tok)) == 1
    assert len(breaches(d, before, tok)) == 1
    d.kill9()
    d.start()
    time.sleep(1.5)
    assert len(breaches(d, during, tok)) == 1 and len(breaches(d, before, tok)) == 1


def sla_lag(d):
    """The omnihub-sla group's records not committed, read from the log
    (the daemon may be down)."""
    out = ctl("lag", "-c", d.config_path, "--group", "omnihub-sla", "--json", "--samples", 1)
    assert out.returncode == 0, out.stderr
    [g] = json.loads(out.stdout)["groups"]
    return sum(p["lag"] for p in g["partitions"])


def test_coalesced_save_and_position_across_kill9_and_stop(omnihub):
    """The clocks are saved every sla.save_ms, here longer than the test, and
    the group's position is committed only after a save: a kill -9 loses
    the clocks in memory and no position past them is committed, so the
    restart derives them again from the timeline: the breach of a clock
    that ran at the kill comes once (not never), the one decided before
    the kill is not recorded again. A clean stop saves and commits."""
    d = omnihub(dict(SLA, **{"sla.frt_s.normal": "10", "sla.save_ms": "600000"}))
    tok = d.agent_token("ann")
    running = post(d, "running")
    # a marker after it in the timeline: its urgent clock breaches first, so
    # once its breach is there the service has applied the running clock
    marker = post(d, "marker")
    assert d.request("PATCH", f"/v1/conversations/{marker}", {"priority": "urgent"},
                     token=tok).status_code == 200
    assert len(wait_breaches(d, marker, tok, 1)) == 1
    assert breaches(d, running, tok) == [], "the machine was too slow for this test"
    # nothing saved yet: the object has no clocks, and the group no position
    sla = d.request("GET", f"/v1/conversations/{running}", token=tok).json()["sla"]
    assert sla["first_response_due"] is None, sla
    d.kill9()
    assert sla_lag(d) > 0
    d.start()
    got = wait_breaches(d, running, tok, 1, timeout=30)
    assert [e["data"]["reason"] for e in got] == ["sla_breach:frt"], got
    time.sleep(1.5)  # room for a second one, which must not come
    assert len(breaches(d, running, tok)) == 1 and len(breaches(d, marker, tok)) == 1
    # still nothing saved; a clean stop saves the clocks and commits
    sla = d.request("GET", f"/v1/conversations/{running}", token=tok).json()["sla"]
    assert sla["first_response_due"] is None, sla
    d.stop()
    assert sla_lag(d) == 0
    d.start()
    for conv in (running, marker):
        sla = d.request("GET", f"/v1/conversations/{conv}", token=tok).json()["sla"]
        assert sla["first_response_due"] is not None, (conv, sla)


def test_a_reply_read_after_a_restart_stops_its_clock_before_a_breach(omnihub):
    """Deadlines are judged by how far the timeline has been read, not by the
    wall clock: after a kill -9 the service reads again from its last save,
    and a reply made in time that lies more than one batch (512 records)
    past its customer's message stops the clock before the deadline is
    looked at, though the deadline passed while the daemon was down."""
    d = omnihub(dict(SLA, **{"sla.frt_s.normal": "20", "sla.save_ms": "600000"}))
    tok = d.agent_token("ann")
    t0 = time.time()
    answered = post(d, "answered")
    # the customer writes on (in the conversation's partition), then the
    # agent replies
    for i in range(600):
        r = d.post_inbound(api_msg("answered", mid=f"more-{i}"))
        assert r.status_code == 202, r.text
    reply(d, answered, tok, "in-time")
    d.wait_history(answered, 602)
    assert time.time() - t0 < 16, "the machine was too slow for this test"
    late = post(d, "late")  # after it in the timeline; nobody answers it
    d.kill9()
    time.sleep(max(0.0, t0 + 21 - time.time()))  # the deadline passes while down
    d.start()
    # the later conversation's breach comes once the service has read on
    assert len(wait_breaches(d, late, tok, 1, timeout=30)) == 1
    time.sleep(1)
    assert breaches(d, answered, tok) == []


def test_a_reply_read_after_a_kafka_rejoin_stops_its_clock_before_a_breach(omnihub, tmp_path):
    """On Kafka a member that joins its group polls empty until its first
    fetch is answered. The clocks it loads are not judged by the wall clock
    before it has read as far as its partitions' ends: a reply made in time,
    read but not saved before a kill -9, stops its clock first. The broker
    answers every request 0.4 s late while the restarted daemon's services
    join their groups, so empty polls come between loading and reading."""
    from test_kafka import KafkaMock
    mock = KafkaMock(tmp_path, brokers=1, partitions=2)
    try:
        d = omnihub(dict(SLA, **{"log.backend": "kafka", "kafka.brokers": mock.bootstrap,
                                 "sla.frt_s.normal": "40", "sla.save_ms": "600000"}))
        tok = d.agent_token("ann")

        def read_up_to_here(name):
            """An urgent conversation's breach: the service read this far."""
            marker = post(d, name)
            assert d.request("PATCH", f"/v1/conversations/{marker}", {"priority": "urgent"},
                             token=tok).status_code == 200
            assert len(wait_breaches(d, marker, tok, 1, timeout=30)) == 1

        def clocks_loaded():
            return d.logs().count("conversations with clocks")

        t0 = time.time()
        answered = post(d, "answered")
        read_up_to_here("marker-1")
        d.stop()  # a clean stop saves the running clock
        d.start()
        reply(d, answered, tok, "in-time")
        d.wait_history(answered, 2)
        read_up_to_here("marker-2")  # the reply is read, its clock stopped in memory only
        assert time.time() - t0 < 35, "the machine was too slow for this test"
        d.kill9()
        time.sleep(max(0.0, t0 + 41 - time.time()))  # the deadline passes while down
        loaded = clocks_loaded()
        d.start()
        # the groups are joined a few seconds after the daemon is ready
        mock.command("rtt 1 400")
        assert clocks_loaded() == loaded, "the SLA service joined before the broker slowed"
        deadline = time.time() + 60
        while clocks_loaded() == loaded and time.time() < deadline:
            time.sleep(0.1)
        assert clocks_loaded() > loaded  # the clocks are loaded at the first empty poll
        time.sleep(1)  # a few more empty polls before the records come
        mock.command("rtt 1 0")
        read_up_to_here("marker-3")
        assert breaches(d, answered, tok) == []
    finally:
        # the daemon first: with the broker gone its consumers' close waits
        # for timeouts (22 s of teardown)
        d = locals().get("d")
        if d and d.proc:
            d.stop()
        mock.stop()
