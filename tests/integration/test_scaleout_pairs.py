"""Every service role in pairs (issue 24): on librdkafka's mock cluster and
PostgreSQL, two worker processes each run sync, dispatch, triage (enrich),
the bot and KPIs as members of those roles' groups, and two gateways each run
a router. Conversations go customer -> bot (clarify, then hand-off) -> router
-> agent reply (dispatch) -> resolved while one worker and one gateway are
killed with kill -9 in the middle. Afterwards nothing is lost and nothing is
doubled: every history dense, every customer message enriched once, the bot's
turns once, each conversation routed once, each reply sent (one key at the
provider), the KPI report equal to a recomputation from the histories. The
autoscaling signals on /metrics move with it: lag in seconds per role, the
service delay of the survivor, connections, dispatch's queue."""
import concurrent.futures
import sys
import threading
import time
import uuid

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from pg_server import PgServer  # noqa: E402
from test_kafka import KafkaMock, wait_assigned  # noqa: E402
from test_kpis import fold_history, report, wait_equal  # noqa: E402
from test_routing import Desk  # noqa: E402

WORKER_ROLES = "sync,dispatch,enrich,bot,kpi"
PARTITIONS = 6  # test_kafka's wait_assigned spreads that many
N = 30          # conversations
WAIT = 120      # generous: a killed member's partitions come back after its session timeout

INBOUND, OUTBOUND = "omnihub.message.inbound", "omnihub.message.outbound"
UPDATED, STATUS, ENRICHED = ("omnihub.conversation.updated", "omnihub.message.status",
                             "omnihub.message.enriched")


