"""The desk's conversation state (CONTRACT part 2, "Conversation state"): PATCH and
claim go as commands through the events topic to sync, the one sequencer, which
sequences each change as an omnihub.conversation.updated and records the outcome
the gateway answers from. Status rules, snooze wake, concurrency, crashes, resume;
SQLite, PostgreSQL and Kafka."""
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import PgServer  # noqa: E402
from test_kafka import cluster  # noqa: E402,F401  (fixture)

UPDATED = "omnihub.conversation.updated"


def msg(mid, contact="u1", text="hello"):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


_tokens = {}


def agent(d, sub="agent-1"):
    """An agent token, made once per daemon and sub (omnihubctl is slow under ASan)."""
    key = (id(d), sub)
    if key not in _tokens:
        _tokens[key] = d.agent_token(sub)
    return _tokens[key]


def new_conv(d, contact="u1", mid=None):
    r = d.post_inbound(msg(mid or f"m-{contact}-{time.time_ns()}", contact))
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1, token=agent(d))
    return conv


def get(d, conv, token=None):
    r = d.request("GET", f"/v1/conversations/{conv}", token=token or agent(d))
    assert r.status_code == 200, r.text
    return r.json()


def patch(d, conv, body, token=None, if_match=None):
    h = {"If-Match": str(if_match)} if if_match is not None else None
    return d.request("PATCH", f"/v1/conversations/{conv}", body, headers=h,
                     token=token or agent(d))


def claim(d, conv, token):
    return d.request("POST", f"/v1/conversations/{conv}/claim", token=token)


def updates(d, conv):
    return [e for e in d.history(conv, token=agent(d)) if e["type"] == UPDATED]


