"""The triage service (CONTRACT part 2, "Triage"; broker/services/enrich.c):
every customer message gets an omnihub.message.enriched event, a
conversation's priority is raised (never lowered) with reason "triage",
customers see placeholders only, a kill -9 never duplicates, and the role
runs on its own against Kafka. Where one process runs sync and enrich,
sync scores each message in the batch that stores it (triage.inline)."""
import json
import sqlite3
import time

import pytest

from conftest import ctl
from test_email import CUSTOMER, SUPPORT, config, conv_of, mail, message  # noqa: F401
from test_kafka import KafkaMock
from test_store_pg import newdb, pg  # noqa: F401 (the module's PostgreSQL server)

ON = {"triage.enabled": "true"}
ANGRY = ("This is ridiculous, you charged me twice and nobody answers!!! "
         "Fix it now or I file a chargeback")
CALM = "thanks, just wondering whether you ship to Canada?"
LATE = "Where is my order? It was due last week."


def api_msg(mid, contact, text):
    return {"channel": "api:shop", "account": "acme", "contact": {"id": contact},
            "message_id": mid, "text": text}


def of_type(events, t):
    return [e for e in events if e["type"] == t]


def wait_for(d, conv, pred, timeout=20):
    """The agent's history of CONV once PRED holds for it."""
    deadline = time.time() + timeout
    while True:
        events = d.history(conv)
        if pred(events) or time.time() > deadline:
            assert pred(events), [(e["seq"], e["type"]) for e in events]
            return events
        time.sleep(0.05)


def enriched_n(n):
    return lambda evs: len(of_type(evs, "omnihub.message.enriched")) >= n


def conversation(d, conv):
    r = d.request("GET", f"/v1/conversations/{conv}", token=d.agent_token())
    assert r.status_code == 200, r.text
    return r.json()


def test_scores_raise_never_lower_and_customers_see_placeholders(omnihub):
    d = omnihub(ON)
    cust = d.customer_token("ann")
    r = d.request("POST", "/v1/conversations/new/messages",
                  {"text": ANGRY, "client_msg_id": "a1"}, token=cust)
    assert r.status_code == 202, r.text
    conv = r.json()["conversation_id"]
    events = wait_for(d, conv, lambda evs: enriched_n(1)(evs) and
                      of_type(evs, "omnihub.conversation.updated"))
    msg = of_type(events, "omnihub.message.inbound")[0]
    enr = of_type(events, "omnihub.message.enriched")[0]
    assert enr["seq"] > msg["seq"] and enr["subject"] == conv
    data = enr["data"]
    assert data["message_event_id"] == msg["id"] and data["conversation_id"] == conv
    assert (data["frustrated"], data["priority"], data["wants_human"], data["language"]) == \
        (True, "urgent", False, "en")
    assert -1 <= data["sentiment"] < 0
    up = of_type(events, "omnihub.conversation.updated")
    assert len(up) == 1 and up[0]["seq"] > enr["seq"]
    assert up[0]["data"]["changes"] == {"priority": "urgent"}
    assert up[0]["data"]["reason"] == "triage"
    assert up[0]["data"]["author"] == {"kind": "system", "id": "triage"}
    assert conversation(d, conv)["priority"] == "urgent"

    # a calm, low message and a request for a person never lower it
    for i, text in enumerate((CALM, "Pásame con una persona, por favor")):
        r = d.request("POST", f"/v1/conversations/{conv}/messages",
                      {"text": text, "client_msg_id": f"a{i + 2}"}, token=cust)
        assert r.status_code == 202, r.text
    events = wait_for(d, conv, enriched_n(3))
    calm, human = [e["data"] for e in of_type(events, "omnihub.message.enriched")[1:]]
    assert (calm["priority"], calm["frustrated"], calm["sentiment"] > 0) == ("low", False, True)
    assert (human["wants_human"], human["language"]) == (True, "es")
    assert len(of_type(events, "omnihub.conversation.updated")) == 1
    assert conversation(d, conv)["priority"] == "urgent"

    # lowered by an agent, then a late order: raised again, to high only
    r = d.request("PATCH", f"/v1/conversations/{conv}", {"priority": "low"},
                  token=d.agent_token())
    assert r.status_code == 200 and r.json()["priority"] == "low", r.text
    r = d.request("POST", f"/v1/conversations/{conv}/messages",
                  {"text": LATE, "client_msg_id": "a9"}, token=cust)
    assert r.status_code == 202, r.text
    events = wait_for(d, conv, lambda evs: len(of_type(evs, "omnihub.conversation.updated")) == 3)
    last = of_type(events, "omnihub.conversation.updated")[-1]["data"]
    assert (last["changes"], last["reason"]) == ({"priority": "high"}, "triage")
    assert conversation(d, conv)["priority"] == "high"

    # the customer: placeholders in place of scores and state, seq dense
    r = d.request("GET", f"/v1/conversations/{conv}/events?after=0&limit=1000", token=cust)
    assert r.status_code == 200, r.text
    page = r.json()["events"]
    assert [e["seq"] for e in page] == list(range(1, len(events) + 1))
    for mine, theirs in zip(events, page):
        if mine["type"] in ("omnihub.message.enriched", "omnihub.conversation.updated"):
            assert theirs == {k: mine[k] for k in ("specversion", "id", "time", "subject", "seq",
                                                   "epoch")} | {"type": "omnihub.internal"}
    for leak in (b"enriched", b"frustrated", b"wants_human", b"triage", b"urgent"):
        assert leak not in r.content, leak

    # its group's lag, read from outside, is on the timeline and drains
    enrich_group_drains(d)