def wait_for(pred, timeout=WAIT, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def bot_kinds(h):
    return [e["data"]["bot"]["kind"] for e in h if e["type"] == OUTBOUND
            and (e["data"].get("author") or {}).get("kind") == "bot"]


def reasons(h):
    return [e["data"]["reason"] for e in h if e["type"] == UPDATED]


def sent_outbound(h):
    """Agents' and the bot's messages (what dispatch sends)."""
    return [e for e in h if e["type"] == OUTBOUND and not e["data"].get("internal") and
            (e["data"].get("author") or {}).get("kind") in ("agent", "bot")]


def complete(h):
    """The conversation went all the way: resolved, and every message it
    sent has its outcome."""
    sent = {e["data"]["status"]["message_id"] for e in h if e["type"] == STATUS}
    return "resolved" in [(e["data"].get("state") or {}).get("status") for e in h
                          if e["type"] == UPDATED] and \
        all(e["data"]["message_id"] in sent for e in sent_outbound(h))


class Sampler:
    """Polls a process's /metrics for the largest value of some series."""

    def __init__(self, d, series):
        self.d, self.series = d, series  # name -> labels
        self.max = {name: 0.0 for name in series}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                for name, labels in self.series.items():
                    self.max[name] = max(self.max[name], self.d.metric(name, labels))
            except Exception:
                pass
            self.stop_flag.wait(0.3)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


def test_every_role_in_pairs_kill9_loses_and_doubles_nothing(tmp_path, omnihub, http_stub):
    mock = KafkaMock(tmp_path, brokers=1, partitions=PARTITIONS)
    stub = http_stub()
    try:
        with PgServer() as pg:
            cfg = {"log.backend": "kafka", "kafka.brokers": mock.bootstrap,
                   "store.backend": "postgres",
                   "store.postgres.dsn": pg.createdb("p" + uuid.uuid4().hex[:12]),
                   "api.outbound_url": stub.url + "/hook",
                   "routing.enabled": "true", "routing.capacity": "1000",
                   "triage.enabled": "true", "bot.enabled": "true",
                   # the queue test at the end: a reply stays in backoff while the
                   # provider answers 503 (dispatch.backoff_max_ms is 400 here)
                   "dispatch.max_attempts": "200"}
            g1 = omnihub(cfg, name="g1", args=["--role", "gateway,router"])
            g2 = omnihub(cfg, name="g2", args=["--role", "gateway,router"])
            w1 = omnihub(cfg, name="w1", args=["--role", WORKER_ROLES])
            w2 = omnihub(cfg, name="w2", args=["--role", WORKER_ROLES])
            desk, desk2 = Desk(g1), Desk(g2)
            try:
                run(stub, g1, g2, w1, w2, desk, desk2)
            finally:
                desk.close()
                desk2.close()
                for d in (g1, g2, w1, w2):
                    if d.proc:
                        d.stop()
    finally:
        mock.stop()


def run(stub, g1, g2, w1, w2, desk, desk2):
    wait_assigned([w1, w2], timeout=60)  # sync's partitions spread over the pair
    # the agent is online on both gateways: both routers see her
    desk.online("ann")
    desk2.online("ann")
    assert g1.metric("omnihub_ws_connections") >= 1
    ann = g1.agent_token("ann")
    sampler = Sampler(w1, {"omnihub_role_lag_seconds": {"role": "sync"},
                           "omnihub_role_lag": {"role": "sync"},
                           "omnihub_service_delay_seconds": {"service": "sync"}})
    convs, started_after_kill = [None] * N, []
    killed = threading.Event()

    def hist(conv):
        return g1.history(conv, token=ann)

    def post(i, k, text):
        r = g1.post_inbound({"channel": "api:shop", "account": "acme",
                             "contact": {"id": f"pair{i}", "name": f"C{i}"},
                             "message_id": f"pair{i}-{k}", "text": text})
        assert r.status_code == 202, r.text
        return r.json()["conversation_id"]

    def drive(i):
        if killed.is_set():
            started_after_kill.append(i)
        conv = convs[i] = post(i, 1, f"hello, a question on order {i}")
        # nothing in the knowledge base: the bot asks once to rephrase...
        assert wait_for(lambda: "clarify" in bot_kinds(hist(conv))), (conv, hist(conv))
        post(i, 2, f"it is about parcel {i} and its label")
        # ... then hands off; the router gives it to ann
        assert wait_for(lambda: g1.request("GET", f"/v1/conversations/{conv}", token=ann)
                        .json().get("assignee") == "ann"), (conv, hist(conv))
        r = g1.request("POST", f"/v1/conversations/{conv}/messages",
                       {"text": f"on it, order {i}", "client_msg_id": f"r{i}"}, token=ann)
        assert r.status_code == 202, r.text
        r = g1.request("PATCH", f"/v1/conversations/{conv}", {"status": "resolved"}, token=ann)
        # 503: not decided in time (the partition waits for its new member);
        # the command is in the log and applies once it has one
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:
            assert wait_for(lambda: g1.request("GET", f"/v1/conversations/{conv}", token=ann)
                            .json().get("status") == "resolved"), (conv, hist(conv))

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        # half of the conversations first; the rest once the provider
        # refuses, so that replies are still to come for the member to be
        # killed however fast the first ones went
        futures = [pool.submit(drive, i) for i in range(N // 2)]
        # kill -9 once the second member of every group has done work of its own
        busy = {"omnihub_sync_materialized_total": None, "omnihub_triage_messages_total": None,
                "omnihub_bot_actions_total": None,
                "omnihub_outbound_total": {"result": "sent"},
                "omnihub_first_response_seconds_count": None}
        assert wait_for(lambda: all(w2.metric(m, lab) > 0 for m, lab in busy.items()), WAIT,
                        0.2), {m: w2.metric(m, lab) for m, lab in busy.items()}
        # the provider refuses for a while: the member to be killed holds
        # replies in backoff, remembered in the store under its partitions
        retried = w2.metric("omnihub_outbound_total", {"result": "retry"})
        with stub.lock:
            stub.default = (503, {"error": "busy"}, {})
            refused_from = len(stub.requests)
        futures += [pool.submit(drive, i) for i in range(N // 2, N)]
        # a send refused since, so held in backoff (its entry was written
        # before it was first queued): the queue's depth alone can be a reply
        # the provider took just before the refusals, whose entry is then done
        assert wait_for(lambda: w2.metric("omnihub_outbound_total", {"result": "retry"}) > retried,
                        WAIT, 0.1)
        w2.kill9()
        g2.kill9()
        desk2.ws.clear()
        killed.set()
        with stub.lock:
            stub.default = (200, {}, {})
            refused_to = len(stub.requests)
        for f in futures:
            f.result()
    assert started_after_kill, "the stream went on after the kill"

    # every conversation completes on the survivors; then room for a double
    histories = {}
    for conv in convs:
        assert wait_for(lambda: complete(hist(conv)), WAIT, 0.3), hist(conv)
    time.sleep(1.5)
    for conv in convs:
        histories[conv] = hist(conv)
    sampler.stop()

    for conv, h in histories.items():
        # sync: dense, nothing twice
        assert [e["seq"] for e in h] == list(range(1, len(h) + 1)), conv
        assert len({e["id"] for e in h}) == len(h), conv
        inbound = [e for e in h if e["type"] == INBOUND]
        assert len(inbound) == 2 and len({e["data"]["message_id"] for e in inbound}) == 2
        # triage: each customer message enriched once
        enriched = [e["data"]["message_event_id"] for e in h if e["type"] == ENRICHED]
        assert sorted(enriched) == sorted(e["id"] for e in inbound), (conv, enriched)
        # the bot: one clarify, one hand-off message, one hand-off
        assert bot_kinds(h) == ["clarify", "handoff"], (conv, bot_kinds(h))
        assert [r for r in reasons(h) if r.startswith("handoff:")] == ["handoff:low_confidence"]
        # the router: one assignment
        assert reasons(h).count("routed") == 1, (conv, reasons(h))
        # dispatch: one outcome per message, sent
        out = sent_outbound(h)
        assert len(out) == 3, (conv, [e["data"]["text"] for e in out])
        states = [(e["data"]["status"]["message_id"], e["data"]["status"]["state"])
                  for e in h if e["type"] == STATUS]
        assert sorted(states) == sorted((e["data"]["message_id"], "sent") for e in out), states

    # the provider got every message, each under its own Idempotency-Key; a
    # send the killed member had in flight may come again under the same key
    # (no provider answer survives kill -9 unrecorded), never one more
    want = {e["id"] for h in histories.values() for e in sent_outbound(h)}
    keys = [r.headers.get("idempotency-key")
            for r in stub.requests[:refused_from] + stub.requests[refused_to:]]
    assert set(keys) == want
    repeats = len(keys) - len(set(keys))
    assert repeats <= 4, f"{repeats} sends repeated (dispatch.workers is 4)"
    # the killed member's replies in backoff were taken over from the store
    resumed = sum(int(line.split("resuming ")[1].split(" ")[0])
                  for line in w1.logs().splitlines() if "pending outbound message" in line)
    assert resumed >= 1, "the survivor resumed the killed member's pending replies"

    # KPIs: the report equals a recomputation from the histories
    episodes = [e for conv, h in histories.items() for e in fold_history(conv, h)]
    assert len(episodes) == N
    admin = g1.token("boss", "admin")
    for group_by in ("none", "agent", "channel"):
        wait_equal(g1, admin, "group_by=" + group_by, report(episodes, group_by))

    # autoscaling signals: while the killed member's partitions waited for its
    # session to time out, the group's lag in seconds rose; the survivor took
    # them over records seconds old; all caught up now
    lag_s = sampler.max["omnihub_role_lag_seconds"]
    delay = sampler.max["omnihub_service_delay_seconds"]
    print(f"\n{N} conversations, {len(keys)} sends ({repeats} repeated, {resumed} resumed from "
          f"the killed member) across kill -9 of a worker and a gateway; sync lag peaked at "
          f"{lag_s:.1f} s, the survivor's delay at {delay:.1f} s")
    assert lag_s > 0 and sampler.max["omnihub_role_lag"] > 0 and delay > 0.5, sampler.max
    assert wait_for(lambda: all(w1.metric("omnihub_role_lag_seconds", {"role": r}) == 0 and
                                w1.metric("omnihub_role_lag", {"role": r}) == 0
                                for r in ("sync", "dispatch", "enrich", "bot", "kpi")), 30, 0.5), \
        w1.metrics_text()
    text = w1.metrics_text()
    for role, group in (("sync", "omnihub-sync"), ("dispatch", "omnihub-dispatch"),
                        ("enrich", "omnihub-enrich"), ("bot", "omnihub-bot"),
                        ("kpi", "omnihub-kpi")):
        assert f'omnihub_role_lag_seconds{{role="{role}",group="{group}"}} ' in text, role
    assert 'omnihub_service_delay_seconds{service="router",role="router"} ' in g1.metrics_text()
    assert "omnihub_ingest_pending " in g1.metrics_text()
    assert g1.metric("omnihub_ws_connections") >= 1

    # dispatch's queue: a provider answering 503 keeps a reply in backoff on
    # the survivor; once it answers again the queue empties
    assert w1.metric("omnihub_dispatch_queue_depth") == 0
    stub.set_default(503, {"error": "busy"})
    r = g1.request("POST", f"/v1/conversations/{convs[0]}/messages",
                   {"text": "one more thing", "client_msg_id": "late"}, token=ann)
    assert r.status_code == 202, r.text
    assert wait_for(lambda: w1.metric("omnihub_dispatch_queue_depth") >= 1, 30), w1.metrics_text()
    stub.set_default(200, {})
    assert wait_for(lambda: w1.metric("omnihub_dispatch_queue_depth") == 0, 30)
    h = hist(convs[0])
    late = [e for e in h if e["type"] == OUTBOUND and e["data"]["text"] == "one more thing"]
    assert wait_for(lambda: (late[0]["data"]["message_id"], "sent") in [
        (e["data"]["status"]["message_id"], e["data"]["status"]["state"])
        for e in hist(convs[0]) if e["type"] == STATUS], 30)


def test_autoscaling_signals_on_the_local_log(omnihub):
    """The same families in one process of role all on the local log, each
    with its HELP: the role lag of every group, each service's delay, the
    appends waiting for the log, dispatch's queue (connections appear with
    the first WebSocket, as in the test above)."""
    d = omnihub({"routing.enabled": "true"})
    conv = d.post_inbound({"channel": "api:shop", "account": "acme", "contact": {"id": "sig1"},
                           "message_id": "sig1", "text": "hello"}).json()["conversation_id"]
    d.wait_history(conv, 1)

    def families():
        text = d.metrics_text()
        return text, {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    want = {"omnihub_role_lag", "omnihub_role_lag_seconds", "omnihub_service_delay_seconds",
            "omnihub_ingest_pending", "omnihub_dispatch_queue_depth"}
    assert wait_for(lambda: want <= families()[1], 30), want - families()[1]
    text = families()[0]
    for role, group in (("sync", "omnihub-sync"), ("dispatch", "omnihub-dispatch"),
                        ("kpi", "omnihub-kpi")):
        assert f'omnihub_role_lag_seconds{{role="{role}",group="{group}"}} ' in text, role
    for service, role in (("sync", "sync"), ("dispatch", "dispatch"), ("router", "router"),
                          ("kpi", "kpi")):
        assert f'omnihub_service_delay_seconds{{service="{service}",role="{role}"}} ' in text
    # the append was acknowledged: nothing waits for the log
    assert d.metric("omnihub_ingest_pending") == 0
