"""omnihubd on the PostgreSQL store: a throwaway PostgreSQL 15 (tests/pg_server.py)
on loopback, history and lists through the HTTP API, a server restart under load,
and two shards."""
import concurrent.futures
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_server import PgServer  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


_dbs = iter(range(1, 1000))


def newdb(pg):
    return pg.createdb("ohit%d" % next(_dbs))


def psql_count(dsn, sql):
    out = subprocess.run(["psql", "-Atc", sql, dsn], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def msg(mid, contact="u1"):
    return {"channel": "api:shop", "account": "acme",
            "contact": {"id": contact, "name": "Ann"}, "message_id": mid,
            "text": f"text {mid}", "sent_at": "2026-01-02T03:04:05Z"}


def post_until_accepted(d, payload, timeout=30):
    deadline = time.time() + timeout
    while True:
        r = d.post_inbound(payload)
        if r.status_code == 202 or time.time() > deadline:
            return r
        time.sleep(0.1)


def test_history_and_list_on_postgres(omnihub, pg):
    dsn = newdb(pg)
    d = omnihub({"store.backend": "postgres", "store.postgres.dsn": dsn})
    ready = d.request("GET", "/readyz").json()
    assert ready["store"]["backend"] == "postgres"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: d.post_inbound(msg(f"m{i}")), range(60)))
    assert all(r.status_code == 202 for r in results)
    conv = results[0].json()["conversation_id"]
    events = d.wait_history(conv, 60)
    assert [e["seq"] for e in events] == list(range(1, 61))
    assert all(e["epoch"] == ready["epoch"] for e in events)
    # a provider retry is acknowledged and not stored twice
    assert d.post_inbound(msg("m7")).status_code == 202
    time.sleep(0.5)
    assert len(d.history(conv)) == 60
    convs = d.conversations()
    assert [c["conversation_id"] for c in convs] == [conv]
    assert convs[0]["head"] == 60
    # the same data and epoch after a daemon restart
    d.restart()
    assert d.request("GET", "/readyz").json()["epoch"] == ready["epoch"]
    assert [e["seq"] for e in d.history(conv)] == list(range(1, 61))
    assert psql_count(dsn, "SELECT count(*) FROM history") == 60


def test_postgres_restart_loses_nothing(omnihub, pg):
    dsn = newdb(pg)
    d = omnihub({"store.backend": "postgres", "store.postgres.dsn": dsn})
    for i in range(20):
        assert d.post_inbound(msg(f"a{i}", contact="rs")).status_code == 202
    conv = d.post_inbound(msg("a0", contact="rs")).json()["conversation_id"]
    d.wait_history(conv, 20)
    pg.stop_only()
    try:
        deadline = time.time() + 10
        while d.request("GET", "/readyz").status_code != 503 and time.time() < deadline:
            time.sleep(0.1)
        assert d.request("GET", "/readyz").status_code == 503
        # the log still takes messages; they are materialized once the store is back
        for i in range(20, 30):
            assert d.post_inbound(msg(f"a{i}", contact="rs")).status_code == 202
    finally:
        pg.start_only()
    deadline = time.time() + 15
    while d.request("GET", "/readyz").status_code != 200 and time.time() < deadline:
        time.sleep(0.1)
    assert d.request("GET", "/readyz").status_code == 200
    pg.restart()  # a fast restart while messages keep coming
    for i in range(30, 40):
        assert post_until_accepted(d, msg(f"a{i}", contact="rs")).status_code == 202
    # reads right after the restart may get the documented 503 (the server
    # still recovering); the history is read once the store answers again
    deadline = time.time() + 30
    while d.request("GET", "/readyz").status_code != 200 and time.time() < deadline:
        time.sleep(0.1)
    events = d.wait_history(conv, 40, timeout=30)
    assert [e["seq"] for e in events] == list(range(1, 41))
    assert sorted(e["data"]["message_id"] for e in events) == sorted(f"a{i}" for i in range(40))


def test_two_shards(omnihub, pg):
    s0, s1 = newdb(pg), newdb(pg)
    d = omnihub({"store.backend": "postgres", "store.postgres.shards": [s0, s1]})
    convs = {}
    for c in range(16):
        for i in range(3):
            r = d.post_inbound(msg(f"s{c}-{i}", contact=f"contact{c}"))
            assert r.status_code == 202
            convs[c] = r.json()["conversation_id"]
    for c, conv in convs.items():
        assert [e["seq"] for e in d.wait_history(conv, 3)] == [1, 2, 3]
    n0 = psql_count(s0, "SELECT count(*) FROM conversations")
    n1 = psql_count(s1, "SELECT count(*) FROM conversations")
    assert n0 > 0 and n1 > 0 and n0 + n1 == 16
    listed = d.conversations(limit=100)
    assert sorted(c["conversation_id"] for c in listed) == sorted(convs.values())
    updated = [c["updated_at"] for c in listed]
    assert updated == sorted(updated, reverse=True)
