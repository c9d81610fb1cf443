"""Operator mistakes and damaged bytes (issue 14, items 4 and 8): a lost, replaced or
restored log must never make acknowledged messages vanish, and a damaged stored event
must never be served as if it were valid. Both logs (local, Kafka's mock cluster) and
both stores (SQLite, PostgreSQL)."""
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from test_hostile import frame, ws_open, ws_read

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_server import PgServer  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


def msg(mid, contact="durable", text=None):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact},
            "message_id": mid, "text": text or f"text {mid}"}


def post_all(d, prefix, n, contact="durable"):
    conv = None
    for i in range(n):
        r = d.post_inbound(msg(f"{prefix}{i}", contact))
        assert r.status_code == 202, r.text
        conv = r.json()["conversation_id"]
    return conv


def refused_start(d, *words):
    """D does not start; its last log lines say why (each of WORDS)."""
    with pytest.raises(RuntimeError) as e:
        d.start(timeout=60)
    assert d.proc.returncode != 0
    d.proc = None
    d.log.close()
    for w in words:
        assert w in str(e.value), str(e.value)[-1500:]


def adopt(d):
    """Starts D once with sync.adopt_log, then without it (as an operator would)."""
    d.env["OMNIHUB_SYNC_ADOPT_LOG"] = "true"
    d.start()
    d.env.pop("OMNIHUB_SYNC_ADOPT_LOG")


def remove_log(d):
    for f in d.data_dir.glob("log.db*"):
        f.unlink()


STORES = ["sqlite", "postgres"]


def store_config(kind, pg):
    if kind == "sqlite":
        return {}
    return {"store.backend": "postgres",
            "store.postgres.dsn": pg.createdb("dur" + uuid.uuid4().hex[:10])}


@pytest.fixture(params=STORES)
def store(request):
    if request.param == "sqlite":
        return {}
    server = request.getfixturevalue("pg")
    return store_config("postgres", server)


# ---- item 4: the log the store consumed -------------------------------------------------

def test_lost_log_db_is_refused_not_silently_skipped(omnihub, store):
    d = omnihub(store)
    conv = post_all(d, "a", 50)
    assert len(d.wait_history(conv, 50)) == 50
    d.stop()
    remove_log(d)  # store.db (or the PostgreSQL database) kept
    refused_start(d, "not", "the store consumed", "sync.adopt_log")
    # the operator's way out: adopt the new log once, from its beginning
    adopt(d)
    post_all(d, "b", 50)
    events = d.wait_history(conv, 100)
    assert [e["seq"] for e in events] == list(range(1, 101))
    assert {e["data"]["message_id"] for e in events} == \
        {f"a{i}" for i in range(50)} | {f"b{i}" for i in range(50)}
    d.restart()  # the store now follows the new log: a plain restart works
    assert d.post_inbound(msg("c0")).status_code == 202
    assert len(d.wait_history(conv, 101)) == 101


def test_log_restored_from_an_older_backup_is_refused(omnihub, store):
    d = omnihub(store)
    conv = post_all(d, "a", 20)
    d.wait_history(conv, 20)
    d.stop()
    backup = d.tmp / "log-backup"
    backup.mkdir()
    for f in d.data_dir.glob("log.db*"):
        shutil.copy(f, backup / f.name)
    d.start()
    post_all(d, "b", 30)
    d.wait_history(conv, 50)
    d.stop()
    remove_log(d)
    for f in backup.iterdir():
        shutil.copy(f, d.data_dir / f.name)
    refused_start(d, "ends at offset 20", "consumed it up to offset 50", "sync.adopt_log")
    adopt(d)  # the same log behind: read on from its end
    post_all(d, "c", 10)
    events = d.wait_history(conv, 60)
    assert [e["seq"] for e in events] == list(range(1, 61))
    assert events[-1]["data"]["message_id"] == "c9"


def test_kafka_topic_recreated_under_the_same_store(omnihub, store):
    # the in-process mock cluster is new at every start: the topics are recreated
    cfg = {"log.backend": "kafka", "kafka.mock_brokers": "1", "kafka.partitions": "2"}
    cfg.update(store)
    d = omnihub(cfg)
    convs = {post_all(d, f"{c}-", 10, contact=c) for c in ("k1", "k2", "k3")}
    for conv in convs:
        d.wait_history(conv, 10)
    d.stop()
    refused_start(d, "sync.adopt_log")
    adopt(d)
    conv = post_all(d, "after-", 5, contact="k1")
    assert conv in convs
    events = d.wait_history(conv, 15)
    assert [e["seq"] for e in events] == list(range(1, 16))


def test_another_installations_longer_log_is_refused(omnihub):
    # its offsets go past the store's position: only the log's identity tells them apart
    d = omnihub()
    conv = post_all(d, "a", 10)
    d.wait_history(conv, 10)
    d.stop()
    other = omnihub(name="other")
    post_all(other, "o", 30, contact="elsewhere")
    other.stop()
    remove_log(d)
    for f in other.data_dir.glob("log.db*"):
        shutil.copy(f, d.data_dir / f.name)
    refused_start(d, "not", "that the store consumed", "sync.adopt_log")
    adopt(d)  # another log: consumed from its beginning, its events stored once
    assert len(d.wait_history(conv, 10)) == 10
    elsewhere = d.post_inbound(msg("o0", "elsewhere")).json()["conversation_id"]
    assert [e["seq"] for e in d.wait_history(elsewhere, 30)] == list(range(1, 31))


