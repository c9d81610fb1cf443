"""Records carry what consumers route on (type, conversation, seq, author
kind; on the timeline the event's time and private-note flag) beside their value: Kafka headers next to the structured-mode
content-type, columns of the local log's records table (an older log.db is
migrated and its records keep working)."""
import json
import sqlite3
import time

from conftest import ROOT  # noqa: F401  (conftest's fixtures)
from test_kafka import cluster, kcat, msg, pg  # noqa: F401  (fixtures)


def headers(rec):
    h = rec["headers"] or []
    return dict(zip(h[0::2], h[1::2])), h[:2]


def agent_reply(d, conv, text, cid, internal=False):
    body = {"text": text, "client_msg_id": cid}
    if internal:
        body["internal"] = True
    r = d.request("POST", f"/v1/conversations/{conv}/messages", body, token=d.agent_token())
    assert r.status_code == 202, r.text
    return r.json()


def test_kafka_records_carry_ce_headers(cluster):  # noqa: F811
    gw = cluster.start("gateway", "gateway")
    cluster.start("sync", "sync1")
    cluster.start("dispatch", "dispatch1")
    conv = gw.post_inbound(msg("h1", "hc")).json()["conversation_id"]
    gw.wait_history(conv, 1)
    agent_reply(gw, conv, "hello", "hr1")
    cluster.stub.wait_requests(1)  # dispatch routed the reply on its headers
    gw.wait_history(conv, 3, timeout=30)
    agent_reply(gw, conv, "a private note", "hn1", internal=True)
    events = gw.wait_history(conv, 4, timeout=30)
    kinds = {"omnihub.message.inbound": "customer", "omnihub.message.outbound": "agent",
             "omnihub.message.status": "system"}
    for topic in ("omnihub.events", "omnihub.timeline"):
        recs = kcat(cluster.mock.bootstrap, topic)
        assert len(recs) == 4, (topic, recs)
        for rec in recs:
            ev = json.loads(rec["payload"])
            h, first = headers(rec)
            # structured mode stays: the contract's header, first
            assert first == ["content-type", "application/cloudevents+json"]
            assert h["ce_type"] == ev["type"]
            assert h["ce_subject"] == ev["subject"] == rec["key"]
            assert h["ce_authorkind"] == kinds[ev["type"]]
            note = ev["data"].get("internal") is True
            if topic == "omnihub.timeline":
                assert int(h["ce_seq"]) == ev["seq"]
                assert h["ce_time"] == ev["time"]
                assert h.get("ce_internal") == ("true" if note else None)
            else:
                assert "ce_seq" not in h and "ce_time" not in h and "ce_internal" not in h
    assert [e["type"] for e in events] == list(kinds) + ["omnihub.message.outbound"]
    assert events[-1]["data"]["internal"] is True
    time.sleep(0.5)
    assert len(cluster.stub.requests) == 1  # the note was not dispatched


def rows(d):
    """Every record of the local log (one table per topic, records_<id>)."""
    db = sqlite3.connect(str(d.data_dir / "log.db"))
    try:
        out = []
        for tid, name in db.execute("SELECT id, name FROM topics ORDER BY name").fetchall():
            out += [(name,) + r for r in db.execute(
                f"SELECT type, subject, seq, author, value, time, internal"
                f" FROM records_{int(tid)} ORDER BY off").fetchall()]
        return out
    finally:
        db.close()


def make_version0(path):
    """Rewrites the log.db at PATH as a version-0 file: one table
    records(topic, off, ...) without the metadata columns."""
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE records(topic TEXT NOT NULL, off INTEGER NOT NULL,"
               " ts_ms INTEGER NOT NULL, key TEXT, value BLOB NOT NULL, PRIMARY KEY(topic, off))")
    for tid, name in db.execute("SELECT id, name FROM topics").fetchall():
        db.execute(f"INSERT INTO records SELECT ?, off, ts_ms, key, value"
                   f" FROM records_{int(tid)}", (name,))
        db.execute(f"DROP TABLE records_{int(tid)}")
    db.execute("DROP TABLE topics")
    db.execute("PRAGMA user_version=0")
    db.commit()
    db.close()


def test_local_log_columns_and_migration(omnihub, http_stub):
    stub = http_stub()
    d = omnihub({"api.outbound_url": stub.url + "/hook"})
    conv = d.post_inbound(msg("l1", "lc")).json()["conversation_id"]
    d.wait_history(conv, 1)
    d.stop()
    # an older log.db: no metadata columns, version 0
    make_version0(d.data_dir / "log.db")
    d.start()
    agent_reply(d, conv, "after the upgrade", "lr1")
    stub.wait_requests(1)
    events = d.wait_history(conv, 3)
    assert [e["seq"] for e in events] == [1, 2, 3]
    got = rows(d)
    old = [r for r in got if r[1] is None]
    assert len(old) == 2  # the inbound message on both topics, from before
    new = [r for r in got if r[1] is not None]
    assert {(r[0], r[1], r[4]) for r in new} == {
        ("events", "omnihub.message.outbound", "agent"),
        ("events", "omnihub.message.status", "system"),
        ("timeline", "omnihub.message.outbound", "agent"),
        ("timeline", "omnihub.message.status", "system")}
    assert all(r[2] == conv for r in new)
    assert sorted(r[3] for r in new if r[0] == "timeline") == [2, 3]
    assert all(r[3] is None for r in new if r[0] == "events")
    # the timeline also carries the event's time and private-note flag
    assert all(r[6] == json.loads(r[5])["time"] and r[7] is None
               for r in new if r[0] == "timeline")
    assert all(r[6] is None and r[7] is None for r in new if r[0] == "events")
    db = sqlite3.connect(str(d.data_dir / "log.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    time.sleep(0.3)
    assert len(stub.requests) == 1
