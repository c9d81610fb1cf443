"""A PostgreSQL shard added live (issue 24): omnihubd on two shards takes
messages from a posting thread while `omnihubctl shard add` makes a third
database a shard; nothing acknowledged is lost, seqs stay dense, the
conversations stored before (without placement rows, as a store from before
the directory) stay where they were, new ones land on the third shard too,
and every read (history, list, search, a contact's conversations, the
changes feed) finds each conversation on its shard."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pg_server import PgServer  # noqa: E402
from conftest import ctl  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


def psql(dsn, sql):
    out = subprocess.run(["psql", "-Atc", sql, dsn], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def msg(mid, contact):
    return {"channel": "api:shop", "account": "acme",
            "contact": {"id": contact, "name": contact}, "message_id": mid,
            "text": f"word{mid.replace('-', '')} hello", "sent_at": "2026-01-02T03:04:05Z"}


def fnv_ring(conv, n):
    h = 14695981039346656037
    for b in conv.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % n


class Poster(threading.Thread):
    """Posts messages in turn to the old contacts, and to a new contact every
    0.2 s, at most 150 (the list below reads one page of 200); keeps what the
    daemon acknowledged (202)."""

    def __init__(self, d, old_contacts):
        super().__init__(daemon=True)
        self.d, self.old = d, old_contacts
        self.stop = threading.Event()
        self.acked = {}  # conversation -> set of message ids
        self.contact_of = {}
        self.errors = []
        self.n = 0

    def run(self):
        last_new, new = 0.0, 0
        while not self.stop.wait(0.005):
            self.n += 1
            contact = self.old[self.n % len(self.old)]
            if time.monotonic() - last_new >= 0.2 and new < 150:
                contact, last_new, new = f"new{self.n}", time.monotonic(), new + 1
            mid = f"p{self.n}"
            try:
                r = self.d.post_inbound(msg(mid, contact))
            except Exception as e:  # noqa: BLE001 - reported below
                self.errors.append(repr(e))
                continue
            if r.status_code == 202:
                conv = r.json()["conversation_id"]
                self.acked.setdefault(conv, set()).add(mid)
                self.contact_of[conv] = contact


def test_shard_added_under_load(omnihub, pg):
    s0, s1, s2 = (pg.createdb(f"ohshard{i}") for i in range(3))
    d = omnihub({"store.backend": "postgres", "store.postgres.shards": [s0, s1]})
    acked, contact_of = {}, {}
    for c in range(10):
        for i in range(2):
            r = d.post_inbound(msg(f"o{c}-{i}", f"old{c}"))
            assert r.status_code == 202
            acked.setdefault(r.json()["conversation_id"], set()).add(f"o{c}-{i}")
            contact_of[r.json()["conversation_id"]] = f"old{c}"
    old = set(acked)
    for conv in old:
        d.wait_history(conv, 2)
    # a store from before the directory: no placement rows, the ring recorded
    assert len(psql(s0, "SELECT 1 FROM placements")) == len(old)
    psql(s0, "DELETE FROM placements")
    d.restart()  # an empty placement cache: old conversations are found on their ring shard

    poster = Poster(d, [f"old{c}" for c in range(10)])
    poster.start()
    try:
        time.sleep(1.0)
        out = ctl("shard", "add", "third", s2, "-c", d.config_path)
        assert out.returncode == 0, out.stderr.decode()
        # repeating it is harmless; another DSN under the name, or a shard's own database, is not
        assert ctl("shard", "add", "third", s2, "-c", d.config_path).returncode == 0
        assert ctl("shard", "add", "third", s1, "-c", d.config_path).returncode == 1
        assert ctl("shard", "add", "fourth", s1, "-c", d.config_path).returncode == 1
        # new conversations reach the third shard once it takes placements (~5 s)
        deadline = time.time() + 45
        while time.time() < deadline and len(psql(s2, "SELECT id FROM conversations")) < 3:
            time.sleep(0.5)
        time.sleep(1.0)  # some more traffic after the switch
    finally:
        poster.stop.set()
        poster.join(30)
    assert not poster.errors, poster.errors[:3]
    for conv, mids in poster.acked.items():
        acked.setdefault(conv, set()).update(mids)
    contact_of.update(poster.contact_of)

    on = {name: set(psql(dsn, "SELECT id FROM conversations"))
          for name, dsn in (("s0", s0), ("s1", s1), ("third", s2))}
    assert len(on["third"]) >= 3
    assert not (on["s0"] & on["s1"]) and not (on["s0"] & on["third"]) \
        and not (on["s1"] & on["third"])
    assert on["s0"] | on["s1"] | on["third"] == set(acked)
    # the conversations stored before stayed on their ring shard, without a row
    for conv in old:
        assert conv in on["s%d" % fnv_ring(conv, 2)]
    placed = dict(row.split("|") for row in psql(s0, "SELECT conversation_id, shard "
                                                 "FROM placements"))
    assert not (set(placed) & old)
    for conv in set(acked) - old:  # each new one where its row says
        assert conv in on[placed[conv]], conv
    assert psql(s1, "SELECT count(*) FROM placements") == ["0"]  # the directory is shard 0's

    # nothing lost: every acknowledged message in its history, seqs dense
    for conv, mids in acked.items():
        events = d.wait_history(conv, len(mids), timeout=30)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert {e["data"]["message_id"] for e in events} == mids

    # the list across the three shards is complete
    listed = d.conversations(limit=200)
    assert sorted(c["conversation_id"] for c in listed) == sorted(acked)
    # search and a contact's conversations find one on the third shard
    conv3 = sorted(on["third"])[0]
    mid3 = sorted(acked[conv3])[0]
    found = d.conversations(q=f"word{mid3}")
    assert [c["conversation_id"] for c in found] == [conv3]
    mine = d.conversations(contact_id=contact_of[conv3])
    assert [c["conversation_id"] for c in mine] == [conv3]
    r = d.request("GET", f"/v1/conversations/{conv3}", token=d.agent_token())
    assert r.status_code == 200 and r.json()["head"] == len(acked[conv3])

    shards = ctl("shard", "list", "-c", d.config_path)
    assert shards.returncode == 0
    rows = [line.split("\t") for line in shards.stdout.decode().splitlines()]
    assert [(r[0], r[1], r[2]) for r in rows] == [("0", "s0", "ring 0"), ("1", "s1", "ring 1"),
                                                  ("2", "third", "added")]

    # a restart reads the added shard from shard 0 (the configuration still lists two)
    d.restart()
    assert [e["seq"] for e in d.history(conv3)] == list(range(1, len(acked[conv3]) + 1))
    assert len(d.conversations(limit=200)) == len(acked)
