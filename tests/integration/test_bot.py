"""The bot (bot.enabled): new conversations start in status bot, confident
answers authored {kind: bot} with article ids, each handoff reason, the
report, and no double answer across kill -9."""
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELP = json.loads((ROOT / "data" / "kb" / "helpcenter.json").read_text())


def start(omnihub, **cfg):
    config = {"bot.enabled": "true"}
    config.update(cfg)
    d = omnihub(config=config)
    admin = d.token("boss", "admin", "x")
    for a in HELP:
        body = {k: a[k] for k in ("title", "body", "locale", "tags")}
        assert d.request("PUT", "/v1/kb/articles/" + a["id"], body, token=admin).status_code == 200
    return d


def say(d, contact, mid, text):
    r = d.post_inbound({"channel": "api:test", "account": "a1", "contact": {"id": contact},
                        "message_id": mid, "text": text, "sent_at": "2026-01-01T00:00:00Z"})
    assert r.status_code == 202, r.text
    return r.json()["conversation_id"]


def wait_for(d, conv, pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        evs = d.history(conv)
        if pred(evs):
            return evs
        time.sleep(0.05)
    raise AssertionError(json.dumps(d.history(conv), indent=1)[:4000])


def bot_msgs(evs, kind=None):
    return [e for e in evs if e["type"] == "omnihub.message.outbound"
            and e["data"].get("author", {}).get("kind") == "bot"
            and (kind is None or e["data"]["bot"]["kind"] == kind)]


def handoffs(evs):
    return [e["data"]["reason"] for e in evs if e["type"] == "omnihub.conversation.updated"
            and e["data"]["reason"].startswith("handoff:")]


def status(d, conv):
    return d.request("GET", f"/v1/conversations/{conv}", token=d.agent_token()).json()["status"]


def test_bot_answers_and_hands_off_for_each_reason(omnihub):
    d = start(omnihub, **{"bot.max_turns": "1"})
    # a confident answer
    c1 = say(d, "u1", "m1", "how long does it take to get my refund after I send a return back?")
    evs = wait_for(d, c1, lambda e: bot_msgs(e))
    assert evs[0]["type"] == "omnihub.message.inbound"
    assert evs[1]["type"] == "omnihub.conversation.updated"
    assert evs[1]["data"]["changes"] == {"status": "bot"}
    ans = bot_msgs(evs)[0]
    assert ans["data"]["bot"]["kind"] == "answer" and ans["data"]["bot"]["article_ids"]
    assert ans["data"]["bot"]["confidence"] >= 0.7
    assert ans["data"]["author"] == {"kind": "bot", "id": "bot"}
    assert ans["data"]["bot"]["in_reply_to"] == evs[0]["id"]
    assert status(d, c1) == "bot"
    # max_turns (1): the next question goes to a person
    say(d, "u1", "m1b", "and how do I track my package?")
    evs = wait_for(d, c1, handoffs)
    assert handoffs(evs) == ["handoff:max_turns"] and status(d, c1) == "open"
    upd = [e for e in evs if e["type"] == "omnihub.conversation.updated"][-1]
    assert upd["data"]["author"]["kind"] == "bot" and upd["data"]["state"]["status"] == "open"
    # asked for a human
    c2 = say(d, "u2", "m2", "can I talk to a real person please")
    assert handoffs(wait_for(d, c2, handoffs)) == ["handoff:asked_for_human"]
    # frustrated
    c3 = say(d, "u3", "m3", "This is ridiculous and unacceptable, I am furious with you!!!")
    assert handoffs(wait_for(d, c3, handoffs)) == ["handoff:frustrated"]
    # low confidence twice: asks once, then hands off
    c4 = say(d, "u4", "m4", "blorft zingle quaffo?")
    evs = wait_for(d, c4, lambda e: bot_msgs(e, "clarify"))
    assert not handoffs(evs) and status(d, c4) == "bot"
    say(d, "u4", "m4b", "the wibble of the plonk")
    evs = wait_for(d, c4, handoffs)
    assert handoffs(evs) == ["handoff:low_confidence"]
    assert len(bot_msgs(evs, "answer")) == 0
    # after the handoff the bot is silent
    say(d, "u4", "m4c", "how long does a refund take?")
    time.sleep(0.5)
    assert len(bot_msgs(d.history(c4))) == 2  # the clarify and the handoff notice
    r = d.request("GET", "/v1/reports/bot", token=d.token("boss", "admin", "x")).json()
    assert r["conversations"] == 4 and r["involved"] == 4
    assert r["handed_off"] == {"asked_for_human": 1, "frustrated": 1, "low_confidence": 1,
                               "max_turns": 1}


def test_an_agent_who_claims_takes_the_conversation_from_the_bot(omnihub):
    """A claim of a conversation in status bot opens it (the agent took it
    over) and the bot answers no more there; before, the status stayed bot
    and the bot kept answering the claimed conversation. A control
    conversation asked the same question afterwards is answered, so the bot
    has read past the claimed one's question by then."""
    d = start(omnihub)
    question = "how long does it take to get my refund after I send a return back?"
    c1 = say(d, "u1", "m1", question)
    wait_for(d, c1, lambda e: bot_msgs(e))
    agent = d.agent_token("ann")
    r = d.request("POST", f"/v1/conversations/{c1}/claim", token=agent)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open" and r.json()["assignee"] == "ann"
    upd = [e for e in d.history(c1) if e["type"] == "omnihub.conversation.updated"][-1]
    assert upd["data"]["changes"] == {"assignee": "ann", "status": "open"}
    assert upd["data"]["reason"] == "claim"
    say(d, "u1", "m1b", question)
    c2 = say(d, "u2", "m2", question)  # the control, after it on the timeline
    wait_for(d, c2, lambda e: bot_msgs(e))
    assert len(bot_msgs(d.history(c1))) == 1  # only the answer before the claim


def test_bot_never_answers_twice_across_kill9(omnihub):
    d = start(omnihub)
    conv = say(d, "u1", "m1", "how long does it take to get my refund after I send a return back?")
    wait_for(d, conv, lambda e: bot_msgs(e))
    d.kill9()
    # the worst case of a crash: the bot's group lost its position (killed after
    # its answer was appended, before the commit), so it reads the message again
    import sqlite3
    db = sqlite3.connect(d.data_dir / "log.db")
    with db:
        gone = db.execute("DELETE FROM group_offsets WHERE grp = 'omnihub-bot'").rowcount
    db.close()
    assert gone >= 1
    d.start()
    # the provider retries the delivery too
    say(d, "u1", "m1", "how long does it take to get my refund after I send a return back?")
    conv2 = say(d, "u9", "m9", "how long does it take to get my refund after I send a return back?")
    wait_for(d, conv2, lambda e: bot_msgs(e))  # the bot runs again
    evs = d.history(conv)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert len(bot_msgs(evs)) == 1
    assert [e["type"] for e in evs if e["type"] != "omnihub.message.status"] == [
        "omnihub.message.inbound", "omnihub.conversation.updated", "omnihub.message.outbound"]


def test_bot_off_by_default(omnihub):
    d = omnihub()
    conv = say(d, "u1", "m1", "how long does a refund take?")
    evs = d.wait_history(conv, 1)
    time.sleep(0.3)
    assert status(d, conv) == "open" and not bot_msgs(d.history(conv))


def test_bot_answers_with_the_llm_and_falls_back(omnihub, http_stub):
    stub = http_stub()
    stub.queue(200, {"choices": [{"message": {"content": "Refunds arrive 3-5 days after we check your return."}}]})
    stub.set_default(500, {"error": "down"})
    d = start(omnihub, **{"ai.llm_url": stub.url + "/v1/chat/completions",
                          "ai.llm_model": "stand-in", "ai.llm_timeout_ms": "2000"})
    q = "how long does it take to get my refund after I send a return back?"
    c1 = say(d, "u1", "m1", q)
    ans = bot_msgs(wait_for(d, c1, bot_msgs))[0]["data"]
    assert ans["text"] == "Refunds arrive 3-5 days after we check your return."
    assert ans["bot"]["source"] == "llm" and len(ans["bot"]["article_ids"]) >= 1
    msgs = stub.requests[0].json()["messages"]
    assert msgs[-1]["role"] == "user" and q in msgs[-1]["content"]
    assert all(q not in m["content"] for m in msgs[:-1])
    c2 = say(d, "u2", "m2", q)  # the endpoint fails: the best article's snippet
    ans = bot_msgs(wait_for(d, c2, bot_msgs))[0]["data"]
    assert ans["bot"]["source"] == "kb" and "More in our help article" in ans["text"]


def test_bot_report_counts_resolution_honestly(omnihub):
    # the window is wall-clock time from each resolve: long enough that the
    # first report still falls inside it on a loaded machine (two test workers
    # beside other builds: 1 s was not), and waited out to the end below
    window = 5
    d = start(omnihub, **{"bot.reopen_window_s": str(window)})
    agent = d.agent_token()
    q = "how long does it take to get my refund after I send a return back?"
    convs = []
    for i in range(3):
        c = say(d, f"u{i}", f"m{i}", q)
        wait_for(d, c, bot_msgs)
        convs.append(c)
    # 0: resolved by the bot alone; 1: an agent wrote in it; 2: re-opened at once
    d.request("POST", f"/v1/conversations/{convs[1]}/messages",
              {"text": "let me check", "client_msg_id": "a1"}, token=agent)
    first = time.monotonic()
    for c in convs:
        r = d.request("PATCH", f"/v1/conversations/{c}", {"status": "resolved"}, token=agent)
        assert r.status_code == 200, r.text
    last = time.monotonic()
    say(d, "u2", "m2b", "thanks, one more thing")
    wait_for(d, convs[2], lambda e: any(x["data"].get("reason") == "inbound" for x in e))
    r = d.request("GET", "/v1/reports/bot", token=agent).json()
    assert time.monotonic() - first < window, "too slow to see the window running"
    assert r["resolved_by_bot"] == 0 and r["resolved_in_window"] == 1  # the window runs
    time.sleep(max(0.0, last + window + 0.5 - time.monotonic()))
    r = d.request("GET", "/v1/reports/bot", token=agent).json()
    assert r["involved"] == 3 and r["resolved_by_bot"] == 1 and r["resolved_in_window"] == 0
