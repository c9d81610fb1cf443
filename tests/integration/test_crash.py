"""Crash safety: omnihubd is killed with SIGKILL at random moments under
mixed load (signed inbound posts, WebSocket sends, agent replies, outbound
dispatch), 20 times. After every restart each acknowledged message is in
the history exactly once, seq is dense, statuses refer to messages that
exist and are not repeated; at the end every acknowledged reply was
delivered and marked sent once. Also: a full disk gives 503s, corrupts
nothing, and service resumes once there is space again."""
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest
import requests

from test_auth_matrix import claims, jwt
from test_hostile import frame, ws_open, ws_read

ROUNDS = 20
CONTACTS = ["k0", "k1", "k2"]


def answer(r):
    """The 202's body, or None when the kill cut the answer short (then the
    client does not know the message was accepted, like after a timeout)."""
    if r.status_code != 202:
        return None
    try:
        return r.json()
    except ValueError:
        return None


class Load:
    """Mixed load against D until stopped or D goes away; remembers what
    the daemon acknowledged: kind -> {key: (event_id, conversation_id)}."""

    def __init__(self, d, rnd, acked, api_convs):
        self.d, self.rnd, self.acked, self.api_convs = d, rnd, acked, api_convs
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.agent = jwt(claims("agent-crash", "agent", "desk", ttl=7200))
        self.customer = jwt(claims("cust-crash", ttl=7200))
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.inbound, self.inbound, self.websocket, self.replies)]

    def ack(self, kind, key, event_id, conv):
        with self.lock:
            prev = self.acked[kind].get(key)
            assert prev is None or prev == (event_id, conv), \
                f"{kind} {key} acknowledged twice with different answers: {prev}, {event_id}"
            self.acked[kind][key] = (event_id, conv)

    def inbound(self):
        s = requests.Session()
        n = 0
        me = threading.get_ident() % 10007
        while not self.stop.is_set():
            n += 1
            mid = f"r{self.rnd}-t{me}-{n}"
            body = {"channel": "api:crash", "account": "acme",
                    "contact": {"id": random.choice(CONTACTS), "name": "K"},
                    "message_id": mid, "text": f"inbound {mid}"}
            raw = json.dumps(body).encode()
            try:
                from conftest import INBOUND_SECRET, sign_hex
                r = s.post(self.d.url + "/v1/inbound", data=raw, timeout=5,
                           headers={"X-Omnihub-Signature": sign_hex(INBOUND_SECRET, raw)})
            except requests.RequestException:
                return
            a = answer(r)
            if a:
                self.ack("inbound", mid, a["event_id"], a["conversation_id"])
                with self.lock:
                    self.api_convs.add(a["conversation_id"])

    def websocket(self):
        try:
            s = ws_open(self.d, self.customer)
        except (OSError, AssertionError):
            return
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key = f"r{self.rnd}-ws-{n}"
                s.sendall(frame(1, json.dumps({"type": "send", "conversation": "new",
                                               "client_msg_id": key,
                                               "text": f"ws {key}"}).encode()))
                while True:
                    f = ws_read(s, timeout=5)
                    if f is None:
                        return
                    if f[0] != 1:
                        continue
                    m = json.loads(f[1])
                    if m.get("type") == "ack" and m["client_msg_id"] == key:
                        self.ack("ws", key, m["event_id"], m["conversation_id"])
                        break
                    if m.get("type") == "error":
                        break
        except OSError:
            return
        finally:
            s.close()

    def replies(self):
        s = requests.Session()
        n = 0
        while not self.stop.is_set():
            with self.lock:
                convs = sorted(self.api_convs)
            if not convs:
                time.sleep(0.02)
                continue
            n += 1
            key = f"r{self.rnd}-reply-{n}"
            conv = random.choice(convs)
            try:
                r = s.post(self.d.url + f"/v1/conversations/{conv}/messages",
                           json={"text": f"reply {key}", "client_msg_id": key},
                           headers={"Authorization": "Bearer " + self.agent}, timeout=5)
            except requests.RequestException:
                return
            a = answer(r)
            if a:
                self.ack("reply", key, a["event_id"], a["conversation_id"])

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a load thread hung"


def check_history(d, acked, timeout=30, all_there=True):
    """Every acknowledged event exactly once (ALL_THERE false: at most once,
    the store may lag the log), dense seq, sound statuses."""
    token = jwt(claims("agent-check", "agent", "desk"))
    by_conv = defaultdict(set)
    for kind in acked.values():
        for event_id, conv in kind.values():
            by_conv[conv].add(event_id)
    deadline = time.time() + timeout
    for conv, want in by_conv.items():
        while True:
            events = d.history(conv, token=token)
            ids = Counter(e["id"] for e in events)
            missing = want - set(ids)
            if not missing or time.time() > deadline:
                break
            time.sleep(0.1)
        assert not missing or not all_there, \
            f"{conv}: {len(missing)} acknowledged events lost: {sorted(missing)[:3]}"
        dup = [i for i, n in ids.items() if n > 1]
        assert not dup, f"{conv}: events stored twice: {dup[:3]}"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), \
            f"{conv}: seq not dense"
        assert len({e["epoch"] for e in events}) <= 1
        messages = {e["data"]["message_id"]: e for e in events
                    if e["type"] != "omnihub.message.status"}
        states = Counter()
        for e in events:
            if e["type"] != "omnihub.message.status":
                continue
            st = e["data"]["status"]
            target = messages.get(st["message_id"])
            assert target and target["type"] == "omnihub.message.outbound", \
                f"{conv}: status for an unknown or inbound message: {st}"
            assert target["seq"] < e["seq"], f"{conv}: status before its message"
            states[(st["message_id"], st["state"])] += 1
        again = [k for k, n in states.items() if n > 1]
        assert not again, f"{conv}: a status repeated: {again[:3]}"
    return by_conv