def in_future(seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def state_of(c):
    return {k: c[k] for k in ("status", "assignee", "team", "priority", "labels",
                              "snoozed_until", "episode")}


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


_dbs = iter(range(1, 1000))


def pg_config(pg):
    return {"store.backend": "postgres",
            "store.postgres.dsn": pg.createdb("ohdesk%d" % next(_dbs))}


def backend(request, pg_factory):
    return {} if request.param == "sqlite" else pg_config(pg_factory())


# ---- PATCH and claim ----

def check_patch_each_field(d):
    conv = new_conv(d)
    ag = agent(d)
    for body, want in [
        ({"priority": "urgent"}, {"priority": "urgent"}),
        ({"team": "billing"}, {"team": "billing"}),
        ({"assignee": "agent-7"}, {"assignee": "agent-7"}),
        ({"labels": ["vip", "refund", "vip"]}, {"labels": ["refund", "vip"]}),
        ({"status": "pending"}, {"status": "pending"}),
        ({"snoozed_until": in_future(3600)}, {"status": "snoozed"}),
        ({"status": "resolved"}, {"status": "resolved", "snoozed_until": None}),
        ({"status": "open"}, {"status": "open", "episode": 2}),
        ({"assignee": None, "team": None}, {"assignee": None, "team": None}),
    ]:
        r = patch(d, conv, body, ag)
        assert r.status_code == 200, (body, r.text)
        for k, v in want.items():
            assert r.json()[k] == v, (body, k, r.json())
        got = get(d, conv, ag)
        assert state_of(got) == state_of(r.json())
    ups = updates(d, conv)
    assert len(ups) == 9
    last = ups[-1]["data"]
    assert last["author"] == {"kind": "agent", "id": "agent-1"} and last["reason"] == "patch"
    assert last["state"] == {**state_of(get(d, conv)), "contact_id": "u1"}
    # the same value again changes nothing and sequences nothing
    head = get(d, conv)["head"]
    assert patch(d, conv, {"priority": "urgent"}).status_code == 200
    assert get(d, conv)["head"] == head


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_patch_each_field(omnihub, pg, store):
    d = omnihub({} if store == "sqlite" else pg_config(pg))
    check_patch_each_field(d)


def test_if_match_and_bad_input_change_nothing(omnihub):
    d = omnihub()
    conv = new_conv(d)
    ag = agent(d)
    head = get(d, conv)["head"]
    r = patch(d, conv, {"priority": "high"}, ag, if_match=head)
    assert r.status_code == 200, r.text
    assert r.json()["head"] == head + 1
    before = get(d, conv)
    r = patch(d, conv, {"priority": "low"}, ag, if_match=head)  # stale
    assert r.status_code == 412, r.text
    assert r.json()["error"]["code"] == "precondition_failed"
    assert r.json()["error"]["head"] == head + 1
    bad = [({"priority": "whenever"}, None), ({"colour": "red"}, None), ({}, None),
           ({"status": "snoozed"}, None), ({"snoozed_until": "2000-01-01T00:00:00Z"}, None),
           ({"labels": ["x"] * 33}, None), ({"labels": ["a" * 65]}, None),
           ({"assignee": 7}, None), ({"priority": "low"}, "W/\"x\""),
           ({"priority": "low"}, "1, 2")]
    counted = d.metric("omnihub_desk_commands_total", {"op": "patch", "outcome": "400"})
    for body, im in bad:
        h = {"If-Match": im} if im else None
        r = d.request("PATCH", f"/v1/conversations/{conv}", body, headers=h, token=ag)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_request"
    r = d.request("PATCH", f"/v1/conversations/{conv}", b"{not json", token=ag)
    assert r.status_code == 400
    assert d.metric("omnihub_desk_commands_total",
                    {"op": "patch", "outcome": "400"}) == counted + len(bad) + 1
    assert d.metric("omnihub_desk_commands_total", {"op": "patch", "outcome": "412"}) == 1
    assert get(d, conv) == before
    # customers never touch state; unknown conversations are 404
    cust = d.customer_token("u1")
    assert patch(d, conv, {"priority": "low"}, cust).status_code == 403
    assert claim(d, conv, cust).status_code == 403
    assert patch(d, "c_nope", {"priority": "low"}, ag).status_code == 404
    assert claim(d, "c_nope", ag).status_code == 404
    assert get(d, conv) == before


def test_claim_conflict_names_holder(omnihub):
    d = omnihub()
    conv = new_conv(d)
    a, b = agent(d, "alice"), agent(d, "bob")
    r = claim(d, conv, a)
    assert r.status_code == 200 and r.json()["assignee"] == "alice"
    assert claim(d, conv, a).status_code == 200  # already hers
    r = claim(d, conv, b)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict" and r.json()["error"]["assignee"] == "alice"
    ups = updates(d, conv)
    assert len(ups) == 1 and ups[0]["data"]["changes"] == {"assignee": "alice"}
    assert ups[0]["data"]["reason"] == "claim"
    assert d.metric("omnihub_desk_commands_total", {"op": "claim", "outcome": "409"}) == 1


def claim_storm(d, nconv=100, nagents=8):
    convs = []
    for i in range(nconv):
        r = d.post_inbound(msg(f"storm-{i}", f"storm-{i}"))
        assert r.status_code == 202, r.text
        convs.append(r.json()["conversation_id"])
    for c in convs:
        d.wait_history(c, 1, token=agent(d))
    t0 = time.time()
    tokens = [agent(d, f"agent-{a}") for a in range(nagents)]
    jobs = [(c, a) for c in convs for a in range(nagents)]

    def one(job):
        c, a = job
        r = requests.post(f"{d.url}/v1/conversations/{c}/claim",
                          headers={"Authorization": "Bearer " + tokens[a]}, timeout=60)
        return c, a, r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        results = list(ex.map(one, jobs))
    print(f"{len(jobs)} claims in {time.time() - t0:.1f} s")
    for c in convs:
        mine = [r for r in results if r[0] == c]
        won = [r for r in mine if r[2] == 200]
        assert len(won) == 1, mine
        holder = f"agent-{won[0][1]}"
        assert won[0][3]["assignee"] == holder
        for _, _, status, body in mine:
            if status != 200:
                assert status == 409, body
                assert body["error"]["assignee"] == holder
        ups = updates(d, c)
        assert len(ups) == 1 and ups[0]["data"]["changes"] == {"assignee": holder}
        assert get(d, c)["assignee"] == holder


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_concurrent_claims_one_winner_each(omnihub, pg, store):
    d = omnihub({} if store == "sqlite" else pg_config(pg))
    claim_storm(d)


# ---- status rules ----

def test_inbound_reopens_with_new_episode(omnihub):
    d = omnihub()
    conv = new_conv(d, mid="first")
    ag = agent(d)
    assert patch(d, conv, {"status": "resolved"}, ag).status_code == 200
    assert get(d, conv)["episode"] == 1
    r = d.post_inbound(msg("second"))
    assert r.status_code == 202
    evs = d.wait_history(conv, 4, token=ag)
    assert [e["type"] for e in evs][-2:] == ["omnihub.message.inbound", UPDATED]
    up = evs[-1]["data"]
    assert up["changes"] == {"status": "open", "episode": 2}
    assert up["reason"] == "inbound" and up["author"] == {"kind": "system", "id": "sync"}
    c = get(d, conv)
    assert c["status"] == "open" and c["episode"] == 2
    # the provider retrying the same message re-opens nothing
    assert patch(d, conv, {"status": "pending"}, ag).status_code == 200
    head = get(d, conv)["head"]
    assert d.post_inbound(msg("second")).status_code == 202
    time.sleep(1)
    assert get(d, conv)["head"] == head and get(d, conv)["status"] == "pending"
    # pending and snoozed re-open in the same episode
    assert d.post_inbound(msg("third")).status_code == 202
    d.wait_history(conv, head + 2, token=ag)
    c = get(d, conv)
    assert c["status"] == "open" and c["episode"] == 2


def wait_status(d, conv, status, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = get(d, conv)
        if c["status"] == status:
            return c
        time.sleep(0.1)
    raise AssertionError(f"{conv} is {get(d, conv)['status']}, not {status}")


def test_snooze_wakes_by_itself_and_across_restart(omnihub):
    d = omnihub()
    ag = agent(d)
    a, b = new_conv(d, "snooze-a"), new_conv(d, "snooze-b")
    r = patch(d, a, {"snoozed_until": in_future(2)}, ag)
    assert r.status_code == 200 and r.json()["status"] == "snoozed", r.text
    assert patch(d, b, {"snoozed_until": in_future(4)}, ag).status_code == 200
    d.stop()  # b's snooze ends while the daemon is down
    time.sleep(1)
    d.start()
    wait_status(d, a, "open")
    assert get(d, b)["status"] == "snoozed"
    d.stop()
    time.sleep(3.5)
    d.start()
    c = wait_status(d, b, "open")
    assert c["snoozed_until"] is None
    for conv in (a, b):
        ups = updates(d, conv)
        assert [u["data"]["reason"] for u in ups] == ["patch", "snooze_expired"], ups
        assert ups[-1]["data"]["author"] == {"kind": "system", "id": "sync"}


# ---- crashes and resumption ----

def test_kill9_during_changes_keeps_every_answered_change_once(omnihub):
    d = omnihub()
    convs = [new_conv(d, f"crash-{i}") for i in range(10)]
    tokens = [agent(d, f"agent-{a}") for a in range(4)]
    calls = []  # (conv, kind, value): 10 claims, then 19 PATCHes of unique labels per conv
    for i, c in enumerate(convs):
        calls.append((c, "claim", i % 4))
        calls += [(c, "patch", f"l{i}-{k}") for k in range(19)]
    answered = []
    lock = threading.Lock()

    def one(call):
        c, kind, v = call
        try:
            if kind == "claim":
                r = requests.post(f"{d.url}/v1/conversations/{c}/claim", timeout=30,
                                  headers={"Authorization": "Bearer " + tokens[v]})
            else:
                r = requests.patch(f"{d.url}/v1/conversations/{c}", json={"labels": [v]},
                                   timeout=30, headers={"Authorization": "Bearer " + tokens[0]})
        except requests.RequestException:
            return
        with lock:
            answered.append((call, r.status_code))

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, c) for c in calls]
        deadline = time.time() + 30
        while time.time() < deadline:
            with lock:
                if len(answered) >= 60:
                    break
            time.sleep(0.01)
        d.kill9()
        for f in futs:
            f.result()
    d.start()
    ok = [call for call, status in answered if status == 200]
    assert len(ok) >= 60, answered
    assert len(answered) < len(calls)  # the crash came in the middle
    for c in convs:
        events = d.history(c, token=agent(d))
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        ups = [e["data"]["changes"] for e in events if e["type"] == UPDATED]
        for call in ok:
            if call[0] != c:
                continue
            if call[1] == "claim":
                assert sum(1 for u in ups if u.get("assignee") == f"agent-{call[2]}") == 1, ups
            else:
                assert sum(1 for u in ups if u.get("labels") == [call[2]]) == 1, (call, ups)