# ---- item 8: damaged stored bytes ---------------------------------------------------------

def damage(d, store, conv, old, new):
    """Replaces OLD by NEW in the stored texts of CONV, the daemon stopped."""
    if "store.postgres.dsn" in store:
        sql = ("UPDATE history SET json = replace(json, :'old', :'new') "
               "WHERE conversation_id = :'conv' AND strpos(json, :'old') > 0")
        out = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-v", f"old={old}", "-v",
                              f"new={new}", "-v", f"conv={conv}", store["store.postgres.dsn"]],
                             input=sql, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "UPDATE 1" in out.stdout, out.stdout + out.stderr
        return
    db = sqlite3.connect(d.data_dir / "store.db")
    n = db.execute("UPDATE history SET json = replace(json, ?1, ?2) "
                   "WHERE conversation_id = ?3 AND instr(json, ?1) > 0", (old, new, conv)).rowcount
    db.commit()
    db.close()
    assert n == 1


def clear_crc(d, store):
    """Makes every stored event look like one stored before checksums existed."""
    if "store.postgres.dsn" in store:
        subprocess.run(["psql", "-c", "UPDATE history SET crc = NULL",
                        store["store.postgres.dsn"]], check=True, capture_output=True)
        return
    db = sqlite3.connect(d.data_dir / "store.db")
    db.execute("UPDATE history SET crc = NULL")
    db.commit()
    db.close()


def ws_replay(d, conv):
    """Subscribes from the start; the frames until an error or the replay's end."""
    s = ws_open(d, d.agent_token())
    s.sendall(frame(1, json.dumps({"type": "subscribe", "conversation": conv,
                                   "after": 0}).encode()))
    got = []
    while True:
        f = ws_read(s, timeout=3)
        if f is None:
            break
        m = json.loads(f[1])
        got.append(m)
        if m["type"] == "error":
            break
    s.close()
    return got


def test_damaged_events_are_reported_and_never_served(omnihub, store):
    d = omnihub(store)
    money = d.post_inbound(msg("m1", "payer", "hello")).json()["conversation_id"]
    d.post_inbound(msg("m2", "payer", "your refund: 100 EUR"))
    d.post_inbound(msg("m3", "payer", "bye"))
    quote = d.post_inbound(msg("q1", "quoter", "a quote")).json()["conversation_id"]
    intact = d.post_inbound(msg("i1", "intact", "untouched")).json()["conversation_id"]
    d.wait_history(money, 3)
    d.wait_history(quote, 1)
    d.wait_history(intact, 1)
    d.stop()
    damage(d, store, money, "100 EUR", "000 EUR")  # one flipped bit: "1" is 0x31, "0" 0x30
    damage(d, store, quote, '"text":', "'text\":")  # one flipped quote: invalid JSON
    d.env["OMNIHUB_STORE_VERIFY_ON_START"] = "true"
    d.start()
    assert "store check: 2 of 5 events damaged" in d.logs()
    tok = d.agent_token()
    for conv, seq in ((money, 2), (quote, 1)):
        r = d.request("GET", f"/v1/conversations/{conv}/events", token=tok)
        assert r.status_code == 503, r.text[:300]
        assert "000 EUR" not in r.text and "text\":" not in r.text
        assert r.json()["error"]["message"] == \
            "store: stored data damaged (checksum mismatch)"
        assert f"conversation {conv} seq {seq}: stored event damaged" in d.logs()
        frames = ws_replay(d, conv)
        assert frames and frames[-1]["type"] == "error", frames
        assert all("000 EUR" not in json.dumps(f) for f in frames)
    # what comes before the damaged event, and other conversations, are served
    r = d.request("GET", f"/v1/conversations/{money}/events?limit=1", token=tok)
    assert r.status_code == 200 and r.json()["events"][0]["data"]["text"] == "hello"
    assert d.history(intact)[0]["data"]["text"] == "untouched"
    assert d.metric("omnihub_store_damaged_events_total") >= 4


def test_events_stored_without_checksum_are_served(omnihub, store):
    # stores written before checksums existed: NULL is unverified, never an error
    d = omnihub(store)
    conv = post_all(d, "a", 5)
    d.wait_history(conv, 5)
    d.stop()
    clear_crc(d, store)
    d.env["OMNIHUB_STORE_VERIFY_ON_START"] = "true"
    d.start()
    assert "store check: 5 events, none damaged (5 stored without checksum)" in d.logs()
    assert [e["seq"] for e in d.history(conv)] == [1, 2, 3, 4, 5]
    post_all(d, "b", 1)  # new events get a checksum again
    assert len(d.wait_history(conv, 6)) == 6