def test_kill9_under_mixed_load(omnihub, http_stub):
    stub = http_stub()
    d = omnihub({"api.outbound_url": stub.url + "/hook", "dispatch.backoff_ms": "20",
                 "dispatch.backoff_max_ms": "200", "ws.rate": "1000"})
    rng = random.Random(int(os.environ.get("OMNIHUB_CRASH_SEED", "0")) or None)
    acked = {"inbound": {}, "ws": {}, "reply": {}}
    api_convs = set()
    for rnd in range(ROUNDS):
        load = Load(d, rnd, acked, api_convs)
        load.start()
        time.sleep(rng.uniform(0.15, 0.9))
        d.kill9()
        load.join()
        d.start()
        check_history(d, acked)
    counts = {k: len(v) for k, v in acked.items()}
    assert all(n > ROUNDS for n in counts.values()), f"too little load got through: {counts}"
    # every acknowledged reply is delivered (at least once, one idempotency key) and
    # marked sent exactly once
    token = jwt(claims("agent-check", "agent", "desk"))
    want = {eid for eid, _ in acked["reply"].values()}
    deadline = time.time() + 60
    while time.time() < deadline:
        delivered = {q.headers.get("idempotency-key") for q in stub.requests}
        if want <= delivered:
            break
        time.sleep(0.2)
    assert want <= delivered, f"{len(want - delivered)} acknowledged replies never delivered"
    sent = Counter()
    deadline = time.time() + 30
    while time.time() < deadline:
        sent = Counter()
        for conv in api_convs:
            for e in d.history(conv, token=token):
                if e["type"] == "omnihub.message.status" and e["data"]["status"]["state"] == "sent":
                    sent[e["data"]["status"]["message_id"]] += 1
        if len(sent) >= len(want):
            break
        time.sleep(0.2)
    reply_ids = set()
    for conv in api_convs:
        for e in d.history(conv, token=token):
            if e["id"] in want:
                reply_ids.add(e["data"]["message_id"])
    assert reply_ids <= set(sent), f"{len(reply_ids - set(sent))} delivered replies not marked sent"
    assert all(n == 1 for n in sent.values())
    check_history(d, acked)
    print(f"crash test: {ROUNDS} kills, acknowledged {counts}, "
          f"{len(stub.requests)} deliveries for {len(want)} replies")


# ---- full disk ----

def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")


def test_full_disk_gives_503_and_recovers(omnihub, tmp_path):
    data = tmp_path / "small"
    mount_tmpfs(data, "6m")
    d = None
    try:
        d = omnihub({"data_dir": str(data), "http.max_body": "256k"})
        token = jwt(claims("agent-disk", "agent", "desk"))
        acked, refused = [], []
        big = "x" * 60_000
        for n in range(400):
            r = d.post_inbound({"channel": "api:disk", "account": "acme",
                                "contact": {"id": f"c{n % 4}", "name": "D"},
                                "message_id": f"m{n}", "text": f"{n} {big}"})
            if r.status_code == 202:
                acked.append((f"m{n}", r.json()["conversation_id"], r.json()["event_id"]))
            else:
                assert r.status_code == 503, (r.status_code, r.text)
                assert r.json()["error"]["code"] == "unavailable"
                refused.append(n)
                if len(refused) >= 5:
                    break
        assert refused, "the disk never filled up"
        assert d.proc.poll() is None, "omnihubd died on a full disk"
        assert requests.get(d.url + "/healthz", timeout=5).status_code == 200
        # reads keep working while full: no duplicate, no gap (what the log holds
        # may not be materialized until there is room again)
        full = check_history(d, {"inbound": {m: (e, c) for m, c, e in acked}}, timeout=0,
                             all_there=False)
        # space returns: new messages are accepted again, nothing was lost or corrupted
        r = subprocess.run(["mount", "-o", "remount,size=64m", str(data)], capture_output=True)
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 30
        while True:
            r = d.post_inbound({"channel": "api:disk", "account": "acme",
                                "contact": {"id": "c0", "name": "D"},
                                "message_id": "after-space", "text": "room again"})
            if r.status_code == 202 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 202, f"still refused once space returned: {r.text}"
        acked.append(("after-space", r.json()["conversation_id"], r.json()["event_id"]))
        check_history(d, {"inbound": {m: (e, c) for m, c, e in acked}})
        # and the data survive a restart intact
        d.restart()
        by_conv = check_history(d, {"inbound": {m: (e, c) for m, c, e in acked}})
        assert set(by_conv) >= set(full)
        for db in data.glob("*.db"):
            out = subprocess.run(["sqlite3", str(db), "PRAGMA integrity_check;"],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                assert out.stdout.strip() == "ok", f"{db.name}: {out.stdout}"
    finally:
        if d and d.proc:
            d.stop()
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
