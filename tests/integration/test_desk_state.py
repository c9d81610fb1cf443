"""The desk's conversation state (CONTRACT part 2, "Conversation state"): PATCH and
claim go as commands through the events topic to sync, the one sequencer, which
sequences each change as an omnihub.conversation.updated and records the outcome
the gateway answers from. Status rules, snooze wake, concurrency, crashes, resume;
SQLite, PostgreSQL and Kafka."""
import concurrent.futures
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

UPDATED = "omnihub.conversation.updated"


def msg(mid, contact="u1", text="hello"):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact, "name": "Ann"},
            "message_id": mid, "text": text, "sent_at": "2026-12-03T10:00:00Z"}


def new_conv(d, contact="u1", mid=None):
    r = d.post_inbound(msg(mid or f"m-{contact}-{time.time_ns()}", contact))
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    d.wait_history(conv, 1)
    return conv


def get(d, conv, token=None):
    r = d.request("GET", f"/v1/conversations/{conv}", token=token or d.agent_token())
    assert r.status_code == 200, r.text
    return r.json()


def patch(d, conv, body, token=None, if_match=None):
    h = {"If-Match": str(if_match)} if if_match is not None else None
    return d.request("PATCH", f"/v1/conversations/{conv}", body, headers=h,
                     token=token or d.agent_token())


def claim(d, conv, token):
    return d.request("POST", f"/v1/conversations/{conv}/claim", token=token)


def updates(d, conv):
    return [e for e in d.history(conv) if e["type"] == UPDATED]


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
    agent = d.agent_token()
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
        r = patch(d, conv, body, agent)
        assert r.status_code == 200, (body, r.text)
        for k, v in want.items():
            assert r.json()[k] == v, (body, k, r.json())
        got = get(d, conv, agent)
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
    agent = d.agent_token()
    head = get(d, conv)["head"]
    r = patch(d, conv, {"priority": "high"}, agent, if_match=head)
    assert r.status_code == 200, r.text
    assert r.json()["head"] == head + 1
    before = get(d, conv)
    r = patch(d, conv, {"priority": "low"}, agent, if_match=head)  # stale
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
        r = d.request("PATCH", f"/v1/conversations/{conv}", body, headers=h, token=agent)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_request"
    r = d.request("PATCH", f"/v1/conversations/{conv}", b"{not json", token=agent)
    assert r.status_code == 400
    assert d.metric("omnihub_desk_commands_total",
                    {"op": "patch", "outcome": "400"}) == counted + len(bad) + 1
    assert d.metric("omnihub_desk_commands_total", {"op": "patch", "outcome": "412"}) == 1
    assert get(d, conv) == before
    # customers never touch state; unknown conversations are 404
    cust = d.customer_token("u1")
    assert patch(d, conv, {"priority": "low"}, cust).status_code == 403
    assert claim(d, conv, cust).status_code == 403
    assert patch(d, "c_nope", {"priority": "low"}, agent).status_code == 404
    assert claim(d, "c_nope", agent).status_code == 404
    assert get(d, conv) == before


def test_claim_conflict_names_holder(omnihub):
    d = omnihub()
    conv = new_conv(d)
    a, b = d.agent_token("alice"), d.agent_token("bob")
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