def enrich_group_drains(d, timeout=10):
    """Waits until the enrich group has read the whole timeline (omnihubctl lag)."""
    deadline = time.time() + timeout
    while True:
        out = ctl("lag", "-c", d.config_path, "--group", "omnihub-enrich", "--json",
                  "--samples", 1)
        [g] = json.loads(out.stdout)["groups"]
        assert g["topic"] == "timeline", g
        if sum(p["lag"] for p in g["partitions"]) == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert out.returncode == 0 and sum(p["lag"] for p in g["partitions"]) == 0, g


def log_types(d, topic):
    """The event types of the local log's TOPIC, in its order."""
    with sqlite3.connect(d.data_dir / "log.db") as db:
        [tid] = db.execute("SELECT id FROM topics WHERE name = ?", (topic,)).fetchone()
        return [t for (t,) in db.execute(f"SELECT type FROM records_{tid} ORDER BY off")]


def test_inline_triage_stores_each_score_with_its_message(omnihub):
    """One process running sync and enrich (role all) scores a customer's
    message in the batch that stores it: the enriched event and the raise
    never travel through the events topic, and follow their message at
    once; with triage.inline false the enrich service does it as before."""
    for inline in (True, False):
        d = omnihub(ON | {"triage.inline": str(inline).lower()}, name=f"inline-{inline}")
        convs = []
        for i, text in enumerate((ANGRY, CALM, LATE)):
            r = d.post_inbound(api_msg(f"in{i}", f"ic{i}", text))
            assert r.status_code == 202, r.text
            convs.append(r.json()["conversation_id"])
        histories = [wait_for(d, c, enriched_n(1)) for c in convs]
        ups = [wait_for(d, c, lambda evs: of_type(evs, "omnihub.conversation.updated"))
               for c in convs[::2]]
        for events in ups:
            up = of_type(events, "omnihub.conversation.updated")
            assert [u["data"]["reason"] for u in up] == ["triage"], up
        if inline:  # message, its score, the raise: seq 1, 2, 3, stored together
            assert [[e["type"] for e in h] for h in ups] == [[
                "omnihub.message.inbound", "omnihub.message.enriched",
                "omnihub.conversation.updated"]] * 2
            assert [e["type"] for e in histories[1]] == [
                "omnihub.message.inbound", "omnihub.message.enriched"]
        enrich_group_drains(d)
        events_topic = log_types(d, "events")
        timeline = log_types(d, "timeline")
        assert timeline.count("omnihub.message.enriched") == 3
        assert timeline.count("omnihub.conversation.updated") == 2
        assert events_topic.count("omnihub.message.inbound") == 3
        skipped = {why: d.metric("omnihub_enrich_skipped_total", {"reason": why})
                   for why in ("marked", "in_poll", "in_store")}
        if inline:
            assert events_topic == ["omnihub.message.inbound"] * 3
            assert d.metric("omnihub_triage_messages_total") == 3
            # sync marks what it scored: the enrich service does not read
            # those messages (two marks may share a slot, 1 in ~5,000 runs)
            assert sum(skipped.values()) == 3 and skipped["marked"] >= 2, skipped
        else:
            assert sum(skipped.values()) == 0, skipped
            assert events_topic.count("omnihub.message.enriched") == 3
            assert events_topic.count("omnihub.conversation.command") == 2
        d.stop()


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "service"])
def test_kill9_after_posts_enriches_each_message_once(omnihub, inline):
    d = omnihub(ON | {"triage.inline": str(inline).lower()})
    n, convs = 40, set()
    for i in range(n):
        r = d.post_inbound(api_msg(f"k{i}", f"kc{i % 4}", ANGRY if i % 3 == 0 else CALM))
        assert r.status_code == 202, r.text
        convs.add(r.json()["conversation_id"])
    d.kill9()  # right after the 202s: scoring, raising, committing all cut short
    d.start()
    total = 0
    for conv in convs:
        events = wait_for(d, conv, lambda evs: len(of_type(evs, "omnihub.message.enriched")) >=
                          len(of_type(evs, "omnihub.message.inbound")) == n // 4)
        ids = [e["data"]["message_event_id"] for e in of_type(events, "omnihub.message.enriched")]
        assert sorted(ids) == sorted(e["id"] for e in of_type(events, "omnihub.message.inbound"))
        total += len(ids)
        up = of_type(events, "omnihub.conversation.updated")
        assert len(up) == 1 and up[0]["data"]["changes"] == {"priority": "urgent"}
    assert total == n
    # a crash before the group's commit, for certain: all scored, then the
    # group's position rewound while the daemon is down
    d.kill9()
    with sqlite3.connect(d.data_dir / "log.db") as db:
        assert db.execute("DELETE FROM group_offsets WHERE grp = 'omnihub-enrich'").rowcount == 1
    d.start()
    # each message is read again beside its score (sync's inline one, or the
    # service's own from before), so nearly none is scored again; one that
    # is (its score in the next poll) makes the same ids, dropped by sync
    enrich_group_drains(d, timeout=20)
    assert d.metric("omnihub_triage_messages_total") < n // 2
    for conv in convs:
        events = d.history(conv)
        assert len(of_type(events, "omnihub.message.enriched")) == n // 4
        assert len(of_type(events, "omnihub.conversation.updated")) == 1
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_enrich_role_alone_on_kafka(tmp_path, omnihub, pg):  # noqa: F811
    mock = KafkaMock(tmp_path, brokers=1, partitions=3)
    daemons = []
    try:
        cfg = {"log.backend": "kafka", "kafka.brokers": mock.bootstrap,
               "store.backend": "postgres", "store.postgres.dsn": newdb(pg), **ON}
        # triage on, but not this process's role: nothing is scored here
        spine = omnihub(cfg, args=["--role", "gateway,sync,dispatch"], name="spine")
        daemons.append(spine)
        enrich = omnihub(cfg, args=["--role", "enrich"], name="enrich")
        daemons.append(enrich)
        convs = set()
        for i in range(12):
            r = spine.post_inbound(api_msg(f"q{i}", f"qc{i % 3}", ANGRY if i < 3 else CALM))
            assert r.status_code == 202, r.text
            convs.add(r.json()["conversation_id"])
        for conv in convs:
            events = wait_for(spine, conv, lambda evs: enriched_n(4)(evs) and
                              of_type(evs, "omnihub.conversation.updated"), timeout=40)
            assert len(of_type(events, "omnihub.message.enriched")) == 4
            assert conversation(spine, conv)["priority"] == "urgent"
        assert enrich.metric("omnihub_triage_messages_total") == 12
        assert spine.metric("omnihub_triage_messages_total") == 0
        assert 'group="omnihub-enrich",topic="timeline"' in enrich.metrics_text()
    finally:
        for d in daemons:  # before the cluster goes away
            d.stop()
        mock.stop()


def test_bench_triage_scenario_measures_every_message(tmp_path):
    from test_bench import run_bench
    report, table = run_bench(tmp_path, "triage", "--messages", "200", "--concurrency", "8",
                              "--rate", "100", "--seconds", "1")
    off, on, delay = report["scenarios"]
    assert (off["variant"], on["variant"]) == ("triage off", "triage on")
    assert off["throughput"] > 0 and on["throughput"] > 0
    assert abs(on["ratio"] - on["throughput"] / off["throughput"]) < 1e-6
    assert on["daemon_cpu_s"] > 0 and "daemon_cpu_us_per_message_extra" in on
    # every acknowledged message's enriched event seen on the agent's WebSocket
    assert delay["scenario"] == "triage:delay" and delay["missing"] == 0
    assert delay["latency"]["count"] == 100
    assert 0 <= delay["latency"]["p50_ms"] <= delay["latency"]["p99_ms"]
    assert "triage:delay" in table


def test_email_scores_the_reply_not_its_quote_and_reads_the_subject(mail, omnihub):  # noqa: F811
    dv, smtp = mail
    d = omnihub({**config(dv, smtp), **ON})
    body = ("Thanks, that solved it, all good now.\n\n"
            "On Tue, 14 Nov 2023 at 10:00, Example Support <support@example.com> wrote:\n"
            "> This is ridiculous!!! You charged me twice and nobody answers.\n"
            "> I will file a chargeback\n")
    raw, _ = message(CUSTOMER, "Charged twice for order 55102", body)
    dv.append(SUPPORT, raw)
    conv = conv_of(raw)
    events = wait_for(d, conv, enriched_n(1))
    data = of_type(events, "omnihub.message.enriched")[0]["data"]
    # the angry words are in the quote only; the subject tells the charge
    assert (data["frustrated"], data["priority"], data["sentiment"] > 0) == (False, "urgent", True)
    assert data["channel"] == "email"