def apply_history(state, events):
    for e in events:
        if e["type"] == UPDATED:
            state = {k: e["data"]["state"][k] for k in state}
    return state


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_resume_after_1000_changes_equals_fresh_load(omnihub, pg, store):
    d = omnihub({} if store == "sqlite" else pg_config(pg))
    convs = [new_conv(d, f"resume-{i}") for i in range(10)]
    ag = agent(d)
    prios = ["urgent", "high", "normal", "low"]
    seen = {c: get(d, c, ag) for c in convs}  # what a client loaded first

    def change(job):
        c, k = job
        # every change differs from the field's previous value
        body = [{"priority": prios[k // 4 % 4]}, {"labels": [f"k{k}"]}, {"team": f"t{k}"},
                {"status": "pending" if k // 4 % 2 == 0 else "open"}][k % 4]
        r = requests.patch(f"{d.url}/v1/conversations/{c}", json=body, timeout=30,
                           headers={"Authorization": "Bearer " + ag})
        assert r.status_code == 200, r.text

    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        list(ex.map(change, [(c, k) for k in range(100) for c in convs]))
    total = 0
    for c in convs:
        first = seen[c]
        events = d.history(c, token=ag, after=first["head"])
        total += sum(1 for e in events if e["type"] == UPDATED)
        resumed = apply_history(state_of(first), events)
        fresh = get(d, c, ag)
        assert resumed == state_of(fresh)
        assert events[-1]["seq"] == fresh["head"]
    assert total == 1000


# ---- Kafka: sync in another process than the gateway ----

def test_kafka_split_roles_answer_and_timeline(cluster):
    from test_kafka import wait_assigned
    gw = cluster.start("gateway", "gateway")
    s1 = cluster.start("sync", "sync1")
    wait_assigned([s1])
    conv = new_conv(gw, "kafka-1")
    a, b = agent(gw, "alice"), agent(gw, "bob")
    # the gateway hears of outcomes only from the store (its poll)
    r = claim(gw, conv, a)
    assert r.status_code == 200 and r.json()["assignee"] == "alice", r.text
    r = claim(gw, conv, b)
    assert r.status_code == 409 and r.json()["error"]["assignee"] == "alice"
    r = patch(gw, conv, {"status": "resolved", "labels": ["k"]}, a, if_match=2)
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
    assert patch(gw, conv, {"priority": "low"}, a, if_match=2).status_code == 412
    assert gw.post_inbound(msg("kafka-2", "kafka-1")).status_code == 202
    evs = gw.wait_history(conv, 5, token=a)
    assert [e["type"] for e in evs] == ["omnihub.message.inbound", UPDATED, UPDATED,
                                        "omnihub.message.inbound", UPDATED]
    assert evs[-1]["data"]["state"]["episode"] == 2 and get(gw, conv, a)["status"] == "open"
    # Kafka consumers see the changes on the timeline, never the commands
    out = subprocess.run(["kcat", "-b", cluster.mock.bootstrap, "-C", "-t", "omnihub.timeline",
                          "-e", "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=60)
    timeline = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    mine = [e for e in timeline if e["subject"] == conv]
    assert sorted({e["seq"] for e in mine}) == [1, 2, 3, 4, 5]
    assert sum(1 for e in mine if e["type"] == UPDATED) == 3
    assert not any(e["type"] == "omnihub.conversation.command" for e in timeline)


def test_kafka_sync_down_503_then_applied_and_clean_stop_while_waiting(cluster):
    from test_kafka import wait_assigned
    gw = cluster.start("gateway", "gateway")
    s1 = cluster.start("sync", "sync1")
    wait_assigned([s1])
    conv = new_conv(gw, "kafka-down")
    ag = agent(gw)
    s1.stop()
    t0 = time.time()
    r = patch(gw, conv, {"priority": "high"}, ag)
    assert r.status_code == 503, r.text
    assert 9 <= time.time() - t0 < 60
    # a request still waiting when the gateway stops is answered (or dropped) and the
    # gateway exits cleanly (ASan: nothing leaked)
    waiting = concurrent.futures.ThreadPoolExecutor(1).submit(
        lambda: requests.patch(f"{gw.url}/v1/conversations/{conv}", json={"priority": "low"},
                               headers={"Authorization": "Bearer " + ag}, timeout=30))
    time.sleep(1.5)
    gw.stop()
    try:
        assert waiting.result().status_code == 503
    except requests.RequestException:
        pass
    # both commands are durable: sync decides them when it is back, in log order
    s1.start()
    gw.start()
    deadline = time.time() + 30
    while time.time() < deadline and get(gw, conv, ag)["priority"] != "low":
        time.sleep(0.2)
    ups = updates(gw, conv)
    assert [u["data"]["changes"] for u in ups] == [{"priority": "high"}, {"priority": "low"}]
